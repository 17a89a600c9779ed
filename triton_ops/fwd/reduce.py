"""Forward reductions (``sum``, ``sum_to``, loss sums) are the VJP template's reduce-back path
run forward: ``out = sum_B f(x)``. One template, instantiated here as forward kernels, so that
every forward kernel is a kernel of ``triton_ops/fwd``."""
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs it in every module holding @jit code)

from ..bwd.pointwise import pointwise_vjp_kernel
from ..bwd.reduce import combine_partials_kernel

reduce_kernel = triton.jit(pointwise_vjp_kernel.fn)
combine_kernel = triton.jit(combine_partials_kernel.fn)
