"""Losses (SPEC section 3): prediction first, target second, ``reduction`` = mean | sum | none.

Elementwise losses and ``cross_entropy`` between distributions are three ``@triton.jit`` scalar
functions (loss, d/dx, d/dt) and one ``elementwise_loss`` call each, on the shared loss
kernels. ``cross_entropy_logits`` and ``cosine_similarity_loss`` have row kernels of their own.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime, scalar
from ..broadcast import aligned_strides, contiguous_strides, plan_reduce
from ..bwd.loss import ce_logits_bwd_kernel, cosine_bwd_kernel, loss_vjp_kernel
from ..bwd.reduce import combine_partials
from ..fwd.loss import ce_logits_fwd_kernel, combine_kernel, cosine_fwd_kernel, loss_reduce_kernel
from ..spec import Arg, OpSpec, needs_all, register, REQUIRED  # noqa: F401
from ..tiles import split_float

REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"triton_ops.{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_pair(op, x, t, x_name, t_name):
    runtime.check_float(op, x_name, x)
    runtime.check_float(op, t_name, t)
    runtime.check_devices(op, {x_name: x, t_name: t})
    if x.shape != t.shape:
        raise ValueError(f"triton_ops.{op}: {t_name} shape {tuple(t.shape)} must equal {x_name} shape {tuple(x.shape)}")


def _normalize_dim(op, dim, rank):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"triton_ops.{op}: dim must be an int, got {dim!r}")
    return runtime.normalize_dims(op, dim, rank)[0]


def _partial_dtype(*dtypes):
    return torch.float64 if torch.float64 in dtypes else torch.float32


def _rows_config(R: int, C: int) -> tuple[int, int]:
    """[BLOCK_R, BLOCK_C] tile of a row kernel: the class axis first, rows with what is left."""
    tile = runtime.tile_elements()
    block_c = min(runtime.next_pow2(C), tile if runtime.INTERPRETER else 2048)
    block_r = min(runtime.next_pow2(R), max(1, tile // block_c))
    return block_r, block_c


# --------------------------------------------------------------------------------------------
# elementwise losses (and cross_entropy between distributions): shared launchers


def _unsqueeze_dims(g, dims):
    """A per-row gradient viewed with size-1 axes at the summed ``dims`` (a view, never a copy)."""
    for d in sorted(dims):
        g = g.unsqueeze(d)
    return g


def _loss_plan(x, t, out, row_dims, reduction):
    """The reduced group R and kept group K of the forward: 'none' keeps all but ``row_dims``,
    'mean'/'sum' reduce every axis."""
    shape = tuple(x.shape)
    reduced = row_dims if reduction == "none" else tuple(range(len(shape)))
    layouts = {"x": aligned_strides(x, shape), "t": aligned_strides(t, shape)}
    if out is not None:
        out_shape = [1 if d in reduced else s for d, s in enumerate(shape)]
        layouts["out"] = contiguous_strides(out_shape, shape)
    return plan_reduce(shape, reduced, layouts)


def loss_forward(fn, x, t, param, reduction, row_dims=(), mean_rows=None):
    """``reduction`` of ``fn(x, t)``: 'none' sums over ``row_dims`` only (elementwise when
    empty); 'mean' divides by ``mean_rows`` (default: every element)."""
    dtype = torch.result_type(x, t)
    shape = tuple(x.shape)
    out_shape = tuple(s for d, s in enumerate(shape) if d not in row_dims) if reduction == "none" else ()
    out = torch.empty(out_shape, dtype=dtype, device=x.device)
    N = x.numel()
    if N == 0:
        return out if reduction == "none" else out.zero_()  # a mean over nothing is 0
    R_group, K_group = _loss_plan(x, t, out, row_dims, reduction)
    R, K = R_group.numel, K_group.numel
    block_k = min(runtime.next_pow2(K), runtime.tile_elements())
    block_r = min(runtime.next_pow2(R), max(1, runtime.tile_elements() // block_k))
    k_blocks = runtime.cdiv(K, block_k)
    chunks = 1 if runtime.INTERPRETER else max(1, min(runtime.cdiv(R, block_r),
                                                      runtime.device_programs(x.device) // k_blocks))
    r_per_program = runtime.cdiv(runtime.cdiv(R, chunks), block_r) * block_r
    chunks = runtime.cdiv(R, r_per_program)
    scale = 1.0 / (mean_rows if mean_rows is not None else N) if reduction == "mean" else 1.0
    target = out if chunks == 1 else torch.empty((chunks, K), dtype=_partial_dtype(dtype), device=x.device)
    out_k = K_group.strides["out"] if chunks == 1 else contiguous_strides(K_group.sizes, K_group.sizes)
    numbers = (*split_float(param if param is not None else 0.0), *split_float(scale))
    runtime.launch(loss_reduce_kernel, (k_blocks, chunks), target, x, t, numbers, R_group.sizes, K_group.sizes,
                   R, K, r_per_program, R_group.strides["x"], K_group.strides["x"], R_group.strides["t"],
                   K_group.strides["t"], out_k, K if chunks > 1 else 0,
                   FN=fn, HAS_PARAM=param is not None, COMPUTE=runtime.compute_dtype(x.dtype, t.dtype),
                   BLOCK_R=block_r, BLOCK_K=block_k,
                   INDEX_64=runtime.tensors_need_int64(x, t, extra=(chunks * K - 1,)),
                   num_warps=runtime.num_warps_for(block_r * block_k))
    if chunks > 1:
        combine_partials(target, out, kernel=combine_kernel)
    return out


def loss_vjp(dfx, dft, x, t, grad, param, reduction, needs, row_dims=(), mean_rows=None):
    need_x, need_t = needs
    dx = torch.empty_like(x) if need_x else None
    dt = torch.empty_like(t) if need_t else None
    N = x.numel()
    if N == 0 or not (need_x or need_t):
        return dx, dt
    shape = tuple(x.shape)
    reduced = row_dims if reduction == "none" else ()
    layouts = {"x": aligned_strides(x, shape), "t": aligned_strides(t, shape)}
    for name, v in (("dx", dx), ("dt", dt)):
        if v is not None:
            layouts[name] = aligned_strides(v, shape)
    g_element = reduction != "none"
    if not g_element:
        layouts["g"] = aligned_strides(_unsqueeze_dims(grad, reduced), shape)
    R_group, K_group = plan_reduce(shape, reduced, layouts)
    R, K = R_group.numel, K_group.numel
    block_k = min(runtime.next_pow2(K), runtime.tile_elements())
    block_r = min(runtime.next_pow2(R), max(1, runtime.tile_elements() // block_k))
    scale = 1.0 / (mean_rows if mean_rows is not None else N) if reduction == "mean" else 1.0
    zeros = tuple(0 for _ in K_group.sizes)
    r_zeros = tuple(0 for _ in R_group.sizes)

    def st(name, group, default):
        return group.strides[name] if name in layouts else default

    runtime.launch(
        loss_vjp_kernel, (runtime.cdiv(K, block_k) * runtime.cdiv(R, block_r),),
        dx if need_x else grad, dt if need_t else grad, x, t, grad,
        (*split_float(param if param is not None else 0.0), *split_float(scale)),
        R_group.sizes, K_group.sizes, R, K,
        R_group.strides["x"], K_group.strides["x"], R_group.strides["t"], K_group.strides["t"],
        st("g", K_group, zeros), st("dx", R_group, r_zeros), st("dx", K_group, zeros),
        st("dt", R_group, r_zeros), st("dt", K_group, zeros),
        DFX=dfx, DFT=dft, HAS_PARAM=param is not None, G_ELEMENT=g_element, NEED_DX=need_x, NEED_DT=need_t,
        COMPUTE=runtime.compute_dtype(x.dtype, t.dtype), BLOCK_R=block_r, BLOCK_K=block_k,
        INDEX_64=runtime.tensors_need_int64(x, t, grad),
        num_warps=runtime.num_warps_for(block_r * block_k))
    return dx, dt


def _loss_min_bytes(x, t, reduction, out_numel, g_numel, needs_t_grad=False):
    es_x, es_t = x.element_size(), t.element_size()
    out_es = runtime.dtype_size(torch.result_type(x, t))
    fwd = x.numel() * (es_x + es_t) + out_numel * out_es
    bwd = x.numel() * (es_x + es_t) + g_numel * out_es + x.numel() * es_x + (x.numel() * es_t if needs_t_grad else 0)
    return fwd, bwd


def _randn_pair(shape, dtype, device, gen, target=None):
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = target(shape, gen) if target else torch.randn(shape, generator=gen, dtype=torch.float64)
    return x.to(device, dtype), t.to(device, dtype)


def elementwise_loss(name: str, loss, d_input, d_target, *, reference, names=("x", "t"),
                     param: tuple[str, float] | None = None, param_positive: bool = True, sample=None,
                     doc: str = "") -> OpSpec:
    """Register a loss from ``@triton.jit`` scalar functions ``loss(x, t[, p])`` and its two
    partial derivatives (``d_target=None``: the loss is a function of x - t, so d/dt = -d/dx).
    Forward: one fused map-reduce pass; backward: one pass."""
    args = (Arg(names[0]), Arg(names[1]))
    if param:
        args += (Arg(param[0], "float", float(param[1])),)
    args += (Arg("reduction", "str", "mean"),)
    has_param = param is not None

    def split(rest):
        return (float(rest[0]) if has_param else None), rest[-1]

    def check(x, t, *rest):
        _check_pair(name, x, t, *names)
        if has_param:
            value = runtime.check_param(name, param[0], rest[0], positive=param_positive)
            rest = (value, rest[-1])
        _check_reduction(name, rest[-1])
        return (x, t, *rest)

    def forward(x, t, *rest):
        p, reduction = split(rest)
        return loss_forward(loss, x, t, p, reduction)

    def vjp(x, t, *rest, needs=None):
        *rest, grad = rest
        p, reduction = split(rest)
        return loss_vjp(d_input, d_target, x, t, grad, p, reduction, needs_all(args, (x, t), needs))

    def alloc(x, t, *rest):
        shape = tuple(x.shape) if rest[-1] == "none" else ()
        return x.new_empty(shape, dtype=torch.result_type(x, t))

    def min_bytes(x, t, *rest):
        out = x.numel() if rest[-1] == "none" else 1
        return _loss_min_bytes(x, t, rest[-1], out, out)

    spec = OpSpec(
        name=name, family="loss", args=args, forward=forward, vjp=vjp, reference=reference,
        fwd_kernels=(loss_reduce_kernel, combine_kernel), bwd_kernels=(loss_vjp_kernel,),
        check=check, alloc=alloc, vjp_alloc=lambda x, t, *rest: [torch.empty_like(x), torch.empty_like(t)],
        min_bytes=min_bytes, sample=sample or _randn_pair, doc=doc)
    return register(spec)


def _reduce(values, reduction, rows=None):
    if reduction == "none":
        return values
    total = values.sum()
    return total / max(rows if rows is not None else values.numel(), 1) if reduction == "mean" else total


# --------------------------------------------------------------------------------------------
# scalar math of the elementwise losses


@triton.jit
def mse_l(x, t):
    return (x - t) * (x - t)


@triton.jit
def mse_dx(x, t):
    return 2.0 * (x - t)


@triton.jit
def mae_l(x, t):
    return tl.abs(x - t)


@triton.jit
def mae_dx(x, t):
    return scalar.sign(x - t)


@triton.jit
def huber_l(x, t, delta):
    d = tl.abs(x - t)
    return tl.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))


@triton.jit
def huber_dx(x, t, delta):
    d = x - t
    return tl.where(tl.abs(d) < delta, d, delta * scalar.sign(d))


@triton.jit
def hinge_l(x, t):
    return tl.maximum(1.0 - t * x, 0.0)


@triton.jit
def hinge_dx(x, t):
    return tl.where(1.0 - t * x > 0, -t, 0.0)


@triton.jit
def hinge_dt(x, t):
    return tl.where(1.0 - t * x > 0, -x, 0.0)


@triton.jit
def poisson_l(x, t):
    return tl.exp(x) - t * x


@triton.jit
def poisson_dx(x, t):
    return tl.exp(x) - t


@triton.jit
def poisson_dt(x, t):
    return -x


@triton.jit
def log_cosh_l(x, t):
    d = tl.abs(x - t)
    return d + scalar.log1p(tl.exp(-2.0 * d)) - 0.6931471805599453


@triton.jit
def log_cosh_dx(x, t):
    return scalar.tanh(x - t)


@triton.jit
def bce_l(p, y, eps):
    q = tl.minimum(tl.maximum(p, eps), 1.0 - eps)
    return -(y * tl.log(q) + (1.0 - y) * tl.log(1.0 - q))


@triton.jit
def bce_dp(p, y, eps):
    inside = (p > eps) & (p < 1.0 - eps)
    safe = tl.where(inside, p, 0.5)
    return tl.where(inside, (safe - y) / (safe * (1.0 - safe)), 0.0)


@triton.jit
def bce_dy(p, y, eps):
    q = tl.minimum(tl.maximum(p, eps), 1.0 - eps)
    return tl.log(1.0 - q) - tl.log(q)


@triton.jit
def xent_l(q, p, eps):
    return -p * tl.log(tl.minimum(tl.maximum(q, eps), 1.0 - eps))


@triton.jit
def xent_dq(q, p, eps):
    inside = (q > eps) & (q < 1.0 - eps)
    return tl.where(inside, -p / tl.where(inside, q, 1.0), 0.0)


@triton.jit
def xent_dp(q, p, eps):
    return -tl.log(tl.minimum(tl.maximum(q, eps), 1.0 - eps))


# --------------------------------------------------------------------------------------------
# references (SPEC section 3, plain torch)


def _log_cosh_ref(x, t, reduction="mean"):
    d = (x - t).abs()
    return _reduce(d + torch.log1p(torch.exp(-2 * d)) - torch.log(torch.tensor(2.0, dtype=d.dtype)), reduction)


def _huber_ref(x, t, delta=1.0, reduction="mean"):
    d = (x - t).abs()
    return _reduce(torch.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def _bce_ref(p, y, eps=1e-6, reduction="mean"):
    q = p.clamp(eps, 1 - eps)
    return _reduce(-(y * torch.log(q) + (1 - y) * torch.log(1 - q)), reduction)


def _prob_pair(shape, dtype, device, gen):
    p = torch.rand(shape, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    y = torch.rand(shape, generator=gen, dtype=torch.float64)
    return p.to(device, dtype), y.to(device, dtype)


def _sign_pair(shape, dtype, device, gen):
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    t = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).double()
    return x.to(device, dtype), t.to(device, dtype)


def _poisson_pair(shape, dtype, device, gen):
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.5
    t = torch.poisson(torch.full(shape, 2.0, dtype=torch.float64), generator=gen)
    return x.to(device, dtype), t.to(device, dtype)


mse_loss = elementwise_loss("mse_loss", mse_l, mse_dx, None,
                            reference=lambda x, t, reduction="mean": _reduce((x - t) ** 2, reduction),
                            doc="mse_loss(x, t, reduction='mean'): (x - t)^2.").fn
mae_loss = elementwise_loss("mae_loss", mae_l, mae_dx, None,
                            reference=lambda x, t, reduction="mean": _reduce((x - t).abs(), reduction),
                            doc="mae_loss(x, t, reduction='mean'): |x - t| (gradient sign(x - t), sign(0) = 0).").fn
huber_loss = elementwise_loss("huber_loss", huber_l, huber_dx, None, param=("delta", 1.0), reference=_huber_ref,
                              doc="huber_loss(x, t, delta=1.0, reduction='mean') (= F.huber_loss).").fn
hinge_loss = elementwise_loss("hinge_loss", hinge_l, hinge_dx, hinge_dt, sample=_sign_pair,
                              reference=lambda x, t, reduction="mean": _reduce(torch.clamp(1 - t * x, min=0), reduction),
                              doc="hinge_loss(x, t, reduction='mean'): max(0, 1 - t*x), t in {-1, 1}.").fn
poisson_loss = elementwise_loss("poisson_loss", poisson_l, poisson_dx, poisson_dt, sample=_poisson_pair,
                                reference=lambda x, t, reduction="mean": _reduce(torch.exp(x) - t * x, reduction),
                                doc="poisson_loss(x, t, reduction='mean'): exp(x) - t*x, x the log-rate.").fn
log_cosh_loss = elementwise_loss("log_cosh_loss", log_cosh_l, log_cosh_dx, None, reference=_log_cosh_ref,
                                 doc="log_cosh_loss(x, t, reduction='mean'): log cosh(x - t), stable for any x - t.").fn
binary_cross_entropy = elementwise_loss(
    "binary_cross_entropy", bce_l, bce_dp, bce_dy, names=("p", "y"), param=("eps", 1e-6), reference=_bce_ref,
    sample=_prob_pair, doc="binary_cross_entropy(p, y, eps=1e-6, reduction='mean'): p clamped to [eps, 1-eps].").fn


# --------------------------------------------------------------------------------------------
# cross_entropy between distributions: elementwise -p log q, summed per row along dim


def _xent_check(q, p, dim, eps, reduction):
    _check_pair("cross_entropy", q, p, "q", "p")
    dim = _normalize_dim("cross_entropy", dim, q.dim())
    eps = runtime.check_param("cross_entropy", "eps", eps, positive=True)
    _check_reduction("cross_entropy", reduction)
    return q, p, dim, eps, reduction


def _rows_of(x, dim):
    return x.numel() // x.shape[dim] if x.dim() and x.shape[dim] else (1 if x.dim() == 0 else 0)


def _xent_row_dims(q, dim):
    return (_nd(dim, q.dim()),) if q.dim() else ()


def _xent_ref(q, p, dim=-1, eps=1e-6, reduction="mean"):
    per_row = (-p * torch.log(q.clamp(eps, 1 - eps))).sum(dim) if q.dim() else -p * torch.log(q.clamp(eps, 1 - eps))
    return _reduce(per_row, reduction, rows=_rows_of(q, dim % max(q.dim(), 1)))


def _dist_pair(shape, dtype, device, gen):
    q = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), -1)
    p = torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), -1)
    return q.to(device, dtype), p.to(device, dtype)


XENT_ARGS = (Arg("q"), Arg("p"), Arg("dim", "int", -1), Arg("eps", "float", 1e-6), Arg("reduction", "str", "mean"))
cross_entropy = register(OpSpec(
    name="cross_entropy", family="loss", args=XENT_ARGS,
    forward=lambda q, p, dim, eps, reduction: loss_forward(xent_l, q, p, eps, reduction, _xent_row_dims(q, dim),
                                                           mean_rows=_rows_of(q, dim)),
    vjp=lambda q, p, dim, eps, reduction, grad, needs=None: loss_vjp(
        xent_dq, xent_dp, q, p, grad, eps, reduction, needs_all(XENT_ARGS, (q, p), needs), _xent_row_dims(q, dim),
        mean_rows=_rows_of(q, dim)),
    reference=_xent_ref,
    fwd_kernels=(loss_reduce_kernel, combine_kernel), bwd_kernels=(loss_vjp_kernel,),
    check=_xent_check,
    alloc=lambda q, p, dim, eps, reduction: q.new_empty(
        tuple(s for d, s in enumerate(q.shape) if d != _nd(dim, q.dim())) if reduction == "none" else (),
        dtype=torch.result_type(q, p)),
    vjp_alloc=lambda q, p, dim, eps, reduction, grad: [torch.empty_like(q), torch.empty_like(p)],
    min_bytes=lambda q, p, dim=-1, eps=1e-6, reduction="mean": _loss_min_bytes(
        q, p, reduction, _rows_of(q, dim) if reduction == "none" else 1, _rows_of(q, dim) if reduction == "none" else 1),
    sample=lambda shape, dtype, device, gen: (*_dist_pair(shape, dtype, device, gen), -1, 1e-6, "mean"),
    doc="cross_entropy(q, p, dim=-1, eps=1e-6, reduction='mean'): -sum_c p_c log clamp(q_c, eps, 1-eps) per row.")).fn


# --------------------------------------------------------------------------------------------
# cross_entropy_logits: online log-sum-exp rows, probability or class-index targets


def _index_strides(target, shape, dim):
    """Class-index target strides over the logits' axes (0 on the class axis)."""
    st = list(target.stride())
    st.insert(dim, 0)
    return tuple(0 if s == 1 else x for s, x in zip(shape, st))


