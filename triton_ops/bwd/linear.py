"""VJP kernel of ``linear`` with an activation: ``dz = g * act'(z)`` formed once, in a memory-bound
pass, with the bias gradient's column sums as per-program partial rows (added in a fixed order by
``launchers/reduce.combine_partials``: no atomics). The two gradient GEMMs then read dz as plain
operands (``dx = dz W``, ``dW = dz^T x``): act'(z) is never recomputed per column tile."""
import triton
import triton.language as tl

from ..tiles import block_span, call, column_chunk, joined


@triton.jit
def linear_dz_bwd_kernel(dz_ptr, part_ptr, g_ptr, z_ptr, R, N, rows_per_program, numbers, g_r, g_c, z_r, z_c,
                     DF: tl.constexpr, HAS_PARAM: tl.constexpr, NEED_DB: tl.constexpr, COMPUTE: tl.constexpr,
                     BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns BLOCK_N columns of a chunk of rows_per_program rows, walked BLOCK_R rows at
    # a time: dz is written once in the operand dtype (the GEMMs read it as they would read g) and
    # its column sums stay in registers until one partial row per program (chunk) is written.
    # Bytes: |g| + |z| + |dz| + P x N partials (P = row chunks, a few per column block).
    chunk, cols, c_mask, start, stop = column_chunk(R, N, rows_per_program, BLOCK_N, INDEX_64)
    p = joined(numbers[0], numbers[1], COMPUTE)
    acc = tl.zeros([BLOCK_R, BLOCK_N], COMPUTE)
    for r0 in range(start, stop, BLOCK_R):
        rows = block_span(r0, BLOCK_R, INDEX_64)
        mask = (rows < stop)[:, None] & c_mask[None, :]
        g = tl.load(g_ptr + rows[:, None] * g_r + cols[None, :] * g_c, mask=mask, other=0.0).to(COMPUTE)
        z = tl.load(z_ptr + rows[:, None] * z_r + cols[None, :] * z_c, mask=mask, other=0.0).to(COMPUTE)
        dz = g * call(DF, z, z, p, 1, HAS_PARAM, False)
        tl.store(dz_ptr + rows[:, None] * N + cols[None, :], dz.to(dz_ptr.dtype.element_ty), mask=mask)
        if NEED_DB:  # masked lanes may hold act'(0) = inf (sqrt): 0 * inf must not reach the sum
            acc += tl.where(mask, dz, 0.0)
    if NEED_DB:
        tl.store(part_ptr + chunk * N + cols, tl.sum(acc, axis=0).to(part_ptr.dtype.element_ty), mask=c_mask)
