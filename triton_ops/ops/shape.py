"""Shape ops of SPEC section 2/4: ``replicate``, ``sum_to``, ``sum``. Sums run the pointwise VJP
template's reduce-back path (entry points in ``fwd/reduce.py``); gradients that broadcast back
run the pointwise map template (entry point in ``bwd/broadcast.py``)."""
from __future__ import annotations

import torch

from .. import runtime
from ..broadcast import broadcast_shapes
from ..bwd.broadcast import broadcast_bwd_kernel
from ..bwd.pointwise import pointwise_vjp_kernel
from ..bwd.reduce import combine_vjp_kernel
from ..fwd.pointwise import pointwise_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel, sum_fwd_kernel
from ..launchers.pointwise import broadcast_to, reduce_to
from ..spec import Arg, OpSpec, needs_all, register


def _check_tensor(op, x):
    runtime.check_float(op, "x", x)
    runtime.check_devices(op, {"x": x})


def _keep_shape(shape, dims) -> tuple[int, ...]:
    return tuple(1 if d in dims else s for d, s in enumerate(shape))


# --------------------------------------------------------------------------------------------
# replicate(s, shape)


def _replicate_check(s, shape):
    _check_tensor("replicate", s)
    if s.dim() != 0:
        raise ValueError(f"triton_ops.replicate: s must be a 0-d tensor, got shape {tuple(s.shape)}")
    shape = tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"triton_ops.replicate: shape {shape} has a negative size")
    return s, shape


def _replicate_vjp(s, shape, grad, needs=None):
    (need,) = needs_all(REPLICATE_ARGS, (s, shape), needs)
    return (reduce_to(grad, ()) if need else None,)


REPLICATE_ARGS = (Arg("s"), Arg("shape", "int[]"))
replicate = register(OpSpec(
    name="replicate", family="shape", args=REPLICATE_ARGS, vjp_layout_only=("s",), vjp_shape_only=("s",),
    forward=lambda s, shape: broadcast_to(s, shape, backward=False),
    vjp=_replicate_vjp,
    reference=lambda s, shape: s.expand(shape).clone(),
    fwd_kernels=(pointwise_fwd_kernel,), bwd_kernels=(pointwise_vjp_kernel, combine_vjp_kernel),
    check=_replicate_check,
    alloc=lambda s, shape: s.new_empty(shape),
    vjp_alloc=lambda s, shape, grad: [torch.empty_like(s)],
    min_bytes=lambda s, shape: (s.element_size() * (1 + runtime.numel(shape)),) * 2,
    sample=lambda shape, dtype, device, gen: (
        torch.randn((), generator=gen, device=gen.device, dtype=torch.float64).to(device, dtype),
        list(shape)),
    doc="replicate(s, shape): a 0-d tensor broadcast to a new tensor of `shape`; gradient = sum of g.")).fn


# --------------------------------------------------------------------------------------------
# sum_to(x, shape)


def _sum_to_check(x, shape):
    _check_tensor("sum_to", x)
    shape = tuple(int(n) for n in shape)
    try:
        out = broadcast_shapes("sum_to", shape, x.shape)
    except ValueError:
        out = None
    if out != tuple(x.shape):
        raise ValueError(f"triton_ops.sum_to: shape {shape} does not broadcast to x's shape {tuple(x.shape)}")
    return x, shape


def _broadcast_back(grad, shape):
    """sum's and sum_to's gradient: g broadcast back to x's ``shape``. Where that repeats g (an
    axis of stride 0) it is a view of g, as eager's ``expand`` (no kernel, no bytes: the minimum
    counts 0); the custom-op route copies it (``spec``: a custom op may not return a view of its
    input). Where it only reshapes g (the summed axes all of size 1) it is a copy: a dense view
    would become the leaf's ``.grad`` itself (AccumulateGrad keeps it), and an in-place update of
    that ``.grad`` would write into the caller's g."""
    if runtime.numel(shape) > grad.numel():
        return grad.expand(shape)
    return broadcast_to(grad, shape)


