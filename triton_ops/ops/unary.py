"""Unary elementwise ops (SPEC section 1): two ``@triton.jit`` scalar functions and one
``unary_op`` call each. The forward and VJP kernels are the shared pointwise templates."""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import runtime, scalar
from ..bwd.pointwise import pointwise_vjp_kernel
from ..fwd.pointwise import pointwise_fwd_kernel
from ..launchers.pointwise import pointwise, pointwise_vjp
from ..spec import Arg, OpSpec, needs_all, register


def _default_sample(shape, dtype, device, gen):
    return torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64).to(device=device, dtype=dtype)


def unary_op(name: str, f, df, *, param: tuple[str, float] | None = None, reference=None,
             df_reads_x: bool = True, sample=None, domain=None, param_check=None, f_narrow=None,
             df_narrow=None, doc: str = "") -> OpSpec:
    """Lift two ``@triton.jit`` scalar functions into a registered op with autograd.

    ``f(x[, p])`` is the forward and ``df(x[, p])`` its derivative; the VJP is ``g * df(x)``.
    ``f_narrow``, ``df_narrow``: ``f`` and ``df`` for 16-bit tensors (``scalar``'s NARROW math),
    where they spend instructions on float32 accuracy that a 16-bit result cannot keep.
    ``param`` = (name, default) adds one float parameter passed to both. ``reference`` is a
    torch function of the same arguments (the tests' float64 truth). ``domain(x, p)``, if
    given, returns a boolean mask of elements *outside* the domain (checked only in
    domain-check mode). Returns the ``OpSpec``; the op is ``triton_ops.registry[name].fn``.
    """
    args = (Arg("x"),) + ((Arg(param[0], "float", float(param[1])),) if param else ())
    has_param = param is not None

    def p_of(rest):
        return float(rest[0]) if has_param else None

    def check(x, *rest):
        runtime.check_float(name, "x", x)
        runtime.check_devices(name, {"x": x})
        if has_param:
            value = runtime.check_param(name, param[0], rest[0])
            if param_check is not None:
                param_check(name, value)
            rest = (value,)
        if domain is not None and x.numel() and runtime.domain_checks_apply(x):
            bad = int(domain(x, *rest).sum().item())  # host sync: domain-check mode only
            if bad:
                raise runtime.DomainError(f"triton_ops.{name}: {bad} element(s) of x outside the domain")
        return (x, *rest)

    def alloc(x, *rest):
        return torch.empty_like(x)

    def forward(x, *rest):
        return pointwise(runtime.narrowed(f, f_narrow, x.dtype), alloc(x), x, None, p_of(rest), arity=1)

    def vjp(x, *rest, needs=None):
        *rest, grad = rest
        need_x, = needs_all(args, (x, *rest), needs)
        if not need_x:
            return (None,)
        dx, _ = pointwise_vjp(grad, x.shape, dfx=runtime.narrowed(df, df_narrow, x.dtype, grad.dtype), x=x,
                              load_x=df_reads_x, param=p_of(rest), arity=1)
        return (dx,)

    def vjp_alloc(x, *rest):
        return [torch.empty_like(x)]

    def min_bytes(x, *rest):
        n, es = x.numel(), x.element_size()
        return 2 * n * es, (3 if df_reads_x else 2) * n * es

    spec = OpSpec(
        name=name, family="unary", args=args, forward=forward, vjp=vjp,
        reference=reference, fwd_kernels=(pointwise_fwd_kernel,), bwd_kernels=(pointwise_vjp_kernel,),
        check=check, alloc=alloc, vjp_alloc=vjp_alloc, min_bytes=min_bytes,
        extras={"f": f, "df": df, "f_narrow": f_narrow, "df_narrow": df_narrow,
                "param": float(param[1]) if param else None, "df_reads_x": df_reads_x},
        sample=lambda *a: ((sample or _default_sample)(*a),), doc=doc or f"triton_ops.{name}: elementwise, see SPEC.md section 1.")
    return register(spec)


# --------------------------------------------------------------------------------------------
# scalar math of the built-in unary ops

# sqrt(2/pi) and the cubic coefficient appear as literals inside the kernels: a constexpr global
# times a tensor misbehaves under the interpreter.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


@triton.jit
def elu_f(x, alpha, NARROW: tl.constexpr = False):
    return tl.where(x > 0, x, alpha * scalar.expm1_of(x, NARROW))


@triton.jit
def elu_narrow(x, alpha):
    return elu_f(x, alpha, True)


@triton.jit
def elu_df(x, alpha):
    return tl.where(x > 0, 1.0, alpha * tl.exp(x))


# gelu through 0.5 (1 + tanh(u)) = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): one exp and one
# reciprocal instead of libdevice's tanh (31 -> 22 sm_90 instructions an element forward, 40 -> 31
# for the VJP: the H200 ran the tanh form at 76% / 81% of clone bandwidth, bound by instruction
# issue, not bytes), and no cancellation in 1 + tanh(u) for negative x.
@triton.jit
def gelu_f(x):
    return x * tl.sigmoid(x * (1.5957691216057308 + 0.07135481627260025 * x * x))  # 2u = x (2c + 2c 0.044715 x^2)


@triton.jit
def gelu_df(x):
    s = tl.sigmoid(x * (1.5957691216057308 + 0.07135481627260025 * x * x))
    return s + x * s * (1.0 - s) * (1.5957691216057308 + 0.21406444881780073 * x * x)  # d(2u)/dx = 2c (1 + 3 0.044715 x^2)


