"""Second pass of the deterministic VJP reductions: per-program partial gradients added in a fixed
order."""
import triton
import triton.language as tl

from ..templates.reduce import combine_rows


@triton.jit
def combine_vjp_kernel(out_ptr, aux_ptr, part_ptr, P, K, stride, P2, K2, stride2, offset2, blocks, s_hi, s_lo,
                       DIVIDE: tl.constexpr, SECOND: tl.constexpr,
                       COMPUTE: tl.constexpr,
                       BLOCK_P: tl.constexpr, BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr):
    # grad = the column sums of the [P, K] partial gradients, in a fixed order
    # (templates/reduce.py).
    combine_rows(out_ptr, aux_ptr, part_ptr, P, K, stride, P2, K2, stride2, offset2, blocks, s_hi, s_lo, DIVIDE,
                 SECOND, COMPUTE, BLOCK_P, BLOCK_K, INDEX_64)
