"""Launchers of LayerNorm (forward with saved mean/rstd; VJP with fixed-order dweight/dbias)."""
from __future__ import annotations

import torch

from .. import runtime
from ..broadcast import aligned_strides, plan_reduce
from ..bwd.norm import layer_norm_bwd_kernel
from ..fwd.norm import layer_norm_fwd_kernel
from ..tiles import split_float
from .reduce import combine_partials


def ln_config(R, D, device, backward: bool):
    """(BLOCK_R, BLOCK_D, programs, rows per program). Forward: one row block per program (as
    many programs as rows allow). Backward: about one program per SM, so that the dweight/dbias
    partials stay small (programs x D floats)."""
    block_d = min(runtime.next_pow2(D), 1 << 14 if runtime.INTERPRETER else 8192)
    block_r = min(runtime.next_pow2(R), max(1, runtime.tile_elements() // block_d))
    if runtime.INTERPRETER:
        programs = 1
    elif backward:
        programs = min(runtime.cdiv(R, block_r), max(1, runtime.device_programs(device) // 4))
    else:
        programs = runtime.cdiv(R, block_r)
    rows_per_program = runtime.cdiv(runtime.cdiv(R, max(programs, 1)), block_r) * block_r
    return block_r, block_d, runtime.cdiv(R, rows_per_program), rows_per_program


def stat_dtype(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def norm_groups(shape, d, layouts):
    """(columns, rows): the normalized trailing ``d`` axes and the rest, for these tensors."""
    meta = {k: aligned_strides(torch.empty_strided(shape, st, device="meta"), shape) for k, st in layouts.items()}
    return plan_reduce(shape, range(len(shape) - d, len(shape)), meta)


@runtime.plan_cache
def _forward_plan(shape, x_strides, y_strides, d, dtype, has_w, has_b, device):
    cols, rows = norm_groups(shape, d, {"x": x_strides, "y": y_strides})
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, rows_per_program = ln_config(R, D, device, backward=False)
    return runtime.LaunchPlan(
        layer_norm_fwd_kernel, (programs,), {"num_warps": runtime.num_warps_for(block_r * block_d)},
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D, rows_per_program=rows_per_program,
        x_r=rows.strides["x"], x_c=cols.strides["x"], x_c1=cols.strides["x"][-1],
        y_r=rows.strides["y"], y_c=cols.strides["y"], y_c1=cols.strides["y"][-1],
        HAS_W=has_w, HAS_B=has_b, SINGLE=D <= block_d, COMPUTE=runtime.compute_dtype(dtype),
        BLOCK_R=block_r, BLOCK_D=block_d)


def layer_norm_forward(x, normalized_shape, weight, bias, eps, y, mean, rstd):
    """y = LayerNorm(x) into ``y``, with the per-row mean and rstd (saved for the VJP)."""
    if x.numel() == 0:
        return y, mean, rstd
    launch = _forward_plan(tuple(x.shape), tuple(x.stride()), tuple(y.stride()), len(normalized_shape), x.dtype,
                           weight is not None, bias is not None, x.device)
    launch(y_ptr=y, mean_ptr=mean, rstd_ptr=rstd, x_ptr=x, w_ptr=weight if weight is not None else x,
           b_ptr=bias if bias is not None else x, numbers=split_float(eps))
    return y, mean, rstd


@runtime.plan_cache
def _vjp_plan(shape, x_strides, g_strides, dx_strides, d, dtype, has_w, need_w, need_b, device):
    cols, rows = norm_groups(shape, d, {"x": x_strides, "g": g_strides, "dx": dx_strides})
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, rows_per_program = ln_config(R, D, device, backward=True)
    launch = runtime.LaunchPlan(
        layer_norm_bwd_kernel, (programs,), {"num_warps": runtime.num_warps_for(block_r * block_d)},
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D, rows_per_program=rows_per_program,
        x_r=rows.strides["x"], x_c=cols.strides["x"], x_c1=cols.strides["x"][-1],
        g_r=rows.strides["g"], g_c=cols.strides["g"], g_c1=cols.strides["g"][-1],
        dx_r=rows.strides["dx"], dx_c=cols.strides["dx"], dx_c1=cols.strides["dx"][-1],
        HAS_W=has_w, NEED_DW=need_w, NEED_DB=need_b, SINGLE=D <= block_d, COMPUTE=runtime.compute_dtype(dtype),
        BLOCK_R=block_r, BLOCK_D=block_d)
    return launch, programs, D


def layer_norm_vjp(x, normalized_shape, weight, bias, grad, mean, rstd, need_x, need_w, need_b):
    dx = torch.empty_like(x)
    dw = torch.empty_like(weight) if need_w else None
    db = torch.empty_like(bias) if need_b else None
    if x.numel() == 0:
        return (dx if need_x else None), (dw.zero_() if need_w else None), (db.zero_() if need_b else None)
    launch, programs, D = _vjp_plan(tuple(x.shape), tuple(x.stride()), tuple(grad.stride()), tuple(dx.stride()),
                                    len(normalized_shape), x.dtype, weight is not None, need_w, need_b, x.device)
    stat = stat_dtype(x)
    dw_part = torch.empty((programs, D), dtype=stat, device=x.device) if need_w else None
    db_part = torch.empty((programs, D), dtype=stat, device=x.device) if need_b else None
    launch(dx_ptr=dx, dw_part_ptr=dw_part if need_w else dx, db_part_ptr=db_part if need_b else dx, x_ptr=x,
           w_ptr=weight if weight is not None else x, g_ptr=grad, mean_ptr=mean, rstd_ptr=rstd)
    if need_w:
        combine_partials(dw_part, dw)
    if need_b:
        combine_partials(db_part, db)
    return (dx if need_x else None), dw, db
