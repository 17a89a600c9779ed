"""Softmax and log-softmax VJP, from x and the forward's log-sum-exp per row (y = exp(x - lse)
is recomputed: the same bytes as reading a saved y, and no second output to keep alive)."""
import triton
import triton.language as tl

from ..templates.softmax import row_tile
from ..tiles import block_columns, group_offsets, helper, row_block, row_range


@helper
def widen_again(raw, COMPUTE: tl.constexpr):
    """``raw.to(COMPUTE)`` a second time, for a tile used both before and after a row sum: the
    compiler merges a second ``.to`` with the first and keeps the wide tile alive across the sum.
    A bfloat16 widened through integer ops (exact: its bits are a float32's upper half) is a new
    value, recomputed from the 16-bit tile after the sum (other dtypes: the same ``.to``)."""
    if raw.dtype == tl.bfloat16 and COMPUTE == tl.float32:
        return (raw.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    else:
        return raw.to(COMPUTE)


@triton.jit
def softmax_bwd_kernel(dx_ptr, x_ptr, g_ptr, lse_ptr, r_sizes, R, C, rows_per_program, x_r, x_c, g_r, g_c,
                       dx_r, dx_c, LOG: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns rows_per_program rows, BLOCK_R at a time, with p = exp(x - lse):
    # softmax: dx = p (g - sum(g p)); log_softmax: dx = g - p sum(g). SINGLE: x and g read once:
    # bytes |x| + |g| + |dx| + 4 per row. Longer rows: a pass for the row sum (g, and x for
    # softmax), then a second read of x and g to write dx.
    cols = block_columns(BLOCK_C, INDEX_64)
    start, stop = row_range(rows_per_program, R)
    for r0 in range(start, stop, BLOCK_R):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        lse = tl.load(lse_ptr + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None]
        x_row = group_offsets(rows, r_sizes, x_r)[:, None]
        g_row = group_offsets(rows, r_sizes, g_r)[:, None]
        total = tl.zeros([BLOCK_R], COMPUTE)
        if not SINGLE:
            for c0 in range(0, C, BLOCK_C):
                g, _ = row_tile(g_ptr, g_row, c0, cols, C, g_c, r_mask, 0.0, COMPUTE)
                if LOG:
                    total += tl.sum(g, axis=1)
                else:
                    x, _ = row_tile(x_ptr, x_row, c0, cols, C, x_c, r_mask, float("-inf"), COMPUTE)
                    total += tl.sum(g * tl.exp(x - lse), axis=1)
        for c0 in range(0, C, BLOCK_C):  # SINGLE: one step
            # x and g kept as stored (16-bit: half the registers) and widened again after the row
            # sum: held wide across it, softmax's took 80 registers (3 programs an SM, Triton 3.6)
            x_in, mask = row_tile(x_ptr, x_row, c0, cols, C, x_c, r_mask, float("-inf"), x_ptr.dtype.element_ty)
            g_in, _ = row_tile(g_ptr, g_row, c0, cols, C, g_c, r_mask, 0.0, g_ptr.dtype.element_ty)
            if SINGLE:
                g = g_in.to(COMPUTE)
                total = tl.sum(g, axis=1) if LOG else tl.sum(g * tl.exp(x_in.to(COMPUTE) - lse), axis=1)
            g = widen_again(g_in, COMPUTE)
            p = tl.exp(widen_again(x_in, COMPUTE) - lse)
            dx = g - p * total[:, None] if LOG else p * (g - total[:, None])
            tl.store(dx_ptr + group_offsets(rows, r_sizes, dx_r)[:, None] + (c0 + cols)[None, :] * dx_c,
                     dx.to(dx_ptr.dtype.element_ty), mask=mask)
