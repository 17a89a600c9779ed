"""Launcher of ``linear``'s activation-gradient pass (``bwd/linear.linear_dz_bwd_kernel``): dz once,
with the bias gradient from per-program partial rows added in a fixed order."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.linear import linear_dz_bwd_kernel
from ..tiles import split_float
from .reduce import column_chunks, combine_partials


@runtime.plan_cache
def _dz_plan(R, N, g_strides, z_strides, dtype, df, has_param, need_db, device):
    """(LaunchPlan, row chunks P)."""
    block_r, block_n, chunks, rows_per_program = column_chunks(R, N, device)
    launch = runtime.LaunchPlan(
        linear_dz_bwd_kernel, (chunks * runtime.cdiv(N, block_n),),
        {"num_warps": runtime.num_warps_for(block_r * block_n)},
        R=R, N=N, rows_per_program=rows_per_program, g_r=g_strides[0], g_c=g_strides[1], z_r=z_strides[0],
        z_c=z_strides[1], DF=df, HAS_PARAM=has_param, NEED_DB=need_db, COMPUTE=runtime.compute_dtype(dtype),
        BLOCK_R=block_r, BLOCK_N=block_n,
        INDEX_64=runtime.needs_int64(runtime.max_offset((R, N), g_strides), runtime.max_offset((R, N), z_strides),
                                     R * N - 1, chunks * N - 1))
    return launch, chunks


_memo = runtime.plan_memo()


def linear_dz(g, z, df, param, db=None):
    """``dz = g * df(z[, param])`` (2-D, contiguous, z's dtype) and, when ``db`` (contiguous [N]) is
    given, ``db = dz.sum(0)`` formed from the same values before rounding. Returns dz."""
    R, N = g.shape
    dz = torch.empty((R, N), dtype=z.dtype, device=z.device)
    if R == 0 or N == 0:
        if db is not None:
            db.zero_()  # no rows: an empty sum (an edge case, not the hot path)
        return dz
    key = (g.stride(), z.stride(), R, N, z.dtype, z.device, id(df), param is None, db is not None)
    planned = _memo.get(key)
    if planned is None:
        planned = _memo[key] = (*_dz_plan(R, N, tuple(g.stride()), tuple(z.stride()), z.dtype, df, param is not None,
                                          db is not None, z.device), df)  # the key holds df's id: keep df alive
    launch, chunks, _ = planned
    c = launch.fixed["COMPUTE"]
    # one chunk: its sums are the gradient itself; several: [P, N] partials, then the combine
    part = db if chunks == 1 or db is None else torch.empty(
        (chunks, N), dtype=torch.float64 if c.primitive_bitwidth == 64 else torch.float32, device=z.device)
    launch(dz_ptr=dz, part_ptr=part if part is not None else dz, g_ptr=g, z_ptr=z,
           numbers=split_float(param if param is not None else 0.0, c))
    if part is not None and part is not db:
        combine_partials(part, db)
    return dz
