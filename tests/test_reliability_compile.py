"""Issue 14: the float64 kernels compile for sm_90 with Python numbers passed as their IEEE bits
(an int argument of 32 or 64 bits, or the value 1 that Triton specializes to a constant), and
the kernels whose signatures gained parameter strides compile with strided parameters."""
import os
import subprocess
import sys

import pytest

import triton_ops

HERE = os.path.dirname(__file__)

SCRIPT = r"""
import torch, triton_ops as T
assert T.backend() == "compile-only"
x = torch.randn(16, 40, dtype=torch.float64)
w = torch.randn(80, dtype=torch.float64)[::2]
for v in (0.0, 5e-324):  # bits 0 (32-bit) and 1 (a constant to Triton): the argument kinds
    T.registry["mul"].forward(x, v)
v = 1e300  # 64-bit bits, through every family that takes a number
T.registry["elu"].vjp(x, v, torch.randn(16, 40, dtype=torch.float64))
T.registry["huber_loss"].vjp(x, x.flip(0), v, "mean", torch.tensor(1.0, dtype=torch.float64))
T.registry["layer_norm"].vjp(x, [40], w, w, v, torch.randn(16, 40, dtype=torch.float64))
T.registry["cross_entropy_logits"].vjp(x, torch.randint(0, 40, (16,)), -1, -100, 0.1, "mean",
                                       torch.tensor(1.0, dtype=torch.float64))
T.registry["linear"].vjp(x, torch.randn(8, 40, dtype=torch.float64), torch.randn(16, dtype=torch.float64)[::2],
                         "elu", None, torch.randn(16, 8, dtype=torch.float64))
# A cached launch plan must not reuse a kernel compiled for another class of bits: Triton
# specializes the ints of a tuple (1 a constant, multiples of 16, int32 or int64).
y = torch.randn(4, 8, dtype=torch.float64)
T.registry["mul"].forward(y, 2.0)  # the plan exists (bits: int64, a multiple of 16)
before = T.runtime.compile_count()
for v in (0.0, 5e-324, 1e300):  # bits 0 (int32, /16), 1 (a constant), int64 not /16: three more kernels
    T.registry["mul"].forward(y, v)
assert T.runtime.compile_count() == before + 3, T.runtime.compile_count() - before
T.registry["mul"].forward(y, 3.0)  # bits of 2.0's class: the cached kernel
assert T.runtime.compile_count() == before + 3, T.runtime.compile_count() - before
print("compiled float64", flush=True)
"""


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the GPU runs the kernels for real")
def test_float64_numbers_and_strided_parameters_compile_for_sm90():
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1", PYTHONPATH=os.path.dirname(HERE))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "compiled float64" in proc.stdout
