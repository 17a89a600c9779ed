"""Bytes moved, counted by the interpreter (triton_ops.counting), against each op's minimum."""
from __future__ import annotations

import pytest
import torch

import triton_ops
from triton_ops.counting import count_bytes

pytestmark = pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="counts need the interpreter")

UNARY = sorted(n for n, s in triton_ops.registry.items() if s.family == "unary")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", UNARY)
def test_unary_bytes_are_minimal(name, dtype):
    spec = triton_ops.registry[name]
    (x,) = spec.sample((96, 300), dtype, "cpu", torch.Generator().manual_seed(0))
    g = torch.randn(96, 300).to(dtype)
    fwd_min, bwd_min = spec.min_bytes(x)
    with count_bytes() as fwd:
        spec.forward(x)
    with count_bytes() as bwd:
        spec.vjp(x, g)
    assert fwd.launches == 1 and bwd.launches == 1
    assert fwd_min <= fwd.total <= 1.02 * fwd_min, (fwd, fwd_min)
    assert bwd_min <= bwd.total <= 1.02 * bwd_min, (bwd, bwd_min)


BROADCAST_CASES = [("mul", (64, 1024), (1024,)), ("add", (8, 1, 256), (1, 16, 256)), ("div", (32, 512), (32, 1))]


@pytest.mark.parametrize("name,a_shape,b_shape", BROADCAST_CASES)
def test_binary_bytes_and_launches(name, a_shape, b_shape):
    spec = triton_ops.registry[name]
    a = torch.randn(a_shape)
    b = torch.rand(b_shape) + 0.5
    g = torch.randn(torch.broadcast_shapes(a_shape, b_shape))
    fwd_min, bwd_min = spec.min_bytes(a, b)
    with count_bytes() as fwd:
        spec.forward(a, b)
    with count_bytes() as bwd:
        da, db = spec.vjp(a, b, g)
    assert da.shape == a.shape and db.shape == b.shape
    assert fwd.launches == 1 and bwd.launches <= 3
    print(f"{name} {a_shape} x {b_shape}: forward {fwd.total} B = {fwd.total / fwd_min:.3f} x min, "
          f"VJP {bwd.total} B = {bwd.total / bwd_min:.3f} x min ({bwd.launches} launches)")
    assert fwd_min <= fwd.total <= 1.10 * fwd_min
    assert bwd_min <= bwd.total <= 1.10 * bwd_min


@pytest.mark.parametrize("a_shape,b_shape", [((40, 3, 50), (3, 1)), ((5, 1, 7, 1), (1, 6, 1, 9)), ((300,), ())])
def test_binary_vjp_launches_at_most_three(a_shape, b_shape):
    spec = triton_ops.registry["mul"]
    a, b = torch.randn(a_shape), torch.randn(b_shape)
    g = torch.randn(torch.broadcast_shapes(a_shape, b_shape))
    with count_bytes() as bwd:
        spec.vjp(a, b, g)
    assert bwd.launches <= 3


@pytest.mark.parametrize("name,args", [("sum", lambda x: (x, [0], False)), ("sum_to", lambda x: (x, [1, 300])),
                                       ("replicate", lambda x: (x[0, 0], [96, 300]))])
def test_shape_op_bytes(name, args):
    spec = triton_ops.registry[name]
    a = args(torch.randn(96, 300))
    out = spec.forward(*a)
    g = torch.randn(out.shape)
    fwd_min, bwd_min = spec.min_bytes(*a)
    with count_bytes() as fwd:
        spec.forward(*a)
    with count_bytes() as bwd:
        (dx,) = spec.vjp(*a, g)
    assert fwd.total <= 1.10 * fwd_min and bwd.total <= 1.10 * bwd_min, (fwd, fwd_min, bwd, bwd_min)
    if name != "replicate":  # the gradient is a broadcast view of g, as eager's: nothing moved
        assert bwd_min == bwd.total == bwd.launches == 0 and dx.stride()[0] == 0


