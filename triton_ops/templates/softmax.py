"""Pieces of the softmax / log-softmax row kernels that forward and VJP both read with."""
import triton
import triton.language as tl

from ..tiles import helper


@helper
def row_tile(ptr, r_offsets, c0, cols, C, c_stride, r_mask, other, COMPUTE: tl.constexpr):
    """Columns [c0, c0 + BLOCK) of a block of rows (given by their offsets [BLOCK_R, 1]), as
    COMPUTE with ``other`` where masked, and its mask."""
    mask = r_mask[:, None] & ((c0 + cols) < C)[None, :]
    return tl.load(ptr + r_offsets + (c0 + cols)[None, :] * c_stride, mask=mask, other=other).to(COMPUTE), mask
