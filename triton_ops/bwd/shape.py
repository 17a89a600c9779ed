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
def embedding_bounds_kernel(bounds_ptr, sorted_ptr, n, V, steps, BLOCK: tl.constexpr):
    # One program owns BLOCK of the V + 1 segment bounds of the sorted indices: bounds[v] = the
    # first position holding an index >= v, by a binary search per lane. All searches run at
    # once here, so the gradient kernel's programs start on their loads without a chain of
    # dependent reads each. Bytes: 8 (V + 1) written, <= 8 log2(n + 1) read per bound.
    v = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    tl.store(bounds_ptr + v, lower_bound(sorted_ptr, n, v, steps), mask=v <= V)


@triton.jit
def embedding_bwd_kernel(dw_ptr, g_ptr, order_ptr, bounds_ptr, sorted_ptr, n, steps, V, E, i_sizes, g_i, g_e,
                         SEARCH: tl.constexpr, COMPUTE: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_I: tl.constexpr,
                         BLOCK_E: tl.constexpr):
    # One program owns BLOCK_V rows x BLOCK_E columns of dweight. Row v's occurrences are the
    # segment [bounds[v], bounds[v + 1]) of the stably sorted indices, in their original order;
    # the program adds the rows of g they name, BLOCK_I occurrences per step and row (a fixed
    # order: a fixed-shape sum per step, steps in sequence; no atomics). A row no index names is
    # written 0; an index outside [0, V) (unchecked on CUDA) lies outside every segment and adds
    # nothing. Bytes: |g| + |dweight| + 8 n (the order) + 16 per dweight row (its bounds).
    # SEARCH (few rows of dweight, or few indices: one program, or short search chains): the
    # program finds its rows' bounds itself (two binary searches per row, <= 16 log2(n + 1)
    # bytes), no bounds kernel, no bounds buffer.
    pid_v = tl.program_id(0)
    pid_e = tl.program_id(1)
    rv = (pid_v * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
    re = (pid_e * BLOCK_E + tl.arange(0, BLOCK_E)).to(tl.int64)
    v_mask = rv < V
    e_mask = re < E
    if SEARCH:
        start = tl.where(v_mask, lower_bound(sorted_ptr, n, rv, steps), 0)
        count = tl.where(v_mask, lower_bound(sorted_ptr, n, rv + 1, steps), 0) - start
    else:
        start = tl.load(bounds_ptr + rv, mask=v_mask, other=0)
        count = tl.load(bounds_ptr + rv + 1, mask=v_mask, other=0) - start
    acc = tl.zeros([BLOCK_V, BLOCK_E], COMPUTE)
    for k in range(0, tl.max(count, axis=0), BLOCK_I):
        step = k + tl.arange(0, BLOCK_I)
        live = step[None, :] < count[:, None]
        pos = tl.load(order_ptr + start[:, None] + step[None, :], mask=live, other=0)
        g = tl.load(g_ptr + group_offsets(pos, i_sizes, g_i)[:, :, None] + re[None, None, :] * g_e,
                    mask=live[:, :, None] & e_mask[None, None, :], other=0.0)
        acc += tl.sum(g.to(COMPUTE), axis=1)
    tl.store(dw_ptr + rv[:, None] * E + re[None, :], acc.to(dw_ptr.dtype.element_ty),
             mask=v_mask[:, None] & e_mask[None, :])
