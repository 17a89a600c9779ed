"""``torch.nn.functional`` on triton_ops kernels (SPEC section 6): ``import triton_ops.functional as TF``.

Same names, parameters, defaults and semantics as the installed torch's ``torch.nn.functional``.
Where torch and SPEC sections 1-4 differ (BCE's clamp, ``gelu``'s approximation,
``cross_entropy``'s class axis and its NaN when every target is ignored), these follow torch; the
registry ops keep the SPEC. Each function hands its big tensors to one registry op (one fused
kernel forward, one backward); what is composed around it out of further registry ops is
per-row or per-class work (gathering class weights, dividing a sum by a count) or, where noted,
an argument torch applies elementwise (``weight=`` of the elementwise losses).

Arguments triton_ops does not implement (``inplace=True``, ``max_norm``, ``sparse``, the
deprecated ``size_average``/``reduce``, ...) raise ``NotImplementedError`` naming the argument.
"""
from __future__ import annotations

import math
import warnings

import torch

import triton_ops as _ops

__all__ = ["gelu", "elu", "leaky_relu", "relu", "silu", "softmax", "log_softmax", "layer_norm", "rms_norm",
           "linear", "embedding", "mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "poisson_nll_loss", "cosine_similarity",
           "matmul"]


def _unsupported(fn: str, **given):
    """``NotImplementedError`` for the first argument given a value triton_ops does not implement."""
    for name, bad in given.items():
        if bad:
            raise NotImplementedError(f"triton_ops.functional.{fn}: argument {name} is not implemented "
                                      f"(call torch.nn.functional.{fn} for it)")


def _legacy(fn, size_average, reduce):
    _unsupported(fn, size_average=size_average is not None, reduce=reduce is not None)


def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _total(x):
    """Sum of every element, as a 0-d tensor (a registry ``sum``)."""
    return _ops.sum(x, tuple(range(x.dim()))) if x.dim() else x


def _reduce(per, reduction, denominator):
    """``per`` (losses of the 'none' form) reduced as torch does: 'mean' divides the sum by
    ``denominator`` (a number, or a 0-d tensor that carries its own gradient)."""
    if reduction == "none":
        return per
    total = _total(per)
    return total if reduction == "sum" else _ops.div(total, denominator)


def _broadcast_pair(input, target, warn: bool):
    """torch's broadcasting of a loss's two operands (with its warning): stride-0 views, which
    the loss kernels read in place."""
    if input.shape == target.shape:
        return input, target
    if warn:
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input size ({input.size()}). "
                      "This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", stacklevel=4)
    return torch.broadcast_tensors(input, target)


# --------------------------------------------------------------------------------------------
# activations


def gelu(input, approximate="none"):
    if approximate == "none":
        return _ops.gelu_erf(input)
    if approximate == "tanh":
        return _ops.gelu(input)
    raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")


def elu(input, alpha=1.0, inplace=False):
    _unsupported("elu", inplace=inplace)
    return _ops.elu(input, alpha)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    _unsupported("leaky_relu", inplace=inplace)
    return _ops.leaky_relu(input, negative_slope)


def relu(input, inplace=False):
    _unsupported("relu", inplace=inplace)
    return _ops.relu(input)


def silu(input, inplace=False):
    _unsupported("silu", inplace=inplace)
    return _ops.silu(input)


