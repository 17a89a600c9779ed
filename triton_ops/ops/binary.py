"""Broadcasting binary ops (SPEC section 2): scalar math plus one ``binary_op`` call each. The
forward and the VJP (with the reduce-back of broadcast operands fused in) are the shared
pointwise templates."""
from __future__ import annotations

import torch
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs it in every module holding @jit code)

from .. import runtime
from ..broadcast import Broadcast, broadcast_shapes
from ..bwd.pointwise import grad_like, pointwise_vjp, pointwise_vjp_kernel
from ..bwd.reduce import combine_partials_kernel
from ..fwd.pointwise import pointwise, pointwise_fwd_kernel
from ..spec import Arg, OpSpec, needs_all, register


def _shape(v):
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def _default_sample(shape, dtype, device, gen):
    """A broadcasting pair: a full lhs and a rhs that is broadcast along the first axis."""
    a = torch.randn(shape, generator=gen, dtype=torch.float64)
    b = torch.randn((1,) + tuple(shape[1:]), generator=gen, dtype=torch.float64)
    return a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)


def result_dtype(a, b) -> torch.dtype:
    return torch.result_type(a, b)


def binary_op(name: str, f, df_da, df_db, *, reference, reads=((True, True), (True, True)),
              param: tuple[str, float] | None = None, param_nonneg: bool = True, domain=None, sample=None,
              doc: str = "") -> OpSpec:
    """Lift ``@triton.jit`` scalar functions ``f(a, b[, p])``, ``df_da``, ``df_db`` into a
    registered broadcasting op with autograd. Broadcasting, strides, Python-number operands
    and the reduce-back of broadcast operands come from the templates.

    ``reads[i]`` says whether the derivative with respect to operand i reads (a, b): operands
    no needed derivative reads are not loaded (``add``'s VJP reads only g).
    """
    args = (Arg("a", "operand"), Arg("b", "operand"))
    if param:
        args += (Arg(param[0], "float", float(param[1])),)
    args += (Arg("broadcast", "python", None),)
    has_param = param is not None

    def p_of(rest):
        return float(rest[0]) if has_param else None

    def check(a, b, *rest):
        *params, bc = rest
        tensors = {}
        for arg_name, v in (("a", a), ("b", b)):
            if isinstance(v, torch.Tensor):
                runtime.check_float(name, arg_name, v)
                tensors[arg_name] = v
            else:
                runtime.check_number(name, arg_name, v)
        if not tensors:
            raise TypeError(f"triton_ops.{name}: at least one of a, b must be a tensor")
        runtime.check_devices(name, tensors)
        broadcast_shapes(name, _shape(a), _shape(b))
        if bc is not None:
            if not isinstance(bc, Broadcast):
                raise ValueError(f"triton_ops.{name}: broadcast must be a triton_ops.Broadcast, got {type(bc).__name__}")
            bc.check(name, _shape(a), _shape(b))
        if has_param:
            params = [runtime.check_param(name, param[0], params[0], nonneg=param_nonneg)]
        if domain is not None and runtime.domain_checks_enabled():
            bad = domain(a, b)
            bad = int(bad.sum().item()) if isinstance(bad, torch.Tensor) else int(bad)  # domain mode only
            if bad:
                raise runtime.DomainError(f"triton_ops.{name}: {bad} element(s) outside the domain (zero divisor)")
        return (a, b, *params, None)

    def alloc(a, b, *rest):
        out_shape = broadcast_shapes(name, _shape(a), _shape(b))
        dtype = result_dtype(a, b)
        like = a if isinstance(a, torch.Tensor) and a.shape == out_shape else (
            b if isinstance(b, torch.Tensor) and b.shape == out_shape else None)
        if like is not None:
            return torch.empty_like(like, dtype=dtype)
        device = (a if isinstance(a, torch.Tensor) else b).device
        return torch.empty(out_shape, dtype=dtype, device=device)

    def forward(a, b, *rest):
        return pointwise(f, alloc(a, b), a, b, p_of(rest), arity=2)

    def vjp(a, b, *rest, needs=None):
        *rest, _bc, grad = rest
        need_a, need_b = needs_all(args, (a, b), needs)
        out_shape = broadcast_shapes(name, _shape(a), _shape(b))
        load_a = (need_a and reads[0][0]) or (need_b and reads[1][0])
        load_b = (need_a and reads[0][1]) or (need_b and reads[1][1])
        return pointwise_vjp(grad, out_shape, df_da if need_a else None, df_db if need_b else None,
                             x=a, y=b, load_x=load_a, load_y=load_b, param=p_of(rest), arity=2)

    def vjp_alloc(a, b, *rest):
        *_, grad = rest
        out_shape = broadcast_shapes(name, _shape(a), _shape(b))
        return [grad_like(v, out_shape) if isinstance(v, torch.Tensor) else None for v in (a, b)]

    def min_bytes(a, b, *rest):
        out_shape = broadcast_shapes(name, _shape(a), _shape(b))
        out_bytes = runtime.numel(out_shape) * runtime.dtype_size(result_dtype(a, b))
        fwd = runtime.nbytes(a) + runtime.nbytes(b) + out_bytes
        read_a = reads[0][0] or reads[1][0]
        read_b = reads[0][1] or reads[1][1]
        bwd = out_bytes + (runtime.nbytes(a) if read_a else 0) + (runtime.nbytes(b) if read_b else 0) + runtime.nbytes(a) + runtime.nbytes(b)
        return fwd, bwd

    spec = OpSpec(
        name=name, family="binary", args=args, forward=forward, vjp=vjp, reference=reference,
        fwd_kernels=(pointwise_fwd_kernel,), bwd_kernels=(pointwise_vjp_kernel, combine_partials_kernel),
        check=check, alloc=alloc, vjp_alloc=vjp_alloc, min_bytes=min_bytes, sample=sample or _default_sample,
        doc=doc or f"triton_ops.{name}(a, b, broadcast=None): broadcasting, see SPEC.md section 2.")
    return register(spec)