def _sum_to_vjp(x, shape, grad, needs=None):
    (need,) = needs_all(SUM_TO_ARGS, (x, shape), needs)
    return (_broadcast_back(grad, x.shape) if need else None,)


SUM_TO_ARGS = (Arg("x"), Arg("shape", "int[]"))
sum_to = register(OpSpec(
    name="sum_to", family="shape", args=SUM_TO_ARGS, vjp_layout_only=("x",), vjp_shape_only=("x",),
    forward=lambda x, shape: reduce_to(x, shape, forward=True),
    vjp=_sum_to_vjp,
    reference=lambda x, shape: x.sum_to_size(shape),
    fwd_kernels=(sum_fwd_kernel, combine_fwd_kernel), bwd_kernels=(broadcast_bwd_kernel,),
    check=_sum_to_check,
    alloc=lambda x, shape: x.new_empty(shape),
    vjp_alloc=lambda x, shape, grad: [x.new_empty(x.shape)],
    # the gradient may be a broadcast view of g (eager's is): nothing to move
    min_bytes=lambda x, shape: ((x.numel() + runtime.numel(shape)) * x.element_size(), 0),
    sample=lambda shape, dtype, device, gen: (
        torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64).to(device, dtype),
        [1] + list(shape[1:])),
    doc="sum_to(x, shape): the reduce-back map (sum over the axes along which `shape` broadcasts to x).")).fn


# --------------------------------------------------------------------------------------------
# sum(x, dim, keepdim=False)


def _sum_check(x, dim, keepdim):
    _check_tensor("sum", x)
    if not isinstance(keepdim, bool):
        raise TypeError(f"triton_ops.sum: keepdim must be a bool, got {type(keepdim).__name__}")
    if dim is None or (not isinstance(dim, int) and len(dim) == 0):  # as torch.sum: every axis
        dim = tuple(range(x.dim()))
    return x, list(runtime.normalize_dims("sum", dim, x.dim())), keepdim


def _sum_out_shape(x, dim, keepdim):
    dims = set(dim)
    if keepdim:
        return _keep_shape(x.shape, dims)
    return tuple(s for d, s in enumerate(x.shape) if d not in dims)


def _sum_forward(x, dim, keepdim):
    kept = reduce_to(x, _keep_shape(x.shape, set(dim)) if x.dim() else (), forward=True)
    return kept.view(_sum_out_shape(x, dim, keepdim))


def _sum_vjp(x, dim, keepdim, grad, needs=None):
    (need,) = needs_all(SUM_ARGS, (x, dim, keepdim), needs)
    if not need:
        return (None,)
    if not keepdim and len(x.shape):
        for d in dim:  # sorted: put the summed axes back as size-1 views
            grad = grad.unsqueeze(d)
    return (_broadcast_back(grad, x.shape),)


SUM_ARGS = (Arg("x"), Arg("dim", "int[]", None), Arg("keepdim", "bool", False))
sum = register(OpSpec(  # noqa: A001 - the SPEC's name
    name="sum", family="shape", args=SUM_ARGS, vjp_layout_only=("x",), vjp_shape_only=("x",),
    forward=_sum_forward, vjp=_sum_vjp,
    reference=lambda x, dim, keepdim=False: x.sum(tuple(dim), keepdim=keepdim),
    fwd_kernels=(sum_fwd_kernel, combine_fwd_kernel), bwd_kernels=(broadcast_bwd_kernel,),
    check=_sum_check,
    alloc=lambda x, dim, keepdim=False: x.new_empty(_sum_out_shape(x, dim, keepdim)),
    vjp_alloc=lambda x, dim, keepdim, grad: [x.new_empty(x.shape)],
    # the gradient may be a broadcast view of g (eager's is): nothing to move
    min_bytes=lambda x, dim, keepdim=False: (
        (x.numel() + runtime.numel(_sum_out_shape(x, dim, keepdim))) * x.element_size(), 0),
    sample=lambda shape, dtype, device, gen: (
        torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64).to(device, dtype), [0], False),
    doc="sum(x, dim, keepdim=False): sum over `dim` (an int or a tuple of ints).")).fn
