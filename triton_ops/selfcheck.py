"""One op, forward and every gradient, against its float64 reference (used by ``check`` and the
demo's opening showcase)."""
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
