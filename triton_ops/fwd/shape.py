"""Forward kernels of the shape-moving layers: a tiled 2-D transpose and the embedding gather."""
import triton
import triton.language as tl

from ..tiles import group_offsets


@triton.jit
def transpose_kernel(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # One program owns a [BLOCK_M, BLOCK_N] tile of x and writes it as the [BLOCK_N, BLOCK_M]
    # tile of out = x^T (contiguous [N, M]). Bytes: |x| + |out|.
    pid = tl.program_id(0)
    n_n = tl.cdiv(N, BLOCK_N)
    rm = ((pid // n_n) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = ((pid % n_n) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    tile = tl.load(x_ptr + rm[:, None] * x_s0 + rn[None, :] * x_s1, mask=mask)
    tl.store(out_ptr + rn[None, :] * M + rm[:, None], tile, mask=mask)


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
