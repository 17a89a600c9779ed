"""RMSNorm forward: one program owns a block of rows; rows longer than one block are looped."""
import triton
import triton.language as tl

from ..templates.rms_norm import rms_tile, weight_row
from ..tiles import block_columns, c_offsets, group_offsets, helper, joined, row_block


@triton.jit
def rms_norm_fwd_kernel(y_ptr, rstd_ptr, x_ptr, w_ptr, numbers, r_sizes, c_sizes, R, D,
                        x_r, x_c, x_c1, y_r, y_c, y_c1, w_c, w_c1,
                        HAS_W: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                        BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, INDEX_64: tl.constexpr, STATS: tl.constexpr):
    # One program owns one block of BLOCK_R rows (the grid: one program per block; no row loop,
    # as the LayerNorm forward: fwd/norm.py). SINGLE (D <= BLOCK_D): x read once and kept in
    # registers, w loaded once the sum of squares is known: bytes |x| + |y| + 4 per row (+ w once
    # per program). Longer rows: a sum-of-squares pass, then a second read of x (and w) to write y.
    eps = joined(numbers[0], numbers[1], COMPUTE)
    cols = block_columns(BLOCK_D, INDEX_64)
    rows, r_mask = row_block(tl.program_id(0).to(tl.int64) * BLOCK_R, R, BLOCK_R)
    x_row = group_offsets(rows, r_sizes, x_r)
    y_row = group_offsets(rows, r_sizes, y_r)[:, None]
    if SINGLE:
        cc, cm, mask, x, _ = rms_tile(0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1, False,
                                      COMPUTE)
        rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / D + eps)
        _store_scaled(y_ptr, y_row, x * rstd[:, None], cc, cm, mask, c_sizes, y_c, y_c1, w_ptr, w_c, w_c1, HAS_W,
                      COMPUTE)
    else:
        ss = tl.zeros([BLOCK_R], COMPUTE)
        for c0 in range(0, D, BLOCK_D):
            cc, cm, mask, x, w = rms_tile(c0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1,
                                          False, COMPUTE)
            ss += tl.sum(x * x, axis=1)
        rstd = 1.0 / tl.sqrt(ss / D + eps)
        for c0 in range(0, D, BLOCK_D):
            cc, cm, mask, x, w = rms_tile(c0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1,
                                          False, COMPUTE)
            _store_scaled(y_ptr, y_row, x * rstd[:, None], cc, cm, mask, c_sizes, y_c, y_c1, w_ptr, w_c, w_c1, HAS_W,
                          COMPUTE)
    if STATS:  # rstd saved for the VJP (a forward whose caller needs no gradient stores none)
        tl.store(rstd_ptr + rows, rstd, mask=r_mask)


@helper
def _store_scaled(y_ptr, y_row, y, cc, cm, mask, c_sizes, y_c, y_c1, w_ptr, w_c, w_c1, HAS_W: tl.constexpr,
                  COMPUTE: tl.constexpr):
    """y * w stored over columns cc of the block's rows (w read here, after the statistics)."""
    y = y * weight_row(w_ptr, cc, cm, c_sizes, w_c, w_c1, HAS_W, COMPUTE)
    tl.store(y_ptr + y_row + c_offsets(cc, c_sizes, y_c, y_c1)[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)
