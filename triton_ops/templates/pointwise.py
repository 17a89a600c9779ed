"""The two pointwise templates every unary op, binary op, elementwise loss with
``reduction="none"``, ``replicate``, ``sum``, ``sum_to`` and broadcast-back runs on.

* ``map_tiles`` - ``out = f(x, y)`` over the A/B/C groups of ``broadcast.plan_pointwise``: the
  forward of every pointwise op, and the broadcast-back of a sum's gradient;
* ``vjp_tiles`` - ``dx = sum_A g * df/dx`` and ``dy = sum_B g * df/dy`` with the reduce-back of
  broadcast operands fused in: every pointwise VJP, and the forward of ``sum``/``sum_to``.
"""
import triton
import triton.language as tl

from ..tiles import (
    c_offsets, call, group_offsets, helper, joined, load_operand, tile_of_program, tile_offsets,
)


@helper
def map_tiles(
        out_ptr, x_ptr, y_ptr, numbers, groups, C, x_b, x_c, x_c1, y_a, y_c, y_c1, o_a, o_b, o_c, o_c1,
        FN: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns a [BLOCK_B, BLOCK_C] tile of the B x C axes and loops over a chunk of the
    # A axes. x (constant along A) is read once per program, y (constant along B) once per row
    # of the loop; the output is written once. Bytes: |x| + |y| + |out| (+ one y row per extra
    # B block).
    a_sizes, c_sizes = groups[0], groups[2]  # axis sizes of the A and C groups
    rb, rc, pid_b, chunk, a_start, a_stop, mask_c, mask, x, p = tile_of_program(
        groups, C, x_ptr, numbers, x_b, x_c, x_c1, X_MODE, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64)
    y_c_off = c_offsets(rc, c_sizes, y_c, y_c1)[None, :]
    o_bc = tile_offsets(rb, rc, groups, o_b, o_c, o_c1)
    for a in range(a_start, a_stop):
        y = load_operand(y_ptr, numbers[2], numbers[3], group_offsets(a, a_sizes, y_a) + y_c_off, mask_c, Y_MODE, COMPUTE)
        if X_MODE == 0:
            out = call(FN, y, y, p, ARITY, HAS_PARAM, False)
        else:
            out = call(FN, x, y, p, ARITY, HAS_PARAM, SWAP)
        # a broadcast that keeps -0.0 (+0.0 would not); -0.0 made as 0 * -1: Triton 3.6 turns a
        # literal -0.0 into +0.0 (a constant equal to 0 becomes the null value)
        out = out + tl.zeros([BLOCK_B, BLOCK_C], COMPUTE) * -1.0
        tl.store(out_ptr + group_offsets(a, a_sizes, o_a) + o_bc, out.to(out_ptr.dtype.element_ty), mask=mask)


@helper
def vjp_tiles(
        dx_ptr, dy_ptr, x_ptr, y_ptr, g_ptr, numbers, groups, C,
        x_b, x_c, x_c1, y_a, y_c, y_c1, g_a, g_b, g_c, g_c1, dx_b, dx_c, dx_c1, dy_a, dy_c, dy_c1, dx_slot, dy_slot,
        DFX: tl.constexpr, DFY: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, G_MODE: tl.constexpr,
        NEED_DX: tl.constexpr, NEED_DY: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr, A_ROWS: tl.constexpr,
        STAGES: tl.constexpr):
    # One program owns a [BLOCK_B, BLOCK_C] tile of B x C and a chunk of the A loop (as the
    # forward). Reads x once, y one row per step, g once; writes dx once per A chunk and one dy
    # row per step (once per B block). Bytes: |x| + |y| + |g| + |dx| + |dy| + partial rows.
    # A_ROWS (B = 1, the tile has no B rows): the tile's rows are BLOCK_B consecutive A steps
    # instead, dx their column sum; as many bytes in flight per program with BLOCK_B times
    # narrower columns, so that more column blocks and fewer A chunks (dx partial rows) fill
    # the device. STAGES (A_ROWS): the A steps' loads software-pipelined through shared memory
    # (global -> shared copies STAGES - 1 steps ahead). Left to ptxas, a column sum's loop issued a
    # thread's four 16-byte loads one after another, each after the adds of the one before (sm_90,
    # both Tritons), so a quarter as many bytes were in flight as its four loads allow.
    a_sizes, c_sizes = groups[0], groups[2]  # axis sizes of the A and C groups
    rb, rc, pid_b, chunk, a_start, a_stop, mask_c, mask, x, p = tile_of_program(
        groups, C, x_ptr, numbers, x_b, x_c, x_c1, X_MODE, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64, A_ROWS)
    scale = joined(numbers[6], numbers[7], COMPUTE)
    y_c_off = c_offsets(rc, c_sizes, y_c, y_c1)[None, :]
    g_c_off = c_offsets(rc, c_sizes, g_c, g_c1)[None, :]
    g_bc = tile_offsets(rb, rc, groups, g_b, g_c, g_c1)
    if G_MODE == 3:
        g_element = tl.load(g_ptr).to(COMPUTE) * scale
    dy_c_off = c_offsets(rc, c_sizes, dy_c, dy_c1)
    acc = tl.zeros([BLOCK_B, BLOCK_C], COMPUTE)
    if A_ROWS:
        for a0 in tl.range(a_start, a_stop, BLOCK_B, num_stages=STAGES):
            ra = a0 + rb  # rb: 0 .. BLOCK_B - 1 (the one B block)
            step = (ra < a_stop)[:, None] & mask_c
            y = load_operand(y_ptr, numbers[2], numbers[3], group_offsets(ra, a_sizes, y_a)[:, None] + y_c_off, step,
                             Y_MODE, COMPUTE)
            if G_MODE == 1:
                g = tl.load(g_ptr + group_offsets(ra, a_sizes, g_a)[:, None] + g_c_off, mask=step,
                            other=0.0).to(COMPUTE) * scale
            else:
                g = g_element
            if NEED_DX:  # rows past the chunk add nothing (their derivative may not be finite)
                acc += tl.where(step, g * call(DFX, x, y, p, ARITY, HAS_PARAM, SWAP), 0.0)
            if NEED_DY:  # y is not broadcast (B = 1): its gradient is elementwise
                tl.store(dy_ptr + group_offsets(ra, a_sizes, dy_a)[:, None] + dy_c_off[None, :],
                         (g * call(DFY, x, y, p, ARITY, HAS_PARAM, SWAP)).to(dy_ptr.dtype.element_ty), mask=step)
        if NEED_DX:
            acc = tl.sum(acc, axis=0)[None, :] + tl.zeros([BLOCK_B, BLOCK_C], COMPUTE)  # row 0 is stored
    else:
        for a in range(a_start, a_stop):
            y = load_operand(y_ptr, numbers[2], numbers[3], group_offsets(a, a_sizes, y_a) + y_c_off, mask_c, Y_MODE,
                             COMPUTE)
            g_a_off = group_offsets(a, a_sizes, g_a)
            if G_MODE == 1:
                g = tl.load(g_ptr + g_a_off + g_bc, mask=mask, other=0.0).to(COMPUTE) * scale
            elif G_MODE == 4:
                g = tl.load(g_ptr + g_a_off + g_c_off, mask=mask_c, other=0.0).to(COMPUTE) * scale
            else:
                g = g_element
            if NEED_DX:
                acc += g * call(DFX, x, y, p, ARITY, HAS_PARAM, SWAP)
            if NEED_DY:
                contrib = tl.where(mask, g * call(DFY, x, y, p, ARITY, HAS_PARAM, SWAP), 0.0)
                tl.store(dy_ptr + pid_b * dy_slot + group_offsets(a, a_sizes, dy_a) + dy_c_off,
                         tl.sum(contrib, axis=0).to(dy_ptr.dtype.element_ty), mask=rc < C)
    if NEED_DX:
        dx_bc = tile_offsets(rb, rc, groups, dx_b, dx_c, dx_c1)
        tl.store(dx_ptr + chunk * dx_slot + dx_bc, acc.to(dx_ptr.dtype.element_ty), mask=mask)
