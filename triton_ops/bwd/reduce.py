"""Second pass of every deterministic reduction: sum per-program partials in a fixed order."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..tiles import joined, split_float


@triton.jit
def combine_partials_kernel(out_ptr, aux_ptr, part_ptr, P, K, s_hi, s_lo,
                            DIVIDE: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_P: tl.constexpr,
                            BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_K columns of the [P, K] partials and adds all P rows, a
    # [BLOCK_P, BLOCK_K] tile at a time, then one fixed tree (tl.sum): the same bits every call.
    # Bytes: P*K partials read once, K results written once.
    cols = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    if INDEX_64:
        cols = cols.to(tl.int64)
    col_mask = cols < K
    acc = tl.zeros([BLOCK_P, BLOCK_K], COMPUTE)
    for p0 in range(0, P, BLOCK_P):
        rows = p0 + tl.arange(0, BLOCK_P)
        if INDEX_64:
            rows = rows.to(tl.int64)
        mask = (rows < P)[:, None] & col_mask[None, :]
        acc += tl.load(part_ptr + rows[:, None] * K + cols[None, :], mask=mask, other=0.0).to(COMPUTE)
    total = tl.sum(acc, axis=0)
    scale = joined(s_hi, s_lo, COMPUTE)
    if DIVIDE:  # K = 2 columns (sum, count): out = scale * sum / max(count, 1); aux = the factor
        factor = scale / tl.maximum(tl.sum(tl.where(cols == 1, total, 0.0), axis=0), 1.0)
        tl.store(out_ptr, (tl.sum(tl.where(cols == 0, total, 0.0), axis=0) * factor).to(out_ptr.dtype.element_ty))
        tl.store(aux_ptr, factor.to(aux_ptr.dtype.element_ty))
    else:
        tl.store(out_ptr + cols, (total * scale).to(out_ptr.dtype.element_ty), mask=col_mask)


def combine_partials(partials: torch.Tensor, out: torch.Tensor, scale: float = 1.0, kernel=None,
                     factor_out: torch.Tensor | None = None) -> torch.Tensor:
    """``out.view(-1) = scale * partials.sum(0)`` for contiguous ``partials`` [P, K] and ``out``.

    With ``factor_out`` (a one-element tensor), ``partials`` is [P, 2] of (sum, count) and
    ``out = scale * sum / max(count, 1)``, the factor ``scale / max(count, 1)`` going to
    ``factor_out`` (a "mean over the rows counted", with no host sync)."""
    kernel = combine_partials_kernel if kernel is None else kernel
    P, K = partials.shape
    block_k = min(runtime.next_pow2(K), 1024 if runtime.INTERPRETER else 256)
    block_p = min(runtime.next_pow2(P), max(1, runtime.tile_elements() // block_k))
    s_hi, s_lo = split_float(scale)
    divide = factor_out is not None
    runtime.launch(kernel, (runtime.cdiv(K, block_k),), out, factor_out if divide else out, partials, P, K,
                   s_hi, s_lo, DIVIDE=divide, COMPUTE=runtime.compute_dtype(partials.dtype), BLOCK_P=block_p, BLOCK_K=block_k,
                   INDEX_64=runtime.needs_int64(P * K - 1), num_warps=4)
    return out
