"""Launcher of ``one_hot_embedding``'s forward (``fwd/one_hot.py``): the row gather, which counts
the non-finite weights per column itself when it is one program (or the weight is tiny); else
they are counted first (partial rows added in a fixed order when the rows are split)."""
from __future__ import annotations

import torch

from .. import runtime
from ..fwd.one_hot import nonfinite_count_fwd_kernel, one_hot_gather_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel
from .reduce import column_chunks, combine_partials


@runtime.plan_cache
def _plan(N, V, E, o_strides, w_strides, dtype, device):
    """(count LaunchPlan or None, its row chunks, gather LaunchPlan) for V, E > 0."""
    index_64 = runtime.needs_int64(runtime.max_offset((N, V), o_strides), runtime.max_offset((V, E), w_strides),
                                   N * E - 1)
    block_v, block_e, chunks, rows_per_program = column_chunks(V, E, device)
    count = runtime.LaunchPlan(
        nonfinite_count_fwd_kernel, (chunks * runtime.cdiv(E, block_e),),
        {"num_warps": runtime.num_warps_for(block_v * block_e)},
        V=V, E=E, rows_per_program=rows_per_program, w_v=w_strides[0], w_e=w_strides[1],
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_V=block_v, BLOCK_E=block_e,
        INDEX_64=index_64 or runtime.needs_int64(chunks * E - 1))
    # gather: tiles of at least 16 (the fallback's dot); on a GPU 16 rows (about one wave at
    # 8192 rows), a scan step of one tile, and a fallback step whose [BLOCK_K, BLOCK_E] weight
    # tile stays in registers
    if runtime.INTERPRETER:
        bi, bv, be = (max(16, min(runtime.next_pow2(n), cap)) for n, cap in ((N, 64), (V, 1024), (E, 256)))
        bk = bv
    else:
        bi, bv, bk, be = 16, 256, 64, 64
    programs = runtime.cdiv(N, bi)
    # every program counting the whole weight: one launch and no count buffer, worth it while
    # the weight re-reads stay within one program's share of a split (runtime.min_split_elements)
    own_count = programs == 1 or programs * V * E <= runtime.min_split_elements()
    gather = runtime.LaunchPlan(
        one_hot_gather_fwd_kernel, (programs,), {"num_warps": 4}, N=N, V=V, E=E, o_r=o_strides[0],
        o_v=o_strides[1], w_v=w_strides[0], w_e=w_strides[1], COMPUTE=runtime.compute_dtype(dtype), BLOCK_I=bi,
        BLOCK_V=bv, BLOCK_K=bk, BLOCK_E=be, COUNT=own_count, INDEX_64=index_64)
    return (None if own_count else count), chunks, gather


_memo = runtime.plan_memo()


def one_hot_embedding_forward(onehot, weight):
    """``onehot @ weight`` for a 2-D ``onehot`` [N, V] (any strides): a contiguous [N, E]."""
    (N, V), E = onehot.shape, weight.shape[1]
    out = weight.new_empty((N, E))
    if N == 0 or E == 0:
        return out
    if V == 0:
        return out.zero_()  # an empty sum (an edge case, not the hot path)
    key = (onehot.stride(), weight.stride(), N, V, E, weight.dtype, weight.device)
    planned = _memo.get(key)
    if planned is None:
        planned = _memo[key] = _plan(N, V, E, tuple(onehot.stride()), tuple(weight.stride()), weight.dtype,
                                     weight.device)
    count, chunks, gather = planned
    if count is None:
        gather(out_ptr=out, o_ptr=onehot, w_ptr=weight, nf_ptr=out)  # nf_ptr unread
        return out
    nf = torch.empty((E,), dtype=torch.float32, device=weight.device)
    part = nf if chunks == 1 else torch.empty((chunks, E), dtype=torch.float32, device=weight.device)
    count(part_ptr=part, w_ptr=weight)
    if chunks > 1:
        combine_partials(part, nf, kernel=combine_fwd_kernel)
    gather(out_ptr=out, o_ptr=onehot, w_ptr=weight, nf_ptr=nf)
    return out