@pytest.mark.parametrize("name,a_shape,b_shape,expected", [
    ("add", (64, 100), (64, 100), 0),                                # both gradients are g itself
    ("add", (64, 100), (1, 100), 64 * 100 * 4 + 100 * 4),          # read g, write the reduced db
    ("sub", (64, 100), (64, 100), 2 * 64 * 100 * 4),               # da is g; db = -g is written
    ("mul", (64, 100), (64, 100), 5 * 64 * 100 * 4),               # read g, a, b; write da, db
])
def test_min_bytes_credit_no_write_an_aliasing_gradient_avoids(name, a_shape, b_shape, expected):
    spec = triton_ops.registry[name]
    assert spec.min_bytes(torch.randn(a_shape), torch.randn(b_shape))[1] == expected


def test_min_bytes_of_view_gradients_are_zero():
    for shape_op, args in (("sum", (torch.randn(8, 9), [0])), ("sum_to", (torch.randn(8, 9), [1, 9])),
                           ("transpose", (torch.randn(8, 9),))):
        assert triton_ops.registry[shape_op].min_bytes(*args)[1] == 0, shape_op


LOSSES = sorted(n for n, s in triton_ops.registry.items() if s.family == "loss")


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_bytes_are_one_pass(name, reduction):
    spec = triton_ops.registry[name]
    args = list(spec.bind(*spec.sample((64, 1000), torch.float32, "cpu", torch.Generator().manual_seed(0))))
    args[[a.name for a in spec.args].index("reduction")] = reduction
    out = spec.forward(*args)
    g = torch.randn(out.shape) if out.dim() else torch.tensor(0.5)
    # gradient of the prediction only (targets rarely require grad); min_bytes counts the same
    needs = [True] + [False] * (len(spec.tensor_args) - 1)
    fwd_min, bwd_min = spec.min_bytes(*args)
    with count_bytes() as fwd:
        spec.forward(*args)
    saved = list(spec.forward_saved(*args)[1:]) if spec.n_saved else None
    with count_bytes() as bwd:
        spec.vjp(*args, g, needs=needs, **({"saved": saved} if saved is not None else {}))
    print(f"{name} {reduction}: forward {fwd.total / fwd_min:.3f} x min, backward {bwd.total / bwd_min:.3f} x min")
    assert 0.99 * fwd_min <= fwd.total <= 1.05 * fwd_min, (fwd, fwd_min)
    assert 0.99 * bwd_min <= bwd.total <= 1.05 * bwd_min, (bwd, bwd_min)


def test_loss_lanes_past_the_kept_elements_load_nothing():
    """reduction "none" of 33 elements: one whole tile of 64 lanes (no reduced rows), 31 of them
    past the end; they load nothing (a whole tile is masked along K unless BLOCK_K divides K)."""
    gen = torch.Generator().manual_seed(1)
    for name in ("mse_loss", "binary_cross_entropy"):
        spec = triton_ops.registry[name]
        args = list(spec.bind(*spec.sample((3, 11), torch.float32, "cpu", gen)))
        args[[a.name for a in spec.args].index("reduction")] = "none"
        with count_bytes() as fwd:
            spec.forward(*args)
        assert fwd.total == spec.min_bytes(*args)[0], (name, fwd)


def test_cross_entropy_vjp_reads_no_ignored_row():
    """An ignored row's gradient is 0 whatever its logits hold: the VJP does not read them
    (padding tokens cost their write only)."""
    spec = triton_ops.registry["cross_entropy_logits"]
    z = torch.randn(64, 1000)
    counted = []
    for ignored in (False, True):
        target = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(0))
        if ignored:
            target[::4] = -100
        args = (z, target, -1, -100, 0.0, "mean")
        _, stats = spec.forward_saved(*args)
        with count_bytes() as bwd:
            (dz, _) = spec.vjp(*args, torch.tensor(1.0), saved=[stats])
        counted.append(bwd.total)
    assert torch.count_nonzero(dz[::4]) == 0 and torch.count_nonzero(dz[1::4]) > 0
    assert counted[1] == counted[0] - 16 * 1000 * 4, counted  # the 16 ignored rows' logits: unread
