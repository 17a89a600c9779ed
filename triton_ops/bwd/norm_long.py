"""The LayerNorm and RMSNorm VJPs of rows too long for one tile (``CENTER``: LayerNorm, whose
x_hat subtracts the mean and whose dx has a second row sum; else RMSNorm, x_hat = x rstd).

dx needs two sums over each whole row (s1 = sum(g w x_hat), s2 = sum(g w)) before any of the
row's dx; dweight and dbias need sums over every row of each column. A program holding whole long
rows cannot keep a column sum for all D columns in registers (updating partial rows in memory
chunk by chunk made the H200 run LayerNorm's backward at 17% of clone bandwidth at hidden 16384),
so the work is cut twice:

1. ``norm_row_sums_kernel``: the row sums, BLOCK_R rows a program, x and g read once (4 bytes
   an element in bf16), 8 bytes a row written.
2. ``norm_columns_bwd_kernel``: programs own a [rows share x BLOCK_D columns] block: dx from the
   row sums (x and g read again, dx written), the column sums kept in registers over the share
   and written once as one partial row per share, added in a fixed order by one
   ``combine_partials`` launch (or written as the gradients themselves when one share holds
   every row). 10 bytes an element in all against the minimum 6, every access a stream.
"""
import triton
import triton.language as tl

from ..templates.rms_norm import weight_row
from ..tiles import c_offsets, group_offsets, helper, load_tile, row_block, rows_of_program


@helper
def norm_chunk(c0, cols, D, r_mask, x_ptr, x_row, g_ptr, g_row, w, mean, rstd, c_sizes, x_c, x_c1, g_c, g_c1,
               CENTER: tl.constexpr, COMPUTE: tl.constexpr):
    """Columns [c0, c0 + BLOCK_D) of a block of rows, for a norm VJP: indices, masks, g,
    x_hat = (x - mean) rstd (CENTER; 0 where masked) or x rstd, and g w (``w``: those columns'
    ``weight_row``, loaded once where the columns stay the same over the rows)."""
    cc = c0 + cols
    cm = cc < D
    mask = r_mask[:, None] & cm[None, :]
    x = load_tile(x_ptr, x_row, cc, c_sizes, x_c, x_c1, mask, COMPUTE)
    g = load_tile(g_ptr, g_row, cc, c_sizes, g_c, g_c1, mask, COMPUTE)
    if CENTER:
        x_hat = tl.where(mask, (x - mean) * rstd, 0.0)
    else:  # a masked x is 0 already
        x_hat = x * rstd
    return cc, cm, mask, g, x_hat, g * w


@helper
def _row_stats(mean_ptr, rstd_ptr, rows, r_mask, CENTER: tl.constexpr, COMPUTE: tl.constexpr):
    rstd = tl.load(rstd_ptr + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None]
    if CENTER:
        mean = tl.load(mean_ptr + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None]
    else:  # (unread)
        mean = rstd
    return mean, rstd


