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


@triton.jit
def embedding_bwd_kernel(dw_ptr, part_ptr, g_ptr, order_ptr, keys_ptr, flags_ptr, n, V, E, i_sizes, g_i, g_e,
                         zero_programs, COMPUTE: tl.constexpr, DOT: tl.constexpr, BLOCK_I: tl.constexpr,
                         SPILL: tl.constexpr, ZERO_ROWS: tl.constexpr, BLOCK_E: tl.constexpr):
    # Programs [0, zero_programs) each own ZERO_ROWS rows of dweight and write 0 to those no index
    # names (flag 0): bytes ZERO_ROWS flags + the zero rows. Every other program owns BLOCK_I
    # consecutive positions of the stably sorted indices (a chunk) and walks E in BLOCK_E tiles:
    # per tile it gathers its positions' rows of g at once (BLOCK_I independent 128-bit row loads,
    # which the pipeline keeps in flight across tiles), sums each run of one index by a 0/1 matrix
    # product (exact products, a fixed summation order: deterministic, no atomics) and writes each
    # dweight row whose run lies in the chunk once; runs crossing the chunk's edges go as
    # chunk_segments says. Bytes: its rows of g and their dweight rows, 10 per position (order,
    # keys) read once; partial rows only for runs reaching more than SPILL past a chunk.
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
        r = start + tl.arange(0, BLOCK_I)
        live = r < n
        k = tl.load(keys_ptr + r, mask=live, other=-2)
        # the last row of its run in the chunk
        end = (tl.load(keys_ptr + r + 1, mask=r + 1 < n, other=-2) != k) | (r == start + BLOCK_I - 1)
        # a chunk-wide flag joins a per-row one through tl.where: under the interpreter `flag & rows`
        # takes the rows' key type (a non-boolean mask)
        first = tl.where(first_in, k == k0, False)
        crossing = tl.where(last_out, k == kl, False)
        slot1 = tl.where(overhang, False, crossing)  # the last run is long: its rows' sum is a partial
        need = live & (k >= 0) & ~tl.where(skipped, first, False)
        g_rows = group_offsets(tl.load(order_ptr + r, mask=need, other=0), i_sizes, g_i)
        to_dw = live & end & (k >= 0) & ~first & ~slot1
        dw_rows = k.to(tl.int64) * E
        # partials of long runs: the first run's rows (slot 0, it ends here) or the last's (slot 1)
        to_part = live & end & ((tl.where(skipped, False, first) & ~crossing) | slot1)
        part_rows = (p.to(tl.int64) * 2 + slot1.to(tl.int64)) * E
        # every row gets the sum of its run's rows in the chunk (sorted keys: same key, same run)
        same = (k[:, None] == k[None, :]).to(DOT)
        ro = start + BLOCK_I + tl.arange(0, SPILL)  # the overhang: the last run's rows past the chunk
        ours = tl.where(overhang, (ro < n) & (tl.load(keys_ptr + ro, mask=ro < n, other=-2) == kl), False)
        o_rows = group_offsets(tl.load(order_ptr + ro, mask=ours, other=0), i_sizes, g_i)
        for e0 in range(0, E, BLOCK_E):
            ce = e0 + re
            e_mask = ce < E
            g = tl.load(g_ptr + g_rows[:, None] + ce[None, :] * g_e, mask=need[:, None] & e_mask[None, :], other=0.0)
            acc = tl.dot(same, g.to(DOT), input_precision="ieee", out_dtype=COMPUTE)
            if overhang:
                rest = tl.sum(tl.load(g_ptr + o_rows[:, None] + ce[None, :] * g_e,
                                      mask=ours[:, None] & e_mask[None, :], other=0.0).to(COMPUTE), axis=0)
                acc += tl.where(crossing[:, None], rest[None, :], 0.0)
            tl.store(dw_ptr + dw_rows[:, None] + ce[None, :], acc.to(dw_ptr.dtype.element_ty),
                     mask=to_dw[:, None] & e_mask[None, :])
            tl.store(part_ptr + part_rows[:, None] + ce[None, :], acc, mask=to_part[:, None] & e_mask[None, :])


@triton.jit
def embedding_fix_kernel(dw_ptr, part_ptr, keys_ptr, n, E, chunks, BLOCK_I: tl.constexpr, SPILL: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr):
    # One program per BLOCK_C chunks x BLOCK_E columns: it finds the chunks among them where a long
    # run starts (one round of key loads for all of them) and, for each, adds that run's partial
    # rows chunk after chunk (the lead's slot 1, the slot 1 of every chunk the run covers whole,
    # the slot 0 of the chunk where it ends; BLOCK_P rows per step, independent loads) and writes
    # the run's dweight row. Bytes: ~10 of keys per chunk, plus per long run its partial rows and
    # one dweight row.
    c = tl.arange(0, BLOCK_C)
    _, _, kls, _, _, _, _, leads = chunk_segments(keys_ptr, tl.program_id(0) * BLOCK_C + c, n, BLOCK_I, SPILL)
    re = tl.program_id(1).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    e_mask = re < E
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
