"""Broadcasting binary ops, descriptors and shape ops (SPEC section 2)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import triton_ops
from triton_ops.spec import _to_op_args
from helpers import DEVICE, DTYPES, assert_close, cast_keep_layout, reference_grads

BINARY = sorted(n for n, s in triton_ops.registry.items() if s.family == "binary")
PARAMS = {"safe_div": (1e-3,), "add": (-0.75,), "sub": (2.5,)}  # add/sub: alpha, as torch.add/torch.sub


def test_all_spec_binary_ops_registered():
    assert set(BINARY) >= {"add", "sub", "mul", "div", "safe_div"}


# ------------------------------------------------------------------------------------------------
# property tests: random broadcastable pairs, layouts and dtypes


@st.composite
def broadcast_pairs(draw):
    rank = draw(st.integers(0, 4))
    out = [draw(st.sampled_from([1, 2, 3, 5, 8])) for _ in range(rank)]
    shapes = []
    for _ in range(2):
        drop = draw(st.integers(0, rank))  # missing leading axes
        shape = [1 if draw(st.booleans()) and draw(st.booleans()) else s for s in out[drop:]]
        shapes.append(tuple(shape))
    if draw(st.booleans()):
        shapes.reverse()
    return shapes


def _make(shape, kind, gen, positive=False):
    def values(s):
        v = torch.randn(s, generator=gen, dtype=torch.float64)
        return v.abs() + 0.5 if positive else v

    if kind == "transposed" and len(shape) >= 2:
        return values(tuple(reversed(shape))).permute(*reversed(range(len(shape))))
    if kind == "strided" and len(shape) >= 1:
        big = values(tuple(2 * s for s in shape))
        return big[tuple(slice(None, None, 2) for _ in shape)]
    if kind == "expanded" and len(shape) >= 1 and shape[0] > 1:
        return values((1,) + tuple(shape[1:])).expand(shape)
    return values(shape)


LAYOUT_KINDS = ["contiguous", "transposed", "strided", "expanded"]


def _check_pair(name, a_shape, b_shape, kinds, dtype, seed):
    spec = triton_ops.registry[name]
    gen = torch.Generator().manual_seed(seed)
    positive_b = name in ("div", "safe_div")
    a = cast_keep_layout(_make(a_shape, kinds[0], gen), dtype).requires_grad_()
    b = cast_keep_layout(_make(b_shape, kinds[1], gen, positive=positive_b), dtype).requires_grad_()
    params = PARAMS.get(name, ())
    out = spec.fn(a, b, *params)
    out_shape = torch.broadcast_shapes(a_shape, b_shape)
    assert out.shape == out_shape and out.dtype == dtype
    g = cast_keep_layout(_make(tuple(out_shape), kinds[2], gen), dtype)
    ref, (ref_da, ref_db) = reference_grads(lambda x, y: spec.reference(x, y, *params), (a, b), g, [0, 1])
    assert_close(out, ref, dtype, f"{name} forward")
    if out.numel():
        da, db = torch.autograd.grad(out, (a, b), g)
        assert da.shape == a.shape and db.shape == b.shape
        red = max(1, out.numel() // max(1, min(a.numel(), b.numel())))  # longest reduce-back
        assert_close(da, ref_da, dtype, f"{name} da", scale=4.0 * red)
        assert_close(db, ref_db, dtype, f"{name} db", scale=4.0 * red)
    raw_da, raw_db = spec.vjp(a.detach(), b.detach(), *params, g)  # no autograd: shapes are the launcher's
    assert raw_da.shape == a.shape and raw_db.shape == b.shape
    assert raw_da.dtype == dtype and raw_db.dtype == dtype
    red = max(1, out.numel() // max(1, min(a.numel(), b.numel())))
    assert_close(raw_da, ref_da, dtype, f"{name} raw da", scale=4.0 * red)
    assert_close(raw_db, ref_db, dtype, f"{name} raw db", scale=4.0 * red)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(pair=broadcast_pairs(), kinds=st.tuples(*[st.sampled_from(LAYOUT_KINDS)] * 3), seed=st.integers(0, 2**16))
def test_property_broadcast_pairs(name, dtype, pair, kinds, seed):
    _check_pair(name, pair[0], pair[1], kinds, dtype, seed)


@pytest.mark.parametrize("a_shape,b_shape", [((64, 32), (32,)), ((8, 1, 16), (1, 16, 16)), ((32, 24), (32, 1)),
                                             ((), (3, 4)), ((5, 1, 3, 1), (4, 1, 2)), ((0, 3), (3,))])
def test_named_pairs_float32(a_shape, b_shape):
    for name in BINARY:
        _check_pair(name, a_shape, b_shape, ("transposed", "strided", "transposed"), torch.float32, 0)


def test_python_numbers_and_promotion():
    x = torch.randn(4, 5, dtype=torch.float16, device=DEVICE, requires_grad=True)
    y = triton_ops.mul(2.5, x)
    assert y.dtype == torch.float16
    assert_close(y, 2.5 * x.detach().double(), torch.float16, "2.5*x")
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert torch.all(gx == 2.5)
    z = triton_ops.sub(1.0, triton_ops.div(x, 4.0))
    assert_close(z, 1.0 - x.detach().double() / 4.0, torch.float16, "1 - x/4")
    w = torch.randn(5, dtype=torch.float32, device=DEVICE)
    assert triton_ops.add(x, w).dtype == torch.result_type(x, w) == torch.float32
    d = torch.randn(5, dtype=torch.float64, device=DEVICE)
    assert_close(triton_ops.mul(d, 0.1), d * 0.1, torch.float64, "float64 * 0.1 keeps float64 precision")


@pytest.mark.parametrize("name", BINARY)
def test_gradcheck_float64(name):
    spec = triton_ops.registry[name]
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(2, 1, 3, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_()
    b = (torch.rand(2, 1, generator=gen, dtype=torch.float64) + 0.5).to(DEVICE).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: spec.fn(x, y, *PARAMS.get(name, ())), (a, b))


@pytest.mark.parametrize("name", BINARY)
def test_opcheck(name):
    spec = triton_ops.registry[name]
    a = torch.randn(3, 4, device=DEVICE, requires_grad=True)
    b = (torch.rand(4, device=DEVICE) + 0.5).requires_grad_()
    torch.library.opcheck(spec.custom_op, tuple(_to_op_args(spec.args, (a, b, *PARAMS.get(name, ()), None))))
    torch.library.opcheck(spec.custom_op, tuple(_to_op_args(spec.args, (a, 3.0, *PARAMS.get(name, ()), None))))


@pytest.mark.parametrize("name", BINARY)
def test_deterministic(name):
    spec = triton_ops.registry[name]
    a = torch.randn(64, 1, 48, device=DEVICE, requires_grad=True)
    b = (torch.rand(1, 40, 48, device=DEVICE) + 0.5).requires_grad_()
    g = torch.randn(64, 40, 48, device=DEVICE)
    runs = []
    for _ in range(2):
        out = spec.fn(a, b)
        runs.append((out, *torch.autograd.grad(out, (a, b), g)))
    assert all(torch.equal(x, y) for x, y in zip(*runs))


def test_errors():
    a, b = torch.randn(3, 4, device=DEVICE), torch.randn(5, device=DEVICE)
    with pytest.raises(ValueError, match=r"triton_ops.mul: cannot broadcast lhs shape \(3, 4\) with rhs shape \(5,\)"):
        triton_ops.mul(a, b)
    with pytest.raises(TypeError, match="triton_ops.add: b must be a floating tensor"):
        triton_ops.add(a, torch.ones(4, dtype=torch.int64, device=DEVICE))
    with pytest.raises(TypeError, match="triton_ops.add"):
        triton_ops.add(1.0, 2.0)
    with pytest.raises(TypeError, match="triton_ops.add: b must be a tensor or a Python number"):
        triton_ops.add(a, "x")
    with pytest.raises(ValueError, match="triton_ops.add"):
        triton_ops.add(a, torch.ones(4, device="meta"))
    bc = triton_ops.Broadcast.infer((3, 4), (4,))
    with pytest.raises(ValueError, match=r"triton_ops.mul: broadcast descriptor was built for shapes \(3, 4\) and \(4,\)"):
        triton_ops.mul(a, torch.randn(3, 1, device=DEVICE), broadcast=bc)
    with pytest.raises(ValueError, match="triton_ops.safe_div: eps"):
        triton_ops.safe_div(a, a, -1.0)
    with triton_ops.domain_checks():
        with pytest.raises(triton_ops.DomainError, match="triton_ops.div: 2 element"):
            triton_ops.div(a, torch.tensor([1.0, 0.0, 2.0, 0.0], device=DEVICE))
        with pytest.raises(triton_ops.DomainError, match="triton_ops.div"):
            triton_ops.div(a, 0.0)
    assert torch.isinf(triton_ops.div(torch.ones(2, device=DEVICE), 0.0)).all()


# ------------------------------------------------------------------------------------------------
# descriptors


def test_broadcast_descriptor():
    bc = triton_ops.Broadcast.infer((3, 1, 5), (4, 1))
    assert bc.out_shape == torch.Size([3, 4, 5])
    assert bc.expanded_axes(0) == (1,) and bc.expanded_axes(1) == (0, 2)
    assert bc.reduce_axes(0) == (1,) and bc.reduce_axes(1) == (0, 2)
    bc2 = triton_ops.Broadcast.infer((4,), (2, 3, 4))
    assert bc2.expanded_axes(0) == (0, 1) and bc2.reduce_axes(0) == (0, 1) and bc2.reduce_axes(1) == ()
    bc3 = triton_ops.Broadcast.infer((1, 4), (4,))  # a missing axis of output size 1 is still summed away
    assert bc3.expanded_axes(1) == () and bc3.reduce_axes(1) == (0,)
    g = torch.randn(3, 4, 5, device=DEVICE)
    for i, shape in enumerate(bc.shapes):
        r = bc.reduce_back(g, i)
        assert r.shape == shape
        assert_close(r, g.double().sum_to_size(shape), torch.float32, "reduce_back")
    with pytest.raises(ValueError, match="cannot broadcast"):
        triton_ops.Broadcast.infer((3,), (4,))
    out = triton_ops.mul(torch.randn(3, 1, 5, device=DEVICE), torch.randn(4, 1, device=DEVICE), broadcast=bc)
    assert out.shape == bc.out_shape


# ------------------------------------------------------------------------------------------------
# shape ops


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_sum_replicate_sum_to(dtype):
    gen = torch.Generator().manual_seed(9)
    x = cast_keep_layout(_make((6, 5, 7), "transposed", gen), dtype).requires_grad_()
    for dim, keepdim in [(1, False), ((0, 2), True), (-1, False), ((0, 1, 2), False)]:
        y = triton_ops.sum(x, dim, keepdim)
        g = cast_keep_layout(torch.randn(y.shape, generator=gen, dtype=torch.float64), dtype)
        ref, (ref_dx,) = reference_grads(lambda t: t.sum(dim, keepdim=keepdim), (x,), g, [0])
        assert_close(y, ref, dtype, f"sum {dim}", scale=8.0)
        (dx,) = torch.autograd.grad(y, x, g)
        assert_close(dx, ref_dx, dtype, f"sum {dim} grad")
    for shape in [(5, 1), (1, 5, 7), (), (7,)]:
        y = triton_ops.sum_to(x, shape)
        g = cast_keep_layout(torch.randn(y.shape, generator=gen, dtype=torch.float64), dtype)
        ref, (ref_dx,) = reference_grads(lambda t: t.sum_to_size(shape), (x,), g, [0])
        assert_close(y, ref, dtype, f"sum_to {shape}", scale=8.0)
        (dx,) = torch.autograd.grad(y, x, g)
        assert_close(dx, ref_dx, dtype, f"sum_to {shape} grad")
    s = cast_keep_layout(torch.randn((), generator=gen, dtype=torch.float64), dtype).requires_grad_()
    r = triton_ops.replicate(s, (4, 3))
    g = cast_keep_layout(torch.randn(4, 3, generator=gen, dtype=torch.float64), dtype)
    assert_close(r, s.detach().double().expand(4, 3), dtype, "replicate")
    (ds,) = torch.autograd.grad(r, s, g)
    assert_close(ds, g.double().sum(), dtype, "replicate grad", scale=4.0)


@pytest.mark.parametrize("name,args,ref", [
    ("sum", lambda x: (x, [1], False), lambda x: x.sum(1)),
    ("sum", lambda x: (x, [0, 2], True), lambda x: x.sum((0, 2), keepdim=True)),
    ("sum_to", lambda x: (x, [5, 1]), lambda x: x.sum_to_size(5, 1)),
    ("sum_to", lambda x: (x, [1, 1, 6]), lambda x: x.sum_to_size(1, 1, 6))])
def test_gradients_that_are_views_of_g(name, args, ref):
    """sum's and sum_to's gradient is g broadcast back: on the eager route a view of g, as eager
    torch's (no kernel, no bytes); the custom-op route, which may not return a view of its input,
    a contiguous copy with the same values."""
    from triton_ops import runtime

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 5, 6, generator=gen).to(DEVICE)
    spec = triton_ops.registry[name]
    values = spec.check(*args(x))
    g = torch.randn(spec.forward(*values).shape, generator=gen).to(DEVICE)
    g_before = g.clone()
    xr = values[0].clone().requires_grad_()
    (ref_dx,) = torch.autograd.grad(ref(xr), xr, g)
    before = runtime.launch_count()
    (dx,) = spec.vjp(*values, g)
    assert runtime.launch_count() == before, "a view needs no kernel"
    assert dx.shape == ref_dx.shape == values[0].shape and torch.equal(dx, ref_dx)
    assert dx.untyped_storage().data_ptr() == g.untyped_storage().data_ptr()
    (dx_op,) = spec.vjp_op(*_to_op_args(spec.args, values), g, [True])
    assert dx_op.untyped_storage().data_ptr() != g.untyped_storage().data_ptr()
    assert dx_op.is_contiguous() and torch.equal(dx_op, ref_dx)
    # through autograd into a leaf: AccumulateGrad keeps (a copy of) it; in-place updates work
    leaf = values[0].detach().requires_grad_()
    fn_args = (leaf, *values[1:])
    spec.fn(*fn_args).backward(g)
    assert torch.equal(leaf.grad, ref_dx)
    leaf.grad += 1.0
    spec.fn(*fn_args).backward(g)  # accumulates into the updated gradient
    assert torch.equal(leaf.grad, (ref_dx + 1.0) + ref_dx)
    assert torch.equal(g, g_before)  # the update went to leaf.grad's own memory, not to g
    # the custom-op route through autograd (a dispatch mode selects it): its copy, not a view
    from torch.utils._python_dispatch import TorchDispatchMode

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    leaf = values[0].detach().requires_grad_()
    with Passthrough():
        spec.fn(leaf, *values[1:]).backward(g)
    assert torch.equal(leaf.grad, ref_dx)


@pytest.mark.parametrize("name,args", [("sum", lambda x: (x, [1], False)), ("sum_to", lambda x: (x, [4, 1, 6]))])
def test_a_gradient_that_only_reshapes_g_is_a_copy(name, args):
    """Summed axes all of size 1: g broadcast back is g reshaped, a dense view that AccumulateGrad
    would keep as the leaf's .grad (sharing the caller's g): a copy instead, by the kernel."""
    from triton_ops import runtime

    x = torch.randn(4, 1, 6, device=DEVICE)
    spec = triton_ops.registry[name]
    values = spec.check(*args(x))
    g = torch.randn(spec.forward(*values).shape, device=DEVICE)
    before = runtime.launch_count()
    (dx,) = spec.vjp(*values, g)
    assert runtime.launch_count() == before + 1
    assert dx.untyped_storage().data_ptr() != g.untyped_storage().data_ptr() and torch.equal(dx, g.view(4, 1, 6))
    leaf = x.clone().requires_grad_()
    spec.fn(leaf, *values[1:]).backward(g)
    g_before = g.clone()
    leaf.grad += 1.0
    assert torch.equal(g, g_before)


def test_shape_op_checks():
    x = torch.randn(3, 4, device=DEVICE, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: triton_ops.sum(t, (0,)), (x,))
    assert torch.autograd.gradcheck(lambda t: triton_ops.sum_to(t, (1, 4)), (x,))
    assert torch.autograd.gradcheck(lambda t: triton_ops.replicate(t, [2, 3]), (x[0, 0].detach().requires_grad_(),))
    for name, args in [("sum", (x.float(), [1], False)), ("sum_to", (x.float(), [4])),
                       ("replicate", (x[0, 0].float(), [2, 2]))]:
        spec = triton_ops.registry[name]
        torch.library.opcheck(spec.custom_op, tuple(a.detach().requires_grad_() if isinstance(a, torch.Tensor) else a
                                                    for a in _to_op_args(spec.args, args)))
    with pytest.raises(IndexError, match="triton_ops.sum: dim 2 is out of range"):
        triton_ops.sum(x, 2)
    with pytest.raises(ValueError, match="triton_ops.sum: dim"):
        triton_ops.sum(x, (0, -2))
    with pytest.raises(ValueError, match="triton_ops.sum_to: shape"):
        triton_ops.sum_to(x, (3,))
    with pytest.raises(ValueError, match="triton_ops.replicate: s must be a 0-d tensor"):
        triton_ops.replicate(x, (3,))
    assert triton_ops.sum(torch.tensor(3.0, device=DEVICE), 0).item() == 3.0
    assert triton_ops.sum(torch.empty(0, 3, device=DEVICE), 0).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("a_shape,b_shape", [((40, 24), (1, 24)), ((6, 1, 8), (1, 5, 8)), ((30, 7), ())])
def test_vjp_both_operand_orientations(a_shape, b_shape, monkeypatch):
    """The VJP puts either operand in the looped slot (the GPU favours the larger reduction, the
    interpreter the shorter loop): both orientations must give the same gradients."""
    import triton_ops.launchers.pointwise as vjp_module
    from triton_ops.launchers.pointwise import pointwise_vjp
    from triton_ops.ops.binary import div_da, div_db

    gen = torch.Generator().manual_seed(11)
    a = torch.randn(a_shape, generator=gen, dtype=torch.float64).to(DEVICE)
    b = (torch.rand(b_shape, generator=gen, dtype=torch.float64) + 0.5).to(DEVICE)
    out_shape = torch.broadcast_shapes(a_shape, b_shape)
    g = torch.randn(out_shape, generator=gen, dtype=torch.float64).to(DEVICE)
    ref, (ra, rb) = reference_grads(lambda x, y: x / y, (a, b), g, [0, 1])
    for swap in (False, True):
        monkeypatch.setattr(vjp_module, "vjp_should_swap", lambda *args, swap=swap: swap)
        vjp_module._vjp_plan.cache_clear()
        da, db = pointwise_vjp(g, out_shape, div_da, div_db, x=a, y=b, arity=2)
        assert da.shape == a.shape and db.shape == b.shape
        assert_close(da, ra, torch.float64, f"da swap={swap}")
        assert_close(db, rb, torch.float64, f"db swap={swap}")


def test_add_sub_gradients_that_are_g_itself():
    from triton_ops import runtime

    gen = torch.Generator().manual_seed(11)
    a, b, g = (torch.randn(6, 7, generator=gen).to(DEVICE) for _ in range(3))

    def vjp(name, x, y, alpha=1.0):
        before = runtime.launch_count()
        grads = triton_ops.registry[name].vjp(x, y, alpha, None, g)
        return grads, runtime.launch_count() - before

    # d/da = 1 (and d/db = 1 for add at alpha = 1), same shape, dtype and layout: g itself, no kernel
    (da, db), launches = vjp("add", a, b)
    assert da is g and db is g and launches == 0
    (da, db), launches = vjp("sub", a, b)
    assert da is g and db is not g and launches == 1
    assert torch.equal(db, -g)
    (da, db), launches = vjp("add", a, b, alpha=2.0)
    assert da is g and torch.equal(db, 2.0 * g) and launches == 1
    # another dtype or layout than g's: the kernel writes the operand's own gradient
    (da, db), _ = vjp("add", a.half(), b)
    assert da.dtype == torch.float16 and db is g
    at = a.t().contiguous().t()
    (da, db), _ = vjp("add", at, b)
    assert da is not g and da.stride() == at.stride() and torch.equal(da, g) and db is g
    # the custom-op route may not return its input: a copy, bitwise equal
    spec = triton_ops.registry["add"]
    da, db = spec.vjp_op(*_to_op_args(spec.args, (a, b, 1.0, None)), g, [True, True])
    assert da is not g and db is not g and torch.equal(da, g) and torch.equal(db, g)