@triton.jit
def norm_row_sums_kernel(sums_ptr, x_ptr, w_ptr, g_ptr, mean_ptr, rstd_ptr, r_sizes, c_sizes, R, D,
                         x_r, x_c, x_c1, g_r, g_c, g_c1, w_c, w_c1,
                         HAS_W: tl.constexpr, CENTER: tl.constexpr, COMPUTE: tl.constexpr,
                         BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_R rows and walks their columns: s1 = sum(g w x_hat) into sums[0],
    # s2 = sum(g w) into sums[1] (CENTER). Reads x and g once; writes 4 or 8 bytes a row.
    rows, r_mask, x_row, g_row = rows_of_program(R, r_sizes, x_r, g_r, BLOCK_R, INDEX_64)
    cols = tl.arange(0, BLOCK_D)
    if INDEX_64:
        cols = cols.to(tl.int64)
    mean, rstd = _row_stats(mean_ptr, rstd_ptr, rows, r_mask, CENTER, COMPUTE)
    s1 = tl.zeros([BLOCK_R], COMPUTE)
    s2 = tl.zeros([BLOCK_R], COMPUTE)
    for c0 in range(0, D, BLOCK_D):
        w = weight_row(w_ptr, c0 + cols, (c0 + cols) < D, c_sizes, w_c, w_c1, HAS_W, COMPUTE)
        cc, cm, mask, g, x_hat, gw = norm_chunk(c0, cols, D, r_mask, x_ptr, x_row, g_ptr, g_row, w, mean, rstd,
                                                c_sizes, x_c, x_c1, g_c, g_c1, CENTER, COMPUTE)
        s1 += tl.sum(gw * x_hat, axis=1)
        if CENTER:
            s2 += tl.sum(gw, axis=1)
    tl.store(sums_ptr + rows, s1.to(sums_ptr.dtype.element_ty), mask=r_mask)
    if CENTER:
        tl.store(sums_ptr + R + rows, s2.to(sums_ptr.dtype.element_ty), mask=r_mask)


@triton.jit
def norm_columns_bwd_kernel(dx_ptr, dw_ptr, db_ptr, x_ptr, w_ptr, g_ptr, mean_ptr, rstd_ptr, sums_ptr, part_stride,
                            rows_per_program, r_sizes, c_sizes, R, D, x_r, x_c, x_c1, g_r, g_c, g_c1,
                            dx_r, dx_c, dx_c1, w_c, w_c1,
                            HAS_W: tl.constexpr, CENTER: tl.constexpr, NEED_DW: tl.constexpr, NEED_DB: tl.constexpr,
                            COMPUTE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
                            INDEX_64: tl.constexpr):
    # Program (c, s) owns columns [c BLOCK_D, (c + 1) BLOCK_D) of the rows [s rows_per_program,
    # (s + 1) rows_per_program), BLOCK_R rows a step: dx = rstd (g w - x_hat s1 / D - s2 / D)
    # from the row sums; dweight and dbias column sums over the share in registers, written once
    # at dw_ptr / db_ptr + s part_stride (fp32 partial rows, or the gradients themselves when one
    # share holds every row). Reads x and g once, writes dx once, 8 bytes a row of sums; its
    # columns' weight once.
    c0 = tl.program_id(0) * BLOCK_D
    cols = tl.arange(0, BLOCK_D)
    if INDEX_64:
        cols = cols.to(tl.int64)
    share = tl.program_id(1).to(tl.int64)
    start = share * rows_per_program
    stop = tl.minimum(start + rows_per_program, R)
    dw_acc = tl.zeros([BLOCK_D], COMPUTE)
    db_acc = tl.zeros([BLOCK_D], COMPUTE)
    w = weight_row(w_ptr, c0 + cols, (c0 + cols) < D, c_sizes, w_c, w_c1, HAS_W, COMPUTE)  # the program's columns
    for r0 in range(start, stop, BLOCK_R):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        x_row = group_offsets(rows, r_sizes, x_r)
        g_row = group_offsets(rows, r_sizes, g_r)
        mean, rstd = _row_stats(mean_ptr, rstd_ptr, rows, r_mask, CENTER, COMPUTE)
        cc, cm, mask, g, x_hat, gw = norm_chunk(c0, cols, D, r_mask, x_ptr, x_row, g_ptr, g_row, w, mean, rstd,
                                                c_sizes, x_c, x_c1, g_c, g_c1, CENTER, COMPUTE)
        c1 = tl.load(sums_ptr + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None] / D
        if CENTER:
            c2 = tl.load(sums_ptr + R + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None] / D
            dx = (gw - x_hat * c1 - c2) * rstd
        else:
            dx = (gw - x_hat * c1) * rstd
        dx_offsets = group_offsets(rows, r_sizes, dx_r)[:, None] + c_offsets(cc, c_sizes, dx_c, dx_c1)[None, :]
        tl.store(dx_ptr + dx_offsets, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        if NEED_DW:
            dw_acc += tl.sum(g * x_hat, axis=0)
        if NEED_DB:
            db_acc += tl.sum(g, axis=0)
    cc = c0 + cols
    if NEED_DW:
        tl.store(dw_ptr + share * part_stride + cc, dw_acc.to(dw_ptr.dtype.element_ty), mask=cc < D)
    if NEED_DB:
        tl.store(db_ptr + share * part_stride + cc, db_acc.to(db_ptr.dtype.element_ty), mask=cc < D)
