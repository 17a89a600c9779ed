"""Launchers of the pointwise templates: every unary and binary op, ``replicate``, ``sum``,
``sum_to`` and the broadcast-back of gradients. Python decides the A/B/C plan, tiles and grid
once per combination of shapes, strides and dtypes (a cached ``runtime.LaunchPlan``); a call
allocates and launches."""
from __future__ import annotations

import torch

from .. import runtime
from ..broadcast import aligned_strides, broadcast_numel, contiguous_strides, plan_pointwise
from ..bwd.broadcast import broadcast_bwd_kernel
from ..bwd.pointwise import pointwise_vjp_kernel
from ..bwd.reduce import combine_vjp_kernel
from ..fwd.pointwise import pointwise_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel, sum_fwd_kernel
from ..scalar import identity, one_xy
from ..tiles import Operand, split_float
from ..tune import lookup
from .reduce import combine_partials, most_partial_rows, wave_split

TENSOR, VALUE = Operand.TENSOR, Operand.VALUE


def operand_mode(v, out_numel: int) -> Operand:
    if v is None:
        return Operand.ABSENT
    if not isinstance(v, torch.Tensor):
        return Operand.VALUE
    return Operand.ELEMENT if v.numel() == 1 and out_numel > 1 else Operand.TENSOR


def should_swap(out_shape, x_shape, y_shape) -> bool:
    """Put the operand broadcast over more elements in slot 1 (tile rows), so that the program
    loop (over the axes where slot 0 is broadcast) is the shorter one."""
    return broadcast_numel(out_shape, x_shape) > broadcast_numel(out_shape, y_shape)