def _cel_plan(z, target, dim, extra: dict):
    shape = tuple(z.shape)
    probs = target.is_floating_point()
    layouts = {"z": aligned_strides(z, shape),
               "t": aligned_strides(target, shape) if probs else _index_strides(target, shape, dim), **extra}
    _, rows = plan_reduce(shape, [dim], layouts)
    return probs, rows


def _cel_check(z, target, dim, ignore_index, label_smoothing, reduction):
    op = "cross_entropy_logits"
    runtime.check_float(op, "z", z)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"triton_ops.{op}: target must be a tensor, got {type(target).__name__}")
    runtime.check_devices(op, {"z": z, "target": target})
    if z.dim() == 0:
        raise ValueError(f"triton_ops.{op}: z must have a class axis (got a 0-d tensor)")
    dim = _normalize_dim(op, dim, z.dim())
    _check_reduction(op, reduction)
    label_smoothing = runtime.check_param(op, "label_smoothing", label_smoothing, nonneg=True)
    if label_smoothing > 1:
        raise ValueError(f"triton_ops.{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"triton_ops.{op}: ignore_index must be an int")
    if target.is_floating_point():
        if target.shape != z.shape:
            raise ValueError(f"triton_ops.{op}: probability target shape {tuple(target.shape)} must equal z shape "
                             f"{tuple(z.shape)}")
    else:
        if target.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"triton_ops.{op}: class-index target must be int64 or int32, got {target.dtype}")
        expected = tuple(s for d, s in enumerate(z.shape) if d != dim)
        if tuple(target.shape) != expected:
            raise ValueError(f"triton_ops.{op}: class-index target shape {tuple(target.shape)} must be z's shape "
                             f"without dim {dim}: {expected}")
        # CPU only, and not while torch.compile traces (a data-dependent check): on CUDA it would
        # be a host sync. Unchecked, an out-of-range index gives a NaN loss for its row.
        if target.device.type == "cpu" and target.numel() and not torch.compiler.is_compiling():
            bad = ((target != ignore_index) & ((target < 0) | (target >= z.shape[dim]))).sum().item()
            if bad:
                raise IndexError(f"triton_ops.{op}: {bad} target index(es) outside [0, {z.shape[dim]})")
    return z, target, dim, ignore_index, label_smoothing, reduction


