"""Gradients that broadcast back (of ``sum``, ``sum_to``): the forward pointwise template,
reading g through stride-0 axes one row per tile, instantiated here as a VJP kernel."""
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs it in every module holding @jit code)

from ..fwd.pointwise import pointwise_fwd_kernel

broadcast_kernel = triton.jit(pointwise_fwd_kernel.fn)
