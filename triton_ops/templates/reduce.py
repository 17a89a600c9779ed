"""Second pass of every deterministic reduction: per-program partials added in a fixed order."""
import triton
import triton.language as tl

from ..tiles import block_span, helper, joined


@helper
def combine_rows(out_ptr, aux_ptr, part_ptr, P, K, s_hi, s_lo,
                 DIVIDE: tl.constexpr, SPLIT: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_K columns of the [P, K] partials and adds all P rows, a
    # [BLOCK_P, BLOCK_K] tile at a time, then one fixed tree (tl.sum): the same bits every call.
    # Bytes: P*K partials read once, K results written once.
    cols = block_span(tl.program_id(0) * BLOCK_K, BLOCK_K, INDEX_64)
    col_mask = cols < K
    acc = tl.zeros([BLOCK_P, BLOCK_K], COMPUTE)
    for p0 in range(0, P, BLOCK_P):
        rows = block_span(p0, BLOCK_P, INDEX_64)
        mask = (rows < P)[:, None] & col_mask[None, :]
        acc += tl.load(part_ptr + rows[:, None] * K + cols[None, :], mask=mask, other=0.0).to(COMPUTE)
    total = tl.sum(acc, axis=0)
    scale = joined(s_hi, s_lo, COMPUTE)
    if DIVIDE:  # K = 2 columns (sum, count): out = scale * sum / max(count, 1); aux = the factor
        factor = scale / tl.maximum(tl.sum(tl.where(cols == 1, total, 0.0), axis=0), 1.0)
        tl.store(out_ptr, (tl.sum(tl.where(cols == 0, total, 0.0), axis=0) * factor).to(out_ptr.dtype.element_ty))
        tl.store(aux_ptr, factor.to(aux_ptr.dtype.element_ty))
    elif SPLIT:  # two results of K / 2 columns each (LayerNorm's dweight and dbias): one launch for both
        half = K // 2
        tl.store(out_ptr + cols, (total * scale).to(out_ptr.dtype.element_ty), mask=cols < half)
        tl.store(aux_ptr + (cols - half), (total * scale).to(aux_ptr.dtype.element_ty), mask=col_mask & (cols >= half))
    else:
        tl.store(out_ptr + cols, (total * scale).to(out_ptr.dtype.element_ty), mask=col_mask)
