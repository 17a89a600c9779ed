"""Launchers of RMSNorm (forward with the saved rstd per row; VJP with a fixed-order dweight),
on LayerNorm's row tiling (``launchers/norm.py``)."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.rms_norm import rms_norm_bwd_kernel
from ..fwd.rms_norm import rms_norm_fwd_kernel
from ..tiles import split_float
from .norm import ln_config, norm_groups
from .reduce import combine_partials


@runtime.plan_cache
def _plan(shape, layouts, w_strides, d, dtype, has_w, need_dw, device, backward):
    """``layouts``: ((name, strides), ...) of x and the tensors of x's shape the kernel reads or
    writes (``<name>_r``, ``<name>_c``, ``<name>_c1``); the weight is read through its own strides
    (``w_c``, ``w_c1``), merged with the columns where contiguous for all."""
    kernel = rms_norm_bwd_kernel if backward else rms_norm_fwd_kernel
    rank = len(shape)
    w_over_x = (0,) * (rank - d) + w_strides  # the weight broadcast over the rows
    cols, rows = norm_groups(shape, d, {**dict(layouts), "w": w_over_x})
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, rows_per_program = ln_config(R, D, device, backward=backward)
    strides = {}
    for k, _ in layouts:
        strides.update({f"{k}_r": rows.strides[k], f"{k}_c": cols.strides[k], f"{k}_c1": cols.strides[k][-1]})
    flags = {"NEED_DW": need_dw} if backward else {}
    launch = runtime.LaunchPlan(
        kernel, (programs,), {"num_warps": runtime.num_warps_for(block_r * block_d)},
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D, rows_per_program=rows_per_program, **strides,
        w_c=cols.strides["w"], w_c1=cols.strides["w"][-1], HAS_W=has_w, **flags, SINGLE=D <= block_d,
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_R=block_r, BLOCK_D=block_d,
        INDEX_64=runtime.needs_int64(*(runtime.max_offset(shape, st) for _, st in layouts)))
    return launch, programs, D


def _w_strides(weight, x, d):
    return tuple(weight.stride()) if weight is not None else tuple(x.stride()[x.dim() - d:])


def rms_norm_forward(x, normalized_shape, weight, eps, y, rstd):
    """y = x / sqrt(mean(x^2) + eps) * w into ``y``, with the per-row rstd (saved for the VJP)."""
    if x.numel() == 0:
        return y, rstd
    d = len(normalized_shape)
    launch, _, _ = _plan(tuple(x.shape), (("x", tuple(x.stride())), ("y", tuple(y.stride()))),
                         _w_strides(weight, x, d), d, x.dtype, weight is not None, False, x.device, False)
    launch(y_ptr=y, rstd_ptr=rstd, x_ptr=x, w_ptr=weight if weight is not None else x, numbers=split_float(eps))
    return y, rstd


def rms_norm_vjp(x, normalized_shape, weight, grad, rstd, need_x, need_w):
    """(dx, dweight): dweight as per-program partial rows added in a fixed order (contiguous)."""
    dx = torch.empty_like(x)
    dw = weight.new_empty(weight.shape) if need_w else None
    if x.numel() == 0:
        return (dx if need_x else None), (dw.zero_() if need_w else None)
    d = len(normalized_shape)
    layouts = (("x", tuple(x.stride())), ("g", tuple(grad.stride())), ("dx", tuple(dx.stride())))
    launch, programs, D = _plan(tuple(x.shape), layouts, _w_strides(weight, x, d), d, x.dtype,
                                weight is not None, need_w, x.device, True)
    dw_part = torch.empty((programs, D), dtype=rstd.dtype, device=x.device) if need_w else dx
    launch(dx_ptr=dx, dw_part_ptr=dw_part, x_ptr=x, w_ptr=weight if weight is not None else x, g_ptr=grad,
           rstd_ptr=rstd)
    if need_w:
        combine_partials(dw_part, dw)
    return (dx if need_x else None), dw
