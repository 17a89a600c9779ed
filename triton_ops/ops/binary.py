"""Broadcasting binary ops (SPEC section 2): scalar math plus one ``binary_op`` call each. The
forward and the VJP (with the reduce-back of broadcast operands fused in) are the shared
pointwise templates."""
from __future__ import annotations

import torch
import triton
import triton.language as tl  # noqa: F401  (the interpreter needs it in every module holding @jit code)

from .. import runtime
from ..broadcast import align_shape, broadcast_shapes
from ..bwd.pointwise import pointwise_vjp_kernel
from ..bwd.reduce import combine_vjp_kernel
from ..fwd.pointwise import pointwise_fwd_kernel
from ..launchers.pointwise import grad_like, pointwise, pointwise_vjp, reduce_to
from ..spec import Arg, OpSpec, needs_all, register


class Broadcast:
    """How two operand shapes broadcast to one output shape (right-aligned, as PyTorch).

    ``expanded_axes(i)``: output axes along which operand ``i`` is repeated (its size there is 1
    or the axis is missing, and the output's size is > 1).
    ``reduce_axes(i)``: output axes a gradient is summed over to come back to operand ``i``'s
    shape: the expanded axes plus any leading axes the operand lacks (summed, then dropped).
    """

    def __init__(self, a_shape, b_shape, op: str = "Broadcast.infer"):
        self.shapes = (torch.Size(a_shape), torch.Size(b_shape))
        self.out_shape = broadcast_shapes(op, a_shape, b_shape)

    @classmethod
    def infer(cls, a_shape, b_shape) -> "Broadcast":
        return cls(a_shape, b_shape)

    def _check_operand(self, i: int) -> None:
        if i not in (0, 1):
            raise ValueError(f"triton_ops.Broadcast: operand index must be 0 (lhs) or 1 (rhs), got {i}")

    def expanded_axes(self, i: int) -> tuple[int, ...]:
        self._check_operand(i)
        rank = len(self.out_shape)
        shape = align_shape(self.shapes[i], rank)
        return tuple(d for d in range(rank) if shape[d] == 1 and self.out_shape[d] != 1)

    def reduce_axes(self, i: int) -> tuple[int, ...]:
        self._check_operand(i)
        rank = len(self.out_shape)
        missing = rank - len(self.shapes[i])
        return tuple(sorted(set(range(missing)) | set(self.expanded_axes(i))))

    def reduce_back(self, g: torch.Tensor, i: int) -> torch.Tensor:
        """Sum ``g`` (of ``out_shape``) back to operand ``i``'s shape with a Triton kernel."""
        self._check_operand(i)
        if tuple(g.shape) != tuple(self.out_shape):
            raise ValueError(
                f"triton_ops.Broadcast.reduce_back: g has shape {tuple(g.shape)}, expected {tuple(self.out_shape)}")
        return reduce_to(g, self.shapes[i])

    def check(self, op: str, a_shape, b_shape) -> None:
        if (torch.Size(a_shape), torch.Size(b_shape)) != self.shapes:
            raise ValueError(
                f"triton_ops.{op}: broadcast descriptor was built for shapes {tuple(self.shapes[0])} and "
                f"{tuple(self.shapes[1])}, got lhs {tuple(a_shape)} and rhs {tuple(b_shape)}")

    def __repr__(self) -> str:
        return (f"Broadcast(lhs={tuple(self.shapes[0])}, rhs={tuple(self.shapes[1])}, "
                f"out={tuple(self.out_shape)})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Broadcast) and self.shapes == other.shapes

    def __hash__(self) -> int:
        return hash(self.shapes)


def _shape(v):
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def _default_sample(shape, dtype, device, gen):
    """A broadcasting pair: a full lhs and a rhs that is broadcast along the first axis."""
    a = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64)
    b = torch.randn((1,) + tuple(shape[1:]), generator=gen, device=gen.device, dtype=torch.float64)
    return a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)


def result_dtype(a, b) -> torch.dtype:
    return torch.result_type(a, b)


def _is_g(v, alias, p, grad, out_shape) -> bool:
    """Whether operand ``v``'s gradient is ``grad`` itself: d/dv = 1 at this parameter (``alias``),
    and ``v`` has g's shape, dtype and (contiguous) layout, the layout its gradient is promised
    (``grad_like``)."""
    return ((alias(p) if callable(alias) else alias) and isinstance(v, torch.Tensor) and v.shape == out_shape
            and v.dtype == grad.dtype and v.is_contiguous() and grad.is_contiguous())