def tile_shape(B: int, C: int, dtype, numel: int, min_rows: int = 1, warps: int | None = None) -> tuple[int, int, int]:
    """(BLOCK_B, BLOCK_C, num_warps): columns first (they hold the innermost axis; at most a
    ``min_rows``-th of the tile, where there are that many rows), then as many rows as the tile
    allows; ``warps`` (else the tile's default). A tuned tile size and warps (``triton_ops.tune``)
    replace the defaults."""
    cfg = lookup("pointwise", dtype, (numel,))
    tile = cfg["TILE"] if cfg else runtime.tile_elements()
    block_c = min(runtime.next_pow2(C), max(1, tile // min(min_rows, runtime.next_pow2(B))))
    block_b = min(runtime.next_pow2(B), max(1, tile // block_c))
    return block_b, block_c, (cfg["num_warps"] if cfg else warps or runtime.num_warps_for(block_b * block_c))


# rows of a VJP tile whose slot-1 gradient is a column sum: partial rows <= 2/64 of g's bytes
REDUCE_ROWS = 64
# (least rows, warps) of an A_ROWS tile (A steps, B = 1) of tile_elements(), by whether the VJP
# also writes an elementwise gradient (need_dy). Chosen on the H200 of 2026-11-28 (bench.variants
# reduce, 16384 x 8192 bf16, % of clone, against 64 x 64 tiles of 8 warps, the old default):
# - a sum alone (sum, sum_to, add / sub backward): 4 rows of 1024 columns (2 KiB of bf16 a row),
#   4 warps: sum 67.7 -> 78.6, sum_to 67.9 -> 79.6, add backward 71.0 -> 93.6 (64 x 64, 4 warps:
#   79.6 / 80.4 / 76.8). Fewer column blocks (8 at 8192 columns) leave the waves to the A split:
#   more parts, each writing a partial row, bounded by ``most_partial_rows``.
# - with an elementwise gradient (div, mul, safe_div backward: ~92 registers a thread at 4 x 1024
#   of 4 warps): 32 rows of 128 columns, 8 warps: div backward 83.4 -> 88.1 (4 x 1024, 4 warps: 84.5).
A_ROWS_TILES = {False: (4, 4), True: (32, 8)}
# A sum alone's A_ROWS steps are software-pipelined (templates/pointwise.vjp_tiles, STAGES): 3 stages,
# 2 buffered steps of g in shared memory (4 x 1024 bf16: 16 KiB a program), where a program walks
# enough steps (``runtime.pipeline_stages``). With an elementwise gradient the plain loop stays (its
# loads were issued together: div backward's loop holds them in registers, at 92 registers).
A_ROWS_STAGES, A_ROWS_PIPELINE_SMEM = 3, 32 << 10


def a_split(A: int, tiles: int, device, elements: int, num_warps: int, most: int | None = None) -> int:
    """A steps per program (``reduce.wave_split``): the A loop is split across programs only when
    the tiles alone leave a GPU's waves short, only as far as each part keeps
    ``runtime.min_split_elements()`` of the ``elements`` to walk, and into ``most`` parts at most
    (a VJP's bound on its partial rows' bytes)."""
    if runtime.INTERPRETER:
        return A
    worth = elements // (max(tiles, 1) * runtime.min_split_elements())
    return wave_split(A, tiles, min(worth, most or A), device, num_warps)


def describe(v, N: int) -> tuple:
    """A hashable description of an operand: what a launch plan depends on (not its values)."""
    mode = operand_mode(v, N)
    if mode == TENSOR:
        return (mode, tuple(v.shape), tuple(v.stride()), v.dtype)
    if mode == Operand.ELEMENT:
        return (mode, (), (), v.dtype)
    return (mode, None, None, None)


@runtime.plan_cache
def _forward_plan(kernel, fn, arity, has_param, shape, out_strides, out_dtype, xd, yd, device):
    """The launch for one combination of op, shapes, strides and dtypes (cached: Python decides
    shapes once). Returns (swap, LaunchPlan)."""
    N = runtime.numel(shape)
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
    a_per_program = a_split(A, tiles, device, N, num_warps)
    zeros = tuple(tuple(0 for _ in grp.sizes) for grp in (plan.A, plan.B, plan.C))
    x_st = plan.strides("x") if "x" in layouts else zeros
    y_st = plan.strides("y") if "y" in layouts else zeros
    o_st = plan.strides("out")
    extents = [runtime.max_offset(shape, out_strides)] + [runtime.max_offset(d[1], d[2]) for d in (xd, yd)
                                                          if d[0] == TENSOR]
    dtypes = [out_dtype] + [d[3] for d in (xd, yd) if d[3] is not None]
    launch = runtime.LaunchPlan(
        kernel, (tiles * runtime.cdiv(A, a_per_program),), {"num_warps": num_warps},
        groups=(plan.A.sizes, plan.B.sizes, plan.C.sizes, A, B, a_per_program), C=C,
        x_b=x_st[1], x_c=x_st[2], x_c1=x_st[2][-1], y_a=y_st[0], y_c=y_st[2], y_c1=y_st[2][-1],
        o_a=o_st[0], o_b=o_st[1], o_c=o_st[2], o_c1=o_st[2][-1],
        FN=fn, ARITY=arity, HAS_PARAM=has_param, SWAP=swap, X_MODE=int(xd[0]), Y_MODE=int(yd[0]),
        COMPUTE=runtime.compute_dtype(*dtypes), BLOCK_B=block_b, BLOCK_C=block_c,
        INDEX_64=runtime.needs_int64(*extents))
    return swap, launch


_forward_memo = runtime.plan_memo()


def _operand_key(v):
    """What of an operand a launch depends on, as the call holds it (``describe``'s cheap twin)."""
    return (v.shape, v.stride(), v.dtype) if isinstance(v, torch.Tensor) else v is None


def pointwise(fn, out: torch.Tensor, x, y=None, param: float | None = None, arity: int = 1,
              kernel=pointwise_fwd_kernel) -> torch.Tensor:
    """``out = fn(x[, y][, param])`` over ``out``'s shape; x and y are tensors that broadcast to
    it, Python numbers, or None (not read). Returns ``out``. ``kernel`` is the forward kernel or
    another entry point around the same template (``broadcast_to``: gradients broadcast back)."""
    N = out.numel()
    if N == 0:
        return out
    key = (id(kernel), id(fn), arity, param is None, out.shape, out.stride(), out.dtype, out.device,
           _operand_key(x), _operand_key(y))
    planned = _forward_memo.get(key)
    if planned is None:
        swap, launch = _forward_plan(kernel, fn, arity, param is not None, tuple(out.shape), tuple(out.stride()),
                                     out.dtype, describe(x, N), describe(y, N), out.device)
        x_value, y_value = operand_mode(x, N) == VALUE, operand_mode(y, N) == VALUE
        planned = _forward_memo[key] = (swap, launch, *((y_value, x_value) if swap else (x_value, y_value)))
    swap, launch, x_value, y_value = planned
    if swap:
        x, y = y, x
    c = launch.fixed["COMPUTE"]  # float64 math takes a number's bits (tiles.Operand.VALUE)
    none = split_float(0.0, c)
    numbers = (*(split_float(x, c) if x_value else none), *(split_float(y, c) if y_value else none),
               *(split_float(param, c) if param is not None else none))
    launch(out_ptr=out, x_ptr=x if isinstance(x, torch.Tensor) else out,
           y_ptr=y if isinstance(y, torch.Tensor) else out, numbers=numbers)
    return out


def vjp_should_swap(out_shape, x_shape, y_shape, need_dx: bool, need_dy: bool) -> bool:
    """Which operand goes to slot 0, whose gradient accumulates in registers over the program's
    loop. On a GPU: the one whose gradient sums over more elements (the other one's sum is a
    column sum per tile, one partial row per tile row block: costly when long). Under the
    interpreter, where every loop step is Python, the shorter loop wins (as the forward)."""
    if runtime.INTERPRETER:
        return should_swap(out_shape, x_shape, y_shape)
    reduce_x = broadcast_numel(out_shape, x_shape) if need_dx else 0
    reduce_y = broadcast_numel(out_shape, y_shape) if need_dy else 0
    if runtime.numel(y_shape) == 1 < runtime.numel(out_shape):
        # a sum of everything (replicate's gradient): in slot 0 its tile would be one element
        # looped over every axis; in slot 1 all axes are tile rows, each tile a column sum
        return False
    return reduce_y > reduce_x


def grad_is_dense(t, out_shape) -> bool:
    return isinstance(t, torch.Tensor) and tuple(t.shape) == tuple(out_shape)


def grad_like(t, out_shape, dtype=None):
    """The gradient buffer ``pointwise_vjp`` returns for operand ``t`` (used by fake kernels)."""
    if grad_is_dense(t, out_shape):
        return torch.empty_like(t, dtype=dtype)
    return torch.empty(t.shape, dtype=dtype or t.dtype, device=t.device)


def _partials(r, device):
    """The [slots, numel] partials of dx and of dy (None where a gradient has one slot: the kernel
    writes it directly), both in one buffer: one combine launch adds them."""
    sizes = [r.dx_slots * runtime.numel(r.x_shape) if r.dx_slots > 1 else 0,
             r.dy_slots * runtime.numel(r.y_shape) if r.dy_slots > 1 else 0]
    if not any(sizes):
        return None, None
    buffer = torch.empty(sum(sizes), dtype=r.part_dtype, device=device)
    dx = buffer[:sizes[0]].view(r.dx_slots, -1) if sizes[0] else None
    dy = buffer[sizes[0]:].view(r.dy_slots, -1) if sizes[1] else None
    return dx, dy


def pointwise_vjp(g: torch.Tensor, out_shape, dfx=None, dfy=None, *, x=None, y=None,
                  x_shape=None, y_shape=None, x_dtype=None, y_dtype=None,
                  load_x: bool = True, load_y: bool = True, param: float | None = None,
                  arity: int = 1, scale: float = 1.0, kernel=pointwise_vjp_kernel, combine=combine_vjp_kernel,
                  swap: bool | None = None):
    """Gradients of ``out = f(x[, y])`` given the upstream ``g`` (broadcastable to ``out_shape``).

    ``dfx``/``dfy`` are the scalar partial derivatives (None: that gradient is not wanted).
    x and y are the operands (tensors or numbers); ``load_*`` says whether the derivatives read
    them; ``*_shape``/``*_dtype`` describe the gradient to produce. Returns ``(dx, dy)`` of
    exactly those shapes (None where not wanted). ``kernel``/``combine`` are the VJP kernels, or
    the forward entry points around the same templates (``reduce_to(forward=True)``: sums).
    """
    out_shape = tuple(out_shape)
    key = (id(kernel), id(dfx), id(dfy), arity, param is None, swap, out_shape, _operand_key(g), g.device,
           _operand_key(x), _operand_key(y), x_shape if x_shape is None else tuple(x_shape),
           y_shape if y_shape is None else tuple(y_shape), x_dtype, y_dtype,
           load_x, load_y)
    r = _vjp_memo.get(key)
    if r is None:
        r = _vjp_memo[key] = _VjpRecipe(g, out_shape, dfx, dfy, x, y, x_shape, y_shape, x_dtype, y_dtype,
                                        load_x, load_y, param, arity, kernel, swap)
    if r.swap:
        x, y = y, x
    device = g.device
    if r.empty:
        dx = torch.zeros(r.x_shape, dtype=r.x_dtype, device=device) if r.need_dx else None
        dy = torch.zeros(r.y_shape, dtype=r.y_dtype, device=device) if r.need_dy else None
        return (dy, dx) if r.swap else (dx, dy)
    xv = x if r.load_x else None
    yv = y if r.load_y else None
    dx_part, dy_part = _partials(r, device)
    dx = dy = None
    if r.need_dx:
        dx = (torch.empty_like(x, dtype=r.x_dtype) if r.dx_dense else
              torch.empty(r.x_shape, dtype=r.x_dtype, device=device))
    if r.need_dy:
        dy = (torch.empty_like(y, dtype=r.y_dtype) if r.dy_dense else
              torch.empty(r.y_shape, dtype=r.y_dtype, device=device))
    c = r.launch.fixed["COMPUTE"]  # float64 math takes a number's bits (tiles.Operand.VALUE)
    none = split_float(0.0, c)
    numbers = (*(split_float(xv, c) if r.x_value else none), *(split_float(yv, c) if r.y_value else none),
               *(split_float(param, c) if param is not None else none), *split_float(scale, c))
    dx_ptr, dy_ptr = (dx_part if dx_part is not None else dx), (dy_part if dy_part is not None else dy)
    r.launch(dx_ptr=dx_ptr if dx_ptr is not None else g, dy_ptr=dy_ptr if dy_ptr is not None else g,
             x_ptr=xv if isinstance(xv, torch.Tensor) else g, y_ptr=yv if isinstance(yv, torch.Tensor) else g,
             g_ptr=g, numbers=numbers)
    sums = [(p, d) for p, d in ((dx_part, dx), (dy_part, dy)) if p is not None]
    if sums:
        combine_partials(*sums[0], kernel=combine, second=sums[1] if len(sums) > 1 else None)
    return (dy, dx) if r.swap else (dx, dy)


class _VjpRecipe:
    """What ``pointwise_vjp`` decides once per combination of kernels, shapes, strides and
    dtypes (operands in kernel slot order: ``swap`` says whether x and y trade places): the
    gradients' shapes, dtypes and buffers, the launch and which operands are Python numbers."""

    __slots__ = ("swap", "empty", "need_dx", "need_dy", "load_x", "load_y", "x_shape", "y_shape", "x_dtype",
                 "y_dtype", "dx_dense", "dy_dense", "launch", "dx_slots", "dy_slots", "part_dtype", "x_value",
                 "y_value", "objects")

    def __init__(self, g, out_shape, dfx, dfy, x, y, x_shape, y_shape, x_dtype, y_dtype, load_x, load_y, param,
                 arity, kernel, swap):
        self.objects = (kernel, dfx, dfy)  # the memo's key holds their ids: keep them alive with it
        need_dx, need_dy = dfx is not None, dfy is not None
        x_shape = tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(x_shape if x_shape is not None else out_shape)
        y_shape = tuple(y.shape) if isinstance(y, torch.Tensor) else tuple(y_shape if y_shape is not None else out_shape)
        x_dtype = x.dtype if isinstance(x, torch.Tensor) else (x_dtype or g.dtype)
        y_dtype = y.dtype if isinstance(y, torch.Tensor) else (y_dtype or g.dtype)
        if swap is None:
            swap = arity == 2 and vjp_should_swap(out_shape, x_shape, y_shape, need_dx, need_dy)
        self.swap = swap
        if swap:
            dfx, dfy, x, y, x_shape, y_shape = dfy, dfx, y, x, y_shape, x_shape
            x_dtype, y_dtype, load_x, load_y, need_dx, need_dy = y_dtype, x_dtype, load_y, load_x, need_dy, need_dx
        self.need_dx, self.need_dy, self.load_x, self.load_y = need_dx, need_dy, load_x, load_y
        self.x_shape, self.y_shape, self.x_dtype, self.y_dtype = x_shape, y_shape, x_dtype, y_dtype
        N = runtime.numel(out_shape)
        self.empty = N == 0
        self.dx_slots = self.dy_slots = 1
        if self.empty:
            return
        xv = x if load_x else None
        yv = y if load_y else None
        # A gradient of the output's shape takes its operand's layout (empty_like); the others are
        # contiguous (``grad_like`` is the same rule, for the fake kernels).
        self.dx_dense = need_dx and grad_is_dense(x, out_shape)
        self.dy_dense = need_dy and grad_is_dense(y, out_shape)
        dx_strides = torch.empty_like(x, dtype=x_dtype).stride() if self.dx_dense else None
        dy_strides = torch.empty_like(y, dtype=y_dtype).stride() if self.dy_dense else None
        self.launch, dx_slots, dy_slots, self.part_dtype = _vjp_plan(
            kernel, dfx, dfy, arity, param is not None, swap, out_shape, describe(g, N), describe(xv, N),
            describe(yv, N), x_shape, y_shape, dx_strides, dy_strides, g.device)
        self.dx_slots = dx_slots if need_dx else 1
        self.dy_slots = dy_slots if need_dy else 1
        self.x_value, self.y_value = operand_mode(xv, N) == VALUE, operand_mode(yv, N) == VALUE


_vjp_memo = runtime.plan_memo()


@runtime.plan_cache
def _vjp_plan(kernel, dfx, dfy, arity, has_param, swap, out_shape, gd, xd, yd, x_shape, y_shape, dx_strides,
              dy_strides, device):
    """The VJP launch for one combination of op, shapes, strides and dtypes (cached). Returns
    (LaunchPlan, dx slots, dy slots, partials dtype)."""
    N = runtime.numel(out_shape)
    need_dx, need_dy = dfx is not None, dfy is not None

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
    # no B axes: the tile's rows are A steps instead (A_ROWS, templates/pointwise.py)
    a_rows = B == 1 and A > 1
    if a_rows:
        min_rows, warps = A_ROWS_TILES[need_dy]
        block_b, block_c, num_warps = tile_shape(A, C, gd[3], N, min_rows=min_rows, warps=warps)
    else:
        block_b, block_c, num_warps = tile_shape(B, C, gd[3], N)
    if need_dy and block_b < min(B, REDUCE_ROWS):
        # dy's partial rows (one per B block, written, then read by the combine) cost 2 / BLOCK_B
        # of g's bytes: narrower columns for at least REDUCE_ROWS rows, the same tile size
        block_b, block_c = min(runtime.next_pow2(B), REDUCE_ROWS), max(1, block_b * block_c // REDUCE_ROWS)
    n_b = 1 if a_rows else runtime.cdiv(B, block_b)
    tiles = n_b * runtime.cdiv(C, block_c)
    compute = runtime.compute_dtype(*[d[3] for d in (xd, yd, gd) if d[3] is not None])
    part_dtype = torch.float64 if compute.primitive_bitwidth == 64 else torch.float32
    # dx's partial rows, small beside g
    most = most_partial_rows(N * runtime.dtype_size(gd[3]),
                             max(1, runtime.numel(x_shape)) * runtime.dtype_size(part_dtype))
    # (A_ROWS: a part's last step of BLOCK_B rows may be partly masked: its bytes, not its
    # steps, set a memory-bound program's time)
    a_per_program = a_split(A, tiles, device, N, num_warps, most) if need_dx else A
    chunks = runtime.cdiv(A, a_per_program)
    g_mode = gd[0]
    if g_mode == Operand.TENSOR and B > 1 and all(s == 0 for s in plan.B.strides["g"]):
        g_mode = Operand.ROW
    dx_slots, dy_slots = (chunks if need_dx else 1), (n_b if need_dy else 1)
    stages = 1
    if a_rows and not need_dy:
        step_bytes = block_b * block_c * sum(runtime.dtype_size(d[3]) for d in (gd, yd) if d[0] == TENSOR)
        stages = runtime.pipeline_stages(A_ROWS_STAGES, step_bytes, A_ROWS_PIPELINE_SMEM, a_per_program // block_b)
    zeros = tuple(tuple(0 for _ in grp.sizes) for grp in (plan.A, plan.B, plan.C))

    def st(name):
        return plan.strides(name) if name in layouts else zeros

    x_st, y_st, g_st, dx_st, dy_st = st("x"), st("y"), st("g"), st("dx"), st("dy")
    extents = [runtime.max_offset(d[1], d[2]) for d in (xd, yd, gd) if d[0] == TENSOR]
    extents += [dx_slots * runtime.numel(x_shape) - 1, dy_slots * runtime.numel(y_shape) - 1]  # last offsets
    launch = runtime.LaunchPlan(
        kernel, (tiles * chunks,), {"num_warps": num_warps},
        groups=(plan.A.sizes, plan.B.sizes, plan.C.sizes, A, B, a_per_program), C=C,
        x_b=x_st[1], x_c=x_st[2], x_c1=x_st[2][-1], y_a=y_st[0], y_c=y_st[2], y_c1=y_st[2][-1],
        g_a=g_st[0], g_b=g_st[1], g_c=g_st[2], g_c1=g_st[2][-1], dx_b=dx_st[1], dx_c=dx_st[2], dx_c1=dx_st[2][-1],
        dy_a=dy_st[0], dy_c=dy_st[2], dy_c1=dy_st[2][-1],
        dx_slot=(dx_slots > 1) * runtime.numel(x_shape), dy_slot=(dy_slots > 1) * runtime.numel(y_shape),
        DFX=dfx, DFY=dfy, ARITY=arity, HAS_PARAM=has_param, SWAP=swap, NEED_DX=need_dx, NEED_DY=need_dy,
        X_MODE=int(xd[0]), Y_MODE=int(yd[0]), G_MODE=int(g_mode), COMPUTE=compute, BLOCK_B=block_b, BLOCK_C=block_c,
        INDEX_64=runtime.needs_int64(*extents), A_ROWS=a_rows, STAGES=stages)
    return launch, dx_slots, dy_slots, part_dtype


def reduce_to(g: torch.Tensor, shape, *, forward: bool = False) -> torch.Tensor:
    """Sum ``g`` over the axes along which ``shape`` broadcasts to ``g.shape`` (one reduce pass
    plus, when several programs share an output element, a fixed-order combine). ``forward``:
    the forward kernels (``sum``, ``sum_to``) rather than the VJP ones (a broadcast operand's
    gradient)."""
    kernels = dict(kernel=sum_fwd_kernel, combine=combine_fwd_kernel) if forward else {}
    _, out = pointwise_vjp(g, g.shape, None, one_xy, y_shape=tuple(shape), y_dtype=g.dtype, load_x=False,
                           load_y=False, arity=2, **kernels)
    return out


def broadcast_to(g: torch.Tensor, shape, *, backward: bool = True) -> torch.Tensor:
    """``g`` (which broadcasts to ``shape``) materialized at ``shape``, reading each element of g
    once per tile row (``backward``: the VJP entry point; else the forward one, ``replicate``)."""
    out = torch.empty(shape, dtype=g.dtype, device=g.device)
    return pointwise(identity, out, None, g, arity=1, kernel=broadcast_bwd_kernel if backward else pointwise_fwd_kernel)
