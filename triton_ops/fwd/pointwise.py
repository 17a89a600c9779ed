"""The one forward template of every pointwise op: unary, broadcasting binary, elementwise
losses with ``reduction="none"``, replicate and broadcast-back.

The output is walked as the A/B/C groups of ``broadcast.plan_pointwise``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..broadcast import aligned_strides, plan_pointwise
from ..tiles import (
    ABSENT, ELEMENT, TENSOR, VALUE, broadcast_numel, c_offsets, call, group_offsets, load_operand, split_float,
    tile_of_program, tile_offsets,
)


@triton.jit
def pointwise_fwd_kernel(
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
        out = out + tl.full([BLOCK_B, BLOCK_C], -0.0, COMPUTE)  # a broadcast that keeps -0.0 (+0.0 would not)
        tl.store(out_ptr + group_offsets(a, a_sizes, o_a) + o_bc, out.to(out_ptr.dtype.element_ty), mask=mask)


def operand_mode(v, out_numel: int) -> int:
    if v is None:
        return ABSENT
    if not isinstance(v, torch.Tensor):
        return VALUE
    return ELEMENT if v.numel() == 1 and out_numel > 1 else TENSOR


def should_swap(out_shape, x_shape, y_shape) -> bool:
    """Put the operand broadcast over more elements in slot 1 (tile rows), so that the program
    loop (over the axes where slot 0 is broadcast) is the shorter one."""
    return broadcast_numel(out_shape, x_shape) > broadcast_numel(out_shape, y_shape)


def tile_shape(B: int, C: int, dtype, numel: int) -> tuple[int, int, int]:
    """(BLOCK_B, BLOCK_C, num_warps): columns first (they hold the innermost axis), then as many
    rows as the tile allows. A tuned tile size (``triton_ops.tune``) replaces the default."""
    from ..tune import lookup

    cfg = lookup("pointwise", dtype, (numel,))
    tile = cfg["TILE"] if cfg else runtime.tile_elements()
    block_c = min(runtime.next_pow2(C), tile)
    block_b = min(runtime.next_pow2(B), max(1, tile // block_c))
    return block_b, block_c, (cfg["num_warps"] if cfg else runtime.num_warps_for(block_b * block_c))


def a_chunks(A: int, tiles: int, device) -> int:
    """Split the A loop across programs only when the tiles alone cannot fill a GPU."""
    if runtime.INTERPRETER:
        return 1
    target = runtime.device_programs(device)
    return max(1, min(A, target // max(tiles, 1)))


def describe(v, N: int) -> tuple:
    """A hashable description of an operand: what a launch plan depends on (not its values)."""
    mode = operand_mode(v, N)
    if mode == TENSOR:
        return (mode, tuple(v.shape), tuple(v.stride()), v.dtype)
    if mode == ELEMENT:
        return (mode, (), (), v.dtype)
    return (mode, None, None, None)


@runtime.plan_cache
def _forward_plan(shape, out_strides, out_dtype, xd, yd, arity, device):
    """Everything a launch needs but the values, for one combination of shapes, strides and
    dtypes (cached: Python decides shapes once)."""
    N = 1
    for s in shape:
        N *= s
    swap = arity == 2 and should_swap(shape, *(shape if d[0] != TENSOR else d[1] for d in (xd, yd)))
    if swap:
        xd, yd = yd, xd
    layouts = {"out": aligned_strides(torch.empty_strided(shape, out_strides, device="meta"), shape)}
    for name, d in (("x", xd), ("y", yd)):
        if d[0] == TENSOR:
            layouts[name] = aligned_strides(torch.empty_strided(d[1], d[2], device="meta"), shape)
    plan = plan_pointwise(shape, xd[1] if xd[0] == TENSOR else shape, yd[1] if yd[0] == TENSOR else shape, layouts)
    A, B, C = plan.A.numel, plan.B.numel, plan.C.numel
    block_b, block_c, num_warps = tile_shape(B, C, out_dtype, N)
    tiles = runtime.cdiv(B, block_b) * runtime.cdiv(C, block_c)
    a_per_program = runtime.cdiv(A, a_chunks(A, tiles, device))
    zeros = tuple(tuple(0 for _ in grp.sizes) for grp in (plan.A, plan.B, plan.C))
    x_st = plan.strides("x") if "x" in layouts else zeros
    y_st = plan.strides("y") if "y" in layouts else zeros
    o_st = plan.strides("out")
    extents = [runtime.max_offset(shape, out_strides)] + [runtime.max_offset(d[1], d[2]) for d in (xd, yd)
                                                          if d[0] == TENSOR]
    dtypes = [out_dtype] + [d[3] for d in (xd, yd) if d[3] is not None]
    args = ((plan.A.sizes, plan.B.sizes, plan.C.sizes, A, B, a_per_program), C,
            x_st[1], x_st[2], x_st[2][-1], y_st[0], y_st[2], y_st[2][-1], o_st[0], o_st[1], o_st[2], o_st[2][-1])
    meta = dict(SWAP=swap, X_MODE=xd[0], Y_MODE=yd[0], COMPUTE=runtime.compute_dtype(*dtypes), BLOCK_B=block_b,
                BLOCK_C=block_c, INDEX_64=runtime.needs_int64(*extents), num_warps=num_warps)
    return tiles * runtime.cdiv(A, a_per_program), swap, args, meta


def pointwise(fn, out: torch.Tensor, x, y=None, param: float | None = None, arity: int = 1,
              kernel=pointwise_fwd_kernel) -> torch.Tensor:
    """``out = fn(x[, y][, param])`` over ``out``'s shape; x and y are tensors that broadcast to
    it, Python numbers, or None (not read). Returns ``out``. ``kernel`` is this template or an
    instance of it registered elsewhere (``bwd/shape.py`` broadcasts gradients back with it)."""
    N = out.numel()
    if N == 0:
        return out
    grid, swap, args, meta = _forward_plan(tuple(out.shape), tuple(out.stride()), out.dtype, describe(x, N),
                                           describe(y, N), arity, out.device)
    if swap:
        x, y = y, x
    c = meta["COMPUTE"]
    numbers = (*split_float(x if operand_mode(x, N) == VALUE else 0.0, c),
               *split_float(y if operand_mode(y, N) == VALUE else 0.0, c),
               *split_float(param if param is not None else 0.0, c))
    runtime.launch(kernel, (grid,), out, x if isinstance(x, torch.Tensor) else out,
                   y if isinstance(y, torch.Tensor) else out, numbers, *args,
                   FN=fn, ARITY=arity, HAS_PARAM=param is not None, **meta)
    return out
