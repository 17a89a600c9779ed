"""Every kernel compiles for sm_90 with the installed Triton (PTX + ptxas), without a GPU."""
import os
import subprocess
import sys

import pytest

import triton_ops

HERE = os.path.dirname(__file__)


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the GPU runs the kernels for real")
def test_every_op_compiles_for_sm90():
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1", PYTHONPATH=os.path.dirname(HERE))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "compile_sm90.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("compiled ") == len(triton_ops.registry) + 1
    assert "compiled int64 variants" in proc.stdout and "gemm variants ok" in proc.stdout