def _nd(dim, rank):
    """A dim as the custom op may receive it (negative when called through torch.ops directly)."""
    return dim % max(rank, 1) if dim is not None else None


def _cel_out_shape(z, dim, reduction):
    dim = _nd(dim, z.dim())
    return tuple(s for d, s in enumerate(z.shape) if d != dim) if reduction == "none" else ()


def _cel_alloc(z, target, dim, ignore_index, label_smoothing, reduction):
    dim = _nd(dim, z.dim())
    C = z.shape[dim]
    R = z.numel() // C if C else 0
    stat = _partial_dtype(z.dtype)
    dtype = torch.result_type(z, target) if target.is_floating_point() else z.dtype
    return (z.new_empty(_cel_out_shape(z, dim, reduction), dtype=dtype), z.new_empty((R,), dtype=stat),
            z.new_empty((R,), dtype=stat), z.new_empty((1,), dtype=stat))


def _cel_forward_saved(z, target, dim, ignore_index, label_smoothing, reduction):
    dim = _nd(dim, z.dim())
    out, lse, tsum, factor = _cel_alloc(z, target, dim, ignore_index, label_smoothing, reduction)
    factor.fill_(1.0)
    C, R = z.shape[dim], lse.numel()
    if R == 0 or C == 0:
        return out.zero_(), lse, tsum, factor
    probs, rows = _cel_plan(z, target, dim, {})
    block_r, block_c = _rows_config(R, C)
    programs = runtime.cdiv(R, block_r)
    reduce = reduction != "none"
    loss_target = torch.empty((programs, 2), dtype=lse.dtype, device=z.device) if reduce else out
    runtime.launch(ce_logits_fwd_kernel, (programs,), loss_target, lse, tsum, z, target,
                   split_float(label_smoothing), rows.sizes, R, C, rows.strides["z"], rows.strides["t"],
                   z.stride(dim), target.stride(dim) if probs else 0, ignore_index,
                   PROBS=probs, REDUCE=reduce, MEAN=reduction == "mean", COMPUTE=runtime.compute_dtype(z.dtype),
                   BLOCK_R=block_r, BLOCK_C=block_c,
                   INDEX_64=runtime.tensors_need_int64(z, target),
                   num_warps=runtime.num_warps_for(block_r * block_c))
    if reduce:
        combine_partials(loss_target, out, kernel=combine_kernel, factor_out=factor)
    return out, lse, tsum, factor


