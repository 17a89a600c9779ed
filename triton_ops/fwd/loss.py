"""Forward kernels of the losses: one fused pass over the inputs each.

* ``loss_reduce_kernel`` - elementwise losses and ``cross_entropy`` between distributions:
  ``out[k] = sum_r l(x[r, k], t[r, k])`` over a [BLOCK_R, BLOCK_K] tile (R = reduced axes,
  K = kept axes; for ``reduction="none"`` R is empty and this is a plain map).
* ``ce_logits_fwd_kernel`` - cross-entropy on logits: an online log-sum-exp over the class
  axis, any length, one read of the logits.
* ``cosine_fwd_kernel`` - cosine similarity per slice: dot and both squared norms in one read
  (few long slices: split into column chunks, whose partials ``cosine_finish_kernel`` adds).

Per-program partial sums are added by ``fwd/reduce.combine_fwd_kernel`` in a fixed order (no atomics).
"""
import triton
import triton.language as tl

from ..scalar import exp_neg, lowest
from ..tiles import block_span, call, group_offsets, helper, joined, rows_of_program, slice_tiles


@helper
def loss_tile(x_ptr, t_ptr, r0, r_stop, r_sizes, x_r, t_r, x_koff, t_koff, k_mask, p, FN: tl.constexpr,
              HAS_PARAM: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_R: tl.constexpr, EVEN_K: tl.constexpr,
              LAST: tl.constexpr):
    """FN over the [BLOCK_R, BLOCK_K] tile of rows r0...: a whole tile (not LAST) keeps every
    value, unmasked where EVEN_K (BLOCK_K divides K), else its lanes past K load nothing and
    stay in their own columns, which are never stored; the LAST, partial tile zeroes its rows past
    r_stop (FN(0, 0) is not 0 for every loss)."""
    rr = r0 + tl.arange(0, BLOCK_R)
    x_ptrs = x_ptr + group_offsets(rr, r_sizes, x_r)[:, None] + x_koff
    t_ptrs = t_ptr + group_offsets(rr, r_sizes, t_r)[:, None] + t_koff
    if LAST:
        mask = (rr < r_stop)[:, None] & k_mask[None, :]
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(COMPUTE)
        t = tl.load(t_ptrs, mask=mask, other=0.0).to(COMPUTE)
        v = tl.where(mask, call(FN, x, t, p, 2, HAS_PARAM, False), 0.0)
    else:
        if EVEN_K:
            x = tl.load(x_ptrs).to(COMPUTE)
            t = tl.load(t_ptrs).to(COMPUTE)
        else:
            x = tl.load(x_ptrs, mask=k_mask[None, :]).to(COMPUTE)
            t = tl.load(t_ptrs, mask=k_mask[None, :]).to(COMPUTE)
        v = call(FN, x, t, p, 2, HAS_PARAM, False)
    return v


@triton.jit
def loss_reduce_kernel(out_ptr, x_ptr, t_ptr, numbers, r_sizes, k_sizes, R, K, r_per_program,
                       x_r, x_k, t_r, t_k, out_k, part_slot,
                       FN: tl.constexpr, HAS_PARAM: tl.constexpr, COMPUTE: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr, STAGES: tl.constexpr,
                       INDEX_64: tl.constexpr):
    # One program owns BLOCK_K kept elements and a chunk of r_per_program reduced indices, in
    # [BLOCK_R, BLOCK_K] tiles: the whole ones in a loop without a row mask (no select per
    # element), the partial one after it. Reads x and t once; writes one partial row of K (the
    # output itself when a single program covers R). Bytes: |x| + |t| + P*|out|.
    # STAGES > 1 (launchers/loss.reduce_stages): the whole tiles' loads are software-pipelined by
    # Triton (global -> shared copies of the next STAGES - 1 tiles; at 3, one tile's copies are in
    # flight all the while FN runs on another). Plain loads (STAGES = 1) wait twice a tile: ptxas
    # issues a thread's second pair of 16-byte loads after FN on its first 8 elements, so the more
    # FN costs (logs, exps) the less of the time any load is in flight; a register prefetch of the
    # next tile is sunk by ptxas to the loop's end (docs/benchmarks/issue13-loss-forwards.md).
    pid_k = tl.program_id(0)
    chunk = tl.program_id(1)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    if INDEX_64:
        rk = rk.to(tl.int64)
        chunk = chunk.to(tl.int64)
    k_mask = rk < K
    x_koff = group_offsets(rk, k_sizes, x_k)[None, :]
    t_koff = group_offsets(rk, k_sizes, t_k)[None, :]
    p = joined(numbers[0], numbers[1], COMPUTE)
    acc = tl.zeros([BLOCK_R, BLOCK_K], COMPUTE)
    r_start = chunk * r_per_program
    r_stop = tl.minimum(r_start + r_per_program, R)
    r_whole = r_start + (r_stop - r_start) // BLOCK_R * BLOCK_R
    for r0 in tl.range(r_start, r_whole, BLOCK_R, num_stages=STAGES):
        acc += loss_tile(x_ptr, t_ptr, r0, r_stop, r_sizes, x_r, t_r, x_koff, t_koff, k_mask, p, FN, HAS_PARAM,
                         COMPUTE, BLOCK_R, EVEN_K, False)
    if r_whole < r_stop:
        acc += loss_tile(x_ptr, t_ptr, r_whole, r_stop, r_sizes, x_r, t_r, x_koff, t_koff, k_mask, p, FN, HAS_PARAM,
                         COMPUTE, BLOCK_R, EVEN_K, True)
    total = tl.sum(acc, axis=0) * joined(numbers[2], numbers[3], COMPUTE)
    tl.store(out_ptr + chunk * part_slot + group_offsets(rk, k_sizes, out_k), total.to(out_ptr.dtype.element_ty),
             mask=k_mask)