# --------------------------------------------------------------------------------------------
# scalar math


@triton.jit
def add_f(a, b, alpha):
    return a + alpha * b


@triton.jit
def sub_f(a, b, alpha):
    return a - alpha * b


@triton.jit
def mul_f(a, b):
    return a * b


@triton.jit
def div_f(a, b):
    return a / b


@triton.jit
def safe_div_f(a, b, eps):
    return a / (b + eps)


@triton.jit
def one(a, b):
    return 1.0


@triton.jit
def one_of_alpha(a, b, alpha):
    return 1.0


@triton.jit
def take_alpha(a, b, alpha):
    return alpha


@triton.jit
def minus_alpha(a, b, alpha):
    return -alpha


@triton.jit
def take_b(a, b):
    return b


@triton.jit
def take_a(a, b):
    return a


@triton.jit
def div_da(a, b):
    return 1.0 / b


@triton.jit
def div_db(a, b):
    return -a / (b * b)


@triton.jit
def safe_div_da(a, b, eps):
    return 1.0 / (b + eps)


@triton.jit
def safe_div_db(a, b, eps):
    return -a / ((b + eps) * (b + eps))


def _zero_divisor(a, b):
    return (b == 0) if isinstance(b, torch.Tensor) else int(b == 0)


NONE, B_ONLY, A_ONLY, BOTH = (False, False), (False, True), (True, False), (True, True)

add = binary_op("add", add_f, one_of_alpha, take_alpha, reads=(NONE, NONE), param=("alpha", 1.0), param_nonneg=False,
                reference=lambda a, b, alpha=1.0, broadcast=None: a + alpha * b,
                doc="add(a, b, alpha=1.0, broadcast=None): a + alpha*b with broadcasting (= torch.add).").fn
sub = binary_op("sub", sub_f, one_of_alpha, minus_alpha, reads=(NONE, NONE), param=("alpha", 1.0), param_nonneg=False,
                reference=lambda a, b, alpha=1.0, broadcast=None: a - alpha * b,
                doc="sub(a, b, alpha=1.0, broadcast=None): a - alpha*b with broadcasting (= torch.sub).").fn
mul = binary_op("mul", mul_f, take_b, take_a, reads=(B_ONLY, A_ONLY), reference=lambda a, b, broadcast=None: a * b,
                doc="mul(a, b, broadcast=None): a * b with broadcasting.").fn
div = binary_op("div", div_f, div_da, div_db, reads=(B_ONLY, BOTH), domain=_zero_divisor,
                reference=lambda a, b, broadcast=None: a / b,
                sample=lambda shape, dtype, device, gen: (
                    _default_sample(shape, dtype, device, gen)[0],
                    (torch.rand((1,) + tuple(shape[1:]), generator=gen, dtype=torch.float64) + 0.5).to(device, dtype)),
                doc="div(a, b, broadcast=None): a / b; a zero divisor raises only in domain-check mode.").fn
safe_div = binary_op("safe_div", safe_div_f, safe_div_da, safe_div_db, reads=(B_ONLY, BOTH), param=("eps", 1e-6),
                     reference=lambda a, b, eps=1e-6, broadcast=None: a / (b + eps),
                     sample=lambda shape, dtype, device, gen: (
                         _default_sample(shape, dtype, device, gen)[0],
                         (torch.rand((1,) + tuple(shape[1:]), generator=gen, dtype=torch.float64) + 0.5).to(
                             device, dtype)),
                     doc="safe_div(a, b, eps=1e-6, broadcast=None): a / (b + eps).").fn
