"""Pieces of the RMSNorm row kernels that forward and VJP both read with."""
import triton
import triton.language as tl

from ..tiles import c_offsets, helper, load_tile


@helper
def rms_tile(c0, cols, D, r_mask, x_ptr, x_row, c_sizes, x_c, x_c1, w_ptr, w_c, w_c1, HAS_W: tl.constexpr,
             COMPUTE: tl.constexpr):
    """Columns [c0, c0 + BLOCK_D) of a block of rows: their indices, the tile mask, x and w
    (1.0 without a weight)."""
    cc = c0 + cols
    cm = cc < D
    mask = r_mask[:, None] & cm[None, :]
    x = load_tile(x_ptr, x_row, cc, c_sizes, x_c, x_c1, mask, COMPUTE)
    return cc, cm, mask, x, weight_row(w_ptr, cc, cm, c_sizes, w_c, w_c1, HAS_W, COMPUTE)


@helper
def weight_row(w_ptr, cc, cm, c_sizes, w_c, w_c1, HAS_W: tl.constexpr, COMPUTE: tl.constexpr):
    """The weight over columns cc as a [1, BLOCK_D] row (1.0 without a weight)."""
    return tl.load(w_ptr + c_offsets(cc, c_sizes, w_c, w_c1), mask=cm, other=0.0).to(COMPUTE)[None, :] if HAS_W else 1.0
