"""Pieces the LayerNorm and RMSNorm VJP kernels both use."""
import triton.language as tl

from ..tiles import helper


@helper
def add_to_row(ptr, mask, value, COMPUTE: tl.constexpr):
    """A long row's chunk of column sums added into the program's own row of sums: an fp32
    partial row, or the parameter gradient itself when one program owns every row (then each
    chunk is written once after its zero fill: one rounding to the gradient's dtype)."""
    tl.store(ptr, (tl.load(ptr, mask=mask, other=0.0).to(COMPUTE) + value).to(ptr.dtype.element_ty), mask=mask)
