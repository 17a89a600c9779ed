"""Forward kernel of every pointwise op (unary, broadcasting binary, replicate)."""
import triton
import triton.language as tl

from ..templates.pointwise import map_tiles


@triton.jit
def pointwise_fwd_kernel(
        out_ptr, x_ptr, y_ptr, numbers, groups, C, x_b, x_c, x_c1, y_a, y_c, y_c1, o_a, o_b, o_c, o_c1,
        FN: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # The forward template: out = FN(x, y) over the A/B/C groups (see templates/pointwise.py).
    map_tiles(out_ptr, x_ptr, y_ptr, numbers, groups, C, x_b, x_c, x_c1, y_a, y_c, y_c1, o_a, o_b, o_c, o_c1, FN,
        ARITY, HAS_PARAM, SWAP, X_MODE, Y_MODE, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64)