def binary_op(name: str, f, df_da, df_db, *, reference, reads=((True, True), (True, True)),
              aliases=(False, False), param: tuple[str, float] | None = None, param_nonneg: bool = True,
              domain=None, sample=None,
              doc: str = "") -> OpSpec:
    """Lift ``@triton.jit`` scalar functions ``f(a, b[, p])``, ``df_da``, ``df_db`` into a
    registered broadcasting op with autograd. Broadcasting, strides, Python-number operands
    and the reduce-back of broadcast operands come from the templates.

    ``reads[i]`` says whether the derivative with respect to operand i reads (a, b): operands
    no needed derivative reads are not loaded (``add``'s VJP reads only g). ``aliases[i]``: the
    gradient of operand i is g itself wherever operand i has the output's shape (d/da = 1), so
    it may alias g, as eager's does, and the minimum bytes count nothing for it (a function of
    the parameter: only at those parameter values). ``param_nonneg``: the parameter must be >= 0.
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
        if domain is not None and runtime.domain_checks_apply(*tensors.values()):
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
        p = p_of(rest)
        # A gradient that is g itself (as eager's): no kernel, no bytes. The custom-op route
        # copies it (``spec``: a custom op may not return one of its inputs).
        is_g = [need and _is_g(v, alias, p, grad, out_shape)
                for v, alias, need in zip((a, b), aliases, (need_a, need_b))]
        need_a, need_b = need_a and not is_g[0], need_b and not is_g[1]
        grads = (None, None)
        if need_a or need_b:
            load_a = (need_a and reads[0][0]) or (need_b and reads[1][0])
            load_b = (need_a and reads[0][1]) or (need_b and reads[1][1])
            grads = pointwise_vjp(grad, out_shape, df_da if need_a else None, df_db if need_b else None,
                                  x=a, y=b, load_x=load_a, load_y=load_b, param=p, arity=2)
        return tuple(grad if own else d for own, d in zip(is_g, grads))

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
        p = p_of(rest) if has_param and rest else (float(param[1]) if has_param else None)
        writes = [runtime.nbytes(v) for v, alias in zip((a, b), aliases)
                  if not ((alias(p) if callable(alias) else alias) and _shape(v) == out_shape)]
        if not any(writes):  # every gradient is g itself
            return fwd, 0
        bwd = out_bytes + (runtime.nbytes(a) if read_a else 0) + (runtime.nbytes(b) if read_b else 0) + sum(writes)
        return fwd, bwd

    spec = OpSpec(
        name=name, family="binary", args=args, forward=forward, vjp=vjp, reference=reference,
        fwd_kernels=(pointwise_fwd_kernel,), bwd_kernels=(pointwise_vjp_kernel, combine_vjp_kernel),
        check=check, alloc=alloc, vjp_alloc=vjp_alloc, min_bytes=min_bytes, sample=sample or _default_sample,
        # an operand no derivative reads (add's, sub's): only its layout matters to the VJP
        vjp_layout_only=tuple(arg.name for k, arg in enumerate(args[:2]) if not (reads[0][k] or reads[1][k])),
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
    # -a / b^2 as -a * (1/b) * (1/b): 1/b is div_da's value (one reciprocal, shared, kept out of
    # the VJP's loop when b is the broadcast operand); a / (b * b) kept b*b, its reciprocal's
    # range checks and 1/b live per column (sm_90: 80 -> 64 registers, 3 -> 4 CTAs/SM). The
    # same zeros, infinities and NaNs (b = 0, +-inf, a = 0); within 2 ulp of the quotient, as
    # sm_90's float32 `/` (div.full) is
    r = 1.0 / b
    return -a * r * r


@triton.jit
def safe_div_da(a, b, eps):
    return 1.0 / (b + eps)


@triton.jit
def safe_div_db(a, b, eps):
    r = 1.0 / (b + eps)  # as div_db
    return -a * r * r


def _zero_divisor(a, b):
    return (b == 0) if isinstance(b, torch.Tensor) else int(b == 0)


NONE, B_ONLY, A_ONLY, BOTH = (False, False), (False, True), (True, False), (True, True)

# d/da = 1: a's gradient may be g itself; b's is g itself only at alpha = 1 (add)
add = binary_op("add", add_f, one_of_alpha, take_alpha, reads=(NONE, NONE), aliases=(True, lambda alpha: alpha == 1.0),
                param=("alpha", 1.0), param_nonneg=False, reference=lambda a, b, alpha=1.0, broadcast=None: a + alpha * b,
                doc="add(a, b, alpha=1.0, broadcast=None): a + alpha*b with broadcasting (= torch.add).").fn
sub = binary_op("sub", sub_f, one_of_alpha, minus_alpha, reads=(NONE, NONE), aliases=(True, False),
                param=("alpha", 1.0), param_nonneg=False, reference=lambda a, b, alpha=1.0, broadcast=None: a - alpha * b,
                doc="sub(a, b, alpha=1.0, broadcast=None): a - alpha*b with broadcasting (= torch.sub).").fn
mul = binary_op("mul", mul_f, take_b, take_a, reads=(B_ONLY, A_ONLY), reference=lambda a, b, broadcast=None: a * b,
                doc="mul(a, b, broadcast=None): a * b with broadcasting.").fn
div = binary_op("div", div_f, div_da, div_db, reads=(B_ONLY, BOTH), domain=_zero_divisor,
                reference=lambda a, b, broadcast=None: a / b,
                sample=lambda shape, dtype, device, gen: (
                    _default_sample(shape, dtype, device, gen)[0],
                    (torch.rand((1,) + tuple(shape[1:]), generator=gen, device=gen.device, dtype=torch.float64)
                     + 0.5).to(device, dtype)),
                doc="div(a, b, broadcast=None): a / b; a zero divisor raises only in domain-check mode.").fn
safe_div = binary_op("safe_div", safe_div_f, safe_div_da, safe_div_db, reads=(B_ONLY, BOTH), param=("eps", 1e-6),
                     reference=lambda a, b, eps=1e-6, broadcast=None: a / (b + eps),
                     sample=lambda shape, dtype, device, gen: (
                         _default_sample(shape, dtype, device, gen)[0],
                         (torch.rand((1,) + tuple(shape[1:]), generator=gen, device=gen.device,
                                     dtype=torch.float64) + 0.5).to(
                             device, dtype)),
                     doc="safe_div(a, b, eps=1e-6, broadcast=None): a / (b + eps).").fn
