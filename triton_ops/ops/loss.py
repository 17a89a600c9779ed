"""Elementwise losses and ``cross_entropy`` between distributions (SPEC section 3): prediction
first, target second, ``reduction`` = mean | sum | none. Each is three ``@triton.jit`` scalar
functions (loss, d/dx, d/dt) and one ``elementwise_loss`` call, on the shared map-reduce loss
kernels (``launchers/loss.py``). ``cross_entropy_logits`` (``ops/cross_entropy.py``) and
``cosine_similarity_loss`` (``ops/cosine.py``) have row kernels of their own; the helpers below
are shared with them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime, scalar
from ..launchers.loss import loss_forward, loss_vjp, partial_dtype
from ..fwd.loss import loss_reduce_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..bwd.loss import loss_vjp_kernel
from ..spec import Arg, OpSpec, needs_all, register

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"triton_ops.{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_pair(op, x, t, x_name, t_name):
    runtime.check_float(op, x_name, x)
    runtime.check_float(op, t_name, t)
    runtime.check_devices(op, {x_name: x, t_name: t})
    if x.shape != t.shape:
        raise ValueError(f"triton_ops.{op}: {t_name} shape {tuple(t.shape)} must equal {x_name} shape {tuple(x.shape)}")


def normalize_dim(op, dim, rank):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"triton_ops.{op}: dim must be an int, got {dim!r}")
    return runtime.normalize_dims(op, dim, rank)[0]


def nd(dim, rank):
    """A dim as the custom op may receive it (negative when called through torch.ops directly)."""
    return dim % max(rank, 1) if dim is not None else None


def reduce(values, reduction, rows=None):
    if reduction == "none":
        return values
    total = values.sum()
    return total / max(rows if rows is not None else values.numel(), 1) if reduction == "mean" else total


def loss_min_bytes(x, t, reduction, out_numel, g_numel, needs_t_grad=False):
    es_x, es_t = x.element_size(), t.element_size()
    out_es = runtime.dtype_size(torch.result_type(x, t))
    fwd = x.numel() * (es_x + es_t) + out_numel * out_es
    bwd = x.numel() * (es_x + es_t) + g_numel * out_es + x.numel() * es_x + (x.numel() * es_t if needs_t_grad else 0)
    return fwd, bwd


def randn_pair(shape, dtype, device, gen, target=None):
    x = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64)
    t = target(shape, gen) if target else torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64)
    return x.to(device, dtype), t.to(device, dtype)


# A SUMMED form's logs take the parameter (a clamp's or an offset's eps) as their arguments' floor:
# from 2^-100 up, every argument they meet is 0 or a normal float32 (x + eps, x 16-bit, included)
SUMMED_PARAM_MIN = 2.0 ** -100


def loss_form(loss, narrow, summed, reduction, param, *dtypes):
    """The scalar function a loss forward runs: ``summed`` (``scalar``'s SUMMED math: a bounded
    absolute error per element, all that a sum keeps) for a reduced forward of 16-bit tensors,
    ``narrow`` for other 16-bit ones (each element stored: a bounded relative error), else ``loss``."""
    if (summed is not None and reduction != "none" and runtime.narrow(*dtypes)
            and (param is None or param >= SUMMED_PARAM_MIN)):
        return summed
    return runtime.narrowed(loss, narrow, *dtypes)


def elementwise_loss(name: str, loss, d_input, d_target, *, reference, names=("x", "t"),
                     param: tuple[str, float] | None = None, param_positive: bool = True, sample=None,
                     loss_narrow=None, loss_summed=None, doc: str = "") -> OpSpec:
    """Register a loss from ``@triton.jit`` scalar functions ``loss(x, t[, p])`` and its two
    partial derivatives (``d_target=None``: the loss is a function of x - t, so d/dt = -d/dx).
    ``loss_narrow``, ``loss_summed``: the loss for 16-bit x and t (``scalar``'s NARROW math; its
    SUMMED level for reduction "sum" and "mean": ``loss_form``).
    Forward: one fused map-reduce pass; backward: one pass."""
    args = (Arg(names[0]), Arg(names[1]))
    if param:
        args += (Arg(param[0], "float", float(param[1])),)
    args += (Arg("reduction", "str", "mean"),)
    has_param = param is not None

    def split(rest):
        return (float(rest[0]) if has_param else None), rest[-1]

    def check(x, t, *rest):
        check_pair(name, x, t, *names)
        if has_param:
            value = runtime.check_param(name, param[0], rest[0], positive=param_positive)
            rest = (value, rest[-1])
        check_reduction(name, rest[-1])
        return (x, t, *rest)

    def forward(x, t, *rest):
        p, reduction = split(rest)
        return loss_forward(loss_form(loss, loss_narrow, loss_summed, reduction, p, x.dtype, t.dtype), x, t, p,
                            reduction)

    def vjp(x, t, *rest, needs=None):
        *rest, grad = rest
        p, reduction = split(rest)
        return loss_vjp(d_input, d_target, x, t, grad, p, reduction, needs_all(args, (x, t), needs))

    def alloc(x, t, *rest):
        shape = tuple(x.shape) if rest[-1] == "none" else ()
        return x.new_empty(shape, dtype=torch.result_type(x, t))

    def min_bytes(x, t, *rest):
        out = x.numel() if rest[-1] == "none" else 1
        return loss_min_bytes(x, t, rest[-1], out, out)

    spec = OpSpec(
        name=name, family="loss", args=args, forward=forward, vjp=vjp, reference=reference,
        fwd_kernels=(loss_reduce_kernel, combine_fwd_kernel), bwd_kernels=(loss_vjp_kernel,),
        check=check, alloc=alloc, vjp_alloc=lambda x, t, *rest: [torch.empty_like(x), torch.empty_like(t)],
        min_bytes=min_bytes, sample=sample or randn_pair, doc=doc)
    return register(spec)


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
    return tl.maximum(1.0 - t * x, 0.0, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def hinge_dx(x, t):
    m = 1.0 - t * x
    return tl.where(m > 0, -t, scalar.nan_else(m, 0.0))


@triton.jit
def hinge_dt(x, t):
    m = 1.0 - t * x
    return tl.where(m > 0, -x, scalar.nan_else(m, 0.0))


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
def log_cosh_l(x, t, NARROW: tl.constexpr = False):
    d = tl.abs(x - t)
    if NARROW == scalar.SUMMED:  # e^(-2d) in one multiply, the SFU's log2
        r = d + 0.6931471805599453 * (scalar.log2_summed(1.0 + scalar.exp2_ftz(d * -2.8853900817779268)) - 1.0)
    else:
        r = d + scalar.log1p_of(tl.exp(-2.0 * d), NARROW) - 0.6931471805599453
    if NARROW:  # below d = 1/4 the sum above cancels to d^2/2: its series (truncation 3e-6 relative)
        d2 = d * d
        r = tl.where(d < 0.25, d2 * (0.5 + d2 * (-0.08333333333333333 + d2 * 0.022222222222222223)), r)
    return r


@triton.jit
def log_cosh_narrow(x, t):
    return log_cosh_l(x, t, True)


@triton.jit
def log_cosh_summed(x, t):
    return log_cosh_l(x, t, scalar.SUMMED)


@triton.jit
def log_cosh_dx(x, t):
    return scalar.tanh(x - t)


@triton.jit
def bce_l(p, y, eps, NARROW: tl.constexpr = False):
    q = tl.minimum(tl.maximum(p, eps, propagate_nan=tl.PropagateNan.ALL), 1.0 - eps,
                   propagate_nan=tl.PropagateNan.ALL)
    if NARROW == scalar.SUMMED:  # (q, 1 - q >= eps: normal) log2 units, ln 2 once
        a, b = scalar.log2_pair_summed(q)
        r = -0.6931471805599453 * scalar.weighted(y, a, b)
    else:
        r = -(y * scalar.log(q, NARROW) + (1.0 - y) * scalar.log(1.0 - q, NARROW))
    return r


@triton.jit
def bce_narrow(p, y, eps):
    return bce_l(p, y, eps, True)


@triton.jit
def bce_summed(p, y, eps):
    return bce_l(p, y, eps, scalar.SUMMED)


@triton.jit
def bce_dp(p, y, eps):
    inside = (p > eps) & (p < 1.0 - eps)
    safe = tl.where(inside, p, 0.5)
    return tl.where(inside, (safe - y) / (safe * (1.0 - safe)), scalar.nan_else(p + y, 0.0))


@triton.jit
def bce_dy(p, y, eps):
    q = tl.minimum(tl.maximum(p, eps, propagate_nan=tl.PropagateNan.ALL), 1.0 - eps,
                   propagate_nan=tl.PropagateNan.ALL)
    return tl.log(1.0 - q) - tl.log(q)


@triton.jit
def xent_l(q, p, eps, NARROW: tl.constexpr = False):
    return -p * scalar.log(tl.minimum(tl.maximum(q, eps, propagate_nan=tl.PropagateNan.ALL), 1.0 - eps,
                                      propagate_nan=tl.PropagateNan.ALL), NARROW)


@triton.jit
def xent_narrow(q, p, eps):
    return xent_l(q, p, eps, True)


@triton.jit
def xent_summed(q, p, eps):
    return xent_l(q, p, eps, scalar.SUMMED)


@triton.jit
def xent_dq(q, p, eps):
    inside = (q > eps) & (q < 1.0 - eps)
    return tl.where(inside, -p / tl.where(inside, q, 1.0), scalar.nan_else(q + p, 0.0))


@triton.jit
def xent_dp(q, p, eps):
    return -tl.log(tl.minimum(tl.maximum(q, eps, propagate_nan=tl.PropagateNan.ALL), 1.0 - eps,
                          propagate_nan=tl.PropagateNan.ALL))


# --------------------------------------------------------------------------------------------
# references (SPEC section 3, plain torch)


def _log_cosh_ref(x, t, reduction="mean"):
    d = (x - t).abs()
    return reduce(d + torch.log1p(torch.exp(-2 * d)) - torch.log(torch.tensor(2.0, dtype=d.dtype)), reduction)


def _huber_ref(x, t, delta=1.0, reduction="mean"):
    d = (x - t).abs()
    return reduce(torch.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def _bce_ref(p, y, eps=1e-6, reduction="mean"):
    q = p.clamp(eps, 1 - eps)
    return reduce(-(y * torch.log(q) + (1 - y) * torch.log(1 - q)), reduction)


def _prob_pair(shape, dtype, device, gen):
    p = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64) * 0.98 + 0.01
    y = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64)
    return p.to(device, dtype), y.to(device, dtype)


def _sign_pair(shape, dtype, device, gen):
    x = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64)
    t = torch.where(torch.rand(shape, generator=gen, device=gen.device) < 0.5, -1.0, 1.0).double()
    return x.to(device, dtype), t.to(device, dtype)


def _poisson_pair(shape, dtype, device, gen):
    x = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64) * 0.5
    t = torch.poisson(torch.full(shape, 2.0, dtype=torch.float64, device=gen.device), generator=gen)
    return x.to(device, dtype), t.to(device, dtype)


mse_loss = elementwise_loss("mse_loss", mse_l, mse_dx, None,
                            reference=lambda x, t, reduction="mean": reduce((x - t) ** 2, reduction),
                            doc="mse_loss(x, t, reduction='mean'): (x - t)^2.").fn
mae_loss = elementwise_loss("mae_loss", mae_l, mae_dx, None,
                            reference=lambda x, t, reduction="mean": reduce((x - t).abs(), reduction),
                            doc="mae_loss(x, t, reduction='mean'): |x - t| (gradient sign(x - t), sign(0) = 0).").fn
huber_loss = elementwise_loss("huber_loss", huber_l, huber_dx, None, param=("delta", 1.0), reference=_huber_ref,
                              doc="huber_loss(x, t, delta=1.0, reduction='mean') (= F.huber_loss).").fn
hinge_loss = elementwise_loss("hinge_loss", hinge_l, hinge_dx, hinge_dt, sample=_sign_pair,
                              reference=lambda x, t, reduction="mean": reduce(torch.clamp(1 - t * x, min=0), reduction),
                              doc="hinge_loss(x, t, reduction='mean'): max(0, 1 - t*x), t in {-1, 1}.").fn
poisson_loss = elementwise_loss("poisson_loss", poisson_l, poisson_dx, poisson_dt, sample=_poisson_pair,
                                reference=lambda x, t, reduction="mean": reduce(torch.exp(x) - t * x, reduction),
                                doc="poisson_loss(x, t, reduction='mean'): exp(x) - t*x, x the log-rate.").fn
log_cosh_loss = elementwise_loss("log_cosh_loss", log_cosh_l, log_cosh_dx, None, reference=_log_cosh_ref,
                                 loss_narrow=log_cosh_narrow, loss_summed=log_cosh_summed,
                                 doc="log_cosh_loss(x, t, reduction='mean'): log cosh(x - t), stable for any x - t.").fn
binary_cross_entropy = elementwise_loss(
    "binary_cross_entropy", bce_l, bce_dp, bce_dy, names=("p", "y"), param=("eps", 1e-6), reference=_bce_ref,
    sample=_prob_pair, loss_narrow=bce_narrow, loss_summed=bce_summed,
    doc="binary_cross_entropy(p, y, eps=1e-6, reduction='mean'): p clamped to [eps, 1-eps].").fn


# --------------------------------------------------------------------------------------------
# cross_entropy between distributions: elementwise -p log q, summed per row along dim


def _xent_check(q, p, dim, eps, reduction):
    check_pair("cross_entropy", q, p, "q", "p")
    dim = normalize_dim("cross_entropy", dim, q.dim())
    eps = runtime.check_param("cross_entropy", "eps", eps, positive=True)
    check_reduction("cross_entropy", reduction)
    return q, p, dim, eps, reduction


def _rows_of(x, dim):
    return x.numel() // x.shape[dim] if x.dim() and x.shape[dim] else (1 if x.dim() == 0 else 0)


def _xent_row_dims(q, dim):
    return (nd(dim, q.dim()),) if q.dim() else ()


def _xent_ref(q, p, dim=-1, eps=1e-6, reduction="mean"):
    per_row = (-p * torch.log(q.clamp(eps, 1 - eps))).sum(dim) if q.dim() else -p * torch.log(q.clamp(eps, 1 - eps))
    return reduce(per_row, reduction, rows=_rows_of(q, dim % max(q.dim(), 1)))


def _dist_pair(shape, dtype, device, gen):
    q = torch.softmax(torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64), -1)
    p = torch.softmax(torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64), -1)
    return q.to(device, dtype), p.to(device, dtype)


XENT_ARGS = (Arg("q"), Arg("p"), Arg("dim", "int", -1), Arg("eps", "float", 1e-6), Arg("reduction", "str", "mean"))
cross_entropy = register(OpSpec(
    name="cross_entropy", family="loss", args=XENT_ARGS,
    forward=lambda q, p, dim, eps, reduction: loss_forward(
        # reduction "none" still sums each row: stored row by row, the NARROW form
        loss_form(xent_l, xent_narrow, xent_summed, reduction, eps, q.dtype, p.dtype), q, p, eps, reduction,
        _xent_row_dims(q, dim),
        mean_rows=_rows_of(q, dim)),
    vjp=lambda q, p, dim, eps, reduction, grad, needs=None: loss_vjp(
        xent_dq, xent_dp, q, p, grad, eps, reduction, needs_all(XENT_ARGS, (q, p), needs), _xent_row_dims(q, dim),
        mean_rows=_rows_of(q, dim)),
    reference=_xent_ref,
    fwd_kernels=(loss_reduce_kernel, combine_fwd_kernel), bwd_kernels=(loss_vjp_kernel,),
    check=_xent_check,
    alloc=lambda q, p, dim, eps, reduction: q.new_empty(
        tuple(s for d, s in enumerate(q.shape) if d != nd(dim, q.dim())) if reduction == "none" else (),
        dtype=torch.result_type(q, p)),
    vjp_alloc=lambda q, p, dim, eps, reduction, grad: [torch.empty_like(q), torch.empty_like(p)],
    min_bytes=lambda q, p, dim=-1, eps=1e-6, reduction="mean": loss_min_bytes(
        q, p, reduction, _rows_of(q, dim) if reduction == "none" else 1, _rows_of(q, dim) if reduction == "none" else 1),
    sample=lambda shape, dtype, device, gen: (*_dist_pair(shape, dtype, device, gen), -1, 1e-6, "mean"),
    doc="cross_entropy(q, p, dim=-1, eps=1e-6, reduction='mean'): -sum_c p_c log clamp(q_c, eps, 1-eps) per row.")).fn


