"""The device audit (tests/device_audit.py, ``pytest -p device_audit``) catches, on CPU, the
placement mistakes a GPU run refuses, and passes the placements it accepts: planted cases."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import triton_ops

ROOT = Path(__file__).resolve().parents[1]

PLANTED = '''
import pytest
import torch
import triton_ops
from helpers import DEVICE


def test_host_tensor_to_an_op():
    triton_ops.gelu(torch.randn(3))


def test_host_gradient_for_a_device_output():
    x = torch.randn(3, device=DEVICE, requires_grad=True)
    torch.autograd.grad(triton_ops.gelu(x), x, torch.ones(3))


def test_device_result_against_a_host_reference():
    assert torch.equal(triton_ops.relu(torch.randn(3, device=DEVICE)), torch.zeros(3)) or True


def test_cpu_generator_drawing_on_the_device():
    torch.randn(3, generator=torch.Generator().manual_seed(0), device=DEVICE)


def test_bytes_counted_off_the_interpreter():
    from triton_ops.counting import count_bytes

    with count_bytes():
        pass


def test_placed_ok():
    x = torch.randn(3, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    y = triton_ops.gelu(x) + torch.ones(3, device=DEVICE) * torch.tensor(2.0)  # a CPU scalar may mix
    ref = torch.nn.functional.gelu(x.cpu().double(), approximate="tanh") + 2.0
    torch.testing.assert_close(y.cpu().double(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="counts need the interpreter")
def test_interpreter_only_is_not_audited():
    from triton_ops.counting import count_bytes

    with count_bytes():
        triton_ops.gelu(torch.randn(3))
'''


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the audit stands in for a GPU on CPU")
def test_the_device_audit_flags_what_a_gpu_refuses(tmp_path):
    (tmp_path / "test_planted.py").write_text(PLANTED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    env.pop("DEVICE_AUDIT_OUT", None)  # an audited run's list: not for the planted cases
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "device_audit", "-q", "-p", "no:cacheprovider",
                           "-rA", "test_planted.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout
    flagged = {line.split("::")[1].split(" ")[0] for line in out.splitlines() if line.startswith("FAILED")}
    assert flagged == {"test_host_tensor_to_an_op", "test_host_gradient_for_a_device_output",
                       "test_device_result_against_a_host_reference", "test_cpu_generator_drawing_on_the_device",
                       "test_bytes_counted_off_the_interpreter"}, out[-4000:]
    assert "2 passed" in out, out[-4000:]
    assert out.count("DeviceAudit: device audit") >= 5
