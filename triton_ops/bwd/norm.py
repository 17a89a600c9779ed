"""LayerNorm VJP of rows that fit one tile: dx in one fused pass per row block; dweight/dbias
written by the row kernel itself when one program owns every row, else as per-program partial
rows (added in a fixed order by one ``bwd/reduce.combine_partials`` launch for both: no atomics).
Longer rows: ``bwd/norm_long.py``."""
import triton
import triton.language as tl

from ..tiles import c_offsets, group_offsets, load_tile, row_block, row_share


@triton.jit
def layer_norm_bwd_kernel(dx_ptr, dw_ptr, db_ptr, x_ptr, w_ptr, g_ptr, stats_ptr, part_stride,
                          r_sizes, c_sizes, R, D, x_r, x_c, x_c1, g_r, g_c, g_c1, dx_r, dx_c, dx_c1,
                          w_c, w_c1, HAS_W: tl.constexpr, NEED_DW: tl.constexpr, NEED_DB: tl.constexpr,
                          COMPUTE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
                          INDEX_64: tl.constexpr, STAGES: tl.constexpr):
    # A persistent program (one per SM) owns an equal share of the row blocks (row_share),
    # BLOCK_R rows at a time, each row whole in one tile (D <= BLOCK_D).
    # dx = rstd * (g w - mean(g w) - x_hat mean(g w x_hat)). x and g read once; dw/db accumulate
    # in registers and are written once per program: its partial row at pid * part_stride (fp32;
    # one [P, 2D] buffer holds both), or, when one program owns every row, dweight and dbias
    # themselves: no partials, no combine launch, the same single rounding.
    # mean and rstd: stats_ptr [2, R]. STAGES > 1: the next row blocks' x and g stream into shared
    # memory while this one is summed (launchers/norm.bwd_stages).
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)
    if INDEX_64:  # rows are always int64 (row_block); column offsets only when they can pass 2^31
        cols = cols.to(tl.int64)
    dw_acc = tl.zeros([BLOCK_D], COMPUTE)
    db_acc = tl.zeros([BLOCK_D], COMPUTE)
    c_mask = cols < D
    if HAS_W:
        w = tl.load(w_ptr + c_offsets(cols, c_sizes, w_c, w_c1), mask=c_mask, other=0.0).to(COMPUTE)
    start, stop = row_share(R, BLOCK_R)
    for r0 in tl.range(start, stop, BLOCK_R, num_stages=STAGES):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        x_row = group_offsets(rows, r_sizes, x_r)
        g_row = group_offsets(rows, r_sizes, g_r)
        dx_row = group_offsets(rows, r_sizes, dx_r)[:, None]
        mean = tl.load(stats_ptr + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None]
        rstd = tl.load(stats_ptr + R + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None]
        mask = r_mask[:, None] & c_mask[None, :]
        x = load_tile(x_ptr, x_row, cols, c_sizes, x_c, x_c1, mask, COMPUTE)
        g = load_tile(g_ptr, g_row, cols, c_sizes, g_c, g_c1, mask, COMPUTE)
        x_hat = tl.where(mask, (x - mean) * rstd, 0.0)
        # the parameter sums first: g is not needed past gw (fewer live registers)
        if NEED_DW:
            dw_acc += tl.sum(g * x_hat, axis=0)
        if NEED_DB:
            db_acc += tl.sum(g, axis=0)
        gw = g * w[None, :] if HAS_W else g
        c1 = tl.sum(gw * x_hat, axis=1)[:, None] / D
        c2 = tl.sum(gw, axis=1)[:, None] / D
        dx = (gw - x_hat * c1 - c2) * rstd
        tl.store(dx_ptr + dx_row + c_offsets(cols, c_sizes, dx_c, dx_c1)[None, :], dx.to(dx_ptr.dtype.element_ty),
                 mask=mask)
    if NEED_DW:
        tl.store(dw_ptr + pid * part_stride + cols, dw_acc.to(dw_ptr.dtype.element_ty), mask=c_mask)
    if NEED_DB:
        tl.store(db_ptr + pid * part_stride + cols, db_acc.to(db_ptr.dtype.element_ty), mask=c_mask)
