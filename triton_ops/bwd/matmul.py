"""VJP kernel of the matmul family: the GEMM template, with bias-gradient row sums when asked."""
import triton
import triton.language as tl

from ..templates.gemm import gemm_tiles


@triton.jit
def gemm_vjp_kernel(c_ptr, z_ptr, db_ptr, a_ptr, b_ptr, bias_ptr, a_desc, b_desc, M, N, K, BATCH,
                    numbers, a_st, b_st, c_st, z_st, bias_st,
                    EPILOGUE: tl.constexpr, HAS_PARAM: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SAVE_Z: tl.constexpr, DB: tl.constexpr, ACCUMULATE: tl.constexpr,
                    PRECISION: tl.constexpr, UPCAST: tl.constexpr, TMA: tl.constexpr, A_T: tl.constexpr,
                    B_T: tl.constexpr, BATCHED: tl.constexpr, EVEN_K: tl.constexpr,
                    ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    GROUP_M: tl.constexpr, SUBTILE: tl.constexpr):
    # dx = g @ W or dW = g^T @ x (with db; linear's activation gradient dz is formed before, by
    # bwd/linear.py) (templates/gemm.py).
    gemm_tiles(c_ptr, z_ptr, db_ptr, a_ptr, b_ptr, bias_ptr, a_desc, b_desc, M, N, K, BATCH, numbers,
        a_st, b_st, c_st, z_st, bias_st, EPILOGUE, HAS_PARAM, HAS_BIAS, SAVE_Z, DB, ACCUMULATE,
        PRECISION, UPCAST, TMA, A_T, B_T, BATCHED, EVEN_K, ACC, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, SUBTILE)
