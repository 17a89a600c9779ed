"""The one VJP template of every pointwise op, with the reduce-back of broadcast operands fused in.

For ``out = f(x, y)`` over the A/B/C groups (``broadcast.plan_pointwise``):
``dx = sum_A g * df/dx`` accumulates in registers across the program's A loop, and
``dy = sum_B g * df/dy`` is the column sum of each tile. When several programs share one
gradient element (several A chunks, several B blocks), each writes its own partial row and
``bwd/reduce.combine_partials`` adds them in a fixed order: no atomics, the same bits each call.
A broadcast operand's full-size gradient never exists in memory.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..broadcast import aligned_strides, contiguous_strides, plan_pointwise
from ..fwd.pointwise import a_chunks, describe, operand_mode, should_swap, tile_shape
from ..tiles import broadcast_numel
from ..tiles import (
    ROW, TENSOR, VALUE, c_offsets, call, group_offsets, joined, load_operand, split_float, tile_of_program, tile_offsets,
)
from .reduce import combine_partials


@triton.jit
def pointwise_vjp_kernel(
        dx_ptr, dy_ptr, x_ptr, y_ptr, g_ptr, numbers, groups, C,
        x_b, x_c, x_c1, y_a, y_c, y_c1, g_a, g_b, g_c, g_c1, dx_b, dx_c, dx_c1, dy_a, dy_c, dy_c1, dx_slot, dy_slot,
        DFX: tl.constexpr, DFY: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, G_MODE: tl.constexpr,
        NEED_DX: tl.constexpr, NEED_DY: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns a [BLOCK_B, BLOCK_C] tile of B x C and a chunk of the A loop (as the
    # forward). Reads x once, y one row per step, g once; writes dx once per A chunk and one dy
    # row per step (once per B block). Bytes: |x| + |y| + |g| + |dx| + |dy| + partial rows.
    a_sizes, c_sizes = groups[0], groups[2]  # axis sizes of the A and C groups
    rb, rc, pid_b, chunk, a_start, a_stop, mask_c, mask, x, p = tile_of_program(
        groups, C, x_ptr, numbers, x_b, x_c, x_c1, X_MODE, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64)
    scale = joined(numbers[6], numbers[7], COMPUTE)
    y_c_off = c_offsets(rc, c_sizes, y_c, y_c1)[None, :]
    g_c_off = c_offsets(rc, c_sizes, g_c, g_c1)[None, :]
    g_bc = tile_offsets(rb, rc, groups, g_b, g_c, g_c1)
    if G_MODE == 3:
        g_element = tl.load(g_ptr).to(COMPUTE) * scale
    dy_c_off = c_offsets(rc, c_sizes, dy_c, dy_c1)
    acc = tl.zeros([BLOCK_B, BLOCK_C], COMPUTE)
    for a in range(a_start, a_stop):
        y = load_operand(y_ptr, numbers[2], numbers[3], group_offsets(a, a_sizes, y_a) + y_c_off, mask_c, Y_MODE, COMPUTE)
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


def vjp_should_swap(out_shape, x_shape, y_shape, need_dx: bool, need_dy: bool) -> bool:
    """Which operand goes to slot 0, whose gradient accumulates in registers over the program's
    loop. On a GPU: the one whose gradient sums over more elements (the other one's sum is a
    column sum per tile, one partial row per tile row block: costly when long). Under the
    interpreter, where every loop step is Python, the shorter loop wins (as the forward)."""
    if runtime.INTERPRETER:
        return should_swap(out_shape, x_shape, y_shape)
    reduce_x = broadcast_numel(out_shape, x_shape) if need_dx else 0
    reduce_y = broadcast_numel(out_shape, y_shape) if need_dy else 0
    return reduce_y > reduce_x


def grad_is_dense(t, out_shape) -> bool:
    return isinstance(t, torch.Tensor) and tuple(t.shape) == tuple(out_shape)


def grad_like(t, out_shape, dtype=None):
    """The gradient buffer ``pointwise_vjp`` returns for operand ``t`` (used by fake kernels)."""
    if grad_is_dense(t, out_shape):
        return torch.empty_like(t, dtype=dtype)
    return torch.empty(t.shape, dtype=dtype or t.dtype, device=t.device)


def _grad_buffer(like_shape, dtype, device, slots: int, compute_dtype):
    """The (contiguous) gradient tensor itself (one slot), or a [slots, numel] partials buffer."""
    if slots > 1:
        return torch.empty((slots, runtime.numel(like_shape)), dtype=compute_dtype, device=device)
    return torch.empty(like_shape, dtype=dtype, device=device)


def pointwise_vjp(g: torch.Tensor, out_shape, dfx=None, dfy=None, *, x=None, y=None,
                  x_shape=None, y_shape=None, x_dtype=None, y_dtype=None,
                  load_x: bool = True, load_y: bool = True, param: float | None = None,
                  arity: int = 1, scale: float = 1.0, kernel=pointwise_vjp_kernel, combine=None,
                  swap: bool | None = None):
    """Gradients of ``out = f(x[, y])`` given the upstream ``g`` (broadcastable to ``out_shape``).

    ``dfx``/``dfy`` are the scalar partial derivatives (None: that gradient is not wanted).
    x and y are the operands (tensors or numbers); ``load_*`` says whether the derivatives read
    them; ``*_shape``/``*_dtype`` describe the gradient to produce. Returns ``(dx, dy)`` of
    exactly those shapes (None where not wanted). ``kernel``/``combine`` are this template and
    ``bwd/reduce``'s, or instances of them registered elsewhere (``fwd/reduce.py`` runs this
    reduce-back path forward, for sums).
    """
    out_shape = tuple(out_shape)
    need_dx, need_dy = dfx is not None, dfy is not None
    x_shape = tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(x_shape if x_shape is not None else out_shape)
    y_shape = tuple(y.shape) if isinstance(y, torch.Tensor) else tuple(y_shape if y_shape is not None else out_shape)
    x_dtype = x.dtype if isinstance(x, torch.Tensor) else (x_dtype or g.dtype)
    y_dtype = y.dtype if isinstance(y, torch.Tensor) else (y_dtype or g.dtype)
    if swap is None:
        swap = arity == 2 and vjp_should_swap(out_shape, x_shape, y_shape, need_dx, need_dy)
        if swap:
            dy, dx = pointwise_vjp(g, out_shape, dfy, dfx, x=y, y=x, x_shape=y_shape, y_shape=x_shape,
                                   x_dtype=y_dtype, y_dtype=x_dtype, load_x=load_y, load_y=load_x, param=param,
                                   arity=arity, scale=scale, kernel=kernel, combine=combine, swap=True)
            return dx, dy
    device = g.device
    N = 1
    for s in out_shape:
        N *= s
    if N == 0:
        dx = torch.zeros(x_shape, dtype=x_dtype, device=device) if need_dx else None
        dy = torch.zeros(y_shape, dtype=y_dtype, device=device) if need_dy else None
        return dx, dy
    xv = x if load_x else None
    yv = y if load_y else None
    # A gradient of the output's shape takes its operand's layout (empty_like); the others are
    # contiguous (``grad_like`` is the same rule, for the fake kernels).
    dx = torch.empty_like(x, dtype=x_dtype) if need_dx and grad_is_dense(x, out_shape) else None
    dy = torch.empty_like(y, dtype=y_dtype) if need_dy and grad_is_dense(y, out_shape) else None
    grid, args, meta, dx_slots, dy_slots, part_dtype = _vjp_plan(
        out_shape, describe(g, N), describe(xv, N), describe(yv, N), x_shape, y_shape,
        tuple(dx.stride()) if dx is not None else None, tuple(dy.stride()) if dy is not None else None,
        need_dx, need_dy, device)
    if need_dx and dx is None:
        dx = _grad_buffer(x_shape, x_dtype, device, dx_slots, part_dtype)
    if need_dy and dy is None:
        dy = _grad_buffer(y_shape, y_dtype, device, dy_slots, part_dtype)
    numbers = (*split_float(xv if operand_mode(xv, N) == VALUE else 0.0),
               *split_float(yv if operand_mode(yv, N) == VALUE else 0.0),
               *split_float(param if param is not None else 0.0), *split_float(scale))
    runtime.launch(kernel, (grid,), dx if need_dx else g, dy if need_dy else g,
                   xv if isinstance(xv, torch.Tensor) else g, yv if isinstance(yv, torch.Tensor) else g, g,
                   numbers, *args, DFX=dfx, DFY=dfy, ARITY=arity, HAS_PARAM=param is not None, SWAP=swap,
                   NEED_DX=need_dx, NEED_DY=need_dy, **meta)
    if need_dx and dx_slots > 1:
        dx = combine_partials(dx, torch.empty(x_shape, dtype=x_dtype, device=device), kernel=combine)
    if need_dy and dy_slots > 1:
        dy = combine_partials(dy, torch.empty(y_shape, dtype=y_dtype, device=device), kernel=combine)
    return dx, dy


@runtime.plan_cache
def _vjp_plan(out_shape, gd, xd, yd, x_shape, y_shape, dx_strides, dy_strides, need_dx, need_dy, device):
    """Everything a VJP launch needs but the values (cached per shapes, strides and dtypes)."""
    N = 1
    for s in out_shape:
        N *= s

    def aligned(shape, strides):
        return aligned_strides(torch.empty_strided(shape, strides, device="meta"), out_shape)

    layouts = {"g": aligned(gd[1], gd[2]) if gd[0] == TENSOR else tuple(0 for _ in out_shape)}
    for name, d in (("x", xd), ("y", yd)):
        if d[0] == TENSOR:
            layouts[name] = aligned(d[1], d[2])
    for name, need, shape, strides in (("dx", need_dx, x_shape, dx_strides), ("dy", need_dy, y_shape, dy_strides)):
        if need:
            layouts[name] = aligned(shape, strides) if strides is not None else contiguous_strides(shape, out_shape)
    plan = plan_pointwise(out_shape, x_shape, y_shape, layouts)
    A, B, C = plan.A.numel, plan.B.numel, plan.C.numel
    block_b, block_c, num_warps = tile_shape(B, C, gd[3], N)
    n_b = runtime.cdiv(B, block_b)
    tiles = n_b * runtime.cdiv(C, block_c)
    a_per_program = runtime.cdiv(A, a_chunks(A, tiles, device) if need_dx else 1)
    chunks = runtime.cdiv(A, a_per_program)
    g_mode = gd[0]
    if g_mode == TENSOR and B > 1 and all(s == 0 for s in plan.B.strides["g"]):
        g_mode = ROW
    dtypes = [d[3] for d in (xd, yd, gd) if d[3] is not None]
    compute = runtime.compute_dtype(*dtypes)
    part_dtype = torch.float64 if compute.primitive_bitwidth == 64 else torch.float32
    dx_slots, dy_slots = (chunks if need_dx else 1), (n_b if need_dy else 1)
    zeros = tuple(tuple(0 for _ in grp.sizes) for grp in (plan.A, plan.B, plan.C))

    def st(name):
        return plan.strides(name) if name in layouts else zeros

    x_st, y_st, g_st, dx_st, dy_st = st("x"), st("y"), st("g"), st("dx"), st("dy")
    numel_x = (dx_slots > 1) * runtime.numel(x_shape)
    numel_y = (dy_slots > 1) * runtime.numel(y_shape)
    extents = [runtime.max_offset(d[1], d[2]) for d in (xd, yd, gd) if d[0] == TENSOR]
    extents += [dx_slots * runtime.numel(x_shape) - 1, dy_slots * runtime.numel(y_shape) - 1]  # last offsets
    args = ((plan.A.sizes, plan.B.sizes, plan.C.sizes, A, B, a_per_program), C,
            x_st[1], x_st[2], x_st[2][-1], y_st[0], y_st[2], y_st[2][-1], g_st[0], g_st[1], g_st[2], g_st[2][-1],
            dx_st[1], dx_st[2], dx_st[2][-1], dy_st[0], dy_st[2], dy_st[2][-1], numel_x, numel_y)
    meta = dict(X_MODE=xd[0], Y_MODE=yd[0], G_MODE=g_mode, COMPUTE=compute, BLOCK_B=block_b, BLOCK_C=block_c,
                INDEX_64=runtime.needs_int64(*extents), num_warps=num_warps)
    return tiles * chunks, args, meta, dx_slots, dy_slots, part_dtype