def _cel_vjp(z, target, dim, ignore_index, label_smoothing, reduction, grad, needs=None, saved=None):
    lse, tsum, factor = saved
    dim = _nd(dim, z.dim())
    need_z, need_t = needs_all(CEL_ARGS, (z, target), needs)
    probs = target.is_floating_point()
    need_t = need_t and probs
    dz = torch.empty_like(z) if need_z else None
    dt = torch.empty_like(target) if need_t else None
    C, R = z.shape[dim], lse.numel()
    if R == 0 or C == 0 or not (need_z or need_t):
        return dz, dt
    g_element = reduction != "none"
    extra = {} if g_element else {"g": aligned_strides(grad.unsqueeze(dim), tuple(z.shape))}
    for name, v in (("dz", dz), ("dt", dt)):
        if v is not None:
            extra[name] = aligned_strides(v, tuple(z.shape))
    _, rows = _cel_plan(z, target, dim, extra)
    zeros = tuple(0 for _ in rows.sizes)
    block_r, block_c = _rows_config(R, C)
    runtime.launch(ce_logits_bwd_kernel, (runtime.cdiv(R, block_r),), dz if need_z else grad, dt if need_t else grad,
                   z, target, grad, lse, tsum, factor, (*split_float(label_smoothing), *split_float(1.0)),
                   rows.sizes, R, C, rows.strides["z"], rows.strides["t"], z.stride(dim),
                   target.stride(dim) if probs else 0, rows.strides.get("g", zeros),
                   rows.strides.get("dz", zeros), dz.stride(dim) if need_z else 0,
                   rows.strides.get("dt", zeros), dt.stride(dim) if need_t else 0, ignore_index,
                   PROBS=probs, G_ELEMENT=g_element, FACTOR_FROM_PTR=reduction == "mean", NEED_DZ=need_z,
                   NEED_DT=need_t, COMPUTE=runtime.compute_dtype(z.dtype), BLOCK_R=block_r, BLOCK_C=block_c,
                   INDEX_64=runtime.tensors_need_int64(z, target),
                   num_warps=runtime.num_warps_for(block_r * block_c))
    return dz, dt


