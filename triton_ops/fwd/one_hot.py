"""Forward kernels of ``one_hot_embedding``: ``onehot @ weight`` computed as a row gather when the
rows are one-hot (bytes, not FLOPs), exactly as the product for any real-valued input.

A product of a one-hot row differs from a gather in one place: its zero entries multiply every
other weight row, and ``0 * inf`` or ``0 * nan`` is NaN. ``nonfinite_count_fwd_kernel`` counts
the non-finite weights per column first; the gather turns an output element into NaN when its
column holds one outside the row's own entry. A gather of one program (or of a weight so small
that every program reading it costs nothing) counts them itself: one launch, no count buffer."""
import triton
import triton.language as tl

from ..tiles import block_span, column_chunk


@triton.jit
def nonfinite_count_fwd_kernel(part_ptr, w_ptr, V, E, rows_per_program, w_v, w_e, COMPUTE: tl.constexpr,
                               BLOCK_V: tl.constexpr, BLOCK_E: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_E columns of a chunk of rows_per_program weight rows and writes one
    # partial row of counts (float32: exact below 2^24 rows; the chunks are added in a fixed
    # order by the combine). Bytes: |weight| + P x E partials.
    chunk, cols, e_mask, start, stop = column_chunk(V, E, rows_per_program, BLOCK_E, INDEX_64)
    acc = tl.zeros([BLOCK_V, BLOCK_E], tl.float32)
    for v0 in range(start, stop, BLOCK_V):
        rows = block_span(v0, BLOCK_V, INDEX_64)
        mask = (rows < stop)[:, None] & e_mask[None, :]
        w = tl.load(w_ptr + rows[:, None] * w_v + cols[None, :] * w_e, mask=mask, other=0.0).to(COMPUTE)
        acc += tl.where(w * 0.0 != 0.0, 1.0, 0.0)  # w * 0 is NaN exactly for +-inf and NaN
    tl.store(part_ptr + chunk * E + cols, tl.sum(acc, axis=0), mask=e_mask)


@triton.jit
def one_hot_gather_fwd_kernel(out_ptr, o_ptr, w_ptr, nf_ptr, N, V, E, o_r, o_v, w_v, w_e,
                              COMPUTE: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_V: tl.constexpr,
                              BLOCK_K: tl.constexpr, BLOCK_E: tl.constexpr, COUNT: tl.constexpr,
                              INDEX_64: tl.constexpr):
    # One program owns BLOCK_I rows of onehot (and of out, every column). It reads its rows once
    # to find each row's nonzero entries (count, last position, value). When every row has at
    # most one, out = value * weight[position] (the other entries' 0 * weight adds +0, or NaN
    # where the column holds a non-finite weight elsewhere: the counts). Otherwise the block is
    # the product itself, a [BLOCK_I, BLOCK_K] x [BLOCK_K, BLOCK_E] dot per step. Bytes (one-hot
    # rows): |onehot| + one weight row per row + |out| + E counts per program (COUNT: the
    # program counts them from the weight itself, + |weight| per program instead).
    rows = block_span(tl.program_id(0) * BLOCK_I, BLOCK_I, INDEX_64)
    r_mask = rows < N
    count = tl.zeros([BLOCK_I], tl.int32)
    pos = tl.full([BLOCK_I], -1, rows.dtype)
    val = tl.zeros([BLOCK_I], COMPUTE)
    for v0 in range(0, V, BLOCK_V):
        vs = block_span(v0, BLOCK_V, INDEX_64)
        mask = r_mask[:, None] & (vs < V)[None, :]
        o = tl.load(o_ptr + rows[:, None] * o_r + vs[None, :] * o_v, mask=mask, other=0.0).to(COMPUTE)
        nz = o != 0.0  # NaN counts as a nonzero entry (it must reach the output)
        count += tl.sum(nz.to(tl.int32), axis=1)
        pos = tl.maximum(pos, tl.max(tl.where(nz, vs[None, :], -1), axis=1))
        val += tl.sum(tl.where(nz, o, 0.0), axis=1)  # exact when the row has one nonzero entry
    hit = r_mask & (count == 1)
    if tl.max(count, axis=0) <= 1:
        for e0 in range(0, E, BLOCK_E):
            es = block_span(e0, BLOCK_E, INDEX_64)
            e_mask = es < E
            w = tl.load(w_ptr + pos[:, None] * w_v + es[None, :] * w_e, mask=hit[:, None] & e_mask[None, :],
                        other=0.0).to(COMPUTE)
            own = tl.where(hit[:, None] & (w * 0.0 != 0.0), 1.0, 0.0)
            if COUNT:
                nf = tl.zeros([BLOCK_E], tl.float32)
                for v0 in range(0, V, BLOCK_K):
                    vs = block_span(v0, BLOCK_K, INDEX_64)
                    wv = tl.load(w_ptr + vs[:, None] * w_v + es[None, :] * w_e,
                                 mask=(vs < V)[:, None] & e_mask[None, :], other=0.0).to(COMPUTE)
                    nf += tl.sum(tl.where(wv * 0.0 != 0.0, 1.0, 0.0), axis=0)
            else:
                nf = tl.load(nf_ptr + es, mask=e_mask, other=0.0)
            y = tl.where(nf[None, :] - own > 0.0, float("nan"), val[:, None] * w + 0.0)
            tl.store(out_ptr + rows[:, None] * E + es[None, :], y.to(out_ptr.dtype.element_ty),
                     mask=r_mask[:, None] & e_mask[None, :])
    else:
        for e0 in range(0, E, BLOCK_E):
            es = block_span(e0, BLOCK_E, INDEX_64)
            e_mask = es < E
            acc = tl.zeros([BLOCK_I, BLOCK_E], COMPUTE)
            for v0 in range(0, V, BLOCK_K):
                vs = block_span(v0, BLOCK_K, INDEX_64)
                v_mask = vs < V
                o = tl.load(o_ptr + rows[:, None] * o_r + vs[None, :] * o_v, mask=r_mask[:, None] & v_mask[None, :],
                            other=0.0).to(COMPUTE)
                w = tl.load(w_ptr + vs[:, None] * w_v + es[None, :] * w_e, mask=v_mask[:, None] & e_mask[None, :],
                            other=0.0).to(COMPUTE)
                acc += tl.dot(o, w, input_precision="ieee", out_dtype=COMPUTE)
            tl.store(out_ptr + rows[:, None] * E + es[None, :], acc.to(out_ptr.dtype.element_ty),
                     mask=r_mask[:, None] & e_mask[None, :])