@triton.jit
def ce_logits_fwd_kernel(loss_ptr, lse_ptr, tsum_ptr, factor_ptr, z_ptr, t_ptr, numbers, r_sizes, R, C,
                         z_r, t_r, z_c, t_c, ignore_index,
                         PROBS: tl.constexpr, SMOOTH: tl.constexpr, REDUCE: tl.constexpr, MEAN: tl.constexpr,
                         FINAL: tl.constexpr, SAVE: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_R: tl.constexpr,
                         BLOCK_C: tl.constexpr, STAGES: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_R rows and walks their C classes in BLOCK_C steps. Each lane keeps
    # its own running (max, sum) of an online log-sum-exp (one exp per logit, no cross-lane
    # reduction inside the loop); the lanes are combined once, after the loop. Any class count
    # fits. Reads the logits once (and probability targets once, or one index and one gathered
    # logit per row); writes the loss per row, or one partial (sum, count) per program, or
    # (FINAL: the only program of a reduction) the loss itself and the mean's factor
    # 1 / max(count, 1). SAVE (a gradient will be asked for): the log-sum-exp per row, and the
    # target mass per row for probability targets. SMOOTH (label smoothing not 0): the row's
    # logit sum too. Bytes: |z| (+ |t|) + 4 R (+ 4 R) + 8 per program. STAGES > 1
    # (launchers/loss.stream_stages): the class steps' loads are software-pipelined (the next
    # STAGES - 1 steps copied to shared memory while the exps run on this one).
    rows, row_mask, z_row, t_row = rows_of_program(R, r_sizes, z_r, t_r, BLOCK_R, INDEX_64)
    smoothing = joined(numbers[0], numbers[1], COMPUTE)
    # The running max starts at the lowest finite value, not -inf: z - m is then never
    # -inf - (-inf), so a -inf logit (or masked lane) needs no guard: its term is exp(-inf) = 0.
    m = tl.full([BLOCK_R, BLOCK_C], lowest(COMPUTE), COMPUTE)
    s = tl.zeros([BLOCK_R, BLOCK_C], COMPUTE)
    z_acc = tl.zeros([BLOCK_R, BLOCK_C], COMPUTE)
    t_acc = tl.zeros([BLOCK_R, BLOCK_C], COMPUTE)
    tz_acc = tl.zeros([BLOCK_R, BLOCK_C], COMPUTE)
    for c0 in tl.range(0, C, BLOCK_C, num_stages=STAGES):
        cols = block_span(c0, BLOCK_C, INDEX_64)
        mask = row_mask[:, None] & (cols < C)[None, :]
        z = tl.load(z_ptr + z_row[:, None] + cols[None, :] * z_c, mask=mask, other=float("-inf")).to(COMPUTE)
        # one exp per logit: exp(-|z - m|) either rescales the old sum (z > m: the new max) or
        # is z's term. A NaN logit gives NaN from then on (in s, and in m: the max keeps it).
        d = z - m
        e = exp_neg(tl.abs(d), COMPUTE)
        s = tl.where(d > 0, s * e + 1.0, s + e)
        m = tl.maximum(m, z, propagate_nan=tl.PropagateNan.ALL)
        if SMOOTH:
            z_acc += tl.where(mask, z, 0.0)
        if PROBS:
            t = tl.load(t_ptr + t_row[:, None] + cols[None, :] * t_c, mask=mask, other=0.0).to(COMPUTE)
            t_acc += t
            tz_acc += tl.where(t == 0, 0.0, t * z)  # a -inf logit (a masked lane) of mass 0 adds 0, not NaN
    # a row of -inf: every lane at the lowest value with a sum of 0, lse = lowest + log(0) = -inf
    row_max = tl.max(m, axis=1)
    lse = row_max + tl.log(tl.sum(s * tl.exp(m - row_max[:, None]), axis=1))
    z_sum = tl.sum(z_acc, axis=1)
    t_sum = tl.sum(t_acc, axis=1)
    tz_sum = tl.sum(tz_acc, axis=1)
    inv_c = 1.0 / tl.cast(C, COMPUTE)  # (without SMOOTH z_sum is 0: no 0 * -inf from a -inf logit)
    if PROBS:
        mass = (1.0 - smoothing) * t_sum + smoothing
        loss = lse * mass - (1.0 - smoothing) * tz_sum - smoothing * z_sum * inv_c
    else:
        target = tl.load(t_ptr + t_row, mask=row_mask, other=ignore_index)
        if INDEX_64:
            target = target.to(tl.int64)
        valid = row_mask & (target != ignore_index)
        in_range = (target >= 0) & (target < C)
        z_t = tl.load(z_ptr + z_row + tl.where(valid & in_range, target, 0) * z_c, mask=valid & in_range,
                      other=float("nan")).to(COMPUTE)
        mass = tl.where(valid, 1.0, 0.0)
        loss = tl.where(valid, lse - (1.0 - smoothing) * z_t - smoothing * z_sum * inv_c, 0.0)
    if SAVE:
        tl.store(lse_ptr + rows, lse, mask=row_mask)
        if PROBS:  # class indices: the VJP reads its rows' validity from the targets
            tl.store(tsum_ptr + rows, mass, mask=row_mask)
    if REDUCE:
        total = tl.sum(tl.where(row_mask, loss, 0.0), axis=0)
        # "mean" divides by the rows counted: every row for probabilities, non-ignored ones for
        # indices; "sum" counts none (the division is by max(count, 1), here or in the combine).
        if MEAN:
            if PROBS:
                counted = tl.where(row_mask, 1.0, 0.0)
            else:
                counted = mass
        else:
            counted = tl.zeros([BLOCK_R], COMPUTE)
        count = tl.sum(counted, axis=0).to(COMPUTE)  # (the 0/1 weights are float32 literals)
        if FINAL:  # as combine_rows' DIVIDE: out = sum * factor, factor = 1 / max(count, 1)
            factor = 1.0 / tl.maximum(count, 1.0)
            tl.store(loss_ptr, (total * factor).to(loss_ptr.dtype.element_ty))
            if SAVE:
                tl.store(factor_ptr, factor.to(factor_ptr.dtype.element_ty))
        else:
            part = tl.program_id(0) * 2
            tl.store(loss_ptr + part, total)
            tl.store(loss_ptr + part + 1, count)
    else:
        tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_mask)
        if SAVE:  # no factor to find for "none" (its VJP reads none): a saved value defined all the same
            if tl.program_id(0) == 0:
                tl.store(factor_ptr, tl.full([], 1.0, factor_ptr.dtype.element_ty))


