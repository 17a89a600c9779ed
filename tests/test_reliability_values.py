"""Issue 14, class 3: special values. NaN in gives NaN out, +-inf and -0.0 behave as the
reference (PyTorch's math for the same formula), subnormals are not flushed, and Python numbers
reach float64 math with every bit."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from helpers import DEVICE
from reliability_helpers import OPS, float_args, sample

SPECIALS = [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, -2.5e-310]


def with_specials(t: torch.Tensor, values) -> torch.Tensor:
    t = t.detach().clone()
    flat = t.view(-1)
    for k, v in enumerate(values[: flat.numel()]):
        flat[k] = v
    return t


def same_values(actual, expected, what, signed_zeros=True):
    """Equal in float64 to a tight tolerance, NaN where NaN, the same infinities, and (unless
    told otherwise) the sign of every zero (-0.0 is not 0.0)."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12, equal_nan=True, msg=lambda m: f"{what}: {m}")
    zeros = (e == 0) & (a == 0)
    assert not signed_zeros or torch.equal(torch.signbit(a[zeros]), torch.signbit(e[zeros])), f"{what}: the sign of a zero differs"


@pytest.mark.parametrize("name", OPS)
def test_special_values_in_every_floating_argument(name):
    spec = triton_ops.registry[name]
    for i in float_args(name, sample(name)):
        for values in (SPECIALS, SPECIALS[1:]):  # with a NaN, and without one (infs must survive alone)
            args = sample(name)
            if args[i].numel() == 0:
                continue
            args[i] = with_specials(args[i], values)
            out = spec.fn(*args)
            ref = spec.reference(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args])
            same_values(out, ref, f"{name}: specials {values[:2]} in argument {i}")
            if values is SPECIALS and name != "embedding":  # embedding reads only the indexed rows
                assert out.isnan().any(), f"{name}: a NaN in argument {i} vanished"


def test_sqrt_keeps_nan_and_negative_zero():
    x = torch.tensor([float("nan"), -0.0, -1.0, 0.0, 4.0], dtype=torch.float64, device=DEVICE)
    same_values(triton_ops.sqrt(x), torch.tensor([float("nan"), -0.0, 0.0, 0.0, 2.0], dtype=torch.float64), "sqrt")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_negative_zero_through_pointwise_ops(dtype):
    z = torch.tensor([-0.0, 0.0], dtype=dtype, device=DEVICE)
    cases = {
        "reciprocal": (triton_ops.reciprocal(z), 1 / z.cpu()),
        "identity": (triton_ops.identity(z), z.cpu()),
        "mul by 1.0": (triton_ops.mul(z, 1.0), z.cpu() * 1.0),
        "add -0.0": (triton_ops.add(z, -0.0), z.cpu() + -0.0),
        "sub 0.0": (triton_ops.sub(z, 0.0), z.cpu() - 0.0),
        "0.0 then -0.0": (triton_ops.add(z, 0.0), z.cpu() + 0.0),
        "leaky_relu": (triton_ops.leaky_relu(z), torch.nn.functional.leaky_relu(z.cpu())),
        "sum of -0.0": (triton_ops.sum(z[:1], 0), z[:1].cpu().sum(0)),
    }
    for what, (ours, ref) in cases.items():
        same_values(ours, ref, what)


@pytest.mark.parametrize("value", [1e300, 1e-300, 0.1, 1 / 3, -2.0 ** -1074, 1.7976931348623157e308])
def test_float64_python_numbers_keep_every_bit(value):
    x = torch.tensor([1.0, 3.0, -7.25, 1e-10], dtype=torch.float64, device=DEVICE)
    for what, ours, ref in [("mul", triton_ops.mul(x, value), x.cpu() * value),
                            ("add", triton_ops.add(value, x), value + x.cpu()),
                            ("div", triton_ops.div(x, value), x.cpu() / value),
                            ("elu alpha", triton_ops.elu(-x, value), torch.nn.functional.elu(-x.cpu(), value))]:
        assert torch.equal(ours.cpu(), ref), f"{what} {value!r}: {ours.tolist()} != {ref.tolist()}"


