"""``cross_entropy_logits`` (SPEC section 3): softmax cross-entropy on logits, one online
log-sum-exp pass per row (any class count), probability or class-index targets."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.loss import ce_logits_bwd_kernel
from ..fwd.loss import ce_logits_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..launchers.loss import cross_entropy_logits_forward, cross_entropy_logits_vjp, partial_dtype
from ..spec import Arg, OpSpec, needs_all, register
from .loss import check_reduction, nd, normalize_dim, reduce


def check_class_indices(op, target, ignore_index, classes):
    """Every counted class index in [0, classes). Interpreter (CPU) only, and only on real values
    (not fake/meta tensors, not while torch.compile traces): on CUDA it would be a host sync, and
    the compile-only backend (sm_90 kernels on CPU tensors) runs no kernel that could read.
    Unchecked, an out-of-range index is never read out of bounds; its row's loss (and gradient)
    is NaN."""
    if runtime.INTERPRETER and target.numel() and runtime.has_values(target):
        bad = ((target != ignore_index) & ((target < 0) | (target >= classes))).sum().item()
        if bad:
            raise IndexError(f"triton_ops.{op}: {bad} target index(es) outside [0, {classes})")


def _cel_check(z, target, dim, ignore_index, label_smoothing, reduction):
    op = "cross_entropy_logits"
    runtime.check_float(op, "z", z)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"triton_ops.{op}: target must be a tensor, got {type(target).__name__}")
    runtime.check_devices(op, {"z": z, "target": target})
    if z.dim() == 0:
        raise ValueError(f"triton_ops.{op}: z must have a class axis (got a 0-d tensor)")
    dim = normalize_dim(op, dim, z.dim())
    check_reduction(op, reduction)
    label_smoothing = runtime.check_param(op, "label_smoothing", label_smoothing, nonneg=True)
    if label_smoothing > 1:
        raise ValueError(f"triton_ops.{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"triton_ops.{op}: ignore_index must be an int")
    if target.is_floating_point():
        if target.shape != z.shape:
            raise ValueError(f"triton_ops.{op}: probability target shape {tuple(target.shape)} must equal z shape "
                             f"{tuple(z.shape)}")
    else:
        if target.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"triton_ops.{op}: class-index target must be int64 or int32, got {target.dtype}")
        expected = tuple(s for d, s in enumerate(z.shape) if d != dim)
        if tuple(target.shape) != expected:
            raise ValueError(f"triton_ops.{op}: class-index target shape {tuple(target.shape)} must be z's shape "
                             f"without dim {dim}: {expected}")
        check_class_indices(op, target, ignore_index, z.shape[dim])
    return z, target, dim, ignore_index, label_smoothing, reduction


def _cel_out(z, target, dim, reduction):
    dim = nd(dim, z.dim())
    shape = tuple(s for d, s in enumerate(z.shape) if d != dim) if reduction == "none" else ()
    return z.new_empty(shape, dtype=torch.result_type(z, target) if target.is_floating_point() else z.dtype)


def _cel_alloc(z, target, dim, ignore_index, label_smoothing, reduction):
    """The loss, and the statistics a VJP reads (``launchers.loss.ce_logits_stats``): per row
    the log-sum-exp (and the target mass, probability targets), then the mean's factor."""
    C = z.shape[nd(dim, z.dim())]
    R = z.numel() // C if C else 0
    per_row = 2 if target.is_floating_point() else 1
    return _cel_out(z, target, dim, reduction), z.new_empty((per_row * R + 1,), dtype=partial_dtype(z.dtype))


def _cel_forward(z, target, dim, ignore_index, label_smoothing, reduction):
    """No gradient wanted: the loss only (nothing saved, nothing stored for a VJP)."""
    return cross_entropy_logits_forward(z, target, nd(dim, z.dim()), ignore_index, label_smoothing, reduction,
                                        _cel_out(z, target, dim, reduction))


def _cel_forward_saved(z, target, dim, ignore_index, label_smoothing, reduction):
    dim = nd(dim, z.dim())
    return cross_entropy_logits_forward(z, target, dim, ignore_index, label_smoothing, reduction,
                                        *_cel_alloc(z, target, dim, ignore_index, label_smoothing, reduction))


def _cel_vjp(z, target, dim, ignore_index, label_smoothing, reduction, grad, needs=None, saved=None):
    (stats,) = saved
    need_z, need_t = needs_all(CEL_ARGS, (z, target), needs)
    return cross_entropy_logits_vjp(z, target, nd(dim, z.dim()), ignore_index, label_smoothing, reduction, grad,
                                    stats, need_z, need_t)


def _cel_ref(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    logp = torch.log_softmax(z, dim)
    C = z.shape[dim]
    ls = label_smoothing
    if target.is_floating_point():
        per_row = -((target * (1 - ls) + ls / C) * logp).sum(dim)
        rows = per_row.numel()
    else:
        valid = target != ignore_index
        idx = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(dim)
        nll = -logp.gather(dim, idx).squeeze(dim)
        per_row = torch.where(valid, (1 - ls) * nll - ls * logp.mean(dim), torch.zeros_like(nll))
        rows = int(valid.sum())
    return reduce(per_row, reduction, rows=rows)


def _cel_min_bytes(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    C = z.shape[dim]
    R = z.numel() // max(C, 1)
    es = z.element_size()
    t_bytes = target.numel() * target.element_size()
    out = R * es if reduction == "none" else es
    stats = R * (8 if target.is_floating_point() else 4)  # log-sum-exp (and target mass) saved per row (float32)
    fwd = z.numel() * es + t_bytes + out + stats
    bwd = z.numel() * es + t_bytes + (R * es if reduction == "none" else es) + stats + z.numel() * es
    return fwd, bwd


def _cel_sample(shape, dtype, device, gen):
    z = (torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64) * 3).to(device, dtype)
    target = torch.randint(0, shape[-1], tuple(shape[:-1]), generator=gen, device=gen.device).to(device)
    return z, target, -1, -100, 0.0, "mean"


CEL_ARGS = (Arg("z"), Arg("target"), Arg("dim", "int", -1), Arg("ignore_index", "int", -100),
            Arg("label_smoothing", "float", 0.0), Arg("reduction", "str", "mean"))
cross_entropy_logits = register(OpSpec(
    name="cross_entropy_logits", family="loss", args=CEL_ARGS,
    forward=_cel_forward, forward_saved=_cel_forward_saved, n_saved=1, vjp=_cel_vjp, reference=_cel_ref,
    fwd_kernels=(ce_logits_fwd_kernel, combine_fwd_kernel), bwd_kernels=(ce_logits_bwd_kernel,),
    check=_cel_check, alloc=_cel_alloc,
    vjp_alloc=lambda z, target, *rest: [torch.empty_like(z),
                                        torch.empty_like(target) if target.is_floating_point() else None],
    min_bytes=_cel_min_bytes, sample=_cel_sample,
    doc="cross_entropy_logits(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction='mean'): "
        "softmax cross-entropy on logits; target = probabilities (z's shape) or class indices.")).fn