@helper
def cosine_loss(dot, xx, tt, eps):
    """1 - <x,t> / (max(|x|, eps) max(|t|, eps)) from a slice's dot and squared norms."""
    return 1.0 - dot / (tl.maximum(tl.sqrt(xx), eps, propagate_nan=tl.PropagateNan.ALL)
                        * tl.maximum(tl.sqrt(tt), eps, propagate_nan=tl.PropagateNan.ALL))


@triton.jit
def cosine_fwd_kernel(loss_ptr, stats_ptr, x_ptr, t_ptr, numbers, r_sizes, c_sizes, R, C, c_per_program,
                      x_r, t_r, x_c, t_c, REDUCE: tl.constexpr, SPLIT: tl.constexpr, SAVE: tl.constexpr,
                      COMPUTE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_R slices and a chunk of c_per_program of their C elements (all of
    # them unless SPLIT), walked in BLOCK_C steps adding <x,t>, |x|^2 and |t|^2. Reads x and t
    # once. Unsplit: writes the 3 statistics and the loss per slice (or the program's sum times
    # numbers' scale: the loss itself when one program holds every slice, else a partial sum
    # that the combine adds). SPLIT (few slices, long ones: dim=None is one): writes the chunk's 3 partial
    # statistics per slice, which cosine_finish_kernel adds in a fixed order. Without SAVE (no
    # gradient will be asked for) an unsplit program stores no statistics.
    rows, row_mask, x_row, t_row = rows_of_program(R, r_sizes, x_r, t_r, BLOCK_R, INDEX_64)
    chunk = tl.program_id(1)
    if INDEX_64:
        chunk = chunk.to(tl.int64)
    c_start = chunk * c_per_program
    c_stop = tl.minimum(c_start + c_per_program, C)
    # The running sums hold BLOCK_C / LANE columns a row: each step first adds the LANE
    # neighbours that one 16-byte load of x put in one thread (no shuffles), so that a thread
    # keeps 3 x 2 accumulators, not 3 x 16 (sm_90, bf16, [2, 2048] in 8 warps: 74 -> 32 registers,
    # 3 -> 8 programs per SM). Each thread's loads wait on its last step's adds: more resident
    # threads are more bytes in flight.
    VEC: tl.constexpr = 128 // x_ptr.dtype.element_ty.primitive_bitwidth
    LANE: tl.constexpr = VEC if VEC < BLOCK_C else BLOCK_C
    dot = tl.zeros([BLOCK_R, BLOCK_C // LANE], COMPUTE)
    xx = tl.zeros([BLOCK_R, BLOCK_C // LANE], COMPUTE)
    tt = tl.zeros([BLOCK_R, BLOCK_C // LANE], COMPUTE)
    for c0 in range(c_start, c_stop, BLOCK_C):
        cols, mask, x, t = slice_tiles(c0, c_stop, row_mask, x_ptr, x_row, t_ptr, t_row, c_sizes, x_c, t_c,
                                       COMPUTE, BLOCK_C, INDEX_64)
        dot += tl.sum(tl.reshape(x * t, [BLOCK_R, BLOCK_C // LANE, LANE]), axis=2)
        xx += tl.sum(tl.reshape(x * x, [BLOCK_R, BLOCK_C // LANE, LANE]), axis=2)
        tt += tl.sum(tl.reshape(t * t, [BLOCK_R, BLOCK_C // LANE, LANE]), axis=2)
    dot_r = tl.sum(dot, axis=1)
    xx_r = tl.sum(xx, axis=1)
    tt_r = tl.sum(tt, axis=1)
    if SAVE or SPLIT:
        stats = stats_ptr + chunk * 3 * R + rows  # SPLIT: this chunk's [3, R] slot of the partials
        tl.store(stats, dot_r, mask=row_mask)
        tl.store(stats + R, xx_r, mask=row_mask)
        tl.store(stats + 2 * R, tt_r, mask=row_mask)
    if not SPLIT:
        loss = cosine_loss(dot_r, xx_r, tt_r, joined(numbers[0], numbers[1], COMPUTE))
        if REDUCE:
            total = tl.sum(tl.where(row_mask, loss, 0.0), axis=0) * joined(numbers[2], numbers[3], COMPUTE)
            tl.store(loss_ptr + tl.program_id(0), total.to(loss_ptr.dtype.element_ty))
        else:
            tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_mask)


@triton.jit
def cosine_finish_kernel(loss_ptr, stats_ptr, part_ptr, numbers, R, P, REDUCE: tl.constexpr, SAVE: tl.constexpr,
                         COMPUTE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_R: tl.constexpr):
    # One program: adds the P chunks' partial statistics per slice ([P, 3, R], in [BLOCK_P,
    # BLOCK_R] tiles, a fixed order), writes the 3 statistics (SAVE) and the loss per slice, or
    # the loss summed and scaled (mean: 1 / R) into the output. Bytes: 12 P R + 12 R + |out|.
    eps = joined(numbers[0], numbers[1], COMPUTE)
    total = tl.zeros([BLOCK_R], COMPUTE)
    for r0 in range(0, R, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        row_mask = rows < R
        dot = tl.zeros([BLOCK_P, BLOCK_R], COMPUTE)
        xx = tl.zeros([BLOCK_P, BLOCK_R], COMPUTE)
        tt = tl.zeros([BLOCK_P, BLOCK_R], COMPUTE)
        for p0 in range(0, P, BLOCK_P):
            ps = p0 + tl.arange(0, BLOCK_P)
            mask = (ps < P)[:, None] & row_mask[None, :]
            part = part_ptr + ps[:, None].to(tl.int64) * 3 * R + rows[None, :]
            dot += tl.load(part, mask=mask, other=0.0).to(COMPUTE)
            xx += tl.load(part + R, mask=mask, other=0.0).to(COMPUTE)
            tt += tl.load(part + 2 * R, mask=mask, other=0.0).to(COMPUTE)
        dot_r = tl.sum(dot, axis=0)
        xx_r = tl.sum(xx, axis=0)
        tt_r = tl.sum(tt, axis=0)
        if SAVE:
            tl.store(stats_ptr + rows, dot_r, mask=row_mask)
            tl.store(stats_ptr + R + rows, xx_r, mask=row_mask)
            tl.store(stats_ptr + 2 * R + rows, tt_r, mask=row_mask)
        loss = cosine_loss(dot_r, xx_r, tt_r, eps)
        if REDUCE:
            total += tl.where(row_mask, loss, 0.0)
        else:
            tl.store(loss_ptr + rows, loss.to(loss_ptr.dtype.element_ty), mask=row_mask)
    if REDUCE:
        tl.store(loss_ptr, (tl.sum(total, axis=0) * joined(numbers[2], numbers[3], COMPUTE)).to(
            loss_ptr.dtype.element_ty))