def test_float64_parameters_of_losses_and_norms():
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=torch.float64, device=DEVICE)
    t = torch.zeros_like(x)
    # huber with a delta below float32's range: every |d| >= delta, loss = delta * (|d| - delta/2)
    delta = 1e-300
    ours = triton_ops.huber_loss(x, t, delta, "none")
    assert torch.equal(ours.cpu(), delta * (x.cpu().abs() - 0.5 * delta))
    # layer_norm's eps at full precision (1e-300 is 0 in float32, 0.1 is rounded there)
    for eps in (1e-300, 0.1):
        ours = triton_ops.layer_norm(x, [2], eps=eps)
        torch.testing.assert_close(ours.cpu(), torch.nn.functional.layer_norm(x.cpu(), [2], eps=eps),
                                   rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("probs", [False, True])
def test_cross_entropy_masked_logits_without_smoothing_are_finite(probs):
    """SPEC section 3: -inf (masked) logits get probability 0; the row's loss stays finite
    unless the target class itself is -inf (torch gives NaN for probability targets here)."""
    z = torch.tensor([[0.5, float("-inf"), 1.0], [float("-inf"), 2.0, float("-inf")]], dtype=torch.float64,
                     device=DEVICE, requires_grad=True)
    target = (torch.tensor([[0.3, 0.0, 0.7], [0.0, 1.0, 0.0]], dtype=torch.float64, device=DEVICE) if probs
              else torch.tensor([0, 1], device=DEVICE))
    loss = triton_ops.cross_entropy_logits(z, target, reduction="none")
    logp = torch.log_softmax(z.detach().cpu(), -1)
    expected = (-(target.cpu() * torch.where(target.cpu() == 0, 0.0, logp)).sum(-1) if probs
                else -logp.gather(1, target.cpu()[:, None])[:, 0])
    same_values(loss, expected, "masked logits", signed_zeros=False)  # log-sum-exp - z: +0.0 vs -0.0
    (dz,) = torch.autograd.grad(loss.sum(), z)
    assert torch.isfinite(dz).all() and dz[0, 1] == 0 and dz[1, 0] == 0
    # with smoothing, the -inf classes take part in the loss: +inf, as torch
    smoothed = triton_ops.cross_entropy_logits(z, target, label_smoothing=0.1, reduction="none")
    torch_smoothed = torch.nn.functional.cross_entropy(z.detach().cpu(), target.cpu(), label_smoothing=0.1,
                                                       reduction="none")
    same_values(smoothed, torch_smoothed, "masked logits with smoothing", signed_zeros=False)
    # a -inf target class: +inf
    if not probs:
        bad = triton_ops.cross_entropy_logits(z, torch.tensor([1, 0], device=DEVICE), reduction="none")
        assert bad.tolist() == [math.inf, math.inf]


def test_cross_entropy_nan_logit_gives_nan_row():
    z = torch.tensor([[0.5, float("nan"), 1.0], [0.0, 2.0, 1.0]], dtype=torch.float64, device=DEVICE)
    loss = triton_ops.cross_entropy_logits(z, torch.tensor([0, 1], device=DEVICE), reduction="none")
    assert loss[0].isnan() and loss[1].isfinite()


@pytest.mark.parametrize("name", ["hinge_loss", "binary_cross_entropy", "cross_entropy", "cosine_similarity_loss"])
def test_clamps_and_maxima_keep_nan(name):
    """The ops built on max/min/clamp (tl.maximum drops NaN unless told otherwise)."""
    args = sample(name)
    args[0] = with_specials(args[0], [float("nan")])
    assert triton_ops.registry[name].fn(*args).isnan().all()


LINEAR_IN_TARGET = {("binary_cross_entropy", 1, 1), ("cross_entropy", 1, 1), ("poisson_loss", 1, 1)}


@pytest.mark.parametrize("name", ["sqrt", "elu", "gelu", "log", "mae_loss", "huber_loss", "hinge_loss", "mse_loss",
                                  "binary_cross_entropy", "cross_entropy", "log_cosh_loss", "poisson_loss"])
def test_nan_input_gives_nan_gradient(name):
    """Piecewise derivatives (a comparison picks the case) must not turn a NaN into a number."""
    spec = triton_ops.registry[name]
    idx = float_args(name, sample(name))
    for i in idx:
        args = sample(name)
        args[i] = with_specials(args[i], [float("nan")])
        for j in idx:
            args[j] = args[j].requires_grad_()
        if "reduction" in [a.name for a in spec.args]:
            args[[a.name for a in spec.args].index("reduction")] = "none"
        out = spec.fn(*args)
        grads = torch.autograd.grad(out, [args[j] for j in idx], torch.ones_like(out))
        for j, gr in zip(idx, grads):
            if (name, i, j) in LINEAR_IN_TARGET:
                continue  # the loss is linear in the target: d/dtarget does not read the target
            assert gr.reshape(-1)[0].isnan(), f"{name}: NaN in argument {i}, gradient {j} is {gr.reshape(-1)[0]}"


def _negative_zero_literals_in_kernels(root):
    """(file, line) of every ``-0.0`` written in a ``@triton.jit`` or ``@helper`` function under
    ``root``."""
    import ast
    import pathlib

    def is_kernel(fn):
        for d in fn.decorator_list:
            name = ast.unparse(d)
            if name in ("triton.jit", "helper") or name.startswith("triton.jit("):
                return True
        return False

    found = []
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef) and is_kernel(fn):
                for node in ast.walk(fn):
                    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
                            and isinstance(node.operand, ast.Constant) and node.operand.value == 0
                            and isinstance(node.operand.value, float)):
                        found.append((str(path.relative_to(root)), node.lineno))
    return found


