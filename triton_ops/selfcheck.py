"""One op, forward and every gradient, against its float64 reference (used by
``python -m triton_ops check``): through its raw launchers (``check_op``) or through its public
function with autograd, call after call (``check_public``: the first call recorded, later ones
replayed)."""
from __future__ import annotations

import torch


def _reference(spec, args):
    """The float64 reference of ``args`` on CPU: (positions of the floating-point tensor
    arguments, the output, the upstream gradient, the reference gradients of those arguments)."""
    wanted = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()]
    ref_args = [a.detach().cpu().double().requires_grad_(True) if i in wanted else a.cpu() if isinstance(
        a, torch.Tensor) else a for i, a in enumerate(args)]
    ref = spec.reference(*ref_args)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return wanted, ref, g, torch.autograd.grad(ref, [ref_args[i] for i in wanted], g, allow_unused=True)


def check_op(spec, device, dtype=torch.float64):
    """Max abs error of forward and of the gradients (float64 in, float64 reference)."""
    args = spec.sample((8, 33), dtype, device, torch.Generator().manual_seed(0))
    out = spec.forward(*args)
    wanted, ref, g, ref_grads = _reference(spec, args)
    err_fwd = (out.detach().cpu().double() - ref.detach().double()).abs().max().item() if out.numel() else 0.0
    grads = spec.vjp(*args, g.to(device=device, dtype=out.dtype))
    err_bwd = 0.0
    for i, r in zip(wanted, ref_grads):
        mine = grads[spec.tensor_args.index(i)]
        if mine is not None and r is not None and mine.numel():
            err_bwd = max(err_bwd, (mine.cpu().double() - r).abs().max().item())
    return err_fwd, err_bwd


def check_public(spec, device, dtype=torch.float32, calls=3):
    """Largest error, relative to the reference's largest magnitude (at least 1), of ``calls``
    calls of the public function and their gradients (``torch.autograd.grad``): the eager route
    as a training loop meets it, its first call recorded and the later ones replayed (on a GPU
    through the direct driver launch), a GEMM's float32 operands through TMA. A first check on a
    new Triton or GPU: ``python -m triton_ops check --warm``."""
    args = spec.sample((32, 64), dtype, device, torch.Generator().manual_seed(0))
    wanted, ref, g, ref_grads = _reference(spec, args)

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
