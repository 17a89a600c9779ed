"""Launchers of LayerNorm (forward with saved mean/rstd; VJP with fixed-order dweight/dbias) and
RMSNorm (the same row tiling; rstd saved; fixed-order dweight).

Host cost per call (issue 10): every allocation and launch of a warm call is replayed, so each
one is counted. The LayerNorm forward keeps mean and rstd in one [2, R] buffer; a VJP whose rows
one program owns writes the parameter gradients from the row kernel (one launch, no partials);
else one partials buffer holds both parameters' rows and one combine launch adds them."""
from __future__ import annotations

import torch

from .. import runtime
from ..broadcast import aligned_strides, plan_reduce
from ..bwd.norm import layer_norm_bwd_kernel
from ..bwd.rms_norm import rms_norm_bwd_kernel
from ..fwd.norm import layer_norm_fwd_kernel
from ..fwd.rms_norm import rms_norm_fwd_kernel
from ..tiles import split_float
from .reduce import combine_partials


def ln_config(R, D, device, backward: bool):
    """(BLOCK_R, BLOCK_D, programs, rows per program). Forward: one row block per program (as
    many programs as rows allow). Backward on a GPU: a persistent row kernel, one program of
    ``row_warps`` (16) warps per SM (``BWD_PROGRAMS_PER_SM``) walking [BLOCK_R, BLOCK_D] steps of
    ``2 * tile_elements()`` elements (several short rows a step; rows past 8192 columns in
    2048-column chunks of 4 rows, so that a chunked row's partial-row update serves 4 rows), so
    that the dweight/dbias partials stay small (programs x D floats). The norm kernels split the
    row blocks evenly (``tiles.row_share``); rows per program is the most one program walks (the
    contiguous ranges of softmax's forward)."""
    single_d = 1 << 14 if runtime.INTERPRETER else 8192
    block_d = min(runtime.next_pow2(D), single_d)
    tile = runtime.tile_elements()
    if backward and not runtime.INTERPRETER:
        tile *= 2
        if D > single_d:
            block_d = tile // 4
    block_r = min(runtime.next_pow2(R), max(1, tile // block_d))
    steps = runtime.cdiv(R, block_r)
    if runtime.INTERPRETER:
        programs = 1
    elif backward:
        programs = min(steps, _sms(device) * BWD_PROGRAMS_PER_SM)
    else:
        programs = steps
    return block_r, block_d, programs, runtime.cdiv(steps, programs) * block_r


# The backward's steps of 2 x 4096 elements in 16 warps hold 16 elements of each tile a thread,
# under 128 registers (no spills): one program per SM (65,536 registers), one full wave.
BWD_PROGRAMS_PER_SM = 1


def _sms(device):
    """Multiprocessors (``device_programs`` aims at 4 programs per SM)."""
    return max(1, runtime.device_programs(device) // 4)


def row_warps(block_r, block_d, backward: bool) -> int:
    """Warps of a row kernel's program: 16 for the backward's 8192-element steps (16 elements of
    a tile per thread), else as many as the tile asks."""
    elements = block_r * block_d
    if backward and not runtime.INTERPRETER and elements >= 8192:
        return 16
    return runtime.num_warps_for(elements)


def stat_dtype(x):
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _groups(shape, d, layouts, params=None):
    """(columns, rows): the normalized trailing ``d`` axes and the rest, for these tensors (full
    ``shape``) and ``params`` (weight, bias: strides over the normalized axes, None when absent)."""
    meta = {k: aligned_strides(torch.empty_strided(shape, st, device="meta"), shape) for k, st in layouts.items()}
    for k, st in (params or {}).items():
        if st is not None:  # parameters keep their own strides (0 on the leading axes)
            meta[k] = aligned_strides(torch.empty_strided(shape[len(shape) - d:], st, device="meta"), shape)
    return plan_reduce(shape, range(len(shape) - d, len(shape)), meta)


def _extents(shape, d, layouts, params):
    """The largest offsets reachable in these tensors and parameters (the int64 decision)."""
    return ([runtime.max_offset(shape, st) for st in layouts.values()]
            + [runtime.max_offset(shape[len(shape) - d:], st) for st in params.values() if st is not None])


def _strides(t):
    return tuple(t.stride()) if t is not None else None


def _param_strides(cols, name):
    """A parameter's column strides and innermost stride (zeros when it is absent)."""
    st = cols.strides.get(name, tuple(0 for _ in cols.sizes))
    return st, st[-1]


@runtime.plan_cache
def _forward_plan(shape, x_strides, y_strides, d, dtype, w_strides, b_strides, stats, device):
    layouts, params = {"x": x_strides, "y": y_strides}, {"w": w_strides, "b": b_strides}
    cols, rows = _groups(shape, d, layouts, params)
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, _ = ln_config(R, D, device, backward=False)
    (w_c, w_c1), (b_c, b_c1) = _param_strides(cols, "w"), _param_strides(cols, "b")
    return runtime.LaunchPlan(
        layer_norm_fwd_kernel, (programs,), {"num_warps": runtime.num_warps_for(block_r * block_d)},
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D,
        x_r=rows.strides["x"], x_c=cols.strides["x"], x_c1=cols.strides["x"][-1],
        y_r=rows.strides["y"], y_c=cols.strides["y"], y_c1=cols.strides["y"][-1],
        w_c=w_c, w_c1=w_c1, b_c=b_c, b_c1=b_c1,
        HAS_W=w_strides is not None, HAS_B=b_strides is not None, SINGLE=D <= block_d,
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_R=block_r, BLOCK_D=block_d,
        INDEX_64=runtime.needs_int64(*_extents(shape, d, layouts, params)), STATS=stats)


def layer_norm_forward(x, normalized_shape, weight, bias, eps, y, stats=None):
    """y = LayerNorm(x) into ``y``, with the per-row mean and rstd (saved for the VJP) into
    ``stats`` [2, R] when given; returns (y, stats)."""
    if x.numel() == 0:
        return y, stats
    launch = _forward_plan(tuple(x.shape), tuple(x.stride()), tuple(y.stride()), len(normalized_shape), x.dtype,
                           _strides(weight), _strides(bias), stats is not None, x.device)
    mean, rstd = (stats[0], stats[1]) if stats is not None else (y, y)
    launch(y_ptr=y, mean_ptr=mean, rstd_ptr=rstd, x_ptr=x, w_ptr=weight if weight is not None else x,
           b_ptr=bias if bias is not None else x, numbers=split_float(eps, launch.fixed["COMPUTE"]))
    return y, stats


def _partials(R, D, block_r, block_d, programs, sums):
    """The [programs, sums * D] fp32 partials buffer a norm VJP needs, or None: when one program
    owns every row and keeps its parameter sums in registers (SINGLE) or walks one row block,
    it writes the parameter gradients itself (one rounding, as the combine would)."""
    if not sums or (programs == 1 and (D <= block_d or R <= block_r)):
        return None
    return programs, sums * D


@runtime.plan_cache
def _vjp_plan(shape, x_strides, g_strides, dx_strides, d, dtype, w_strides, need_w, need_b, device):
    layouts, params = {"x": x_strides, "g": g_strides, "dx": dx_strides}, {"w": w_strides}
    cols, rows = _groups(shape, d, layouts, params)
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, _ = ln_config(R, D, device, backward=True)
    parts = _partials(R, D, block_r, block_d, programs, need_w + need_b)
    w_c, w_c1 = _param_strides(cols, "w")
    launch = runtime.LaunchPlan(
        layer_norm_bwd_kernel, (programs,), {"num_warps": row_warps(block_r, block_d, True)},
        part_stride=parts[1] if parts else 0,
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D,
        x_r=rows.strides["x"], x_c=cols.strides["x"], x_c1=cols.strides["x"][-1],
        g_r=rows.strides["g"], g_c=cols.strides["g"], g_c1=cols.strides["g"][-1],
        dx_r=rows.strides["dx"], dx_c=cols.strides["dx"], dx_c1=cols.strides["dx"][-1], w_c=w_c, w_c1=w_c1,
        HAS_W=w_strides is not None, NEED_DW=need_w, NEED_DB=need_b, SINGLE=D <= block_d,
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_R=block_r, BLOCK_D=block_d,
        INDEX_64=runtime.needs_int64(*_extents(shape, d, layouts, params), programs * 2 * D - 1))  # partials
    return launch, parts


def layer_norm_vjp(x, normalized_shape, weight, bias, grad, stats, need_x, need_w, need_b):
    dx = torch.empty_like(x)
    # Parameter gradients are contiguous (row-major over normalized_shape, the order of the
    # partial sums' columns) whatever the parameters' own strides.
    dw = weight.new_empty(weight.shape) if need_w else None
    db = bias.new_empty(bias.shape) if need_b else None
    if x.numel() == 0:
        return (dx if need_x else None), (dw.zero_() if need_w else None), (db.zero_() if need_b else None)
    launch, parts = _vjp_plan(tuple(x.shape), tuple(x.stride()), tuple(grad.stride()), tuple(dx.stride()),
                              len(normalized_shape), x.dtype, _strides(weight), need_w, need_b, x.device)
    dw_out, db_out = dw, db
    if parts is not None:  # one buffer: each program's dweight row, then its dbias row
        part = torch.empty(parts, dtype=stat_dtype(x), device=x.device)
        dw_out, db_out = part, (part[:, parts[1] // 2:] if need_w else part)
    launch(dx_ptr=dx, dw_ptr=dw_out if need_w else dx, db_ptr=db_out if need_b else dx, x_ptr=x,
           w_ptr=weight if weight is not None else x, g_ptr=grad, stats_ptr=stats)
    if parts is not None:
        if need_w and need_b:  # each row: the dweight partial, then the dbias one (db_out)
            combine_partials(part[:, :parts[1] // 2], dw, second=(db_out, db))
        else:
            combine_partials(part, dw if need_w else db)
    return (dx if need_x else None), dw, db


# --------------------------------------------------------------------------------------------
# RMSNorm


@runtime.plan_cache
def _rms_plan(shape, layouts, w_strides, d, dtype, need_dw, device, backward, stats=False):
    """``layouts``: ((name, strides), ...) of x and the tensors of x's shape the kernel reads or
    writes (``<name>_r``, ``<name>_c``, ``<name>_c1``); the weight is read through its own strides.
    ``stats``: the forward stores rstd."""
    kernel = rms_norm_bwd_kernel if backward else rms_norm_fwd_kernel
    layouts, params = dict(layouts), {"w": w_strides}
    cols, rows = _groups(shape, d, layouts, params)
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, _ = ln_config(R, D, device, backward=backward)
    parts = _partials(R, D, block_r, block_d, programs, int(need_dw))
    strides = {}
    for k in layouts:
        strides.update({f"{k}_r": rows.strides[k], f"{k}_c": cols.strides[k], f"{k}_c1": cols.strides[k][-1]})
    w_c, w_c1 = _param_strides(cols, "w")
    flags = {"NEED_DW": need_dw} if backward else {"STATS": stats}
    launch = runtime.LaunchPlan(
        kernel, (programs,), {"num_warps": row_warps(block_r, block_d, backward)},
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D, **strides,
        w_c=w_c, w_c1=w_c1, HAS_W=w_strides is not None, **flags, SINGLE=D <= block_d,
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_R=block_r, BLOCK_D=block_d,
        INDEX_64=runtime.needs_int64(*_extents(shape, d, layouts, params), programs * D if need_dw else 0))
    return launch, parts


def rms_norm_forward(x, normalized_shape, weight, eps, y, rstd=None):
    """y = x / sqrt(mean(x^2) + eps) * w into ``y``, with the per-row rstd (saved for the VJP)
    when given."""
    if x.numel() == 0:
        return y, rstd
    launch, _ = _rms_plan(tuple(x.shape), (("x", tuple(x.stride())), ("y", tuple(y.stride()))), _strides(weight),
                          len(normalized_shape), x.dtype, False, x.device, False, rstd is not None)
    launch(y_ptr=y, rstd_ptr=rstd if rstd is not None else y, x_ptr=x, w_ptr=weight if weight is not None else x,
           numbers=split_float(eps, launch.fixed["COMPUTE"]))
    return y, rstd


def rms_norm_vjp(x, normalized_shape, weight, grad, rstd, need_x, need_w):
    """(dx, dweight); dweight contiguous, written by the row kernel or from per-program partial
    rows added in a fixed order."""
    dx = torch.empty_like(x)
    dw = weight.new_empty(weight.shape) if need_w else None
    if x.numel() == 0:
        return (dx if need_x else None), (dw.zero_() if need_w else None)
    layouts = (("x", tuple(x.stride())), ("g", tuple(grad.stride())), ("dx", tuple(dx.stride())))
    launch, parts = _rms_plan(tuple(x.shape), layouts, _strides(weight), len(normalized_shape), x.dtype, need_w,
                              x.device, True)
    part = torch.empty(parts, dtype=rstd.dtype, device=x.device) if parts is not None else None
    launch(dx_ptr=dx, dw_ptr=part if part is not None else dw if need_w else dx, x_ptr=x,
           w_ptr=weight if weight is not None else x, g_ptr=grad, rstd_ptr=rstd)
    if part is not None:
        combine_partials(part, dw)
    return (dx if need_x else None), dw
