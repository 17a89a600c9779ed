"""VJP kernels of the losses: one fused pass each, every gradient written once.

The upstream gradient is one element (``"mean"``/``"sum"``: read once per program) or one
value per kept element / row (``"none"``: read once per tile column or row), possibly expanded.
"""
import triton
import triton.language as tl

from ..scalar import exp_neg
from ..tiles import block_span, call, group_offsets, joined, rows_of_program, slice_tiles


@triton.jit
def loss_vjp_kernel(dx_ptr, dt_ptr, x_ptr, t_ptr, g_ptr, numbers, r_sizes, k_sizes, R, K,
                    x_r, x_k, t_r, t_k, g_k, dx_r, dx_k, dt_r, dt_k,
                    DFX: tl.constexpr, DFT: tl.constexpr, HAS_PARAM: tl.constexpr, G_ELEMENT: tl.constexpr,
                    NEED_DX: tl.constexpr, NEED_DT: tl.constexpr, COMPUTE: tl.constexpr,
                    BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns a [BLOCK_R, BLOCK_K] tile of (reduced, kept) axes. Reads x, t once and g
    # once per tile column; writes dx and dt once. Bytes: |x| + |t| + |g| + |dx| + |dt|.
    pid = tl.program_id(0)
    n_k = (K + BLOCK_K - 1) // BLOCK_K
    rk = (pid % n_k) * BLOCK_K + tl.arange(0, BLOCK_K)
    rr = (pid // n_k) * BLOCK_R + tl.arange(0, BLOCK_R)
    if INDEX_64:
        rk = rk.to(tl.int64)
        rr = rr.to(tl.int64)
    mask = (rr < R)[:, None] & (rk < K)[None, :]
    scale = joined(numbers[2], numbers[3], COMPUTE)
    if G_ELEMENT:
        g = tl.load(g_ptr).to(COMPUTE) * scale
    else:
        g = tl.load(g_ptr + group_offsets(rk, k_sizes, g_k), mask=rk < K, other=0.0).to(COMPUTE)[None, :] * scale
    x = tl.load(x_ptr + group_offsets(rr, r_sizes, x_r)[:, None] + group_offsets(rk, k_sizes, x_k)[None, :],
                mask=mask, other=0.0).to(COMPUTE)
    t = tl.load(t_ptr + group_offsets(rr, r_sizes, t_r)[:, None] + group_offsets(rk, k_sizes, t_k)[None, :],
                mask=mask, other=0.0).to(COMPUTE)
    p = joined(numbers[0], numbers[1], COMPUTE)
    if NEED_DX:
        dx = g * call(DFX, x, t, p, 2, HAS_PARAM, False)
        tl.store(dx_ptr + group_offsets(rr, r_sizes, dx_r)[:, None] + group_offsets(rk, k_sizes, dx_k)[None, :],
                 dx.to(dx_ptr.dtype.element_ty), mask=mask)
    if NEED_DT:
        if DFT is None:  # a loss of x - t: d/dt = -d/dx
            dt = -g * call(DFX, x, t, p, 2, HAS_PARAM, False)
        else:
            dt = g * call(DFT, x, t, p, 2, HAS_PARAM, False)
        tl.store(dt_ptr + group_offsets(rr, r_sizes, dt_r)[:, None] + group_offsets(rk, k_sizes, dt_k)[None, :],
                 dt.to(dt_ptr.dtype.element_ty), mask=mask)


@triton.jit
def ce_logits_bwd_kernel(dz_ptr, dt_ptr, z_ptr, t_ptr, g_ptr, lse_ptr, tsum_ptr, factor_ptr, numbers, r_sizes,
                         R, C, c_per_program, z_r, t_r, z_c, t_c, g_r, dz_r, dz_c, dt_r, dt_c, ignore_index,
                         PROBS: tl.constexpr, G_ELEMENT: tl.constexpr, G_ONE: tl.constexpr,
                         FACTOR_FROM_PTR: tl.constexpr,
                         NEED_DZ: tl.constexpr, NEED_DT: tl.constexpr, COMPUTE: tl.constexpr,
                         BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_R rows and walks c_per_program of their classes (few long rows, as
    # linear_cross_entropy's chunks, are split over programs along the classes to fill a wave):
    # dz = g * (softmax(z) * mass - t'), softmax from the forward's saved log-sum-exp (no second
    # pass over z). Reads z (and t) once, but not the logits of an ignored row (its gradient is
    # 0), g and the log-sum-exp per row (and the target mass, probabilities) once per program;
    # writes dz (and dt) once. Bytes: |z| (+ |t|) + |dz| (+ |dt|) + 8 per row and program.
    rows, row_mask, z_row, t_row = rows_of_program(R, r_sizes, z_r, t_r, BLOCK_R, INDEX_64)
    smoothing = joined(numbers[0], numbers[1], COMPUTE)
    factor = joined(numbers[2], numbers[3], COMPUTE)
    if FACTOR_FROM_PTR:
        factor = tl.load(factor_ptr).to(COMPUTE)
    if G_ONE:  # a forward forming its gradients (linear_cross_entropy): g = 1, nothing to read
        g = tl.full([BLOCK_R], 1.0, COMPUTE) * factor
    elif G_ELEMENT:
        g = tl.load(g_ptr).to(COMPUTE) * factor + tl.zeros([BLOCK_R], COMPUTE) * -1.0
    else:
        g = tl.load(g_ptr + group_offsets(rows, r_sizes, g_r), mask=row_mask, other=0.0).to(COMPUTE) * factor
    lse = tl.load(lse_ptr + rows, mask=row_mask, other=0.0).to(COMPUTE)
    inv_c = 1.0 / tl.cast(C, COMPUTE)
    read = row_mask
    if PROBS:
        mass = tl.load(tsum_ptr + rows, mask=row_mask, other=0.0).to(COMPUTE)
    else:
        # The one-hot and validity are per-row numbers, so that a logit costs one compare:
        # dz = g * (softmax + (c_hit at the target's column, else c_other)). An ignored row:
        # g = 0 and its logits unread (0, with lse 0: softmax 1), so its gradient is 0 whatever
        # they hold; an out-of-range class (unchecked on CUDA): g = NaN, the row NaN like its
        # loss. (c_other is -0.0 without smoothing: softmax + c_other is softmax, signed zeros too.)
        target = tl.load(t_ptr + t_row, mask=row_mask, other=ignore_index)
        valid = row_mask & (target != ignore_index)
        in_range = (target >= 0) & (target < C)
        read = valid
        g = tl.where(valid, tl.where(in_range, g, float("nan")), 0.0)
        lse = tl.where(valid, lse, 0.0)
        target = tl.where(valid & in_range, target, -1)  # -1: no column
        c_other = -(smoothing * inv_c)
        c_hit = c_other - (1.0 - smoothing)
    c_start = tl.program_id(1) * c_per_program
    c_end = tl.minimum(c_start + c_per_program, C)
    for c0 in range(c_start, c_end, BLOCK_C):
        cols = block_span(c0, BLOCK_C, INDEX_64)
        mask = row_mask[:, None] & (cols < c_end)[None, :]
        z = tl.load(z_ptr + z_row[:, None] + cols[None, :] * z_c, mask=mask & read[:, None], other=0.0).to(COMPUTE)
        softmax = exp_neg(lse[:, None] - z, COMPUTE)
        if PROBS:
            t = tl.load(t_ptr + t_row[:, None] + cols[None, :] * t_c, mask=mask, other=0.0).to(COMPUTE)
            smoothed = (1.0 - smoothing) * t + smoothing * inv_c
            dz = g[:, None] * (softmax * mass[:, None] - smoothed)
            if NEED_DT:
                dt = g[:, None] * (1.0 - smoothing) * (lse[:, None] - z)
                tl.store(dt_ptr + group_offsets(rows, r_sizes, dt_r)[:, None] + cols[None, :] * dt_c,
                         dt.to(dt_ptr.dtype.element_ty), mask=mask)
        else:
            at = target - c0  # the target's place in this block (int32 unless offsets need int64)
            if not INDEX_64:
                at = at.to(tl.int32)
            hit = tl.arange(0, BLOCK_C)[None, :] == at[:, None]
            dz = g[:, None] * (softmax + tl.where(hit, c_hit, c_other))
        if NEED_DZ:
            tl.store(dz_ptr + group_offsets(rows, r_sizes, dz_r)[:, None] + cols[None, :] * dz_c,
                     dz.to(dz_ptr.dtype.element_ty), mask=mask)


@triton.jit
def cosine_bwd_kernel(dx_ptr, dt_ptr, x_ptr, t_ptr, g_ptr, stats_ptr, numbers, r_sizes, c_sizes, R, C,
                      c_per_program, x_r, t_r, x_c, t_c, g_r, dx_r, dx_c, dt_r, dt_c,
                      G_ELEMENT: tl.constexpr, NEED_DX: tl.constexpr, NEED_DT: tl.constexpr, COMPUTE: tl.constexpr,
                      BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_R slices and a chunk of c_per_program of their elements (few long
    # slices, as dim=None's one, are split over programs like that); from the forward's <x,t>,
    # |x|^2, |t|^2 it writes dx = g*(<x,t> x/(|x|^3 n_t) - t/(|x| n_t)) (and dt alike) in one
    # pass over x and t. Bytes: |x| + |t| + |dx| + |dt| + 24 per slice and program.
    rows, row_mask, x_row, t_row = rows_of_program(R, r_sizes, x_r, t_r, BLOCK_R, INDEX_64)
    eps = joined(numbers[0], numbers[1], COMPUTE)
    scale = joined(numbers[2], numbers[3], COMPUTE)
    if G_ELEMENT:
        g = tl.load(g_ptr).to(COMPUTE) * scale
    else:
        g = tl.load(g_ptr + group_offsets(rows, r_sizes, g_r), mask=row_mask, other=0.0).to(COMPUTE) * scale
    dot = tl.load(stats_ptr + rows, mask=row_mask, other=0.0).to(COMPUTE)
    norm_x = tl.sqrt(tl.load(stats_ptr + R + rows, mask=row_mask, other=1.0).to(COMPUTE))
    norm_t = tl.sqrt(tl.load(stats_ptr + 2 * R + rows, mask=row_mask, other=1.0).to(COMPUTE))
    nx = tl.maximum(norm_x, eps, propagate_nan=tl.PropagateNan.ALL)
    nt = tl.maximum(norm_t, eps, propagate_nan=tl.PropagateNan.ALL)
    # per slice: dx = a_x * x + b_x * t, dt = a_t * t + b_t * x
    big_x = norm_x > eps
    big_t = norm_t > eps
    a_x = tl.where(big_x, g * dot / (norm_x * norm_x * norm_x * nt), 0.0)[:, None]
    b_x = (-g / (nx * nt))[:, None]
    a_t = tl.where(big_t, g * dot / (norm_t * norm_t * norm_t * nx), 0.0)[:, None]
    b_t = (-g / (nt * nx))[:, None]
    chunk = tl.program_id(1)
    if INDEX_64:
        chunk = chunk.to(tl.int64)
    c_start = chunk * c_per_program
    c_stop = tl.minimum(c_start + c_per_program, C)
    for c0 in range(c_start, c_stop, BLOCK_C):
        cols, mask, x, t = slice_tiles(c0, c_stop, row_mask, x_ptr, x_row, t_ptr, t_row, c_sizes, x_c, t_c,
                                       COMPUTE, BLOCK_C, INDEX_64)
        if NEED_DX:
            tl.store(dx_ptr + group_offsets(rows, r_sizes, dx_r)[:, None] + group_offsets(cols, c_sizes, dx_c)[None, :],
                     (a_x * x + b_x * t).to(dx_ptr.dtype.element_ty), mask=mask)
        if NEED_DT:
            tl.store(dt_ptr + group_offsets(rows, r_sizes, dt_r)[:, None] + group_offsets(cols, c_sizes, dt_c)[None, :],
                     (a_t * t + b_t * x).to(dt_ptr.dtype.element_ty), mask=mask)