def _softmax_dim(name, ndim):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  "Change the call to include dim=X as an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_like(op, name, input, dim, dtype):
    if dim is None:
        dim = _softmax_dim(name, input.dim())
    if dtype is not None and dtype != input.dtype:
        input = input.to(dtype)  # torch casts before the op too (one conversion pass)
    if input.dim() == 0:
        return op(input.unsqueeze(0), 0).squeeze(0)
    return op(input, dim)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _softmax_like(_ops.softmax, "softmax", input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _softmax_like(_ops.log_softmax, "log_softmax", input, dim, dtype)


# --------------------------------------------------------------------------------------------
# layers


def _shape_list(normalized_shape):
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    return _ops.layer_norm(input, _shape_list(normalized_shape), weight, bias, eps)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    return _ops.rms_norm(input, _shape_list(normalized_shape), weight, eps)


def linear(input, weight, bias=None):
    return _ops.linear(input, weight, bias)


class _ZeroRowGrad(torch.autograd.Function):
    """Identity forward; the backward zeroes one row of the weight's gradient (``padding_idx``:
    that row gets no gradient, as in torch). One row of writes, on the gradient our own
    embedding VJP just allocated."""

    @staticmethod
    def forward(ctx, weight, row):
        ctx.row = row
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone() if grad._base is not None else grad
        grad[ctx.row] = 0
        return grad, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    _unsupported("embedding", max_norm=max_norm is not None, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)
    if padding_idx is not None:
        if not -weight.size(0) <= padding_idx < weight.size(0):
            raise AssertionError("Padding_idx must be within num_embeddings")
        if torch.is_grad_enabled() and weight.requires_grad:
            weight = _ZeroRowGrad.apply(weight, padding_idx % weight.size(0))
    return _ops.embedding(input, weight)


def matmul(input, other, *, out=None):
    """torch.matmul: 1-D operands, batch broadcasting and any rank, on the registry's 2-D /
    batched 3-D GEMM. Batches are flattened by views where the layout allows (reshape copies
    only a broadcast or non-mergeable batch); a 2-D right operand folds the left one's batch into
    its rows (one 2-D GEMM)."""
    _unsupported("matmul", out=out is not None)
    a, b = input, other
    if a.dim() == 0 or b.dim() == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {a.dim()}D and {b.dim()}D")
    a_vector, b_vector = a.dim() == 1, b.dim() == 1
    a = a.unsqueeze(0) if a_vector else a
    b = b.unsqueeze(-1) if b_vector else b
    if b.dim() == 2:
        out_ = _ops.matmul(a.reshape(math.prod(a.shape[:-1]), a.shape[-1]), b).view(*a.shape[:-1], b.shape[-1])
    else:
        batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a3 = a.expand(*batch, *a.shape[-2:]).reshape(math.prod(batch), *a.shape[-2:])
        b3 = b.expand(*batch, *b.shape[-2:]).reshape(math.prod(batch), *b.shape[-2:])
        out_ = _ops.matmul(a3, b3).view(*batch, a.shape[-2], b.shape[-1])
    out_ = out_.squeeze(-2) if a_vector else out_
    return out_.squeeze(-1) if b_vector else out_


# --------------------------------------------------------------------------------------------
# elementwise losses


def _mean_empty(out, input, reduction):
    # torch: a mean over nothing is NaN (the registry's SPEC says 0)
    return _ops.div(out, 0.0) if reduction == "mean" and input.numel() == 0 else out


def _pair_loss(loss, input, target, reduction, weight, mean_by_weight):
    """mse / l1 / huber as torch: operands broadcast (with torch's warning); ``weight=`` (same
    shape as the input) multiplies the per-element losses, and 'mean' then divides by sum(weight)
    (mse, l1) or by N (huber)."""
    _check_reduction(reduction)
    input, target = _broadcast_pair(input, target, warn=True)
    if weight is None:
        return _mean_empty(loss(input, target, reduction=reduction), input, reduction)
    if weight.size() != input.size():
        raise ValueError("Weights and input must have the same size.")
    per = _ops.mul(loss(input, target, reduction="none"), weight)
    return _reduce(per, reduction, _total(weight) if mean_by_weight else float(per.numel()))


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _legacy("mse_loss", size_average, reduce)
    return _pair_loss(_ops.mse_loss, input, target, reduction, weight, mean_by_weight=True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    _legacy("l1_loss", size_average, reduce)
    return _pair_loss(_ops.mae_loss, input, target, reduction, weight, mean_by_weight=True)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    def loss(x, t, reduction):
        return _ops.huber_loss(x, t, delta, reduction=reduction)

    return _pair_loss(loss, input, target, reduction, weight, mean_by_weight=False)


def _elementwise_weight(loss, input, target, weight, reduction):
    """BCE's per-element ``weight`` (broadcast to the target's shape): registry loss per element
    times the weight, 'mean' over N, as torch."""
    if weight is None:
        return _mean_empty(loss(input, target, reduction=reduction), input, reduction)
    per = _ops.mul(loss(input, target, reduction="none"), weight.expand(torch.broadcast_shapes(target.shape,
                                                                                                weight.shape)))
    return _mean_empty(_reduce(per, reduction, float(max(per.numel(), 1))), input, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    _legacy("binary_cross_entropy", size_average, reduce)
    _check_reduction(reduction)
    if target.size() != input.size():
        raise ValueError(f"Using a target size ({target.size()}) that is different to the input size "
                         f"({input.size()}) is deprecated. Please ensure they have the same size.")
    return _elementwise_weight(_ops.bce_log_clamp, input, target, weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    _legacy("binary_cross_entropy_with_logits", size_average, reduce)
    _check_reduction(reduction)
    if target.size() != input.size():
        raise ValueError(f"Target size ({target.size()}) must be the same as input size ({input.size()})")
    if pos_weight is None:
        return _elementwise_weight(_ops.bce_with_logits, input, target, weight, reduction)
    # (1 - y) x + (1 + (p - 1) y) softplus(-x) = bce(x, y) + (p - 1) y softplus(-x), and
    # softplus(-x) = bce(x, 1): composed of registry ops (four more passes, no fused kernel).
    per = _ops.bce_with_logits(input, target, reduction="none")
    softplus_neg = _ops.bce_with_logits(input, torch.ones((), dtype=input.dtype, device=input.device)
                                        .expand(input.shape), reduction="none")
    per = _ops.add(per, _ops.mul(_ops.mul(target, _ops.sub(pos_weight, 1.0)), softplus_neg))
    if weight is not None:
        per = _ops.mul(per, weight)
    return _mean_empty(_reduce(per, reduction, float(max(per.numel(), 1))), input, reduction)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-08, reduce=None,
                     reduction="mean"):
    _legacy("poisson_nll_loss", size_average, reduce)
    _check_reduction(reduction)
    input, target = _broadcast_pair(input, target, warn=False)
    if log_input:
        out = (_ops.poisson_nll_full if full else _ops.poisson_loss)(input, target, reduction=reduction)
    else:
        out = (_ops.poisson_nll_rate_full if full else _ops.poisson_nll_rate)(input, target, eps,
                                                                               reduction=reduction)
    return _mean_empty(out, input, reduction)


# --------------------------------------------------------------------------------------------
# class-index losses


def _class_dim(input):
    return 1 if input.dim() >= 2 else 0


def _target_weights(target, weight, ignore_index, dtype):
    """Per-row class weight ``weight[target]`` (0 where the target is ignored) and the mask of
    kept rows: a gather of R values (a registry ``embedding`` on a [C, 1] table, so the
    gradient reaches ``weight`` too), or the kept-row mask itself without weights."""
    kept = target != ignore_index
    if weight is None:
        return kept.to(dtype)
    safe = torch.where(kept, target, 0)
    w = _ops.embedding(safe, weight.unsqueeze(1)).squeeze(-1)
    return _ops.mul(w, kept.to(w.dtype))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    _legacy("cross_entropy", size_average, reduce)
    _check_reduction(reduction)
    dim = _class_dim(input)
    if weight is not None and label_smoothing > 0:
        _unsupported("cross_entropy", **{"weight together with label_smoothing": True})
    if target.is_floating_point():  # class probabilities: 'mean' over rows, as the registry op
        if weight is not None:
            shape = [1] * input.dim()
            shape[dim] = -1
            target = _ops.mul(target, weight.view(shape))
        return _ops.cross_entropy_logits(input, target, dim, ignore_index, label_smoothing, reduction)
    if weight is None and reduction != "mean":
        return _ops.cross_entropy_logits(input, target, dim, ignore_index, label_smoothing, reduction)
    per = _ops.cross_entropy_logits(input, target, dim, ignore_index, label_smoothing, "none")
    w = _target_weights(target, weight, ignore_index, per.dtype)
    if weight is not None:
        per = _ops.mul(per, w)
    # torch: 'mean' divides by the kept rows' weight, so every target ignored gives NaN
    return _reduce(per, reduction, _total(w))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """-input[n, target[n, d...], d...] (times the class weight): a gather of R values, by a
    registry ``embedding`` on the input viewed as an [N*C*D, 1] table (a view when the input is
    contiguous; torch makes the copy otherwise)."""
    _legacy("nll_loss", size_average, reduce)
    _check_reduction(reduction)
    C = input.shape[_class_dim(input)]
    rows_shape = (input.shape[0], *input.shape[2:]) if input.dim() > 1 else ()
    if tuple(target.shape) != rows_shape:
        raise ValueError(f"Expected target of shape {rows_shape}, got {tuple(target.shape)}")
    D = math.prod(input.shape[2:])
    kept = target != ignore_index
    safe = torch.where(kept, target, 0)
    row = torch.arange(safe.numel(), device=safe.device).view(safe.shape)  # n * D + d
    flat = (row // D * C + safe) * D + row % D
    picked = _ops.embedding(flat, input.contiguous().view(-1, 1)).view(rows_shape)
    w = _target_weights(target, weight, ignore_index, input.dtype)
    per = _ops.mul(picked, _ops.mul(w, -1.0))
    return _reduce(per, reduction, _total(w))


# --------------------------------------------------------------------------------------------
# cosine_similarity


def cosine_similarity(x1, x2, dim=1, eps=1e-08):
    """<x1, x2> / (max(|x1|, eps) max(|x2|, eps)) along ``dim``, broadcasting as torch: one
    minus the registry's per-slice ``cosine_similarity_loss`` (one fused pass, then R values)."""
    x1, x2 = torch.broadcast_tensors(x1, x2) if x1.shape != x2.shape else (x1, x2)
    if x1.dim() == 0:  # torch takes a 0-d pair as one slice of length 1
        if dim not in (0, -1):
            raise IndexError(f"Dimension out of range (expected to be in range of [-1, 0], but got {dim})")
        x1, x2, dim = x1.unsqueeze(0), x2.unsqueeze(0), 0
    return _ops.sub(1.0, _ops.cosine_similarity_loss(x1, x2, dim, eps, "none"))
