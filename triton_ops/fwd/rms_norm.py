"""RMSNorm forward: one program owns a block of rows; rows longer than one block are looped."""
import triton
import triton.language as tl

from ..templates.rms_norm import rms_tile
from ..tiles import block_columns, c_offsets, group_offsets, joined, row_block, row_share


@triton.jit
def rms_norm_fwd_kernel(y_ptr, rstd_ptr, x_ptr, w_ptr, numbers, r_sizes, c_sizes, R, D,
                        x_r, x_c, x_c1, y_r, y_c, y_c1, w_c, w_c1,
                        HAS_W: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                        BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, INDEX_64: tl.constexpr, STATS: tl.constexpr):
    # One program owns an equal share of the row blocks (row_share: one block, as launched),
    # BLOCK_R rows at a time. SINGLE (D <= BLOCK_D): x read once and kept in registers: bytes
    # |x| + |y| + 4 per row (+ w once per program). Longer rows: a sum-of-squares pass, then a
    # second read of x (and w) to write y.
    eps = joined(numbers[0], numbers[1], COMPUTE)
    cols = block_columns(BLOCK_D, INDEX_64)
    if SINGLE:
        w_single = tl.load(w_ptr + c_offsets(cols, c_sizes, w_c, w_c1), mask=cols < D,
                           other=0.0).to(COMPUTE)[None, :] if HAS_W else 1.0
    start, stop = row_share(R, BLOCK_R)
    for r0 in range(start, stop, BLOCK_R):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        x_row = group_offsets(rows, r_sizes, x_r)
        y_row = group_offsets(rows, r_sizes, y_r)[:, None]
        ss = tl.zeros([BLOCK_R], COMPUTE)
        if SINGLE:
            cc, cm, mask, x, _ = rms_tile(0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1, False,
                                          COMPUTE)
            ss = tl.sum(x * x, axis=1)
        else:
            for c0 in range(0, D, BLOCK_D):
                cc, cm, mask, x, w = rms_tile(c0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1,
                                              False, COMPUTE)
                ss += tl.sum(x * x, axis=1)
        rstd = 1.0 / tl.sqrt(ss / D + eps)
        for c0 in range(0, D, BLOCK_D):  # SINGLE: one step, x and w already in registers
            if SINGLE:
                w = w_single
            else:
                cc, cm, mask, x, w = rms_tile(c0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1,
                                              HAS_W, COMPUTE)
            tl.store(y_ptr + y_row + c_offsets(cc, c_sizes, y_c, y_c1)[None, :],
                     (x * rstd[:, None] * w).to(y_ptr.dtype.element_ty), mask=mask)
        if STATS:  # rstd saved for the VJP (a forward whose caller needs no gradient stores none)
            tl.store(rstd_ptr + rows, rstd, mask=r_mask)
