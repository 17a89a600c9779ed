"""Softmax and log-softmax forward: one program owns blocks of rows, any row length (looped with
an online max and rescaled sum past one block), rows and columns read through their strides."""
import triton
import triton.language as tl

from ..templates.softmax import row_tile
from ..tiles import block_columns, group_offsets, row_block, row_range


@triton.jit
def softmax_fwd_kernel(y_ptr, lse_ptr, x_ptr, r_sizes, R, C, rows_per_program, x_r, x_c, y_r, y_c,
                       LOG: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr, STATS: tl.constexpr):
    # One program owns rows_per_program rows, BLOCK_R at a time. SINGLE (C <= BLOCK_C): x read
    # once and kept in registers: bytes |x| + |y| + 4 per row (STATS: the log-sum-exp the VJP
    # reuses; a forward whose caller needs no gradient stores none, and its caller allocates
    # none). Longer rows: an online max/sum pass, then a second read of x to write y.
    cols = block_columns(BLOCK_C, INDEX_64)
    start, stop = row_range(rows_per_program, R)
    for r0 in range(start, stop, BLOCK_R):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        x_row = group_offsets(rows, r_sizes, x_r)[:, None]
        y_row = group_offsets(rows, r_sizes, y_r)[:, None]
        if SINGLE:
            x, mask = row_tile(x_ptr, x_row, 0, cols, C, x_c, r_mask, float("-inf"), COMPUTE)
            m = tl.max(x, axis=1)
            e = tl.exp(x - m[:, None])  # a row of -inf only: NaN, as torch
            s = tl.sum(e, axis=1)
            y = x - (m + tl.log(s))[:, None] if LOG else e / s[:, None]
            tl.store(y_ptr + y_row + cols[None, :] * y_c, y.to(y_ptr.dtype.element_ty), mask=mask)
        else:
            m = tl.full([BLOCK_R], float("-inf"), COMPUTE)
            s = tl.zeros([BLOCK_R], COMPUTE)
            for c0 in range(0, C, BLOCK_C):
                x, mask = row_tile(x_ptr, x_row, c0, cols, C, x_c, r_mask, float("-inf"), COMPUTE)
                m_new = tl.maximum(m, tl.max(x, axis=1))
                m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # only -inf so far: nothing to rescale
                s = s * tl.exp(m - m_safe) + tl.sum(tl.exp(x - m_safe[:, None]), axis=1)
                m = m_new
            for c0 in range(0, C, BLOCK_C):
                x, mask = row_tile(x_ptr, x_row, c0, cols, C, x_c, r_mask, float("-inf"), COMPUTE)
                y = x - (m + tl.log(s))[:, None] if LOG else tl.exp(x - m[:, None]) / s[:, None]
                tl.store(y_ptr + y_row + (c0 + cols)[None, :] * y_c, y.to(y_ptr.dtype.element_ty), mask=mask)
        if STATS:
            tl.store(lse_ptr + rows, m + tl.log(s), mask=r_mask)
