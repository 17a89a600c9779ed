"""VJP kernels of the matmul family: the GEMM template of ``fwd/matmul.py`` run with its
prologue (dz = g * act'(z) while loading A) and bias-gradient row sums, as a VJP kernel."""
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs it in every module holding @jit code)

from ..fwd.matmul import gemm_kernel

gemm_vjp_kernel = triton.jit(gemm_kernel.fn)
