"""One op, forward and every gradient, against its float64 reference (used by ``check`` and the
demo's opening showcase): through its raw launchers (``check_op``) or through its public function
with autograd, call after call (``check_public``: the first call recorded, later ones replayed)."""
from __future__ import annotations

import torch


def check_op(spec, device, dtype=torch.float64):
    """Max abs error of forward and of the gradients (float64 in, float64 reference)."""
    args = spec.sample((8, 33), dtype, device, torch.Generator().manual_seed(0))
    out = spec.forward(*args)
    ref_args = [a.detach().cpu().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point()
                else a for a in args]
    ref = spec.reference(*ref_args)
    err_fwd = (out.detach().cpu().double() - ref.detach().double()).abs().max().item() if out.numel() else 0.0
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = spec.vjp(*args, g.to(device=device, dtype=out.dtype))
    leaves = [a for a in ref_args if isinstance(a, torch.Tensor) and a.requires_grad]
    ref_grads = torch.autograd.grad(ref, leaves, g, allow_unused=True)
    err_bwd, j = 0.0, 0
    for i in spec.tensor_args:
        a = ref_args[i]
        if isinstance(a, torch.Tensor) and a.requires_grad:
            r = ref_grads[j]
            j += 1
            mine = grads[spec.tensor_args.index(i)]
            if mine is not None and r is not None and mine.numel():
                err_bwd = max(err_bwd, (mine.cpu().double() - r).abs().max().item())
    return err_fwd, err_bwd


def _differentiable(args):
    return [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()]


def check_public(spec, device, dtype=torch.float32, calls=3):
    """Largest error, relative to the reference's largest magnitude (at least 1), of ``calls``
    calls of the public function and their gradients (``torch.autograd.grad``): the eager route
    as a training loop meets it, its first call recorded and the later ones replayed (on a GPU
    through the direct driver launch), a GEMM's float32 operands through TMA. A first check on a
    new Triton or GPU: ``python -m triton_ops check --warm``."""
    args = spec.sample((32, 64), dtype, device, torch.Generator().manual_seed(0))
    wanted = _differentiable(args)
    ref_args = [a.detach().cpu().double().requires_grad_(True) if i in wanted else a.cpu() if isinstance(
        a, torch.Tensor) else a for i, a in enumerate(args)]
    ref = spec.reference(*ref_args)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref_grads = torch.autograd.grad(ref, [ref_args[i] for i in wanted], g, allow_unused=True)

    def error(mine, expected) -> float:
        if mine is None or expected is None or not expected.numel():
            return 0.0 if (mine is None) == (expected is None) else float("inf")
        scale = max(1.0, expected.detach().abs().max().item())
        return (mine.detach().cpu().double() - expected.detach()).abs().max().item() / scale

    worst = 0.0
    for _ in range(calls):
        leaves = [a.detach().clone().requires_grad_(True) if i in wanted else a for i, a in enumerate(args)]
        out = spec.fn(*leaves)
        grads = torch.autograd.grad(out, [leaves[i] for i in wanted], g.to(device=device, dtype=out.dtype),
                                    allow_unused=True)
        worst = max([worst, error(out, ref)] + [error(m, r) for m, r in zip(grads, ref_grads)])
    return worst
