"""Forward kernels of the shape-moving layers: the tiled 2-D transpose and the embedding gather."""
import triton
import triton.language as tl

from ..templates.shape import transpose_tiles
from ..tiles import group_offsets


@triton.jit
def transpose_fwd_kernel(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # out = x^T, one [BLOCK_M, BLOCK_N] tile per program (templates/shape.py).
    transpose_tiles(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M, BLOCK_N)


@triton.jit
def embedding_fwd_kernel(out_ptr, w_ptr, idx_ptr, n, V, E, i_sizes, i_st, w_s0, w_s1,
                         BLOCK_I: tl.constexpr, BLOCK_E: tl.constexpr):
    # One program owns BLOCK_I indices x BLOCK_E columns: out[i, :] = weight[idx[i], :].
    # Bytes: |indices| + |out| read from weight + |out| written. An index outside [0, V)
    # (possible only on CUDA, where it is not checked before launch) is not read: its row is
    # NaN, never a silent row of zeros.
    pid_i = tl.program_id(0)
    pid_e = tl.program_id(1)
    ri = (pid_i * BLOCK_I + tl.arange(0, BLOCK_I)).to(tl.int64)
    re = (pid_e * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    i_mask = ri < n
    e_mask = re < E
    idx = tl.load(idx_ptr + group_offsets(ri, i_sizes, i_st), mask=i_mask, other=0).to(tl.int64)
    ok = i_mask & (idx >= 0) & (idx < V)
    rows = tl.load(w_ptr + idx[:, None] * w_s0 + re[None, :] * w_s1, mask=ok[:, None] & e_mask[None, :],
                   other=float("nan"))
    tl.store(out_ptr + ri[:, None] * E + re[None, :], rows, mask=i_mask[:, None] & e_mask[None, :])