def test_no_kernel_writes_a_negative_zero_literal(tmp_path):
    """Triton 3.6 (the GPU machine's) compiles a constant equal to 0 as the null value: a
    ``-0.0`` written in a kernel (``tl.full(shape, -0.0, dtype)``, ``x + -0.0``) becomes +0.0 and a
    sign of zero is lost, where Triton 3.9 (this CI's) keeps it; CI cannot see it by running.
    Kernels make -0.0 as ``tl.zeros(...) * -1.0`` (``docs/benchmarks/versions.md``)."""
    import pathlib

    assert _negative_zero_literals_in_kernels(pathlib.Path(triton_ops.__file__).parent) == []
    planted = tmp_path / "k.py"  # the check itself finds one
    planted.write_text("import triton\n@triton.jit\ndef k(x):\n    return x + -0.0\n"
                       "def host():\n    return -0.0\n")
    assert _negative_zero_literals_in_kernels(tmp_path) == [("k.py", 4)]


def _running_max_rows(dtype, C):
    """Rows that walk every case of the online log-sum-exp's running max: all -inf, -inf next to
    the dtype's lowest finite value (the kernel's starting max), +inf once and twice, NaN, huge
    values (lowest - huge overflows to -inf), -inf before and after finite logits. The specials
    sit in the last columns too (the masked tail lanes of a block, and a second block when C is
    long)."""
    big, low, inf, nan = torch.finfo(dtype).max, torch.finfo(dtype).min, float("inf"), float("nan")
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(10, C, generator=gen, dtype=torch.float64).to(dtype)
    z[0] = -inf
    z[1] = low
    z[1, ::3] = -inf
    z[2, -1] = inf
    z[3, 1], z[3, -2] = inf, inf
    z[4, -3] = nan
    huge = big / (4 * C)  # lowest - huge overflows (C small), and the sums over a row stay finite
    z[5, 0], z[5, -1] = huge, -inf
    z[6, : C // 2] = -inf
    z[7, C // 2:] = -inf
    z[8, -1] = huge
    z[9] = low
    z[9, -1] = -inf
    return z


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C", [5, (1 << 15) + 3])
def test_cross_entropy_running_max_edges_as_torch(dtype, C):
    """The forward's running max starts at the dtype's lowest finite value, not -inf: every row
    above, each target kind, with and without smoothing, gives torch's values (float64: exact
    to a tight tolerance; NaN where torch has NaN, the same infinities); the log-sum-exp the VJP
    reads gives torch's gradient for index targets."""
    z = _running_max_rows(dtype, C).to(DEVICE)
    rows = z.shape[0]
    index = torch.tensor([1, 0, 0, 2, 0, 0, C - 1, 0, C - 1, 0], device=DEVICE)
    index[4] = -100
    probs = torch.softmax(torch.randn(rows, C, generator=torch.Generator().manual_seed(8), dtype=torch.float64), -1)
    probs[:, 1::4] = 0.0
    probs = probs.to(dtype).to(DEVICE)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 2e-6}
    for smoothing in (0.0, 0.1):
        for target in (index, probs):
            out = triton_ops.cross_entropy_logits(z, target, label_smoothing=smoothing, reduction="none")
            zc, tc = z.cpu().double(), target.cpu()
            if target.is_floating_point():  # a class of mass 0 adds 0 (torch: 0 * -inf = NaN; SPEC section 3)
                q = tc.double() * (1 - smoothing) + smoothing / C
                expected = -torch.where(q == 0, 0.0, q * torch.log_softmax(zc, -1)).sum(-1)
            else:
                expected = F.cross_entropy(zc, tc, label_smoothing=smoothing, reduction="none")
                # rows 1 and 9 (logits near the lowest value): the loss is log-sum-exp - z_t (SPEC),
                # a difference of two numbers of ~1e308 (1e38), which rounds log(count) away where
                # F.cross_entropy's (z - max) - log(sum) keeps it; a lowest logit left out of the sum
                # would give -inf. (With smoothing both rows hold a -inf logit: +inf either way.)
                if smoothing == 0:
                    nll = torch.logsumexp(zc, -1) - zc.gather(1, tc.clamp(min=0)[:, None])[:, 0]
                    expected[[1, 9]] = nll[[1, 9]]
            torch.testing.assert_close(out.cpu().double(), expected.to(dtype).double(), equal_nan=True, **tol,
                                       msg=lambda m: f"smoothing {smoothing}, probs {target.is_floating_point()}: {m}")
    zg = z.clone().requires_grad_()
    (dz,) = torch.autograd.grad(triton_ops.cross_entropy_logits(zg, index, reduction="sum"), zg)
    zr = z.cpu().double().requires_grad_()
    (rz,) = torch.autograd.grad(F.cross_entropy(zr, index.cpu(), reduction="sum"), zr)
    keep = [0, 2, 3, 5, 6, 7, 8]  # rows 1 and 9: softmax from a rounded log-sum-exp (above)
    torch.testing.assert_close(dz[keep].cpu().double(), rz[keep].to(dtype).double(), equal_nan=True, **tol)
    assert torch.count_nonzero(dz[4]) == 0  # an ignored row: no gradient, its NaN logit too (torch: NaN)
