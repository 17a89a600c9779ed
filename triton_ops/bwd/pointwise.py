"""VJP kernel of every pointwise op: the gradients with the reduce-back of broadcast operands
fused in."""
import triton
import triton.language as tl

from ..templates.pointwise import vjp_tiles


@triton.jit
def pointwise_vjp_kernel(
        dx_ptr, dy_ptr, x_ptr, y_ptr, g_ptr, numbers, groups, C,
        x_b, x_c, x_c1, y_a, y_c, y_c1, g_a, g_b, g_c, g_c1, dx_b, dx_c, dx_c1, dy_a, dy_c, dy_c1, dx_slot, dy_slot,
        DFX: tl.constexpr, DFY: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, G_MODE: tl.constexpr,
        NEED_DX: tl.constexpr, NEED_DY: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr, A_ROWS: tl.constexpr,
        STAGES: tl.constexpr):
    # The VJP template: dx = sum_A g * DFX, dy = sum_B g * DFY (see templates/pointwise.py).
    vjp_tiles(dx_ptr, dy_ptr, x_ptr, y_ptr, g_ptr, numbers, groups, C, x_b, x_c, x_c1, y_a, y_c, y_c1, g_a, g_b,
        g_c, g_c1, dx_b, dx_c, dx_c1, dy_a, dy_c, dy_c1, dx_slot, dy_slot, DFX, DFY, ARITY, HAS_PARAM, SWAP,
        X_MODE, Y_MODE, G_MODE, NEED_DX, NEED_DY, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64, A_ROWS, STAGES)