@triton.jit
def leaky_relu_f(x, slope):
    return tl.where(x > 0, x, slope * x)


@triton.jit
def leaky_relu_df(x, slope):
    return tl.where(x > 0, 1.0, slope)


@triton.jit
def smooth_abs_f(x, eps):
    return tl.sqrt(x * x + eps)


@triton.jit
def smooth_abs_df(x, eps):
    return x / tl.sqrt(x * x + eps)


@triton.jit
def log_f(x, NARROW: tl.constexpr = False):
    return scalar.log(x, NARROW)


@triton.jit
def log_narrow(x):
    return log_f(x, True)


@triton.jit
def log_df(x):
    return 1.0 / x


@triton.jit
def safe_log_f(x, eps, NARROW: tl.constexpr = False):
    return scalar.log(x + eps, NARROW)


@triton.jit
def safe_log_narrow(x, eps):
    return safe_log_f(x, eps, True)


@triton.jit
def safe_log_df(x, eps):
    return 1.0 / (x + eps)


@triton.jit
def sqrt_f(x):
    return tl.sqrt(tl.where(x < 0, 0.0, x))  # not tl.maximum: it would turn NaN into 0


@triton.jit
def sqrt_df(x):
    return tl.where(x > 0, 0.5 / tl.sqrt(tl.where(x > 0, x, 1.0)), scalar.nan_else(x, 0.0))


@triton.jit
def reciprocal_f(x):
    return 1.0 / x


@triton.jit
def reciprocal_df(x):
    return -1.0 / (x * x)


@triton.jit
def safe_reciprocal_f(x, eps):
    return 1.0 / (x + eps)


@triton.jit
def safe_reciprocal_df(x, eps):
    return -1.0 / ((x + eps) * (x + eps))


@triton.jit
def one(x):
    return 1.0


# --------------------------------------------------------------------------------------------
# references: SPEC section 1, in plain torch


def _gelu_ref(x):
    return 0.5 * x * (1 + torch.tanh(SQRT_2_OVER_PI * (x + GELU_C * x**3)))


def _positive_sample(shape, dtype, device, gen):
    u = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64)
    return (u * 2 + 0.1).to(device=device, dtype=dtype)


def _nonzero_sample(shape, dtype, device, gen):
    u = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64) + 0.5
    sign = torch.where(torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64) < 0.5, -1.0, 1.0)
    return (u * sign).to(device=device, dtype=dtype)


def _nonneg(op, v):
    if v < 0:
        raise ValueError(f"triton_ops.{op}: eps must be >= 0, got {v}")


elu = unary_op("elu", elu_f, elu_df, param=("alpha", 1.0), f_narrow=elu_narrow,
               reference=lambda x, alpha=1.0: torch.where(x > 0, x, alpha * torch.expm1(x)),
               doc="elu(x, alpha=1.0): x if x > 0 else alpha*expm1(x) (= F.elu).").fn
gelu = unary_op("gelu", gelu_f, gelu_df, reference=_gelu_ref,
                doc="gelu(x): tanh-approximate GELU (= F.gelu(x, approximate='tanh')).").fn
leaky_relu = unary_op("leaky_relu", leaky_relu_f, leaky_relu_df, param=("negative_slope", 0.01),
                      reference=lambda x, negative_slope=0.01: torch.where(x > 0, x, negative_slope * x),
                      doc="leaky_relu(x, negative_slope=0.01) (= F.leaky_relu).").fn
smooth_abs = unary_op("smooth_abs", smooth_abs_f, smooth_abs_df, param=("eps", 1e-6), param_check=_nonneg,
                      reference=lambda x, eps=1e-6: torch.sqrt(x * x + eps),
                      doc="smooth_abs(x, eps=1e-6): sqrt(x^2 + eps), a differentiable |x|.").fn
log = unary_op("log", log_f, log_df, reference=lambda x: torch.log(x), sample=_positive_sample, f_narrow=log_narrow,
               domain=lambda x: ~(x > 0),
               doc="log(x): natural log; x <= 0 gives IEEE results unless domain checks are on.").fn
safe_log = unary_op("safe_log", safe_log_f, safe_log_df, param=("eps", 1e-6), param_check=_nonneg,
                    f_narrow=safe_log_narrow,
                    reference=lambda x, eps=1e-6: torch.log(x + eps), sample=_positive_sample,
                    doc="safe_log(x, eps=1e-6): log(x + eps).").fn
sqrt = unary_op("sqrt", sqrt_f, sqrt_df,
                reference=lambda x: torch.sqrt(torch.clamp(x, min=0)), sample=_positive_sample,
                doc="sqrt(x): sqrt(max(x, 0)); gradient 0 where x <= 0.").fn
reciprocal = unary_op("reciprocal", reciprocal_f, reciprocal_df, reference=lambda x: 1 / x,
                      sample=_nonzero_sample, domain=lambda x: x == 0,
                      doc="reciprocal(x): 1/x; x = 0 raises only in domain-check mode.").fn
safe_reciprocal = unary_op("safe_reciprocal", safe_reciprocal_f, safe_reciprocal_df, param=("eps", 1e-6),
                           param_check=_nonneg, reference=lambda x, eps=1e-6: 1 / (x + eps),
                           sample=_positive_sample, doc="safe_reciprocal(x, eps=1e-6): 1/(x + eps).").fn
identity = unary_op("identity", scalar.identity, one, reference=lambda x: x.clone(), df_reads_x=False,
                    doc="identity(x): x (a copy); gradient g.").fn
