"""Launchers of the loss kernels: the shared map-reduce loss (elementwise losses, cross_entropy
between distributions), cross_entropy_logits and cosine_similarity_loss. Plans are cached per
combination of shapes, strides and dtypes."""
from __future__ import annotations

import torch

from .. import runtime
from ..broadcast import aligned_strides, contiguous_strides, plan_reduce
from ..bwd.loss import ce_logits_bwd_kernel, cosine_bwd_kernel, loss_vjp_kernel
from ..fwd.loss import ce_logits_fwd_kernel, cosine_finish_kernel, cosine_fwd_kernel, loss_reduce_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..tiles import split_float
from .reduce import combine_partials, most_partial_rows, wave_split


def partial_dtype(*dtypes):
    return torch.float64 if torch.float64 in dtypes else torch.float32


def rows_config(R: int, C: int) -> tuple[int, int]:
    """[BLOCK_R, BLOCK_C] tile of a row kernel: the class axis first, rows with what is left."""
    tile = runtime.tile_elements()
    block_c = min(runtime.next_pow2(C), tile if runtime.INTERPRETER else 2048)
    block_r = min(runtime.next_pow2(R), max(1, tile // block_c))
    return block_r, block_c


def _meta(layout):
    """A (shape, strides) pair as a meta tensor (plans are computed from layouts, not tensors)."""
    return torch.empty_strided(layout[0], layout[1], device="meta")


def layout(t):
    """(shape, strides) of a tensor: what the row planners key on."""
    return (tuple(t.shape), tuple(t.stride()))


def _extents(*layouts):
    """The largest offsets reachable in these (shape, strides) layouts (None skipped): the int64
    decision counts every tensor a kernel addresses, gradient buffers and upstream gradient too."""
    return [runtime.max_offset(*v) for v in layouts if v is not None]


def unsqueeze_dims(g, dims):
    """A per-row gradient viewed with size-1 axes at the summed ``dims`` (a view, never a copy)."""
    for d in sorted(dims):
        g = g.unsqueeze(d)
    return g


# --------------------------------------------------------------------------------------------
# the map-reduce loss


_forward_memo = runtime.plan_memo()
_vjp_memo = runtime.plan_memo()

# The reduced forward's software pipelining: STAGES - 1 = 2 tiles of x and t in shared memory, so
# that one tile's loads are in flight while FN runs on another (docs/benchmarks/issue13-loss-forwards.md).
# Only where both fit in PIPELINE_SMEM (16-bit x and t at 4096 elements: a program's shared memory
# then caps no CTA count the registers allow) and a program walks enough whole tiles to pay the
# prologue's two; else plain loads (STAGES = 1). cross_entropy_logits' class loop follows the same
# rule (``stream_stages``; 2 x 2048 16-bit logits a step: docs/benchmarks/issue13-inflight.md).
PIPELINE_STAGES = 3
PIPELINE_SMEM = 32 << 10


def stream_stages(steps: int, stage_bytes: int) -> int:
    """STAGES of a loss kernel's streaming loop of ``steps`` tiles, ``stage_bytes`` of loads each
    (every operand the pipeliner copies): ``runtime.pipeline_stages`` at PIPELINE_STAGES within
    PIPELINE_SMEM."""
    return runtime.pipeline_stages(PIPELINE_STAGES, stage_bytes, PIPELINE_SMEM, steps)


def reduce_stages(block_r, block_k, r_per_program, x_dtype, t_dtype) -> int:
    """The reduced forward's STAGES for its tiles and chunk."""
    return stream_stages(r_per_program // block_r,
                         block_r * block_k * (runtime.dtype_size(x_dtype) + runtime.dtype_size(t_dtype)))


@runtime.plan_cache
def _loss_forward_plan(fn, x, t, x_dtype, t_dtype, has_param, reduction, row_dims, device):
    shape = x[0]
    reduced = row_dims if reduction == "none" else tuple(range(len(shape)))
    out_shape = [1 if d in reduced else s for d, s in enumerate(shape)]
    layouts = {"x": aligned_strides(_meta(x), shape), "t": aligned_strides(_meta(t), shape),
               "out": contiguous_strides(out_shape, shape)}
    R_group, K_group = plan_reduce(shape, reduced, layouts)
    R, K = R_group.numel, K_group.numel
    block_k = min(runtime.next_pow2(K), runtime.tile_elements())
    block_r = min(runtime.next_pow2(R), max(1, runtime.tile_elements() // block_k))
    k_blocks = runtime.cdiv(K, block_k)
    num_warps = runtime.num_warps_for(block_r * block_k)
    # R chunks for whole waves, as far as their partial rows of K sums stay small beside x and
    # each walks a tile and min_split_elements at least; a chunk starts at a multiple of 16
    # (Triton then knows the alignment of a contiguous x: 128-bit loads), its last BLOCK_R step
    # partly masked where it must
    most = min(most_partial_rows(R * K * runtime.dtype_size(x_dtype),
                                 max(1, K) * runtime.dtype_size(partial_dtype(x_dtype, t_dtype))),
               runtime.cdiv(R, block_r), R * K // (k_blocks * runtime.min_split_elements()))
    r_per_program = R if runtime.INTERPRETER else wave_split(R, k_blocks, most, device, num_warps,
                                                             unit=min(block_r, 16))
    chunks = runtime.cdiv(R, r_per_program)
    out_k = K_group.strides["out"] if chunks == 1 else contiguous_strides(K_group.sizes, K_group.sizes)
    launch = runtime.LaunchPlan(
        loss_reduce_kernel, (k_blocks, chunks), {"num_warps": num_warps},
        r_sizes=R_group.sizes, k_sizes=K_group.sizes, R=R, K=K, r_per_program=r_per_program,
        x_r=R_group.strides["x"], x_k=K_group.strides["x"], t_r=R_group.strides["t"], t_k=K_group.strides["t"],
        out_k=out_k, part_slot=K if chunks > 1 else 0, FN=fn, HAS_PARAM=has_param,
        COMPUTE=runtime.compute_dtype(x_dtype, t_dtype), BLOCK_R=block_r, BLOCK_K=block_k, EVEN_K=K % block_k == 0,
        STAGES=reduce_stages(block_r, block_k, r_per_program, x_dtype, t_dtype),
        INDEX_64=runtime.needs_int64(*_extents(x, t), runtime.numel(out_shape) - 1, chunks * K - 1))  # last offsets
    return launch, chunks, K


def loss_forward(fn, x, t, param, reduction, row_dims=(), mean_rows=None):
    """``reduction`` of ``fn(x, t)``: 'none' sums over ``row_dims`` only (elementwise when
    empty); 'mean' divides by ``mean_rows`` (default: every element)."""
    dtype = torch.result_type(x, t)
    out_shape = tuple(s for d, s in enumerate(x.shape) if d not in row_dims) if reduction == "none" else ()
    out = torch.empty(out_shape, dtype=dtype, device=x.device)
    N = x.numel()
    if N == 0:
        return out if reduction == "none" else out.zero_()  # a mean over nothing is 0
    key = (id(fn), x.shape, x.stride(), t.shape, t.stride(), x.dtype, t.dtype, param is None, reduction,
           tuple(row_dims), x.device)
    planned = _forward_memo.get(key)
    if planned is None:
        planned = _forward_memo[key] = _loss_forward_plan(fn, layout(x), layout(t), x.dtype, t.dtype,
                                                          param is not None, reduction, tuple(row_dims), x.device)
    launch, chunks, K = planned
    scale = 1.0 / (mean_rows if mean_rows is not None else N) if reduction == "mean" else 1.0
    target = out if chunks == 1 else torch.empty((chunks, K), dtype=partial_dtype(dtype), device=x.device)
    c = launch.fixed["COMPUTE"]
    launch(out_ptr=target, x_ptr=x, t_ptr=t,
           numbers=(*split_float(param if param is not None else 0.0, c), *split_float(scale, c)))
    if chunks > 1:
        combine_partials(target, out, kernel=combine_fwd_kernel)
    return out


@runtime.plan_cache
def _loss_vjp_plan(dfx, dft, x, t, g, dx, dt, x_dtype, t_dtype, has_param, reduction, row_dims):
    shape = x[0]
    reduced = row_dims if reduction == "none" else ()
    layouts = {"x": aligned_strides(_meta(x), shape), "t": aligned_strides(_meta(t), shape)}
    for name, v in (("dx", dx), ("dt", dt)):
        if v is not None:
            layouts[name] = aligned_strides(_meta(v), shape)
    g_element = reduction != "none"
    if not g_element:
        layouts["g"] = aligned_strides(unsqueeze_dims(_meta(g), reduced), shape)
    R_group, K_group = plan_reduce(shape, reduced, layouts)
    R, K = R_group.numel, K_group.numel
    block_k = min(runtime.next_pow2(K), runtime.tile_elements())
    block_r = min(runtime.next_pow2(R), max(1, runtime.tile_elements() // block_k))
    zeros = tuple(0 for _ in K_group.sizes)
    r_zeros = tuple(0 for _ in R_group.sizes)

    def st(name, group, default):
        return group.strides[name] if name in layouts else default

    return runtime.LaunchPlan(
        loss_vjp_kernel, (runtime.cdiv(K, block_k) * runtime.cdiv(R, block_r),),
        {"num_warps": runtime.num_warps_for(block_r * block_k)},
        r_sizes=R_group.sizes, k_sizes=K_group.sizes, R=R, K=K,
        x_r=R_group.strides["x"], x_k=K_group.strides["x"], t_r=R_group.strides["t"], t_k=K_group.strides["t"],
        g_k=st("g", K_group, zeros), dx_r=st("dx", R_group, r_zeros), dx_k=st("dx", K_group, zeros),
        dt_r=st("dt", R_group, r_zeros), dt_k=st("dt", K_group, zeros),
        DFX=dfx, DFT=dft, HAS_PARAM=has_param, G_ELEMENT=g_element, NEED_DX=dx is not None, NEED_DT=dt is not None,
        COMPUTE=runtime.compute_dtype(x_dtype, t_dtype), BLOCK_R=block_r, BLOCK_K=block_k,
        INDEX_64=runtime.needs_int64(*_extents(x, t, g, dx, dt)))


def loss_vjp(dfx, dft, x, t, grad, param, reduction, needs, row_dims=(), mean_rows=None):
    need_x, need_t = needs
    dx = torch.empty_like(x) if need_x else None
    dt = torch.empty_like(t) if need_t else None
    N = x.numel()
    if N == 0 or not (need_x or need_t):
        return dx, dt
    # dx and dt take x's and t's layouts (empty_like): the key names only whether they exist.
    key = (id(dfx), id(dft), x.shape, x.stride(), t.shape, t.stride(), grad.shape, grad.stride(), need_x, need_t,
           x.dtype, t.dtype, param is None, reduction, tuple(row_dims))
    launch = _vjp_memo.get(key)
    if launch is None:
        launch = _vjp_memo[key] = _loss_vjp_plan(
            dfx, dft, layout(x), layout(t), layout(grad), layout(dx) if need_x else None,
            layout(dt) if need_t else None, x.dtype, t.dtype, param is not None, reduction, tuple(row_dims))
    scale = 1.0 / (mean_rows if mean_rows is not None else N) if reduction == "mean" else 1.0
    c = launch.fixed["COMPUTE"]
    launch(dx_ptr=dx if need_x else grad, dt_ptr=dt if need_t else grad, x_ptr=x, t_ptr=t, g_ptr=grad,
           numbers=(*split_float(param if param is not None else 0.0, c), *split_float(scale, c)))
    return dx, dt


# --------------------------------------------------------------------------------------------
# cross_entropy_logits: online log-sum-exp rows


def _index_strides(target, shape, dim):
    """Class-index target strides over the logits' axes (0 on the class axis)."""
    st = list(target[1])
    st.insert(dim, 0)
    return tuple(0 if s == 1 else x for s, x in zip(shape, st))


def _cel_rows(z, target, probs, dim, extra: dict):
    shape = z[0]
    layouts = {"z": aligned_strides(_meta(z), shape),
               "t": aligned_strides(_meta(target), shape) if probs else _index_strides(target, shape, dim), **extra}
    _, rows = plan_reduce(shape, [dim], layouts)
    return rows


@runtime.plan_cache
def ce_logits_forward_plan(z, target, probs, dim, reduction, dtype, save=True, alone=True, smooth=False,
                           t_dtype=None):
    """(LaunchPlan, programs) of the forward row kernel. ``save``: store what the VJP reads;
    ``alone``: the launch is the whole reduction (not one chunk of linear_cross_entropy's), so
    a single program writes the loss itself (FINAL: no partials, no combine); ``smooth``: the
    label smoothing is not 0 (the kernel sums each row's logits only then); ``t_dtype``: the
    probability targets' dtype (index targets: None). The class loop is pipelined
    (``stream_stages``: the next two steps of logits, and probabilities, in shared memory while
    the exps run on this one), where ptxas issued a thread's second 16-byte load of a step after
    the exps of its first (16 bytes in flight a thread: docs/benchmarks/issue13-inflight.md)."""
    rows = _cel_rows(z, target, probs, dim, {})
    C = z[0][dim]
    R = rows.numel
    block_r, block_c = rows_config(R, C)
    step_bytes = block_r * block_c * (runtime.dtype_size(dtype) + (runtime.dtype_size(t_dtype) if probs else 0))
    programs = runtime.cdiv(R, block_r)
    reduce = reduction != "none"
    launch = runtime.LaunchPlan(
        ce_logits_fwd_kernel, (programs,), {"num_warps": runtime.num_warps_for(block_r * block_c)},
        r_sizes=rows.sizes, R=R, C=C, z_r=rows.strides["z"], t_r=rows.strides["t"], z_c=z[1][dim],
        t_c=target[1][dim] if probs else 0, PROBS=probs, SMOOTH=smooth, REDUCE=reduce, MEAN=reduction == "mean",
        FINAL=reduce and alone and programs == 1, SAVE=save, COMPUTE=runtime.compute_dtype(dtype),
        BLOCK_R=block_r, BLOCK_C=block_c, STAGES=stream_stages(runtime.cdiv(C, block_c), step_bytes),
        INDEX_64=runtime.needs_int64(*_extents(z, target), R - 1, 2 * programs - 1))  # last offsets: loss/lse rows, partials
    return launch, programs


def ce_logits_stats(stats, R, probs):
    """The views of the saved statistics [R (+ R) + 1]: (log-sum-exp, target mass, factor); the
    target mass, stored for probability targets only, is the log-sum-exp's view otherwise (unread)."""
    lse = stats[:R]
    return lse, stats[R:2 * R] if probs else lse, stats[-1:]


def cross_entropy_logits_forward(z, target, dim, ignore_index, label_smoothing, reduction, out, stats=None):
    """The loss into ``out``; with ``stats`` (a gradient will be asked for), per row the
    log-sum-exp (and target mass) and 1 / (rows counted) for a mean (``ce_logits_stats``'s
    layout; on the device: no host sync). One program's worth of rows is one launch."""
    C, R = z.shape[dim], (z.numel() // z.shape[dim] if z.shape[dim] else 0)
    probs = target.is_floating_point()
    save = stats is not None
    if R == 0 or C == 0:  # (the VJP reads no statistics then; saved, they are defined all the same)
        return (out.zero_(), stats.fill_(1.0)) if save else out.zero_()
    launch, programs = ce_logits_forward_plan(layout(z), layout(target), probs, dim, reduction, z.dtype, save,
                                               smooth=label_smoothing != 0, t_dtype=target.dtype if probs else None)
    lse, tsum, factor = ce_logits_stats(stats, R, probs) if save else (out, out, out)  # unsaved: pointers unread
    numbers = split_float(label_smoothing, launch.fixed["COMPUTE"])
    if reduction == "none" or launch.fixed["FINAL"]:
        launch(loss_ptr=out, lse_ptr=lse, tsum_ptr=tsum, factor_ptr=factor, z_ptr=z, t_ptr=target, numbers=numbers,
               ignore_index=ignore_index)
    else:
        parts = torch.empty((programs, 2), dtype=partial_dtype(z.dtype), device=z.device)
        launch(loss_ptr=parts, lse_ptr=lse, tsum_ptr=tsum, factor_ptr=factor, z_ptr=z, t_ptr=target, numbers=numbers,
               ignore_index=ignore_index)
        combine_mean(parts, out, factor if save else None)
    return (out, stats) if save else out


def combine_mean(parts, out, factor=None):
    """``out`` = the sum of the (sum, count) partials over max(count, 1), ``factor`` = 1 / max(count,
    1). Without ``factor`` (nothing saved), the factor lands in the partials' first slot, unread:
    the one combine program has read every partial before it stores."""
    combine_partials(parts, out, kernel=combine_fwd_kernel, factor_out=factor if factor is not None else parts[0, :1])


@runtime.plan_cache
def ce_logits_vjp_plan(z, target, probs, g, dz, dt, dim, reduction, dtype, device):
    """The VJP row kernel's LaunchPlan; ``g`` None: an upstream gradient of 1 (a forward forming
    its gradients, linear_cross_entropy's), nothing to load. Too few rows for a full wave: each
    row's classes are split over programs (the gradient is elementwise given the row's saved
    log-sum-exp, so a split costs only the per-row numbers, read again per program)."""
    shape = z[0]
    g_element = reduction != "none" or g is None
    extra = {} if g_element else {"g": aligned_strides(_meta(g).unsqueeze(dim), shape)}
    for name, v in (("dz", dz), ("dt", dt)):
        if v is not None:
            extra[name] = aligned_strides(_meta(v), shape)
    rows = _cel_rows(z, target, probs, dim, extra)
    zeros = tuple(0 for _ in rows.sizes)
    C, R = shape[dim], rows.numel
    block_r, block_c = rows_config(R, C)
    programs, num_warps = runtime.cdiv(R, block_r), runtime.num_warps_for(block_r * block_c)
    c_per_program = wave_split(C, programs, runtime.cdiv(C, block_c), device, num_warps, unit=16)
    return runtime.LaunchPlan(
        ce_logits_bwd_kernel, (programs, runtime.cdiv(C, c_per_program)), {"num_warps": num_warps},
        r_sizes=rows.sizes, R=R, C=C, c_per_program=c_per_program, z_r=rows.strides["z"], t_r=rows.strides["t"],
        z_c=z[1][dim],
        t_c=target[1][dim] if probs else 0, g_r=rows.strides.get("g", zeros), dz_r=rows.strides.get("dz", zeros),
        dz_c=dz[1][dim] if dz is not None else 0, dt_r=rows.strides.get("dt", zeros),
        dt_c=dt[1][dim] if dt is not None else 0, PROBS=probs, G_ELEMENT=g_element, G_ONE=g is None,
        FACTOR_FROM_PTR=reduction == "mean", NEED_DZ=dz is not None, NEED_DT=dt is not None,
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_R=block_r, BLOCK_C=block_c,
        INDEX_64=runtime.needs_int64(*_extents(z, target, g, dz, dt)))


def cross_entropy_logits_vjp(z, target, dim, ignore_index, label_smoothing, reduction, grad, stats, need_z, need_t):
    probs = target.is_floating_point()
    need_t = need_t and probs
    dz = torch.empty_like(z) if need_z else None
    dt = torch.empty_like(target) if need_t else None
    C = z.shape[dim]
    R = z.numel() // C if C else 0
    if R == 0 or C == 0 or not (need_z or need_t):
        return dz, dt
    lse, tsum, factor = ce_logits_stats(stats, R, probs)
    launch = ce_logits_vjp_plan(layout(z), layout(target), probs, layout(grad), layout(dz) if need_z else None,
                           layout(dt) if need_t else None, dim, reduction, z.dtype, z.device)
    c = launch.fixed["COMPUTE"]
    launch(dz_ptr=dz if need_z else grad, dt_ptr=dt if need_t else grad, z_ptr=z, t_ptr=target, g_ptr=grad,
           lse_ptr=lse, tsum_ptr=tsum, factor_ptr=factor,
           numbers=(*split_float(label_smoothing, c), *split_float(1.0, c)), ignore_index=ignore_index)
    return dz, dt


# --------------------------------------------------------------------------------------------
# cosine_similarity_loss: one slice or one per slice along dim


def _cos_groups(x, t, class_dims, extra):
    shape = x[0]
    layouts = {"x": aligned_strides(_meta(x), shape), "t": aligned_strides(_meta(t), shape), **extra}
    return plan_reduce(shape, class_dims, layouts)


def column_chunks(R: int, C: int, block_r: int, block_c: int, device, least: int = 0) -> tuple[int, int]:
    """(chunks, columns per chunk) of a row kernel whose few long slices leave the device idle
    (dim=None's single slice): each slice's columns are split over programs, in whole BLOCK_C
    steps, until the launch fills the device. Enough slices to fill it: one chunk. ``least``:
    the fewest elements a chunk must walk (a split that pays a finishing launch)."""
    programs = runtime.cdiv(R, block_r)
    chunks = 1
    if 2 * programs <= runtime.device_programs(device):
        # device_programs aims at 4 programs per SM; these are light (4 warps, <= 72 registers
        # on sm_90: 7 to 12 fit per SM), so 4x that many make >= 1 full wave
        target = 4 * runtime.device_programs(device)
        limits = [runtime.cdiv(C, block_c), target // programs] + ([R * C // least] if least else [])
        chunks = max(1, min(limits))
    per_chunk = runtime.cdiv(runtime.cdiv(C, chunks), block_c) * block_c
    return runtime.cdiv(C, per_chunk), per_chunk


@runtime.plan_cache
def _cos_forward_plan(x, t, class_dims, reduction, x_dtype, t_dtype, device, save):
    cls, rows = _cos_groups(x, t, class_dims, {})
    R, C = rows.numel, cls.numel
    block_r, block_c = rows_config(R, C)
    programs = runtime.cdiv(R, block_r)
    # a split pays the finishing launch: only chunks of min_split_elements or more
    chunks, per_chunk = column_chunks(R, C, block_r, block_c, device, least=runtime.min_split_elements())
    compute = runtime.compute_dtype(x_dtype, t_dtype)
    launch = runtime.LaunchPlan(
        cosine_fwd_kernel, (programs, chunks), {"num_warps": runtime.num_warps_for(block_r * block_c)},
        r_sizes=rows.sizes, c_sizes=cls.sizes, R=R, C=C, c_per_program=per_chunk, x_r=rows.strides["x"],
        t_r=rows.strides["t"], x_c=cls.strides["x"], t_c=cls.strides["t"], REDUCE=reduction != "none",
        SPLIT=chunks > 1, SAVE=save, COMPUTE=compute, BLOCK_R=block_r, BLOCK_C=block_c,
        INDEX_64=runtime.needs_int64(*_extents(x, t), 3 * R * chunks - 1))  # last offsets: 3 stats per row and chunk
    finish = None
    if chunks > 1:
        finish_r = min(runtime.next_pow2(R), 256)
        # a quarter tile: three accumulators and three loads of it stay in registers
        finish_p = min(runtime.next_pow2(chunks), max(1, runtime.tile_elements() // 4 // finish_r))
        finish = runtime.LaunchPlan(cosine_finish_kernel, (1,), {"num_warps": 4}, R=R, P=chunks,
                                    REDUCE=reduction != "none", SAVE=save, COMPUTE=compute, BLOCK_P=finish_p,
                                    BLOCK_R=finish_r)
    return launch, finish, programs, chunks, R


def cosine_forward(x, t, class_dims, eps, reduction, out, stats=None):
    """The loss into ``out`` and, with ``stats`` (a gradient will be asked for), per slice <x,t>,
    |x|^2, |t|^2 into it (saved for the VJP). Few long slices: column chunks write partial
    statistics, one finishing program adds them. Slices in one program: its sum, scaled, is the
    loss (one launch); else one partial sum per program, combined."""
    save = stats is not None
    if x.numel() == 0:
        return (out.zero_(), stats.zero_()) if save else out.zero_()
    launch, finish, programs, chunks, R = _cos_forward_plan(layout(x), layout(t), class_dims, reduction, x.dtype,
                                                            t.dtype, x.device, save)
    reduce = reduction != "none"
    c = launch.fixed["COMPUTE"]
    scale = 1.0 / R if reduction == "mean" else 1.0
    target = stats if save else out  # unsaved: stats_ptr unread (split: the partials)
    part_dtype = partial_dtype(x.dtype, t.dtype)
    if finish is not None:
        parts = torch.empty((chunks, 3, R), dtype=part_dtype, device=x.device)
        launch(loss_ptr=out, stats_ptr=parts, x_ptr=x, t_ptr=t, numbers=split_float(eps, c))
        finish(loss_ptr=out, stats_ptr=target, part_ptr=parts, numbers=(*split_float(eps, c), *split_float(scale, c)))
    elif not reduce or programs == 1:
        launch(loss_ptr=out, stats_ptr=target, x_ptr=x, t_ptr=t, numbers=(*split_float(eps, c), *split_float(scale, c)))
    else:
        parts = torch.empty((programs, 1), dtype=part_dtype, device=x.device)
        launch(loss_ptr=parts, stats_ptr=target, x_ptr=x, t_ptr=t, numbers=(*split_float(eps, c), *split_float(1.0, c)))
        combine_partials(parts, out, scale=scale, kernel=combine_fwd_kernel)
    return (out, stats) if save else out


@runtime.plan_cache
def _cos_vjp_plan(x, t, g, dx, dt, class_dims, g_dim, x_dtype, t_dtype, device):
    extra = {} if g_dim is None else {"g": aligned_strides(_meta(g).unsqueeze(g_dim), x[0])}
    for name, v in (("dx", dx), ("dt", dt)):
        if v is not None:
            extra[name] = aligned_strides(_meta(v), x[0])
    cls, rows = _cos_groups(x, t, class_dims, extra)
    R, C = rows.numel, cls.numel
    r_zeros, c_zeros = tuple(0 for _ in rows.sizes), tuple(0 for _ in cls.sizes)
    block_r, block_c = rows_config(R, C)
    chunks, per_chunk = column_chunks(R, C, block_r, block_c, device)
    launch = runtime.LaunchPlan(
        cosine_bwd_kernel, (runtime.cdiv(R, block_r), chunks), {"num_warps": runtime.num_warps_for(block_r * block_c)},
        r_sizes=rows.sizes, c_sizes=cls.sizes, R=R, C=C, c_per_program=per_chunk, x_r=rows.strides["x"],
        t_r=rows.strides["t"],
        x_c=cls.strides["x"], t_c=cls.strides["t"], g_r=rows.strides.get("g", r_zeros),
        dx_r=rows.strides.get("dx", r_zeros), dx_c=cls.strides.get("dx", c_zeros),
        dt_r=rows.strides.get("dt", r_zeros), dt_c=cls.strides.get("dt", c_zeros),
        G_ELEMENT=g_dim is None, NEED_DX=dx is not None, NEED_DT=dt is not None,
        COMPUTE=runtime.compute_dtype(x_dtype, t_dtype), BLOCK_R=block_r, BLOCK_C=block_c,
        INDEX_64=runtime.needs_int64(*_extents(x, t, g, dx, dt)))
    return launch, R


def cosine_vjp(x, t, class_dims, g_dim, eps, reduction, grad, stats, need_x, need_t):
    """``g_dim``: the axis the per-slice upstream gradient lacks (None: one element)."""
    dx = torch.empty_like(x) if need_x else None
    dt = torch.empty_like(t) if need_t else None
    if x.numel() == 0 or not (need_x or need_t):
        return dx, dt
    launch, R = _cos_vjp_plan(layout(x), layout(t), layout(grad), layout(dx) if need_x else None,
                              layout(dt) if need_t else None, class_dims, g_dim, x.dtype, t.dtype, x.device)
    scale = 1.0 / R if reduction == "mean" else 1.0
    c = launch.fixed["COMPUTE"]
    launch(dx_ptr=dx if need_x else grad, dt_ptr=dt if need_t else grad, x_ptr=x, t_ptr=t, g_ptr=grad,
           stats_ptr=stats, numbers=(*split_float(eps, c), *split_float(scale, c)))
    return dx, dt
