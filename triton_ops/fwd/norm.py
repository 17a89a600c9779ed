"""LayerNorm forward: one program owns a block of rows; rows longer than one block are looped."""
import triton
import triton.language as tl

from ..scalar import div_rounded
from ..tiles import block_columns, c_offsets, group_offsets, helper, joined, load_tile, row_block


@triton.jit
def layer_norm_fwd_kernel(y_ptr, mean_ptr, rstd_ptr, x_ptr, w_ptr, b_ptr, numbers, r_sizes, c_sizes, R, D,
                          x_r, x_c, x_c1, y_r, y_c, y_c1, w_c, w_c1, b_c, b_c1,
                          HAS_W: tl.constexpr, HAS_B: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                          BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, INDEX_64: tl.constexpr,
                          STATS: tl.constexpr):
    # One program owns one block of BLOCK_R rows (the grid: one program per block). SINGLE
    # (D <= BLOCK_D): x is read once, kept in registers for the mean, the variance (two-pass, no
    # cancellation) and the output: bytes |x| + |y| + 8 per row (+ w, b once per program).
    # Longer rows: chunked Welford statistics, then a second read of x to normalize. w and b
    # are read through their own strides over the normalized axes (sliced or stride-0 parameters
    # are never copied). STATS: mean and rstd stored for the VJP, the two rows of one [2, R]
    # buffer (one allocation per call; passed as two pointers); a forward whose caller needs no
    # gradient stores neither: 8 bytes a row less.
    # Registers (sm_90, bf16, 4 warps, 8192 columns: 64 values of x a thread): no row loop (a
    # loop of unknown trip count kept 42 more live across the reductions), and w and b loaded
    # only once the statistics are known (held as float32 from the start they were 128 more):
    # 232 -> 126 registers, 2 -> 4 programs per SM.
    eps = joined(numbers[0], numbers[1], COMPUTE)
    cols = block_columns(BLOCK_D, INDEX_64)
    rows, r_mask = row_block(tl.program_id(0).to(tl.int64) * BLOCK_R, R, BLOCK_R)
    x_row = group_offsets(rows, r_sizes, x_r)
    y_row = group_offsets(rows, r_sizes, y_r)
    if SINGLE:
        c_mask = cols < D
        mask = r_mask[:, None] & c_mask[None, :]
        x = load_tile(x_ptr, x_row, cols, c_sizes, x_c, x_c1, mask, COMPUTE)
        # divisions rounded on their own: a mean or variance the kernel stores (STATS) and one
        # it does not would otherwise fold into different FMAs (sm_90): a no-grad call and a
        # call saving the statistics must give the same bits (SPEC 0, determinism)
        n = tl.cast(D, COMPUTE)
        mean = div_rounded(tl.sum(x, axis=1), n, COMPUTE)
        xc = tl.where(mask, x - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(div_rounded(tl.sum(xc * xc, axis=1), n, COMPUTE) + eps)
        _store_affine(y_ptr, y_row, xc * rstd[:, None], cols, c_mask, mask, c_sizes, y_c, y_c1, w_ptr, w_c, w_c1,
                      b_ptr, b_c, b_c1, HAS_W, HAS_B, COMPUTE)
    else:
        mean = tl.zeros([BLOCK_R], COMPUTE)
        m2 = tl.zeros([BLOCK_R], COMPUTE)
        for c0 in range(0, D, BLOCK_D):  # Chan's merge of per-chunk mean and M2
            cc = c0 + cols
            mask = r_mask[:, None] & (cc < D)[None, :]
            x = load_tile(x_ptr, x_row, cc, c_sizes, x_c, x_c1, mask, COMPUTE)
            n_chunk = tl.minimum(tl.cast(D - c0, COMPUTE), BLOCK_D)
            chunk_mean = tl.sum(x, axis=1) / n_chunk
            d = tl.where(mask, x - chunk_mean[:, None], 0.0)
            chunk_m2 = tl.sum(d * d, axis=1)
            n_prev = tl.cast(c0, COMPUTE)
            total = n_prev + n_chunk
            delta = chunk_mean - mean
            mean = mean + delta * (n_chunk / total)
            m2 = m2 + chunk_m2 + delta * delta * (n_prev * n_chunk / total)
        rstd = 1.0 / tl.sqrt(m2 / D + eps)
        for c0 in range(0, D, BLOCK_D):
            cc = c0 + cols
            cm = cc < D
            mask = r_mask[:, None] & cm[None, :]
            x = load_tile(x_ptr, x_row, cc, c_sizes, x_c, x_c1, mask, COMPUTE)
            _store_affine(y_ptr, y_row, (x - mean[:, None]) * rstd[:, None], cc, cm, mask, c_sizes, y_c, y_c1,
                          w_ptr, w_c, w_c1, b_ptr, b_c, b_c1, HAS_W, HAS_B, COMPUTE)
    if STATS:
        tl.store(mean_ptr + rows, mean, mask=r_mask)
        tl.store(rstd_ptr + rows, rstd, mask=r_mask)


@helper
def _store_affine(y_ptr, y_row, y, cc, cm, mask, c_sizes, y_c, y_c1, w_ptr, w_c, w_c1, b_ptr, b_c, b_c1,
                  HAS_W: tl.constexpr, HAS_B: tl.constexpr, COMPUTE: tl.constexpr):
    """y * w + b stored over columns cc of the block's rows (the normalized tile ``y``)."""
    if HAS_W:
        y = y * tl.load(w_ptr + c_offsets(cc, c_sizes, w_c, w_c1), mask=cm, other=0.0).to(COMPUTE)[None, :]
    if HAS_B:
        y = y + tl.load(b_ptr + c_offsets(cc, c_sizes, b_c, b_c1), mask=cm, other=0.0).to(COMPUTE)[None, :]
    tl.store(y_ptr + y_row[:, None] + c_offsets(cc, c_sizes, y_c, y_c1)[None, :], y.to(y_ptr.dtype.element_ty),
             mask=mask)
