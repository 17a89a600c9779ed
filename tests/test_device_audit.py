"""The device audit (tests/device_audit.py, ``pytest -p device_audit``) catches, on CPU, the
placement mistakes a GPU run refuses, and passes the placements it accepts: planted cases."""
import ast
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


# ------------------------------------------------------------------------------------------------
# the static guard (every backend, in the default run): a test's own host tensor handed to an op

FACTORIES = {"randn", "rand", "randint", "zeros", "ones", "empty", "tensor", "arange", "full", "linspace",
             "randperm", "eye", "empty_strided", "as_tensor"}
MOVES = {"to", "cuda", "cpu"}  # a placement stated: the expression is not a forgotten one
CALLEES = {"fn", "forward", "forward_saved", "vjp", "via_custom_op"}  # an OpSpec's entry points


def _host(node) -> bool:
    """An expression made by a torch factory without ``device=`` and never moved: a literal
    ``torch.randn(3)``, or one built on it (``torch.randn(3) * 2``, ``torch.rand(3).t()``)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        if isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr in FACTORIES:
            return not any(k.arg == "device" for k in node.keywords)
        return f.attr not in MOVES and _host(f.value)
    if isinstance(node, ast.BinOp):
        return _host(node.left) or _host(node.right)
    if isinstance(node, ast.Subscript):
        return _host(node.value)
    return False


def _op_call(node) -> bool:
    """``triton_ops.<op>(...)``, ``TF.<fn>(...)`` or ``<spec>.fn/forward/vjp(...)``."""
    f = node.func
    if not isinstance(f, ast.Attribute):
        return False
    root = f.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return (isinstance(root, ast.Name) and root.id in ("triton_ops", "TF") and isinstance(f.value, ast.Name)) \
        or f.attr in CALLEES


def _interpreter_only(decorators) -> bool:
    return any("skipif" in ast.unparse(d) and ("interpreter" in ast.unparse(d) or "INTERP" in ast.unparse(d))
               for d in decorators)


def host_tensors_handed_to_ops(source: str) -> list[tuple[str, int]]:
    """(function, line) of each argument of an op call, in functions a GPU runs, that is a host
    tensor: a factory call without ``device=`` written there, or a name whose latest assignment
    before the call is one. References handed to torch, moved tensors and CPU-only tests pass."""
    tree = ast.parse(source)
    if any(isinstance(s, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in s.targets)
           and "interpreter" in ast.unparse(s.value) for s in tree.body):
        return []
    found = []
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        if _interpreter_only(fn.decorator_list):
            continue
        assigned = {}  # name -> [(line, host?)]
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                pairs = []
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        pairs.append((target, node.value))
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                            and len(target.elts) == len(node.value.elts):
                        pairs += list(zip(target.elts, node.value.elts))
                    elif isinstance(target, ast.Tuple):
                        pairs += [(t, None) for t in target.elts]
                for target, value in pairs:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append((node.lineno, value is not None and _host(value)))
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and _op_call(node):
                for arg in list(node.args) + [k.value for k in node.keywords]:
                    if _host(arg):
                        found.append((fn.name, node.lineno))
                    elif isinstance(arg, ast.Name) and arg.id in assigned:
                        before = [h for line, h in sorted(assigned[arg.id]) if line < node.lineno]
                        if before and before[-1]:
                            found.append((fn.name, node.lineno))
    return sorted(set(found))


def test_no_test_hands_an_op_a_host_tensor():
    """The placement mistakes of the first GPU run (issue: 153 failures) are not written again:
    a test that hands an op a tensor it made without ``device=`` is flagged here, on CPU, where
    it would pass. Static and partial (a tensor passed through a helper is not followed): the
    device audit (``-p device_audit``) follows every tensor."""
    found = {path.name: host_tensors_handed_to_ops(path.read_text()) for path in sorted(ROOT.glob("tests/test_*.py"))}
    assert {k: v for k, v in found.items() if v} == {}
    planted = '''
import pytest, torch, triton_ops
from helpers import DEVICE

def test_bad():
    x = torch.randn(3, 4)
    ref = torch.randn(3, 4)
    triton_ops.gelu(x)
    triton_ops.registry["gelu"].fn(torch.rand(3) + 0.5)

def test_good():
    x = torch.randn(3, 4, device=DEVICE)
    y = torch.randn(3, 4).to(DEVICE)
    ref = torch.nn.functional.gelu(torch.randn(3, 4))
    triton_ops.mul(x, y)
    x = torch.randn(3)
    x = x.to(DEVICE)
    triton_ops.gelu(x)

@pytest.mark.skipif(not INTERP, reason="counts need the interpreter")
def test_cpu_only():
    triton_ops.gelu(torch.randn(3))
'''
    assert host_tensors_handed_to_ops(planted) == [("test_bad", 8), ("test_bad", 9)]
