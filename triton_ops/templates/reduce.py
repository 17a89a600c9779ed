"""Second pass of every deterministic reduction: per-program partials added in a fixed order."""
import triton
import triton.language as tl

from ..tiles import block_span, helper, joined


@helper
def combine_rows(out_ptr, aux_ptr, part_ptr, P, K, stride, P2, K2, stride2, offset2, blocks, s_hi, s_lo,
                 DIVIDE: tl.constexpr, SECOND: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_K columns of the [P, K] partials (rows ``stride`` apart) and adds all
    # P rows, a [BLOCK_P, BLOCK_K] tile at a time, then one fixed tree (tl.sum): the same bits
    # every call. SECOND: the programs from ``blocks`` on own a second reduction's columns instead
    # ([P2, K2] partials at ``offset2`` in the same buffer, results to aux): two gradients, one
    # launch. Bytes: the partials read once, the results written once.
    pid = tl.program_id(0)
    if SECOND:
        second = pid >= blocks
        pid = tl.where(second, pid - blocks, pid)
        P = tl.where(second, P2, P)
        K = tl.where(second, K2, K)
        stride = tl.where(second, stride2, stride)
        part_ptr += tl.where(second, offset2, 0)
    cols = block_span(pid * BLOCK_K, BLOCK_K, INDEX_64)
    col_mask = cols < K
    acc = tl.zeros([BLOCK_P, BLOCK_K], COMPUTE)
    for p0 in range(0, P, BLOCK_P):
        rows = block_span(p0, BLOCK_P, INDEX_64)
        mask = (rows < P)[:, None] & col_mask[None, :]
        acc += tl.load(part_ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(COMPUTE)
    total = tl.sum(acc, axis=0)
    scale = joined(s_hi, s_lo, COMPUTE)
    if DIVIDE:  # K = 2 columns (sum, count): out = scale * sum / max(count, 1); aux = the factor
        factor = scale / tl.maximum(tl.sum(tl.where(cols == 1, total, 0.0), axis=0), 1.0)
        tl.store(out_ptr, (tl.sum(tl.where(cols == 0, total, 0.0), axis=0) * factor).to(out_ptr.dtype.element_ty))
        tl.store(aux_ptr, factor.to(aux_ptr.dtype.element_ty))
    elif SECOND:
        if second:
            tl.store(aux_ptr + cols, (total * scale).to(aux_ptr.dtype.element_ty), mask=col_mask)
        else:
            tl.store(out_ptr + cols, (total * scale).to(out_ptr.dtype.element_ty), mask=col_mask)
    else:
        tl.store(out_ptr + cols, (total * scale).to(out_ptr.dtype.element_ty), mask=col_mask)
