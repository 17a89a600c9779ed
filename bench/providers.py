"""The competitors of every op, in one place: the PyTorch call a user would write (``torch``),
``torch.compile`` of that same call, and Liger-Kernel (``liger``) for the ops it has.

Each entry takes the op's bound positional arguments (``spec.bind(...)``) and returns its
output. ``impl`` is what the row's CSV column ``impl`` says: the call, as a user would read it.
A composite (several calls) is used only where PyTorch has no single call for the math.
``python -m bench`` (timings, counted traffic) and ``python -m bench --host`` both read this.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# The order the benchmark runs them on one case's inputs: liger last, since its cross-entropy
# writes the gradient into the logits in place.
PROVIDERS = ("triton_ops", "torch", "torch.compile", "liger")


@dataclass(frozen=True)
class Call:
    impl: str
    fn: Callable
    composite: bool = False   # no single PyTorch call computes this op


def _reduce(v, reduction):
    return v.mean() if reduction == "mean" else v.sum() if reduction == "sum" else v


def _cosine_loss(x, t, dim=None, eps=1e-6, reduction="mean"):
    if dim is None:  # one cosine over the flattened tensors
        x, t, dim = x.reshape(-1), t.reshape(-1), 0
    return _reduce(1 - F.cosine_similarity(x, t, dim=dim, eps=eps), reduction)


def _cross_entropy_logits(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if z.dim() > 1 and dim % z.dim() != 1:  # F.cross_entropy wants classes on dim 1: a view
        z = z.movedim(dim, 1)
    return F.cross_entropy(z, target, ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)


def _linear(x, weight, bias=None, activation=None, precision=None):
    y = F.linear(x, weight, bias)
    return y if activation is None else TORCH[activation].fn(y)


def _log_cosh(x, t, reduction="mean"):
    d = (x - t).abs()  # the stable form: log cosh d = d + log1p(exp(-2d)) - log 2
    return _reduce(d + torch.log1p(torch.exp(-2 * d)) - 0.6931471805599453, reduction)


def _linear_cross_entropy(x, weight, target, bias=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    return F.cross_entropy(F.linear(x, weight, bias).flatten(0, -2), target.reshape(-1), ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)


TORCH: dict[str, Call] = {
    # unary
    "gelu": Call("F.gelu(x, approximate='tanh')", lambda x: F.gelu(x, approximate="tanh")),
    "elu": Call("F.elu(x, alpha)", lambda x, alpha=1.0: F.elu(x, alpha)),
    "leaky_relu": Call("F.leaky_relu(x, negative_slope)", lambda x, negative_slope=0.01: F.leaky_relu(x, negative_slope)),
    "log": Call("torch.log(x)", lambda x: torch.log(x)),
    "sqrt": Call("torch.sqrt(x)", lambda x: torch.sqrt(x)),
    "reciprocal": Call("torch.reciprocal(x)", lambda x: torch.reciprocal(x)),
    "identity": Call("x.clone()", lambda x: x.clone()),
    "safe_log": Call("torch.log(x + eps)", lambda x, eps=1e-6: torch.log(x + eps), composite=True),
    "safe_reciprocal": Call("torch.reciprocal(x + eps)", lambda x, eps=1e-6: torch.reciprocal(x + eps), composite=True),
    "smooth_abs": Call("torch.sqrt(x * x + eps)", lambda x, eps=1e-6: torch.sqrt(x * x + eps), composite=True),
    "gelu_erf": Call("F.gelu(x)", lambda x: F.gelu(x)),
    # binary (the Broadcast descriptor is triton_ops' own: PyTorch broadcasts by shape)
    "add": Call("torch.add(a, b, alpha=alpha)", lambda a, b, alpha=1.0, broadcast=None: torch.add(a, b, alpha=alpha)),
    "sub": Call("torch.sub(a, b, alpha=alpha)", lambda a, b, alpha=1.0, broadcast=None: torch.sub(a, b, alpha=alpha)),
    "mul": Call("a * b", lambda a, b, broadcast=None: a * b),
    "div": Call("a / b", lambda a, b, broadcast=None: a / b),
    "safe_div": Call("a / (b + eps)", lambda a, b, eps=1e-6, broadcast=None: a / (b + eps), composite=True),
    # losses
    "mse_loss": Call("F.mse_loss(x, t)", lambda x, t, reduction="mean": F.mse_loss(x, t, reduction=reduction)),
    "mae_loss": Call("F.l1_loss(x, t)", lambda x, t, reduction="mean": F.l1_loss(x, t, reduction=reduction)),
    "huber_loss": Call("F.huber_loss(x, t, delta=delta)",
                       lambda x, t, delta=1.0, reduction="mean": F.huber_loss(x, t, reduction=reduction, delta=delta)),
    # F.binary_cross_entropy clamps log(p) at -100 where triton_ops clamps p to [eps, 1 - eps]: the
    # same values on the benchmark's inputs (p in [0.01, 0.99])
    "binary_cross_entropy": Call("F.binary_cross_entropy(p, y)",
                                 lambda p, y, eps=1e-6, reduction="mean": F.binary_cross_entropy(p, y, reduction=reduction)),
    "poisson_loss": Call("F.poisson_nll_loss(x, t, log_input=True)",
                         lambda x, t, reduction="mean": F.poisson_nll_loss(x, t, log_input=True, full=False,
                                                                           reduction=reduction)),
    # the torch parity losses (ops/parity.py)
    "bce_log_clamp": Call("F.binary_cross_entropy(p, y)",
                          lambda p, y, reduction="mean": F.binary_cross_entropy(p, y, reduction=reduction)),
    "bce_with_logits": Call("F.binary_cross_entropy_with_logits(x, y)",
                            lambda x, y, reduction="mean": F.binary_cross_entropy_with_logits(x, y, reduction=reduction)),
    "poisson_nll_full": Call("F.poisson_nll_loss(x, t, log_input=True, full=True)",
                             lambda x, t, reduction="mean": F.poisson_nll_loss(x, t, log_input=True, full=True,
                                                                               reduction=reduction)),
    "poisson_nll_rate": Call("F.poisson_nll_loss(x, t, log_input=False, eps=eps)",
                             lambda x, t, eps=1e-8, reduction="mean": F.poisson_nll_loss(x, t, log_input=False, eps=eps,
                                                                                         reduction=reduction)),
    "poisson_nll_rate_full": Call("F.poisson_nll_loss(x, t, log_input=False, full=True, eps=eps)",
                                  lambda x, t, eps=1e-8, reduction="mean": F.poisson_nll_loss(
                                      x, t, log_input=False, full=True, eps=eps, reduction=reduction)),
    "hinge_loss": Call("torch.clamp(1 - t * x, min=0).mean()",
                       lambda x, t, reduction="mean": _reduce(torch.clamp(1 - t * x, min=0), reduction), composite=True),
    "log_cosh_loss": Call("(d + log1p(exp(-2d)) - log 2).mean(), d = |x - t|", _log_cosh, composite=True),
    "cross_entropy": Call("(-p * torch.log(q.clamp(eps, 1 - eps))).sum(dim).mean()",
                          lambda q, p, dim=-1, eps=1e-6, reduction="mean": _reduce(
                              (-p * torch.log(q.clamp(eps, 1 - eps))).sum(dim), reduction), composite=True),
    "cross_entropy_logits": Call("F.cross_entropy(z, target)", _cross_entropy_logits),
    "cosine_similarity_loss": Call("(1 - F.cosine_similarity(x, t, dim)).mean()", _cosine_loss, composite=True),
    # layers
    "layer_norm": Call("F.layer_norm(x, normalized_shape, weight, bias, eps)",
                       lambda x, normalized_shape, weight=None, bias=None, eps=1e-5: F.layer_norm(
                           x, list(normalized_shape), weight, bias, eps)),
    "linear": Call("activation(F.linear(x, weight, bias)), the activation's torch call", _linear),
    "matmul": Call("torch.matmul(a, b)", lambda a, b, precision=None: torch.matmul(a, b)),
    "one_hot_embedding": Call("torch.matmul(onehot, weight)", lambda onehot, weight: torch.matmul(onehot, weight)),
    "embedding": Call("F.embedding(indices, weight)", lambda indices, weight: F.embedding(indices, weight)),
    # LLM ops (branch i16): entries apply once those ops are registered
    "silu": Call("F.silu(x)", lambda x: F.silu(x)),
    "relu": Call("F.relu(x)", lambda x: F.relu(x)),
    "swiglu": Call("F.silu(gate) * up", lambda a, b, broadcast=None: F.silu(a) * b, composite=True),
    "softmax": Call("torch.softmax(x, dim)", lambda x, dim=-1: torch.softmax(x, dim)),
    "log_softmax": Call("torch.log_softmax(x, dim)", lambda x, dim=-1: torch.log_softmax(x, dim)),
    "rms_norm": Call("F.rms_norm(x, normalized_shape, weight, eps)",
                     lambda x, normalized_shape, weight=None, eps=None: F.rms_norm(x, list(normalized_shape), weight, eps)),
    "linear_cross_entropy": Call("F.cross_entropy(F.linear(x, weight, bias), target)", _linear_cross_entropy,
                                 composite=True),
    # shape (triton_ops materializes its output: the comparable call does too)
    "sum": Call("x.sum(dim, keepdim)", lambda x, dim, keepdim=False: x.sum(tuple(dim), keepdim=keepdim)),
    "sum_to": Call("x.sum_to_size(shape)", lambda x, shape: x.sum_to_size(list(shape))),
    "replicate": Call("s.expand(shape).contiguous()", lambda s, shape: s.expand(list(shape)).contiguous()),
    "transpose": Call("x.transpose(dim0, dim1).contiguous()",
                      lambda x, dim0=0, dim1=1: x.transpose(dim0, dim1).contiguous()),
}


# Liger-Kernel (``pip install liger-kernel``): imported on first use, so that a machine without
# it (CPU) lists the provider as skipped instead of failing.
def _liger_cross_entropy(z, target, dim=-1, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    from liger_kernel.transformers import LigerCrossEntropyLoss

    return LigerCrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing,
                                 reduction=reduction)(z.reshape(-1, z.shape[dim]), target.reshape(-1))


def _liger_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    from liger_kernel.ops.layer_norm import LigerLayerNormFunction

    return LigerLayerNormFunction.apply(x, weight, bias, eps)


def _liger_rms_norm(x, normalized_shape, weight=None, eps=None):
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction

    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return LigerRMSNormFunction.apply(x, weight if weight is not None else x.new_ones(x.shape[-1]), eps)


def _liger_swiglu(a, b, broadcast=None):
    from liger_kernel.ops.swiglu import LigerSiLUMulFunction

    if a.shape != b.shape:  # its kernel reads b as a's shape: past a broadcast b's end
        raise ValueError(f"Liger's SiLU-mul takes two tensors of one shape, not {tuple(a.shape)} and {tuple(b.shape)}")
    return LigerSiLUMulFunction.apply(a, b)


def _liger_linear_cross_entropy(x, weight, target, bias=None, ignore_index=-100, reduction="mean",
                                label_smoothing=0.0):
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing,
                                            reduction=reduction)
    return loss(weight, x.flatten(0, -2), target.reshape(-1), bias)


LIGER: dict[str, Call] = {
    "cross_entropy_logits": Call("liger_kernel LigerCrossEntropyLoss", _liger_cross_entropy),
    "layer_norm": Call("liger_kernel LigerLayerNormFunction", _liger_layer_norm),
    "rms_norm": Call("liger_kernel LigerRMSNormFunction", _liger_rms_norm),
    "swiglu": Call("liger_kernel LigerSiLUMulFunction", _liger_swiglu),
    "linear_cross_entropy": Call("liger_kernel LigerFusedLinearCrossEntropyLoss", _liger_linear_cross_entropy),
}


@functools.cache
def liger_missing() -> str | None:
    """Why the ``liger`` provider cannot run here (None when it can)."""
    try:
        import liger_kernel  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means: skip, and say why
        return f"liger-kernel not importable ({type(exc).__name__}: {exc})"[:200]
    if not torch.cuda.is_available():
        return "liger-kernel needs a CUDA device"
    return None


@functools.cache
def _compiled(name: str):
    # one static specialization per shape (Inductor's best case), and room for every shape of a
    # sweep: past the recompile limit Dynamo would silently run the call eagerly
    import torch._dynamo

    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, max(64, getattr(torch._dynamo.config, knob)))
    return torch.compile(TORCH[name].fn, dynamic=False)


def call(provider: str, spec) -> Call | None:
    """The callable (on the op's bound positional arguments) of ``provider`` for ``spec``; None
    where the provider has no version of the op (``liger`` for most ops, or not installed)."""
    if provider == "triton_ops":
        return Call(f"triton_ops.{spec.name}", spec.fn)
    if provider == "torch":
        return TORCH[spec.name]
    if provider == "torch.compile":
        return Call(f"torch.compile({TORCH[spec.name].impl})", _compiled(spec.name), TORCH[spec.name].composite)
    if provider == "liger":
        return LIGER.get(spec.name) if liger_missing() is None else None
    raise ValueError(f"unknown provider {provider!r}; known: {PROVIDERS}")
