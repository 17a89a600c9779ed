"""VJP kernels of the shape-moving layers: the transpose (its own VJP) and the embedding weight
gradient by chunks of the sorted indices (segmented sums in a fixed order: deterministic, no atomics)."""
import triton
import triton.language as tl

from ..templates.shape import transpose_tiles
from ..tiles import group_offsets, helper


@triton.jit
def transpose_vjp_kernel(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # dx = g^T, one [BLOCK_M, BLOCK_N] tile per program (templates/shape.py).
    transpose_tiles(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M, BLOCK_N)


@triton.jit
def embedding_keys_kernel(keys_ptr, flags_ptr, idx_ptr, n, V, i_sizes, i_st, BLOCK: tl.constexpr):
    # One program owns BLOCK indices: their sort keys (the index in the narrowest integer type that
    # holds the vocabulary, so the radix sort runs fewer passes; -1 for an index outside [0, V),
    # possible unchecked on CUDA, which then sorts first and adds to no row) and the flag of each
    # row they name (a plain store of 1: every writer writes the same byte). Bytes: |indices| read,
    # n keys and <= n flag bytes written.
    i = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    live = i < n
    idx = tl.load(idx_ptr + group_offsets(i, i_sizes, i_st), mask=live, other=0).to(tl.int64)
    ok = live & (idx >= 0) & (idx < V)
    tl.store(keys_ptr + i, tl.where(ok, idx, -1).to(keys_ptr.dtype.element_ty), mask=live)
    tl.store(flags_ptr + idx, tl.full([BLOCK], 1, tl.int8), mask=ok)


@helper
def chunk_segments(keys_ptr, p, n, BLOCK_I, SPILL):
    """Who sums the segments (runs of one key) that cross chunk p's edges. A segment that starts
    in chunk p and ends within SPILL rows past the chunk's end is finished by chunk p (its
    "overhang"; the next chunk skips those rows). A longer one is long: every chunk it touches
    writes its rows' sum as a partial (slot 0: the segment ends in the chunk; slot 1: it goes on
    past the chunk's end), and the chunk holding its start adds them up afterwards (the fix-up).
    Every chunk decides from the same few keys, so the roles never overlap or leave a gap. p: one
    chunk or a vector of them (past the last chunk: no roles)."""
    start = p.to(tl.int64) * BLOCK_I
    k0 = tl.load(keys_ptr + start, mask=start < n, other=-2)
    kl = tl.load(keys_ptr + tl.minimum(start + BLOCK_I, n) - 1)
    prev = tl.load(keys_ptr + start - 1, mask=start > 0, other=-2)  # -2: no key
    before = tl.load(keys_ptr + start - BLOCK_I - 1, mask=start > BLOCK_I, other=-2)
    into = tl.load(keys_ptr + start + SPILL - 1, mask=start + SPILL - 1 < n, other=-2)
    after = tl.load(keys_ptr + start + BLOCK_I, mask=start + BLOCK_I < n, other=-2)
    past = tl.load(keys_ptr + start + BLOCK_I + SPILL - 1, mask=start + BLOCK_I + SPILL - 1 < n, other=-2)
    first_in = prev == k0                               # the first segment began before the chunk
    skipped = first_in & (before != k0) & (into != k0)  # ... in chunk p - 1, which finishes it
    last_out = after == kl                              # the last segment goes on past the chunk
    starts_here = ~(first_in & (kl == k0))
    overhang = last_out & starts_here & (past != kl)
    lead = last_out & starts_here & (past == kl) & (kl >= 0) & (start < n)  # chunk p starts a long one
    return start, k0, kl, first_in, skipped, last_out, overhang, lead


@helper
def g_row(g_ptr, order_ptr, r, i_sizes, g_i, ce, g_e, e_mask):
    """The row of g at sorted position r, columns ce (every key of a walk is >= 0: no key masks
    the load, which then waits on the order alone and pipelines)."""
    return tl.load(g_ptr + group_offsets(tl.load(order_ptr + r), i_sizes, g_i) + ce * g_e, mask=e_mask, other=0.0)


@triton.jit
def embedding_bwd_kernel(dw_ptr, part_ptr, g_ptr, order_ptr, keys_ptr, flags_ptr, n, V, E, i_sizes, g_i, g_e,
                         zero_programs, COMPUTE: tl.constexpr, BLOCK_I: tl.constexpr, SPILL: tl.constexpr,
                         ZERO_ROWS: tl.constexpr, BLOCK_E: tl.constexpr, STAGES: tl.constexpr):
    # Programs [0, zero_programs) each own ZERO_ROWS rows of dweight and write 0 to those no index
    # names (flag 0): bytes ZERO_ROWS flags + the zero rows. Every other program owns BLOCK_I
    # consecutive positions of the stably sorted indices (a chunk), plus its overhang, and per
    # BLOCK_E tile of E walks them in order with one running row: each position's g row (through
    # the sort's order) is added; where a run of one index ends the row is written to dweight and
    # starts again at 0. The chunk's first run, when it began before the chunk, is skipped (the
    # chunk before finished it) or walked apart into a partial row, and a long last run's sum is
    # a partial too (chunk_segments' roles; the fix-up adds the partials). A fixed order of adds
    # (deterministic, no atomics), no matrix product, no layout conversion in the walk; no row
    # load waits on a sum or a key, so the pipeline keeps STAGES - 1 next rows in flight. Bytes:
    # its rows of g, each once, and their dweight rows; per position a tile its key and its
    # order; partial rows only for runs reaching more than SPILL past a chunk.
    pid = tl.program_id(0)
    re = tl.arange(0, BLOCK_E)
    if pid < zero_programs:
        rv = pid.to(tl.int64) * ZERO_ROWS + tl.arange(0, ZERO_ROWS)
        unnamed = (rv < V) & (tl.load(flags_ptr + rv, mask=rv < V, other=1) == 0)
        for e0 in range(0, E, BLOCK_E):
            tl.store(dw_ptr + rv[:, None] * E + (e0 + re)[None, :],
                     tl.zeros([ZERO_ROWS, BLOCK_E], dw_ptr.dtype.element_ty),
                     mask=unnamed[:, None] & ((e0 + re) < E)[None, :])
    else:
        p = pid - zero_programs
        start, k0, kl, first_in, skipped, last_out, overhang, lead = chunk_segments(keys_ptr, p, n, BLOCK_I, SPILL)
        rc = start + tl.arange(0, BLOCK_I)
        # the first run's rows in the chunk: walked apart (a long run's partial) or skipped (chunk
        # p - 1 finished it, or index -1: it adds to no row)
        head = tl.where(first_in | (k0 < 0), tl.sum((tl.load(keys_ptr + rc, mask=rc < n, other=-2) == k0)
                                                     .to(tl.int64), axis=0), 0)
        ro = start + BLOCK_I + tl.arange(0, SPILL)  # the overhang: the last run's rows past the chunk
        ours = tl.where(overhang & (kl >= 0), (ro < n) & (tl.load(keys_ptr + ro, mask=ro < n, other=-2) == kl), False)
        stop = tl.minimum(start + BLOCK_I, n) + tl.sum(ours.to(tl.int64), axis=0)
        long_head = first_in & ~skipped & (k0 >= 0)  # its sum is a partial: slot 1 if it goes on, else 0
        long_tail = last_out & ~overhang & (kl >= 0) & (start + head < stop)  # the last run's: slot 1
        part_row = part_ptr + p.to(tl.int64) * 2 * E
        for e0 in range(0, E, BLOCK_E):
            ce = e0 + re
            e_mask = ce < E
            if long_head:
                acc = tl.zeros([BLOCK_E], COMPUTE)
                for r in tl.range(start, start + head, num_stages=STAGES):
                    acc += g_row(g_ptr, order_ptr, r, i_sizes, g_i, ce, g_e, e_mask).to(COMPUTE)
                tl.store(part_row + ((k0 == kl) & last_out).to(tl.int64) * E + ce, acc, mask=e_mask)
            acc = tl.zeros([BLOCK_E], COMPUTE)
            k = tl.load(keys_ptr + start + head, mask=start + head < n, other=-2)
            for r in tl.range(start + head, stop, num_stages=STAGES):
                acc += g_row(g_ptr, order_ptr, r, i_sizes, g_i, ce, g_e, e_mask).to(COMPUTE)
                # the run ends here: the next key differs (the walk's last key always does, its
                # overhang stopping where the run does, except for a long last run: its sum stays
                # in acc for its partial)
                k_next = tl.load(keys_ptr + r + 1, mask=r + 1 < n, other=-2)
                to_dw = k_next != k
                tl.store(dw_ptr + k.to(tl.int64) * E + ce, acc.to(dw_ptr.dtype.element_ty),
                         mask=tl.where(to_dw, e_mask, False))
                acc = tl.where(to_dw, 0.0, acc)
                k = k_next
            if long_tail:
                tl.store(part_row + E + ce, acc, mask=e_mask)


@triton.jit
def embedding_fix_kernel(dw_ptr, part_ptr, keys_ptr, n, E, chunks, BLOCK_I: tl.constexpr, SPILL: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr):
    # One program per BLOCK_C chunks x BLOCK_E columns: it finds the chunks among them where a long
    # run starts (one round of key loads for all of them; none: done) and, for each, adds that
    # run's partial rows chunk after chunk (the lead's slot 1, the slot 1 of every chunk the run
    # covers whole, the slot 0 of the chunk where it ends; BLOCK_P rows per step, independent
    # loads) and writes the run's dweight row. Bytes: ~10 of keys per chunk, plus per long run its partial rows and
    # one dweight row.
    c = tl.arange(0, BLOCK_C)
    _, _, kls, _, _, _, _, leads = chunk_segments(keys_ptr, tl.program_id(0) * BLOCK_C + c, n, BLOCK_I, SPILL)
    re = tl.program_id(1).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    e_mask = re < E
    if tl.max(leads.to(tl.int32), axis=0) > 0:  # most programs: no long run starts among their chunks
        for i in range(BLOCK_C):
            if tl.sum(tl.where(c == i, leads, False).to(tl.int32), axis=0) > 0:
                p = (tl.program_id(0) * BLOCK_C + i).to(tl.int64)
                kl = tl.sum(tl.where(c == i, kls, 0).to(tl.int64), axis=0)
                acc = tl.load(part_ptr + (p * 2 + 1) * E + re, mask=e_mask, other=0.0)
                j0 = p + 1
                more = True
                while more:
                    j = j0 + tl.arange(0, BLOCK_P)
                    touched = (j < chunks) & (tl.load(keys_ptr + j * BLOCK_I, mask=j < chunks, other=-2) == kl)
                    whole = touched & (tl.load(keys_ptr + (j + 1) * BLOCK_I, mask=(j + 1) * BLOCK_I < n, other=-2) == kl)
                    acc += tl.sum(tl.load(part_ptr + (j * 2 + whole.to(tl.int64))[:, None] * E + re[None, :],
                                          mask=touched[:, None] & e_mask[None, :], other=0.0), axis=0)
                    more = tl.sum(whole.to(tl.int32), axis=0) == BLOCK_P
                    j0 += BLOCK_P
                tl.store(dw_ptr + kl * E + re, acc.to(dw_ptr.dtype.element_ty), mask=e_mask)