def _cel_ref(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    logp = torch.log_softmax(z, dim)
    C = z.shape[dim]
    ls = label_smoothing
    if target.is_floating_point():
        per_row = -((target * (1 - ls) + ls / C) * logp).sum(dim)
        rows = per_row.numel()
    else:
        valid = target != ignore_index
        idx = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(dim)
        nll = -logp.gather(dim, idx).squeeze(dim)
        per_row = torch.where(valid, (1 - ls) * nll - ls * logp.mean(dim), torch.zeros_like(nll))
        rows = int(valid.sum())
    return _reduce(per_row, reduction, rows=rows)


def _cel_min_bytes(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    C = z.shape[dim]
    R = z.numel() // max(C, 1)
    es = z.element_size()
    t_bytes = target.numel() * target.element_size()
    out = R * es if reduction == "none" else es
    stats = R * 8  # the log-sum-exp and target mass saved per row (float32)
    fwd = z.numel() * es + t_bytes + out + stats
    bwd = z.numel() * es + t_bytes + (R * es if reduction == "none" else es) + stats + z.numel() * es
    return fwd, bwd


def _cel_sample(shape, dtype, device, gen):
    z = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(device, dtype)
    target = torch.randint(0, shape[-1], tuple(shape[:-1]), generator=gen).to(device)
    return z, target, -1, -100, 0.0, "mean"


CEL_ARGS = (Arg("z"), Arg("target"), Arg("dim", "int", -1), Arg("ignore_index", "int", -100),
            Arg("label_smoothing", "float", 0.0), Arg("reduction", "str", "mean"))
cross_entropy_logits = register(OpSpec(
    name="cross_entropy_logits", family="loss", args=CEL_ARGS,
    forward=None, forward_saved=_cel_forward_saved, n_saved=3, vjp=_cel_vjp, reference=_cel_ref,
    fwd_kernels=(ce_logits_fwd_kernel, combine_kernel), bwd_kernels=(ce_logits_bwd_kernel,),
    check=_cel_check, alloc=_cel_alloc,
    vjp_alloc=lambda z, target, *rest: [torch.empty_like(z),
                                        torch.empty_like(target) if target.is_floating_point() else None],
    min_bytes=_cel_min_bytes, sample=_cel_sample,
    doc="cross_entropy_logits(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction='mean'): "
        "softmax cross-entropy on logits; target = probabilities (z's shape) or class indices.")).fn


# --------------------------------------------------------------------------------------------
# cosine_similarity_loss: one slice (dim=None) or one per slice along dim


def _cos_check(x, t, dim, eps, reduction):
    _check_pair("cosine_similarity_loss", x, t, "x", "t")
    if dim is not None:
        dim = _normalize_dim("cosine_similarity_loss", dim, x.dim())
    eps = runtime.check_param("cosine_similarity_loss", "eps", eps, positive=True)
    _check_reduction("cosine_similarity_loss", reduction)
    return x, t, dim, eps, reduction


def _cos_class_dims(x, dim):
    dim = _nd(dim, x.dim())
    return tuple(range(x.dim())) if dim is None else ((dim,) if x.dim() else ())


def _cos_out_shape(x, dim, reduction):
    dim = _nd(dim, x.dim())
    if reduction != "none" or dim is None:
        return ()
    return tuple(s for d, s in enumerate(x.shape) if d != dim)


def _cos_alloc(x, t, dim, eps, reduction):
    dim = _nd(dim, x.dim())
    rows = 1 if dim is None or x.dim() == 0 else x.numel() // max(x.shape[dim], 1)
    return (x.new_empty(_cos_out_shape(x, dim, reduction), dtype=torch.result_type(x, t)),
            x.new_empty((3, rows), dtype=_partial_dtype(x.dtype, t.dtype)))


def _cos_plan(x, t, dim, extra):
    shape = tuple(x.shape)
    layouts = {"x": aligned_strides(x, shape), "t": aligned_strides(t, shape), **extra}
    return plan_reduce(shape, _cos_class_dims(x, dim), layouts)


def _cos_forward_saved(x, t, dim, eps, reduction):
    out, stats = _cos_alloc(x, t, dim, eps, reduction)
    if x.numel() == 0:
        return out.zero_(), stats.zero_()
    cls, rows = _cos_plan(x, t, dim, {})
    R, C = rows.numel, cls.numel
    block_r, block_c = _rows_config(R, C)
    programs = runtime.cdiv(R, block_r)
    reduce = reduction != "none"
    loss_target = torch.empty((programs, 1), dtype=stats.dtype, device=x.device) if reduce else out
    runtime.launch(cosine_fwd_kernel, (programs,), loss_target, stats, x, t, split_float(eps), rows.sizes, cls.sizes,
                   R, C, rows.strides["x"], rows.strides["t"], cls.strides["x"], cls.strides["t"],
                   REDUCE=reduce, COMPUTE=runtime.compute_dtype(x.dtype, t.dtype), BLOCK_R=block_r, BLOCK_C=block_c,
                   INDEX_64=runtime.tensors_need_int64(x, t),
                   num_warps=runtime.num_warps_for(block_r * block_c))
    if reduce:
        combine_partials(loss_target, out, scale=1.0 / R if reduction == "mean" else 1.0, kernel=combine_kernel)
    return out, stats


def _cos_vjp(x, t, dim, eps, reduction, grad, needs=None, saved=None):
    (stats,) = saved
    dim = _nd(dim, x.dim())
    need_x, need_t = needs_all(COS_ARGS, (x, t), needs)
    dx = torch.empty_like(x) if need_x else None
    dt = torch.empty_like(t) if need_t else None
    if x.numel() == 0 or not (need_x or need_t):
        return dx, dt
    g_element = reduction != "none" or dim is None
    extra = {} if g_element else {"g": aligned_strides(grad.unsqueeze(dim), tuple(x.shape))}
    for name, v in (("dx", dx), ("dt", dt)):
        if v is not None:
            extra[name] = aligned_strides(v, tuple(x.shape))
    cls, rows = _cos_plan(x, t, dim, extra)
    R, C = rows.numel, cls.numel
    r_zeros, c_zeros = tuple(0 for _ in rows.sizes), tuple(0 for _ in cls.sizes)
    block_r, block_c = _rows_config(R, C)
    scale = 1.0 / R if reduction == "mean" else 1.0
    runtime.launch(cosine_bwd_kernel, (runtime.cdiv(R, block_r),), dx if need_x else grad, dt if need_t else grad,
                   x, t, grad, stats, (*split_float(eps), *split_float(scale)), rows.sizes, cls.sizes, R, C,
                   rows.strides["x"], rows.strides["t"], cls.strides["x"], cls.strides["t"],
                   rows.strides.get("g", r_zeros), rows.strides.get("dx", r_zeros), cls.strides.get("dx", c_zeros),
                   rows.strides.get("dt", r_zeros), cls.strides.get("dt", c_zeros),
                   G_ELEMENT=g_element, NEED_DX=need_x, NEED_DT=need_t, COMPUTE=runtime.compute_dtype(x.dtype, t.dtype),
                   BLOCK_R=block_r, BLOCK_C=block_c,
                   INDEX_64=runtime.tensors_need_int64(x, t),
                   num_warps=runtime.num_warps_for(block_r * block_c))
    return dx, dt


def _cos_ref(x, t, dim=None, eps=1e-6, reduction="mean"):
    if dim is None:
        dot, nx, nt = (x * t).sum(), x.norm(), t.norm()
    else:
        dot, nx, nt = (x * t).sum(dim), x.norm(dim=dim), t.norm(dim=dim)
    per = 1 - dot / (nx.clamp_min(eps) * nt.clamp_min(eps))
    return _reduce(per, reduction)


def _cos_min_bytes(x, t, dim=None, eps=1e-6, reduction="mean"):
    rows = 1 if dim is None or x.dim() == 0 else x.numel() // max(x.shape[dim], 1)
    out = rows if reduction == "none" else 1
    stats = 3 * rows * 4
    fwd, bwd = _loss_min_bytes(x, t, reduction, out, out)
    return fwd + stats, bwd + stats


COS_ARGS = (Arg("x"), Arg("t"), Arg("dim", "int?", None), Arg("eps", "float", 1e-6), Arg("reduction", "str", "mean"))
cosine_similarity_loss = register(OpSpec(
    name="cosine_similarity_loss", family="loss", args=COS_ARGS,
    forward=None, forward_saved=_cos_forward_saved, n_saved=1, vjp=_cos_vjp, reference=_cos_ref,
    fwd_kernels=(cosine_fwd_kernel, combine_kernel), bwd_kernels=(cosine_bwd_kernel,),
    check=_cos_check, alloc=_cos_alloc,
    vjp_alloc=lambda x, t, *rest: [torch.empty_like(x), torch.empty_like(t)],
    min_bytes=_cos_min_bytes,
    sample=lambda shape, dtype, device, gen: (*_randn_pair(shape, dtype, device, gen), -1, 1e-6, "mean"),
    doc="cosine_similarity_loss(x, t, dim=None, eps=1e-6, reduction='mean'): 1 - <x,t>/(max(|x|,eps) max(|t|,eps)), "
        "one cosine over the flattened tensors (dim=None) or one per slice along dim.")).fn
