"""VJP kernels of the shape-moving layers: the transpose (its own VJP) and the embedding weight
gradient by row ownership over the sorted indices (deterministic, no atomics)."""
import triton
import triton.language as tl

from ..templates.shape import transpose_tiles
from ..tiles import group_offsets, helper


@triton.jit
def transpose_vjp_kernel(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # dx = g^T, one [BLOCK_M, BLOCK_N] tile per program (templates/shape.py).
    transpose_tiles(out_ptr, x_ptr, M, N, x_s0, x_s1, BLOCK_M, BLOCK_N)


@helper
def lower_bound(sorted_ptr, n, value, steps):
    """Per lane, the first position of the n sorted indices holding an index >= value (n if
    none), by a binary search of ``steps`` >= log2(n + 1) halvings."""
    lo = tl.zeros_like(value)
    hi = lo + n
    for _ in range(steps):
        active = lo < hi
        mid = (lo + hi) // 2
        below = active & (tl.load(sorted_ptr + mid, mask=active, other=0).to(tl.int64) < value)
        lo = tl.where(below, mid + 1, lo)
        hi = tl.where(active & ~below, mid, hi)
    return lo


@triton.jit
def embedding_bwd_kernel(dw_ptr, g_ptr, sorted_ptr, order_ptr, n, V, E, steps, i_sizes, g_i, g_e,
                         COMPUTE: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_E: tl.constexpr):
    # One program owns BLOCK_V rows x BLOCK_E columns of dweight. The indices, sorted once
    # (stably) by the launcher, hold each row's occurrences as one segment in their original
    # order: two binary searches per row find it, and the rows of g it names are added one
    # occurrence per step (a fixed order; no atomics). A row no index names is written 0; an
    # index outside [0, V) (unchecked on CUDA) lies outside every segment and adds nothing.
    # Bytes: |g| + |dweight| + 8 n (the order) + 16 log2(n) per dweight row (the searches).
    pid_v = tl.program_id(0)
    pid_e = tl.program_id(1)
    rv = (pid_v * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
    re = (pid_e * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    v_mask = rv < V
    e_mask = re < E
    start = lower_bound(sorted_ptr, n, rv, steps)
    count = tl.where(v_mask, lower_bound(sorted_ptr, n, rv + 1, steps) - start, 0)
    acc = tl.zeros([BLOCK_V, BLOCK_E], COMPUTE)
    for k in range(0, tl.max(count, axis=0)):
        live = k < count
        pos = tl.load(order_ptr + start + k, mask=live, other=0)
        acc += tl.load(g_ptr + group_offsets(pos, i_sizes, g_i)[:, None] + re[None, :] * g_e,
                       mask=live[:, None] & e_mask[None, :], other=0.0).to(COMPUTE)
    tl.store(dw_ptr + rv[:, None] * E + re[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=v_mask[:, None] & e_mask[None, :])
