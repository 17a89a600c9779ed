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
from ..tiles import ABSENT, ELEMENT, TENSOR, VALUE, broadcast_numel, call, group_offsets, tile_of_program, tile_offsets, joined, load_operand, split_float


@triton.jit
def pointwise_fwd_kernel(
        out_ptr, x_ptr, y_ptr, numbers, groups, x_b, x_c, y_a, y_c, o_a, o_b, o_c,
        FN: tl.constexpr, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr,
        X_MODE: tl.constexpr, Y_MODE: tl.constexpr, COMPUTE: tl.constexpr,
        BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    # One program owns a [BLOCK_B, BLOCK_C] tile of the B x C axes and loops over a chunk of the
    # A axes. x (constant along A) is read once per program, y (constant along B) once per row
    # of the loop; the output is written once. Bytes: |x| + |y| + |out| (+ one y row per extra
    # B block).
    a_sizes, b_sizes, c_sizes = groups[0], groups[1], groups[2]  # axis sizes of the A, B, C groups
    rb, rc, pid_b, chunk, a_start, a_stop, mask_c, mask, x, p = tile_of_program(
        groups, x_ptr, numbers, x_b, x_c, X_MODE, COMPUTE, BLOCK_B, BLOCK_C, INDEX_64)
    y_c_off = group_offsets(rc, c_sizes, y_c)[None, :]
    o_bc = tile_offsets(rb, rc, groups, o_b, o_c)
    for a in range(a_start, a_stop):
        y = load_operand(y_ptr, numbers[2], numbers[3], group_offsets(a, a_sizes, y_a) + y_c_off, mask_c, Y_MODE, COMPUTE)
        if X_MODE == 0:
            out = call(FN, y, y, p, ARITY, HAS_PARAM, False)
        else:
            out = call(FN, x, y, p, ARITY, HAS_PARAM, SWAP)
        out = out + tl.zeros([BLOCK_B, BLOCK_C], COMPUTE)
        tl.store(out_ptr + group_offsets(a, a_sizes, o_a) + o_bc, out.to(out_ptr.dtype.element_ty), mask=mask)


def operand_mode(v, out_numel: int) -> int:
    if v is None:
        return ABSENT
    if not isinstance(v, torch.Tensor):
        return VALUE
    return ELEMENT if v.numel() == 1 and out_numel > 1 else TENSOR


def should_swap(out_shape, x, y) -> bool:
    """Put the operand broadcast over more elements in slot 1 (tile rows), so that the program
    loop (over the axes where slot 0 is broadcast) is the shorter one."""
    def shape(v):
        return tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(out_shape)
    return broadcast_numel(out_shape, shape(x)) > broadcast_numel(out_shape, shape(y))


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


def pointwise(fn, out: torch.Tensor, x, y=None, param: float | None = None, arity: int = 1,
              kernel=pointwise_fwd_kernel, swap: bool | None = None) -> torch.Tensor:
    """``out = fn(x[, y][, param])`` over ``out``'s shape; x and y are tensors that broadcast to
    it, Python numbers, or None (not read). Returns ``out``. ``kernel`` is this template or an
    instance of it registered elsewhere (``bwd/shape.py`` broadcasts gradients back with it)."""
    N = out.numel()
    if N == 0:
        return out
    shape = tuple(out.shape)
    if swap is None:
        swap = arity == 2 and should_swap(shape, x, y)
        if swap:
            return pointwise(fn, out, y, x, param, arity, kernel, swap=True)
    x_mode, y_mode = operand_mode(x, N), operand_mode(y, N)
    layouts = {"out": aligned_strides(out, shape)}
    if x_mode == TENSOR:
        layouts["x"] = aligned_strides(x, shape)
    if y_mode == TENSOR:
        layouts["y"] = aligned_strides(y, shape)
    plan = plan_pointwise(shape, x.shape if x_mode == TENSOR else shape,
                          y.shape if y_mode == TENSOR else shape, layouts)
    A, B, C = plan.A.numel, plan.B.numel, plan.C.numel
    block_b, block_c, num_warps = tile_shape(B, C, out.dtype, A * B * C)
    tiles = runtime.cdiv(B, block_b) * runtime.cdiv(C, block_c)
    chunks = a_chunks(A, tiles, out.device)
    a_per_program = runtime.cdiv(A, chunks)
    chunks = runtime.cdiv(A, a_per_program)
    zeros = tuple(0 for _ in plan.A.sizes), tuple(0 for _ in plan.B.sizes), tuple(0 for _ in plan.C.sizes)
    x_st = plan.strides("x") if "x" in layouts else zeros
    y_st = plan.strides("y") if "y" in layouts else zeros
    o_st = plan.strides("out")
    extents = [runtime.max_offset(shape, layouts["out"])]
    extents += [runtime.max_offset(t.shape, t.stride()) for t in (x, y) if isinstance(t, torch.Tensor)]
    tensors = [t for t in (x, y) if isinstance(t, torch.Tensor)]
    compute = runtime.compute_dtype(out.dtype, *(t.dtype for t in tensors))
    x_hi, x_lo = split_float(x if x_mode == VALUE else 0.0)
    y_hi, y_lo = split_float(y if y_mode == VALUE else 0.0)
    p_hi, p_lo = split_float(param if param is not None else 0.0)
    runtime.launch(
        kernel, (tiles * chunks,),
        out, x if x_mode in (TENSOR, ELEMENT) else out, y if y_mode in (TENSOR, ELEMENT) else out,
        (x_hi, x_lo, y_hi, y_lo, p_hi, p_lo),
        (plan.A.sizes, plan.B.sizes, plan.C.sizes, A, B, C, a_per_program),
        x_st[1], x_st[2], y_st[0], y_st[2], o_st[0], o_st[1], o_st[2],
        FN=fn, ARITY=arity, HAS_PARAM=param is not None, SWAP=swap, X_MODE=x_mode, Y_MODE=y_mode, COMPUTE=compute,
        BLOCK_B=block_b, BLOCK_C=block_c, INDEX_64=runtime.needs_int64(*extents), num_warps=num_warps)
    return out
