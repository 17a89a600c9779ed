"""VJP kernels of the shape-moving layers: the transpose (its own VJP) and the embedding weight
gradient by row ownership (deterministic, no atomics)."""
import triton
import triton.language as tl

from ..templates.shape import transpose_tiles
from ..tiles import group_offsets


@triton.jit
def transpose_vjp_kernel(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # dx = g^T, one [BLOCK_M, BLOCK_N] tile per program (templates/shape.py).
    transpose_tiles(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M, BLOCK_N)


@triton.jit
def embedding_bwd_kernel(dw_ptr, g_ptr, idx_ptr, n, V, E, i_sizes, i_st, g_i, g_e, ONE_HOT_DTYPE: tl.constexpr,
                         BLOCK_V: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_E: tl.constexpr):
    # One program owns BLOCK_V vocabulary rows x BLOCK_E columns of dweight and scans every
    # index: the rows of g whose index it owns are loaded (each row of g by exactly one
    # program per column block) and added in index order with a one-hot product. Bytes:
    # |g| + |dweight| + |indices| per (vocabulary block, column block).
    pid_v = tl.program_id(0)
    pid_e = tl.program_id(1)
    rv = (pid_v * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
    re = (pid_e * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    e_mask = re < E
    v_lo = pid_v * BLOCK_V
    acc = tl.zeros([BLOCK_V, BLOCK_E], tl.float32 if ONE_HOT_DTYPE != tl.float64 else tl.float64)
    for i0 in range(0, n, BLOCK_I):
        ri = (i0 + tl.arange(0, BLOCK_I)).to(tl.int64)
        i_mask = ri < n
        idx = tl.load(idx_ptr + group_offsets(ri, i_sizes, i_st), mask=i_mask, other=-1).to(tl.int64)
        mine = i_mask & (idx >= v_lo) & (idx < v_lo + BLOCK_V)
        g = tl.load(g_ptr + group_offsets(ri, i_sizes, g_i)[:, None] + re[None, :] * g_e,
                    mask=mine[:, None] & e_mask[None, :], other=0.0).to(ONE_HOT_DTYPE)
        one_hot = tl.where(rv[:, None] == idx[None, :], 1.0, 0.0).to(ONE_HOT_DTYPE)
        acc += tl.dot(one_hot, g, input_precision="ieee", out_dtype=acc.dtype)
    tl.store(dw_ptr + rv[:, None] * E + re[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=(rv < V)[:, None] & e_mask[None, :])
