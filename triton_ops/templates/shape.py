"""The tiled 2-D transpose (its own VJP)."""
import triton
import triton.language as tl

from ..tiles import helper


@helper
def transpose_tiles(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # One program owns a [BLOCK_M, BLOCK_N] tile of x and writes it as the [BLOCK_N, BLOCK_M]
    # tile of out = x^T (contiguous [N, M]). Bytes: |x| + |out|.
    pid = tl.program_id(0)
    n_n = tl.cdiv(N, BLOCK_N)
    rm = ((pid // n_n) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = ((pid % n_n) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    tile = tl.load(x_ptr + rm[:, None] * x_s0 + rn[None, :] * x_s1, mask=mask)
    tl.store(out_ptr + rn[None, :] * M + rm[:, None], tile, mask=mask)
