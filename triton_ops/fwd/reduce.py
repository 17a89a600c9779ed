"""Forward reductions: ``sum``/``sum_to`` (``out = sum_B x``, the VJP template's reduce-back
path run forward) and the fixed-order combine of per-program partial sums (sums and loss
reductions)."""
import triton
import triton.language as tl

from ..templates.pointwise import vjp_tiles
from ..templates.reduce import combine_rows


@triton.jit
def sum_fwd_kernel(
        dx_ptr, dy_ptr, x_ptr, y_ptr, g_ptr, numbers, groups, C,
        x_b, x_c, x_c1, y_a, y_c, y_c1, g_a, g_b, g_c, g_c1, dx_b, dx_c, dx_c1, dy_a, dy_c, dy_c1, dx_slot, dy_slot,
        DFX: tl.constexpr, DFY: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, G_MODE: tl.constexpr,
        NEED_DX: tl.constexpr, NEED_DY: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr, A_ROWS: tl.constexpr,
        STAGES: tl.constexpr):
    # out = sum over the broadcast axes of x: the VJP template's dy path with g = x and DFY = 1.
    vjp_tiles(dx_ptr, dy_ptr, x_ptr, y_ptr, g_ptr, numbers, groups, C, x_b, x_c, x_c1, y_a, y_c, y_c1, g_a, g_b,
        g_c, g_c1, dx_b, dx_c, dx_c1, dy_a, dy_c, dy_c1, dx_slot, dy_slot, DFX, DFY, ARITY, HAS_PARAM, SWAP,
        X_MODE, Y_MODE, G_MODE, NEED_DX, NEED_DY, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64, A_ROWS, STAGES)


@triton.jit
def combine_fwd_kernel(out_ptr, aux_ptr, part_ptr, P, K, stride, P2, K2, stride2, offset2, blocks, s_hi, s_lo,
                       DIVIDE: tl.constexpr, SECOND: tl.constexpr,
                       COMPUTE: tl.constexpr,
                       BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr):
    # out = scale * the column sums of the [P, K] partials, in a fixed order (templates/reduce.py).
    combine_rows(out_ptr, aux_ptr, part_ptr, P, K, stride, P2, K2, stride2, offset2, blocks, s_hi, s_lo, DIVIDE,
                 SECOND, COMPUTE, BLOCK_P, BLOCK_K, INDEX_64)
