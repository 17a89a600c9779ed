"""Issue 14, classes 1 and 2: every tensor argument of every op - parameters and targets
included - read through its own strides (sliced, stride-0, transposed), and the int64-offset
kernel variants of every kernel family (forced on small inputs, as in test_int64.py)."""
from __future__ import annotations

import pytest
import torch

import triton_ops
from helpers import DEVICE
from reliability_helpers import OPS, check_against_reference, float_args, sample
from test_int64 import force_int64  # noqa: F401  (the fixture that forces the int64 variants)

LAYOUTS = ["sliced", "stride0", "transposed"]


def relayout(base: torch.Tensor, kind: str):
    """A differentiable view of ``base``'s values (or, for stride0, of its first entry along
    axis 0) in another memory layout; None when the layout does not apply to this shape."""
    if base.dim() == 0 or base.numel() == 0:
        return None
    if kind == "sliced":
        # every other element of a buffer twice as long; the elements in between are poison
        # (NaN, or an index far out of range) that a contiguous read would pick up
        poison = torch.full_like(base, float("nan") if base.is_floating_point() else 10**9)
        return torch.stack([base, poison], -1).flatten(-2)[..., ::2]
    if kind == "stride0":
        return base[:1].expand(base.shape) if base.shape[0] > 1 else None
    if kind == "transposed":
        if base.dim() < 2:
            return None
        view = base.mT.contiguous().mT
        return view if not view.is_contiguous() else None  # size-1 axes: still contiguous
    raise ValueError(kind)


# the (op, argument, layout) triples where the layout applies to the sample's shape
CASES = [(name, i, kind) for name in OPS for i in triton_ops.registry[name].tensor_args for kind in LAYOUTS
         if isinstance(sample(name)[i], torch.Tensor) and relayout(sample(name)[i], kind) is not None]


@pytest.mark.parametrize("name,arg,kind", CASES, ids=[f"{n}-arg{i}-{k}" for n, i, k in CASES])
def test_every_tensor_argument_in_every_layout(name, arg, kind):
    args = sample(name)
    base = args[arg].detach().clone()
    grads = float_args(name, args)
    for i in grads:
        args[i] = args[i].detach().clone().requires_grad_()
    if arg in grads:
        base.requires_grad_()
    view = relayout(base, kind)
    assert not view.is_contiguous()
    args[arg] = view
    check_against_reference(name, args, what=f"{kind} argument {arg}")


@pytest.mark.parametrize("name", OPS)
def test_int64_offsets_every_op(name, force_int64):
    args = sample(name)
    for i in float_args(name, args):
        args[i] = args[i].requires_grad_()
    check_against_reference(name, args, what="int64")


def test_int64_cross_entropy_logits_probability_target(force_int64):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(5, 7, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    t = torch.softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), -1).to(DEVICE).requires_grad_()
    for reduction in ("mean", "none"):
        check_against_reference("cross_entropy_logits", [z, t, -1, -100, 0.1, reduction], what=reduction)


def test_int64_layer_norm_long_rows(force_int64):
    # rows longer than one block take the chunked (Welford) path of both kernels
    g = torch.Generator().manual_seed(4)
    D = 1 << 15 if triton_ops.runtime.INTERPRETER else 1 << 14
    x = torch.randn(2, D + 3, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(2 * (D + 3), generator=g, dtype=torch.float64).to(DEVICE)[::2].requires_grad_()
    b = torch.randn(1, dtype=torch.float64, device=DEVICE).expand(D + 3).requires_grad_()
    check_against_reference("layer_norm", [x, [D + 3], w, b, 1e-5], what="long rows")


def test_int64_decision_counts_gradient_buffers(monkeypatch):
    """The loss VJPs decide int64 from every tensor they address, the gradient buffers and the
    upstream gradient included (a 'none' gradient may be a huge expanded view). The inputs here
    are expanded views (their own largest offset is one row): only the dense gradient buffer
    reaches numel - 1."""
    seen = []
    real = triton_ops.runtime.needs_int64

    def spy(*extents):
        seen.extend(extents)
        return real(*extents)

    monkeypatch.setattr(triton_ops.runtime, "needs_int64", spy)
    for name, args in [("cross_entropy_logits", sample("cross_entropy_logits")), ("mse_loss", sample("mse_loss")),
                       ("cosine_similarity_loss", sample("cosine_similarity_loss")), ("layer_norm", sample("layer_norm"))]:
        spec = triton_ops.registry[name]
        for i in spec.tensor_args:
            if isinstance(args[i], torch.Tensor) and args[i].dim() == 2 and args[i].is_floating_point():
                args[i] = args[i][:1].expand(args[i].shape)
        assert triton_ops.runtime.max_offset(args[0].shape, args[0].stride()) < args[0].numel() - 1
        args[0] = args[0].detach().requires_grad_()
        out = spec.fn(*args)
        triton_ops.runtime.clear_plan_caches()  # the VJP plans are decided afresh, under the spy
        seen.clear()
        out.backward(torch.ones_like(out))
        assert max(seen) >= args[0].numel() - 1, f"{name}: the gradient buffer is not in the int64 decision"


@pytest.mark.skipif(DEVICE.type != "cuda", reason="a 4 GiB storage: GPU only (the interpreter copies whole storages)")
@pytest.mark.parametrize("strides", [(2**31, 1), (1, 2**31)], ids=["rows-past-2^31", "columns-past-2^31"])
def test_real_offsets_past_int32_in_row_kernels(strides):
    storage = torch.zeros(2**31 + 64, dtype=torch.float16, device=DEVICE)
    shape = (2, 8) if strides[0] > 1 else (8, 2)
    x = storage.as_strided(shape, strides)
    x.copy_(torch.randn(shape, device=DEVICE, dtype=torch.float16))
    x = x.requires_grad_()
    xr = x.detach().float().requires_grad_()
    y, yr = triton_ops.layer_norm(x, [shape[-1]]), torch.nn.functional.layer_norm(xr, [shape[-1]])
    torch.testing.assert_close(y.float(), yr, rtol=2e-3, atol=2e-3)
    (dx,), (dxr,) = torch.autograd.grad(y, x, torch.ones_like(y)), torch.autograd.grad(yr, xr, torch.ones_like(yr))
    torch.testing.assert_close(dx.float(), dxr, rtol=2e-3, atol=2e-3)
    target = torch.randint(0, shape[-1], shape[:1], device=DEVICE)
    for t, tr in [(target, target), (torch.softmax(xr.detach(), -1).half(), torch.softmax(xr.detach(), -1))]:
        loss = triton_ops.cross_entropy_logits(x, t)
        ref = torch.nn.functional.cross_entropy(xr, tr.float() if tr.is_floating_point() else tr)
        torch.testing.assert_close(loss.float(), ref, rtol=2e-3, atol=2e-3)
        (dz,), (dzr,) = torch.autograd.grad(loss, x), torch.autograd.grad(ref, xr)
        torch.testing.assert_close(dz.float(), dzr, rtol=2e-3, atol=2e-3)
