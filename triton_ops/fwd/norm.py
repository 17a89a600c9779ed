"""LayerNorm forward: one program owns a block of rows; rows longer than one block are looped."""
import triton
import triton.language as tl

from ..scalar import div_rounded
from ..tiles import c_offsets, group_offsets, joined, load_tile, row_block, row_share


@triton.jit
def layer_norm_fwd_kernel(y_ptr, mean_ptr, rstd_ptr, x_ptr, w_ptr, b_ptr, numbers, r_sizes, c_sizes, R, D,
                          x_r, x_c, x_c1, y_r, y_c, y_c1, w_c, w_c1, b_c, b_c1,
                          HAS_W: tl.constexpr, HAS_B: tl.constexpr, SINGLE: tl.constexpr, COMPUTE: tl.constexpr,
                          BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, INDEX_64: tl.constexpr,
                          STATS: tl.constexpr):
    # One program owns an equal share of the row blocks (row_share: one block, as launched),
    # BLOCK_R rows at a time. SINGLE (D <= BLOCK_D): x is read once, kept in registers for the
    # mean, the variance (two-pass, no cancellation) and the output: bytes |x| + |y| + 8 per row
    # (+ w, b once per program). Longer rows: chunked Welford statistics, then a second read of x
    # to normalize. w and b are read through their own strides over the normalized axes (sliced
    # or stride-0 parameters are never copied). STATS: mean and rstd stored for the VJP, the two
    # rows of one [2, R] buffer (one allocation per call; passed as two pointers, which keeps
    # 127 registers where an offset from one pointer needs 128); a forward whose caller needs no
    # gradient stores neither: 8 bytes a row less.
    eps = joined(numbers[0], numbers[1], COMPUTE)
    cols = tl.arange(0, BLOCK_D)
    if INDEX_64:  # rows are always int64 (row_block); column offsets only when they can pass 2^31
        cols = cols.to(tl.int64)
    if SINGLE:
        c_mask = cols < D
        if HAS_W:
            w = tl.load(w_ptr + c_offsets(cols, c_sizes, w_c, w_c1), mask=c_mask, other=0.0).to(COMPUTE)
        if HAS_B:
            b = tl.load(b_ptr + c_offsets(cols, c_sizes, b_c, b_c1), mask=c_mask, other=0.0).to(COMPUTE)
    start, stop = row_share(R, BLOCK_R)
    for r0 in range(start, stop, BLOCK_R):
        rows, r_mask = row_block(r0, stop, BLOCK_R)
        x_row = group_offsets(rows, r_sizes, x_r)
        y_row = group_offsets(rows, r_sizes, y_r)[:, None]
        if SINGLE:
            mask = r_mask[:, None] & c_mask[None, :]
            x = load_tile(x_ptr, x_row, cols, c_sizes, x_c, x_c1, mask, COMPUTE)
            # divisions rounded on their own: a mean or variance the kernel stores (STATS) and one
            # it does not would otherwise fold into different FMAs (sm_90): a no-grad call and a
            # call saving the statistics must give the same bits (SPEC 0, determinism)
            n = tl.cast(D, COMPUTE)
            mean = div_rounded(tl.sum(x, axis=1), n, COMPUTE)
            xc = tl.where(mask, x - mean[:, None], 0.0)
            rstd = 1.0 / tl.sqrt(div_rounded(tl.sum(xc * xc, axis=1), n, COMPUTE) + eps)
            y = xc * rstd[:, None]
            if HAS_W:
                y = y * w[None, :]
            if HAS_B:
                y = y + b[None, :]
            tl.store(y_ptr + y_row + c_offsets(cols, c_sizes, y_c, y_c1)[None, :], y.to(y_ptr.dtype.element_ty),
                     mask=mask)
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
                y = (x - mean[:, None]) * rstd[:, None]
                if HAS_W:
                    y = y * tl.load(w_ptr + c_offsets(cc, c_sizes, w_c, w_c1), mask=cm, other=0.0).to(COMPUTE)[None, :]
                if HAS_B:
                    y = y + tl.load(b_ptr + c_offsets(cc, c_sizes, b_c, b_c1), mask=cm, other=0.0).to(COMPUTE)[None, :]
                tl.store(y_ptr + y_row + c_offsets(cc, c_sizes, y_c, y_c1)[None, :], y.to(y_ptr.dtype.element_ty),
                         mask=mask)
        if STATS:
            tl.store(mean_ptr + rows, mean, mask=r_mask)
            tl.store(rstd_ptr + rows, rstd, mask=r_mask)
