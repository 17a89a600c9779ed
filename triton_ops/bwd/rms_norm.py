"""RMSNorm VJP of rows that fit one tile: dx in one fused pass per row block; dweight written by
the row kernel itself when one program owns every row, else as per-program partial sums (added
in a fixed order by ``bwd/reduce.combine_partials``: no atomics, the same bits every call).
Longer rows: ``bwd/norm_long.py``."""
import triton
import triton.language as tl

from ..templates.rms_norm import weight_row
from ..tiles import block_columns, c_offsets, group_offsets, row_block, row_share
from .norm_long import norm_chunk


@triton.jit
def rms_norm_bwd_kernel(dx_ptr, dw_ptr, x_ptr, w_ptr, g_ptr, rstd_ptr, r_sizes, c_sizes, R, D,
                        x_r, x_c, x_c1, g_r, g_c, g_c1, dx_r, dx_c, dx_c1, w_c, w_c1,
                        HAS_W: tl.constexpr, NEED_DW: tl.constexpr, COMPUTE: tl.constexpr,
                        BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, INDEX_64: tl.constexpr,
                        STAGES: tl.constexpr):
    # A persistent program (one per SM) owns an equal share of the row blocks (row_share),
    # BLOCK_R rows at a time, each row whole in one tile (D <= BLOCK_D). dx = rstd (g w - x_hat
    # mean(g w x_hat)), x_hat = x rstd; dw = sum over rows of g x_hat. x and g read once, dw
    # accumulated in registers and written once per program: its fp32 partial row (at pid * D),
    # or, when one program owns every row, dweight itself: no partials, no combine launch, the
    # same single rounding. STAGES > 1: the next row blocks' x and g stream into shared memory
    # while this one is summed (launchers/norm.bwd_stages).
    pid = tl.program_id(0)
    cols = block_columns(BLOCK_D, INDEX_64)
    dw_acc = tl.zeros([BLOCK_D], COMPUTE)
    w = weight_row(w_ptr, cols, cols < D, c_sizes, w_c, w_c1, HAS_W, COMPUTE)  # once: every row has these columns
    start, stop = row_share(R, BLOCK_R)
    for r0 in tl.range(start, stop, BLOCK_R, num_stages=STAGES):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        x_row = group_offsets(rows, r_sizes, x_r)
        g_row = group_offsets(rows, r_sizes, g_r)
        rstd = tl.load(rstd_ptr + rows, mask=r_mask, other=0.0).to(COMPUTE)[:, None]
        cc, cm, mask, g, x_hat, gw = norm_chunk(0, cols, D, r_mask, x_ptr, x_row, g_ptr, g_row, w, rstd, rstd,
                                                c_sizes, x_c, x_c1, g_c, g_c1, False, COMPUTE)
        if NEED_DW:  # before the row sum: g is dead past it (fewer live registers across the sum)
            dw_acc += tl.sum(g * x_hat, axis=0)
        s = tl.sum(gw * x_hat, axis=1)
        dx = (gw - x_hat * (s[:, None] / D)) * rstd
        dx_offsets = group_offsets(rows, r_sizes, dx_r)[:, None] + c_offsets(cc, c_sizes, dx_c, dx_c1)[None, :]
        tl.store(dx_ptr + dx_offsets, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    if NEED_DW:
        tl.store(dw_ptr + pid * D + cols, dw_acc.to(dw_ptr.dtype.element_ty), mask=cols < D)
