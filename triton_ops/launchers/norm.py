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
from ..bwd.norm_long import norm_columns_bwd_kernel, norm_row_sums_kernel
from ..bwd.rms_norm import rms_norm_bwd_kernel
from ..fwd.norm import layer_norm_fwd_kernel
from ..fwd.rms_norm import rms_norm_fwd_kernel
from ..tiles import split_float
from .reduce import combine_partials, most_partial_rows, wave_split


def single_columns() -> int:
    """The longest row a norm kernel holds in one tile; longer rows are walked in chunks (the
    forwards) or take the two-kernel VJP (``bwd/norm_long.py``)."""
    return 1 << 14 if runtime.INTERPRETER else 8192


# The row kernels' launch per row length on a GPU, measured side by side on an H200
# (`python -m bench.variants norm`; docs/benchmarks/gpu/h200-2026-11-27-norm-variants.csv, bf16, 16384
# rows): (longest row, backward programs per SM, backward step elements, backward warps, forward
# warps). Short rows want several small programs per SM, so that one program's loads overlap
# another's reductions and barriers: at 1024 columns four 4-warp programs of 2048-element steps
# ran the LayerNorm VJP 4.1x faster than one 16-warp program of 8192; 8192 columns want 16384-
# element steps (two rows) in one 16-warp program (1.19x). The forwards ran fastest, or within
# 2%, with 4-warp programs at every length (RMSNorm at 8192: 1.26x).
ROW_CONFIGS = ((1024, 4, 2048, 4, 4), (2048, 2, 8192, 8, 4), (4096, 2, 4096, 8, 4), (8192, 1, 16384, 16, 4))
# The backward row loops' software pipeline (tl.range num_stages: cp.async into shared memory):
# at 3 stages the next step's x and g are in flight while this step is summed and stored (SASS,
# Triton 3.6 and 3.9: `DEPBAR.LE SB0, 0x3` at the loop's top, 3 copy groups a step); 2 stages
# wait for every copy at the top (no overlap); 1, the plain loop, loads a step only after the
# last one's row sums and stores: one 16-warp program an SM at 8192 columns had 32 KiB in
# flight, then none (RMSNorm 76% of clone on the H200, 2026-11-28; LayerNorm's 64 KiB steps 83%).
# The buffers, (stages - 1) steps of x and g a program, must fit beside the reductions' scratch.
RMS_BWD_STAGES = 3
ROW_BWD_SMEM = 160 * 1024
# LayerNorm's VJP keeps the plain loop (its >= 80% target is met): pipelined, its 16384-element
# steps spill (52 / 300 bytes under Triton 3.9 / 3.6); 8192-element steps compile without (101 /
# 124 registers, 64 KiB), unmeasured: a variant for bench.variants (with `row_config`'s step).
LN_BWD_STAGES = 1


def bwd_stages(stages: int, block_r: int, block_d: int, dtype) -> int:
    """The backward row loop's pipeline ``stages`` for [block_r, block_d] steps of ``dtype``, or 1
    where the buffers of ``row_config``'s programs an SM pass ``ROW_BWD_SMEM`` (float32 steps of
    16384 elements)."""
    per_sm = 1 if runtime.INTERPRETER else row_config(block_d)[0]
    return runtime.pipeline_stages(stages, per_sm * block_r * block_d * 2 * runtime.dtype_size(dtype), ROW_BWD_SMEM)


def row_config(D: int) -> tuple[int, int, int, int]:
    """(backward programs per SM, backward step elements, backward warps, forward warps) for rows
    of ``D`` columns (``ROW_CONFIGS``; longer rows than its last take the last)."""
    for longest, *config in ROW_CONFIGS:
        if D <= longest:
            return tuple(config)
    return tuple(ROW_CONFIGS[-1][1:])


