"""Unary ops (SPEC section 1), generated from the registry."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

import triton_ops
from triton_ops.spec import _to_op_args
from helpers import DEVICE, DTYPES, LAYOUTS, assert_close, cast_keep_layout, layout, reference_grads

UNARY = sorted(n for n, s in triton_ops.registry.items() if s.family == "unary")
PARAMS = {"elu": (0.7,), "leaky_relu": (0.2,), "smooth_abs": (1e-3,), "safe_log": (1e-3,), "safe_reciprocal": (1e-3,)}


def test_all_spec_unary_ops_registered():
    assert set(UNARY) >= {"elu", "gelu", "leaky_relu", "smooth_abs", "log", "safe_log", "sqrt", "reciprocal",
                          "safe_reciprocal", "identity"}


def _sample(spec, shape, gen):
    return spec.sample(shape, torch.float64, "cpu", gen)[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("name", UNARY)
def test_values_and_gradient(name, kind, dtype):
    spec = triton_ops.registry[name]
    gen = torch.Generator().manual_seed(hash((name, kind)) % 2**31)
    x64 = layout((6, 35), kind, lambda s: _sample(spec, s, gen))
    x = cast_keep_layout(x64, dtype).requires_grad_()
    params = PARAMS.get(name, ())
    y = spec.fn(x, *params)
    assert y.dtype == dtype and y.shape == x.shape
    # random upstream gradient, itself non-contiguous
    g = cast_keep_layout(torch.randn(tuple(reversed(y.shape)), generator=gen, dtype=torch.float64).permute(
        *reversed(range(y.dim()))) if y.dim() else torch.randn((), generator=gen, dtype=torch.float64), dtype)
    (dx,) = torch.autograd.grad(y, x, g) if y.numel() else (torch.zeros_like(x),)
    ref, (ref_dx,) = reference_grads(lambda t: spec.reference(t, *params), (x.detach(),), g, [0])
    assert_close(y, ref, dtype, f"{name} forward")
    assert_close(dx, ref_dx, dtype, f"{name} dx", scale=4.0)
    # the raw launchers, no autograd: exact gradient shape
    (raw_dx,) = spec.vjp(x.detach(), *params, g)
    assert raw_dx.shape == x.shape and raw_dx.dtype == dtype
    assert_close(raw_dx, ref_dx, dtype, f"{name} raw vjp", scale=4.0)
    assert torch.equal(spec.forward(x.detach(), *params), y.detach()) or y.numel() == 0


@pytest.mark.parametrize("name", UNARY)
def test_odd_sizes(name):
    spec = triton_ops.registry[name]
    gen = torch.Generator().manual_seed(1)
    for n in (1, 7, 1023):
        x = _sample(spec, (n,), gen).float().to(DEVICE)
        assert_close(spec.fn(x, *PARAMS.get(name, ())), spec.reference(x.double().cpu(), *PARAMS.get(name, ())),
                     torch.float32, f"{name}[{n}]")


@pytest.mark.parametrize("name", UNARY)
def test_gradcheck_float64(name):
    spec = triton_ops.registry[name]
    x = _sample(spec, (3, 5), torch.Generator().manual_seed(2)).to(DEVICE).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: spec.fn(t, *PARAMS.get(name, ())), (x,))


@pytest.mark.parametrize("name", UNARY)
def test_opcheck(name):
    spec = triton_ops.registry[name]
    x = _sample(spec, (4, 9), torch.Generator().manual_seed(3)).float().to(DEVICE).requires_grad_()
    torch.library.opcheck(spec.custom_op, tuple(_to_op_args(spec.args, (x, *PARAMS.get(name, ())))))


@pytest.mark.parametrize("name", UNARY)
def test_deterministic(name):
    spec = triton_ops.registry[name]
    x = _sample(spec, (17, 33), torch.Generator().manual_seed(4)).float().to(DEVICE).requires_grad_()
    g = torch.randn(17, 33, device=DEVICE)
    runs = []
    for _ in range(2):
        y = spec.fn(x, *PARAMS.get(name, ()))
        (dx,) = torch.autograd.grad(y, x, g)
        runs.append((y, dx))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("name", UNARY)
def test_errors(name):
    spec = triton_ops.registry[name]
    with pytest.raises(TypeError, match=f"triton_ops.{name}: x"):
        spec.fn(torch.arange(4, device=DEVICE))
    with pytest.raises(TypeError, match=f"triton_ops.{name}"):
        spec.fn([1.0, 2.0])
    # meta tensors compute shapes (SPEC section 0), they are not a wrong device
    assert spec.fn(torch.ones(3, device="meta")).device.type == "meta"
    if len(spec.args) > 1 and spec.args[1].name == "eps":
        with pytest.raises(ValueError, match=f"triton_ops.{name}: eps"):
            spec.fn(torch.ones(3, device=DEVICE), -1.0)


def test_empty_launches_nothing():
    x = torch.empty(0, 5, device=DEVICE)
    before = triton_ops.runtime.launch_count()
    y = triton_ops.gelu(x)
    assert y.shape == (0, 5) and triton_ops.runtime.launch_count() == before


def test_domain_checks():
    x = torch.tensor([1.0, 0.0, -2.0, 3.0], device=DEVICE)
    assert torch.isinf(triton_ops.log(x)[1]) and torch.isnan(triton_ops.log(x)[2])
    with triton_ops.domain_checks():
        with pytest.raises(triton_ops.DomainError, match=r"triton_ops.log: 2 element"):
            triton_ops.log(x)
        with pytest.raises(triton_ops.DomainError, match=r"triton_ops.reciprocal: 1 element"):
            triton_ops.reciprocal(x)
        assert isinstance(triton_ops.DomainError("x"), ValueError)
    triton_ops.log(x)  # off again outside the block
    triton_ops.set_domain_checks(True)
    try:
        with pytest.raises(triton_ops.DomainError):
            triton_ops.log(x)
    finally:
        triton_ops.set_domain_checks(False)


def test_sqrt_is_total():
    x = torch.tensor([-1.0, 0.0, 4.0], device=DEVICE, requires_grad=True)
    y = triton_ops.sqrt(x)
    y.sum().backward()
    assert y.tolist() == [0.0, 0.0, 2.0] and x.grad.tolist() == [0.0, 0.0, 0.25]


def test_gelu_accurate_near_zero():
    x = torch.tensor([1e-8, -3e-7, 1e-4], dtype=torch.float64, device=DEVICE)
    assert_close(triton_ops.gelu(x), triton_ops.registry["gelu"].reference(x.cpu()), torch.float64, "gelu")


def test_double_backward_raises():
    x = torch.randn(4, device=DEVICE, dtype=torch.float64, requires_grad=True)
    (dx,) = torch.autograd.grad(triton_ops.gelu(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        dx.sum().backward()


def test_kernels_live_in_fwd_and_bwd():
    import importlib
    import pkgutil

    def kernels_of(pkg):
        mod = importlib.import_module(pkg)
        found = set()
        for info in pkgutil.iter_modules(mod.__path__):
            sub = importlib.import_module(f"{pkg}.{info.name}")
            found |= {id(v) for v in vars(sub).values() if isinstance(v, triton.runtime.KernelInterface)}
        return found

    fwd, bwd = kernels_of("triton_ops.fwd"), kernels_of("triton_ops.bwd")
    for name, spec in triton_ops.registry.items():
        assert spec.fwd_kernels and all(id(k) in fwd for k in spec.fwd_kernels), name
        assert spec.bwd_kernels and all(id(k) in bwd for k in spec.bwd_kernels), name


# ------------------------------------------------------------------------------------------------
# a user-defined op

@triton.jit
def _softsign_f(x):
    return x / (1.0 + tl.abs(x))


@triton.jit
def _softsign_df(x):
    d = 1.0 + tl.abs(x)
    return 1.0 / (d * d)


def test_user_defined_unary_op():
    name = "test_softsign"
    spec = triton_ops.registry.get(name) or triton_ops.unary_op(
        name, _softsign_f, _softsign_df, reference=lambda x: x / (1 + x.abs()))
    assert triton_ops.registry[name] is spec
    x = torch.randn(9, 13, dtype=torch.float64, device=DEVICE).mT.requires_grad_()
    y = spec.fn(x)
    assert_close(y, spec.reference(x.detach().cpu()), torch.float64, "softsign")
    assert torch.autograd.gradcheck(spec.fn, (x,))
    torch.library.opcheck(spec.custom_op, (x.detach().float().requires_grad_(),))
    compiled = torch.compile(lambda t: spec.fn(t).sum(), fullgraph=True, backend="aot_eager")
    assert_close(compiled(x), y.sum(), torch.float64, "compiled softsign")


def test_compile_chain_matches_eager():
    def f(x):
        h = triton_ops.gelu(x)
        h = triton_ops.elu(h, 0.5)
        h = triton_ops.smooth_abs(triton_ops.leaky_relu(h, 0.1))
        return triton_ops.safe_log(h).sum()

    torch._dynamo.reset()
    x = torch.randn(8, 16, device=DEVICE, requires_grad=True)
    eager = f(x)
    (g_eager,) = torch.autograd.grad(eager, x)
    compiled = torch.compile(f, fullgraph=True)
    out = compiled(x)
    (g_comp,) = torch.autograd.grad(out, x)
    assert torch.allclose(out, eager, rtol=1e-6, atol=1e-6)
    assert torch.allclose(g_comp, g_eager, rtol=1e-6, atol=1e-6)