def ln_config(R, D, device, backward: bool):
    """(BLOCK_R, BLOCK_D, programs, rows per program). Forward: one row block per program (as
    many programs as rows allow) of ``tile_elements()``. Backward (rows of one tile) on a GPU: a
    persistent row kernel, ``row_config``'s programs per SM walking [BLOCK_R, BLOCK_D] steps of
    its step elements (several short rows a step), so that the dweight/dbias partials stay small
    (programs x D floats). The norm kernels split the row blocks evenly (``tiles.row_share``);
    rows per program is the most one program walks (the contiguous ranges of softmax's
    forward)."""
    block_d = min(runtime.next_pow2(D), single_columns())
    tile = runtime.tile_elements()
    per_sm = 1
    if backward and not runtime.INTERPRETER:
        per_sm, tile, _, _ = row_config(block_d)
    block_r = min(runtime.next_pow2(R), max(1, tile // block_d))
    steps = runtime.cdiv(R, block_r)
    if runtime.INTERPRETER:
        programs = 1
    elif backward:
        programs = min(steps, _sms(device) * per_sm)
    else:
        programs = steps
    return block_r, block_d, programs, runtime.cdiv(steps, programs) * block_r


def _sms(device):
    """Multiprocessors (``device_programs`` aims at 4 programs per SM)."""
    return max(1, runtime.device_programs(device) // 4)


def row_warps(block_r, block_d, backward: bool) -> int:
    """Warps of a norm row kernel's program on a GPU: ``row_config``'s for the row length (the
    interpreter: as many as the tile asks)."""
    if runtime.INTERPRETER:
        return runtime.num_warps_for(block_r * block_d)
    _, _, bwd_warps, fwd_warps = row_config(block_d)
    return bwd_warps if backward else fwd_warps


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


def _tensor_strides(rows, cols, names) -> dict:
    """``<name>_r``, ``<name>_c``, ``<name>_c1`` (row strides, column strides, innermost column
    stride) of each tensor of x's shape, the row kernels' arguments."""
    out = {}
    for k in names:
        out.update({f"{k}_r": rows.strides[k], f"{k}_c": cols.strides[k], f"{k}_c1": cols.strides[k][-1]})
    return out


def _param_strides(cols, name):
    """A parameter's column strides and innermost stride (zeros when it is absent)."""
    st = cols.strides.get(name, tuple(0 for _ in cols.sizes))
    return st, st[-1]


@runtime.plan_cache
def _forward_plan(shape, x_strides, y_strides, d, dtype, w_strides, b_strides, stats, device):
    layouts, params = {"x": x_strides, "y": y_strides}, {"w": w_strides, "b": b_strides}
    cols, rows = _groups(shape, d, layouts, params)
    R, D = rows.numel, cols.numel
    block_r, block_d, _, _ = ln_config(R, D, device, backward=False)
    (w_c, w_c1), (b_c, b_c1) = _param_strides(cols, "w"), _param_strides(cols, "b")
    return runtime.LaunchPlan(
        layer_norm_fwd_kernel, (runtime.cdiv(R, block_r),),  # one row block a program (no row loop)
        {"num_warps": row_warps(block_r, block_d, False)},
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


def _partials(D, programs, sums):
    """The [programs, sums * D] fp32 partials buffer a norm VJP of rows of one tile needs, or
    None: when one program owns every row, it writes the parameter gradients itself from its
    registers (one rounding, as the combine would)."""
    if not sums or programs == 1:
        return None
    return programs, sums * D


def _sum_targets(parts, dw, db, x, unused):
    """(partials buffer or None, where the kernel writes dweight, where dbias). With ``parts``:
    one [P, sums x D] buffer of the statistics' dtype, each row a dweight partial, then a dbias
    one; else the gradients themselves. ``unused`` stands for a gradient not asked for (unwritten)."""
    if parts is None:
        return None, dw if dw is not None else unused, db if db is not None else unused
    part = torch.empty(parts, dtype=stat_dtype(x), device=x.device)
    db_part = (part[:, parts[1] // 2:] if dw is not None else part) if db is not None else unused
    return part, part if dw is not None else unused, db_part


def _add_partials(part, dw, db, db_part):
    """``_sum_targets``' partial rows added in a fixed order into dweight and dbias (one combine
    launch for both)."""
    if part is None:
        return
    if dw is not None and db is not None:
        combine_partials(part[:, :part.shape[1] // 2], dw, second=(db_part, db))
    else:
        combine_partials(part, dw if dw is not None else db)


@runtime.plan_cache
def _long_rows_plans(shape, layouts, w_strides, d, dtype, center, need_w, need_b, device):
    """The VJP of rows longer than one tile (``bwd/norm_long.py``): (row sums plan, columns
    plan, partial rows (shares, sums x D) or None). ``center``: LayerNorm (two row sums, dbias),
    else RMSNorm. ``layouts``: ((name, strides), ...) of x, g and dx."""
    layouts, params = dict(layouts), {"w": w_strides}
    cols, rows = _groups(shape, d, layouts, params)
    R, D = rows.numel, cols.numel
    tile = runtime.tile_elements()
    strides = _tensor_strides(rows, cols, ("x", "g"))
    w_c, w_c1 = _param_strides(cols, "w")
    common = dict(r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D, **strides, w_c=w_c, w_c1=w_c1,
                  HAS_W=w_strides is not None, CENTER=center, COMPUTE=runtime.compute_dtype(dtype))
    # 1. row sums: one row of tile-wide chunks a program (R programs: a wave at any R worth a split)
    sums_d = min(runtime.next_pow2(D), tile)
    sums_r = max(1, tile // sums_d)
    # 2. columns: [col_r x col_d] blocks; shares of rows for whole waves, their partial rows
    # within 1/32 of the input's bytes
    col_d = min(runtime.next_pow2(D), tile if runtime.INTERPRETER else 512)
    col_r = min(runtime.next_pow2(R), max(1, tile // col_d))
    n_c = runtime.cdiv(D, col_d)
    num_warps = runtime.num_warps_for(col_r * col_d)
    most = most_partial_rows(R * D * runtime.dtype_size(dtype), max(1, need_w + need_b) * D * 4)
    rows_per_share = wave_split(R, n_c, min(runtime.cdiv(R, col_r), most), device, num_warps)
    shares = runtime.cdiv(R, rows_per_share)
    parts = (shares, (need_w + need_b) * D) if (need_w or need_b) and shares > 1 else None
    index_64 = runtime.needs_int64(*_extents(shape, d, layouts, params), shares * 2 * D - 1, 2 * R - 1)
    row_sums = runtime.LaunchPlan(
        norm_row_sums_kernel, (runtime.cdiv(R, sums_r),), {"num_warps": runtime.num_warps_for(sums_r * sums_d)},
        **common, BLOCK_R=sums_r, BLOCK_D=sums_d, INDEX_64=index_64)
    columns = runtime.LaunchPlan(
        norm_columns_bwd_kernel, (n_c, shares), {"num_warps": num_warps}, **common,
        **_tensor_strides(rows, cols, ("dx",)),
        part_stride=parts[1] if parts else 0, rows_per_program=rows_per_share, NEED_DW=need_w, NEED_DB=need_b,
        BLOCK_R=col_r, BLOCK_D=col_d, INDEX_64=index_64)
    return row_sums, columns, parts


def _long_rows_vjp(x, grad, weight, dx, dw, db, mean, rstd, d, center):
    """dx, and dweight / dbias where given, of rows longer than one tile (the same contract as
    the row kernels: contiguous parameter gradients, fixed-order sums)."""
    layouts = (("x", tuple(x.stride())), ("g", tuple(grad.stride())), ("dx", tuple(dx.stride())))
    row_sums, columns, parts = _long_rows_plans(tuple(x.shape), layouts, _strides(weight), d, x.dtype, center,
                                               dw is not None, db is not None, x.device)
    sums = torch.empty((2 if center else 1, row_sums.fixed["R"]), dtype=stat_dtype(x), device=x.device)
    w = weight if weight is not None else x
    row_sums(sums_ptr=sums, x_ptr=x, w_ptr=w, g_ptr=grad, mean_ptr=mean, rstd_ptr=rstd)
    part, dw_out, db_out = _sum_targets(parts, dw, db, x, dx)
    columns(dx_ptr=dx, dw_ptr=dw_out, db_ptr=db_out, x_ptr=x, w_ptr=w, g_ptr=grad, mean_ptr=mean, rstd_ptr=rstd,
            sums_ptr=sums)
    _add_partials(part, dw, db, db_out)


@runtime.plan_cache
def _vjp_plan(shape, x_strides, g_strides, dx_strides, d, dtype, w_strides, need_w, need_b, device):
    layouts, params = {"x": x_strides, "g": g_strides, "dx": dx_strides}, {"w": w_strides}
    cols, rows = _groups(shape, d, layouts, params)
    R, D = rows.numel, cols.numel
    block_r, block_d, programs, _ = ln_config(R, D, device, backward=True)
    parts = _partials(D, programs, need_w + need_b)
    w_c, w_c1 = _param_strides(cols, "w")
    launch = runtime.LaunchPlan(
        layer_norm_bwd_kernel, (programs,), {"num_warps": row_warps(block_r, block_d, True)},
        part_stride=parts[1] if parts else 0,
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D,
        x_r=rows.strides["x"], x_c=cols.strides["x"], x_c1=cols.strides["x"][-1],
        g_r=rows.strides["g"], g_c=cols.strides["g"], g_c1=cols.strides["g"][-1],
        dx_r=rows.strides["dx"], dx_c=cols.strides["dx"], dx_c1=cols.strides["dx"][-1], w_c=w_c, w_c1=w_c1,
        HAS_W=w_strides is not None, NEED_DW=need_w, NEED_DB=need_b,
        STAGES=bwd_stages(LN_BWD_STAGES, block_r, block_d, dtype),
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
    if runtime.numel(normalized_shape) > single_columns():
        _long_rows_vjp(x, grad, weight, dx, dw, db, stats[0], stats[1], len(normalized_shape), True)
        return (dx if need_x else None), dw, db
    launch, parts = _vjp_plan(tuple(x.shape), tuple(x.stride()), tuple(grad.stride()), tuple(dx.stride()),
                              len(normalized_shape), x.dtype, _strides(weight), need_w, need_b, x.device)
    part, dw_out, db_out = _sum_targets(parts, dw, db, x, dx)
    launch(dx_ptr=dx, dw_ptr=dw_out, db_ptr=db_out, x_ptr=x, w_ptr=weight if weight is not None else x, g_ptr=grad,
           stats_ptr=stats)
    _add_partials(part, dw, db, db_out)
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
    parts = _partials(D, programs, int(need_dw))
    strides = _tensor_strides(rows, cols, layouts)
    w_c, w_c1 = _param_strides(cols, "w")
    flags = ({"NEED_DW": need_dw, "STAGES": bwd_stages(RMS_BWD_STAGES, block_r, block_d, dtype)} if backward
             else {"STATS": stats, "SINGLE": D <= block_d})
    # the forward: one row block a program (no row loop)
    launch = runtime.LaunchPlan(
        kernel, (programs if backward else runtime.cdiv(R, block_r),), {"num_warps": row_warps(block_r, block_d, backward)},
        r_sizes=rows.sizes, c_sizes=cols.sizes, R=R, D=D, **strides,
        w_c=w_c, w_c1=w_c1, HAS_W=w_strides is not None, **flags,
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
    if runtime.numel(normalized_shape) > single_columns():
        _long_rows_vjp(x, grad, weight, dx, dw, None, rstd, rstd, len(normalized_shape), False)
        return (dx if need_x else None), dw
    layouts = (("x", tuple(x.stride())), ("g", tuple(grad.stride())), ("dx", tuple(dx.stride())))
    launch, parts = _rms_plan(tuple(x.shape), layouts, _strides(weight), len(normalized_shape), x.dtype, need_w,
                              x.device, True)
    part, dw_out, _ = _sum_targets(parts, dw, None, x, dx)
    launch(dx_ptr=dx, dw_ptr=dw_out, x_ptr=x, w_ptr=weight if weight is not None else x, g_ptr=grad, rstd_ptr=rstd)
    _add_partials(part, dw, None, None)
    return (dx if need_x else None), dw
