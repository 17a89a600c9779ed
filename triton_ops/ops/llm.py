"""LLM training ops (SPEC section 7): silu, relu, swiglu (on the pointwise templates), softmax,
log_softmax, rms_norm (row kernels of their own) and linear_cross_entropy (the GEMM template and
the cross-entropy row kernels, chunked over rows: no N x V tensor ever exists)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..bwd.broadcast import broadcast_bwd_kernel
from ..bwd.loss import ce_logits_bwd_kernel
from ..bwd.matmul import gemm_vjp_kernel
from ..bwd.reduce import combine_vjp_kernel
from ..bwd.rms_norm import rms_norm_bwd_kernel
from ..bwd.norm_long import norm_columns_bwd_kernel, norm_row_sums_kernel
from ..bwd.softmax import softmax_bwd_kernel
from ..fwd.loss import ce_logits_fwd_kernel
from ..fwd.matmul import gemm_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..fwd.rms_norm import rms_norm_fwd_kernel
from ..fwd.softmax import softmax_fwd_kernel
from ..launchers.llm import (chunk_rows, linear_cross_entropy_forward, linear_cross_entropy_scale,
                             linear_cross_entropy_vjp)
from ..launchers.norm import rms_norm_forward, rms_norm_vjp, stat_dtype
from ..launchers.softmax import softmax_forward, softmax_vjp
from ..spec import Arg, OpSpec, needs_all, register
from .binary import A_ONLY, BOTH, binary_op
from .cross_entropy import check_class_indices
from .layers import randn, same_dtype
from .loss import check_reduction, reduce
from .unary import unary_op

# --------------------------------------------------------------------------------------------
# silu, relu, swiglu: scalar math on the pointwise templates


@triton.jit
def silu_f(x):
    return x * tl.sigmoid(x)


@triton.jit
def silu_df(x):
    s = tl.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


@triton.jit
def relu_f(x):
    return tl.where(x < 0, 0.0, x)  # NaN and -0.0 pass through, as torch.relu


@triton.jit
def relu_df(x):
    return tl.where(x > 0, 1.0, 0.0)


@triton.jit
def swiglu_f(gate, up):
    return silu_f(gate) * up


@triton.jit
def swiglu_dgate(gate, up):
    return silu_df(gate) * up


@triton.jit
def swiglu_dup(gate, up):
    return silu_f(gate)


silu = unary_op("silu", silu_f, silu_df, reference=lambda x: x * torch.sigmoid(x),
                doc="silu(x): x * sigmoid(x) (= F.silu).").fn
relu = unary_op("relu", relu_f, relu_df, reference=lambda x: torch.where(x < 0, 0.0, x),
                doc="relu(x): max(x, 0) (= F.relu); gradient 0 at x = 0.").fn
swiglu = binary_op("swiglu", swiglu_f, swiglu_dgate, swiglu_dup, reads=(BOTH, A_ONLY),
                   reference=lambda a, b, broadcast=None: a * torch.sigmoid(a) * b,
                   doc="swiglu(gate, up, broadcast=None): silu(gate) * up with broadcasting; both gradients "
                       "reduced back to their operand's shape.").fn


# --------------------------------------------------------------------------------------------
# softmax(input, dim=-1), log_softmax(input, dim=-1)


def _dim(dim, rank):
    """A dim as the custom op may receive it (negative when called through torch.ops directly)."""
    return dim % max(rank, 1)


def _rows(x, dim) -> int:
    """Rows of a softmax along ``dim``: every element of the other axes."""
    C = x.shape[_dim(dim, x.dim())] if x.dim() else 1
    return x.numel() // C if C else 0


def _softmax_op(name: str, log: bool, reference):
    def check(x, dim):
        runtime.check_float(name, "input", x)
        runtime.check_devices(name, {"input": x})
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"triton_ops.{name}: dim must be an int, got {dim!r}")
        return x, runtime.normalize_dims(name, dim, x.dim())[0]

    def alloc(x, dim):
        return torch.empty_like(x), x.new_empty((_rows(x, dim),), dtype=stat_dtype(x))

    def forward(x, dim):
        """The forward alone (no gradient will be asked for): no log-sum-exp allocated or written."""
        return softmax_forward(x, _dim(dim, x.dim()), log, torch.empty_like(x))[0]

    def forward_saved(x, dim):
        return softmax_forward(x, _dim(dim, x.dim()), log, *alloc(x, dim))

    def vjp(x, dim, grad, needs=None, saved=None):
        (lse,) = saved
        (need_x,) = needs_all(args, (x,), needs)
        return (softmax_vjp(x, _dim(dim, x.dim()), log, grad, lse) if need_x else None,)

    def min_bytes(x, dim=-1):
        stats = _rows(x, dim) * 4
        # the forward alone stores no log-sum-exp (a training forward adds it)
        return 2 * runtime.nbytes(x), 3 * runtime.nbytes(x) + stats

    args = (Arg("input"), Arg("dim", "int", -1))
    return register(OpSpec(
        name=name, family="norm", args=args, forward=forward, forward_saved=forward_saved, n_saved=1, vjp=vjp,
        reference=reference, fwd_kernels=(softmax_fwd_kernel,), bwd_kernels=(softmax_bwd_kernel,),
        check=check, alloc=alloc, vjp_alloc=lambda x, dim, grad: [torch.empty_like(x)], min_bytes=min_bytes,
        sample=lambda shape, dtype, device, gen: (randn(shape, dtype, device, gen, 3.0), -1),
        doc=f"{name}(input, dim=-1) (= torch.{name}): any dim, read through strides; rows of any length."))


softmax = _softmax_op("softmax", False, lambda x, dim=-1: torch.softmax(x, dim)).fn
log_softmax = _softmax_op("log_softmax", True, lambda x, dim=-1: torch.log_softmax(x, dim)).fn


# --------------------------------------------------------------------------------------------
# rms_norm(input, normalized_shape, weight=None, eps=None)


def _rms_check(x, normalized_shape, weight, eps):
    op = "rms_norm"
    runtime.check_float(op, "input", x)
    if weight is not None:
        runtime.check_float(op, "weight", weight)
    runtime.check_devices(op, {"input": x, "weight": weight})
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(int(s) for s in normalized_shape)
    if not shape or len(shape) > x.dim() or tuple(x.shape[x.dim() - len(shape):]) != shape:
        raise ValueError(f"triton_ops.{op}: normalized_shape {shape} must be the trailing axes of input "
                         f"{tuple(x.shape)}")
    if weight is not None and tuple(weight.shape) != shape:
        raise ValueError(f"triton_ops.{op}: weight shape {tuple(weight.shape)} must equal normalized_shape {shape}")
    eps = torch.finfo(x.dtype).eps if eps is None else runtime.check_param(op, "eps", eps, nonneg=True)  # as F.rms_norm
    return x, list(shape), weight, eps


def _rms_alloc(x, normalized_shape, weight, eps):
    D = runtime.numel(normalized_shape)
    return torch.empty_like(x), x.new_empty((x.numel() // D if D else 0,), dtype=stat_dtype(x))


def _rms_forward(x, normalized_shape, weight, eps):
    """The forward alone (no gradient will be asked for): no rstd allocated or written."""
    return rms_norm_forward(x, normalized_shape, weight, eps, torch.empty_like(x))[0]


def _rms_forward_saved(x, normalized_shape, weight, eps):
    return rms_norm_forward(x, normalized_shape, weight, eps, *_rms_alloc(x, normalized_shape, weight, eps))


def _rms_vjp(x, normalized_shape, weight, eps, grad, needs=None, saved=None):
    (rstd,) = saved
    need_x, need_w = needs_all(RMS_ARGS, (x, normalized_shape, weight), needs)
    return rms_norm_vjp(x, normalized_shape, weight, grad, rstd, need_x, need_w)


def _rms_ref(x, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) * w over the trailing ``normalized_shape`` axes."""
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    dims = tuple(range(x.dim() - len(normalized_shape), x.dim()))
    y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps)
    return y * weight if weight is not None else y


def _rms_min_bytes(x, normalized_shape, weight=None, eps=None):
    stats = x.numel() // max(runtime.numel(normalized_shape), 1) * 4
    fwd = 2 * runtime.nbytes(x) + runtime.nbytes(weight)  # the forward alone stores no rstd
    return fwd, 3 * runtime.nbytes(x) + 2 * runtime.nbytes(weight) + stats


RMS_ARGS = (Arg("input"), Arg("normalized_shape", "int[]"), Arg("weight", "tensor?", None), Arg("eps", "float", None))
rms_norm = register(OpSpec(
    name="rms_norm", family="norm", args=RMS_ARGS,
    forward=_rms_forward, forward_saved=_rms_forward_saved, n_saved=1, vjp=_rms_vjp, reference=_rms_ref,
    fwd_kernels=(rms_norm_fwd_kernel,), bwd_kernels=(rms_norm_bwd_kernel, norm_row_sums_kernel, norm_columns_bwd_kernel, combine_vjp_kernel),
    check=_rms_check, alloc=_rms_alloc,
    vjp_alloc=lambda x, ns, w, eps, grad: [torch.empty_like(x), w.new_empty(w.shape) if w is not None else None],
    min_bytes=_rms_min_bytes,
    sample=lambda shape, dtype, device, gen: (randn(shape, dtype, device, gen, 2.0), [shape[-1]],
                                              randn((shape[-1],), dtype, device, gen) + 1.0, None),
    doc="rms_norm(input, normalized_shape, weight=None, eps=None) (= F.rms_norm; eps None: finfo(dtype).eps); "
        "rows of any length, deterministic weight gradient.")).fn


# --------------------------------------------------------------------------------------------
# linear_cross_entropy(input, weight, target, bias=None, *, ignore_index=-100, reduction="mean",
#                      label_smoothing=0.0): chunked rows (launchers/llm.py)


def _lce_check(input, weight, target, bias, ignore_index, reduction, label_smoothing):
    op = "linear_cross_entropy"
    runtime.check_float(op, "input", input)
    runtime.check_float(op, "weight", weight)
    if bias is not None:
        runtime.check_float(op, "bias", bias)
    if not isinstance(target, torch.Tensor) or target.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"triton_ops.{op}: target must be an int64 or int32 tensor of class indices")
    runtime.check_devices(op, {"input": input, "weight": weight, "target": target, "bias": bias})
    same_dtype(op, {"input": input, "weight": weight, "bias": bias})
    if input.dim() not in (2, 3) or weight.dim() != 2 or input.shape[-1] != weight.shape[1] or weight.shape[0] == 0:
        raise ValueError(f"triton_ops.{op}: input {tuple(input.shape)} and weight {tuple(weight.shape)} do not match "
                         "(expected input [N, H] or [B, T, H] and weight [V, H], V > 0)")
    if tuple(target.shape) != tuple(input.shape[:-1]):
        raise ValueError(f"triton_ops.{op}: target shape {tuple(target.shape)} must be {tuple(input.shape[:-1])}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"triton_ops.{op}: bias shape {tuple(bias.shape)} must be ({weight.shape[0]},)")
    check_reduction(op, reduction)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"triton_ops.{op}: ignore_index must be an int")
    label_smoothing = runtime.check_param(op, "label_smoothing", label_smoothing, nonneg=True)
    if label_smoothing > 1:
        raise ValueError(f"triton_ops.{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    check_class_indices(op, target, ignore_index, weight.shape[0])
    return input, weight, target, bias, ignore_index, reduction, label_smoothing


def _lce_formed(input, weight, target, bias, reduction, needs) -> tuple[bool, bool, bool]:
    """Which of dX, dW, db the forward forms (launchers/llm.py): the ones a call will need,
    unless reduction is "none" (its per-row upstream gradient is known only in the VJP)."""
    if needs is None or reduction == "none":
        return False, False, False
    need_x, need_w, _, need_b = needs_all(LCE_ARGS, (input, weight, target, bias), needs)
    return need_x, need_w, need_b


def _lce_alloc(input, weight, target, bias, ignore_index, reduction, label_smoothing, needs=None):
    """The loss; saved: the log-sum-exp per row, the mean's factor, and dX, dW, db as the forward
    forms them (empty where it does not)."""
    stat = stat_dtype(input)
    formed = _lce_formed(input, weight, target, bias, reduction, needs)
    grads = [t.new_empty(t.shape if f else (0,)) for t, f in zip((input, weight, bias if bias is not None else input),
                                                                  formed)]
    return (_lce_out(input, target, reduction), input.new_empty((target.numel(),), dtype=stat),
            input.new_empty((1,), dtype=stat), *grads)


def _lce_out(input, target, reduction):
    return input.new_empty(tuple(target.shape) if reduction == "none" else ())


def _lce_forward(input, weight, target, bias, ignore_index, reduction, label_smoothing):
    """No gradient wanted: the loss only (the logits GEMM and the row kernel per chunk, nothing
    saved)."""
    return linear_cross_entropy_forward(input, weight, target, bias, ignore_index, reduction, label_smoothing,
                                        _lce_out(input, target, reduction))


def _lce_forward_saved(input, weight, target, bias, ignore_index, reduction, label_smoothing, needs=None):
    args = (input, weight, target, bias, ignore_index, reduction, label_smoothing)
    out, lse, factor, *grads = _lce_alloc(*args, needs=needs)
    formed = _lce_formed(input, weight, target, bias, reduction, needs)
    linear_cross_entropy_forward(*args, out, lse, factor, *(g if f else None for g, f in zip(grads, formed)))
    return out, lse, factor, *grads


def _lce_vjp(input, weight, target, bias, ignore_index, reduction, label_smoothing, grad, needs=None, saved=None,
             consume_saved=False):
    lse, factor, *formed = saved
    need_x, need_w, _, need_b = needs_all(LCE_ARGS, (input, weight, target, bias), needs)
    wanted = [(n, f, t) for n, f, t in zip((need_x, need_w, need_b), formed, (input, weight, bias)) if n]
    if all(f.shape == t.shape for _, f, t in wanted):  # formed by the forward: scaled by g x factor x N only
        dx, dw, db = linear_cross_entropy_scale(grad, factor, [f if n else None for n, f in
                                                               zip((need_x, need_w, need_b), formed)], lse.numel(),
                                                  in_place=consume_saved)
    else:
        dx, dw, db = linear_cross_entropy_vjp(input, weight, target, bias, ignore_index, reduction, label_smoothing,
                                              grad, lse, factor, need_x, need_w, need_b)
    return dx, dw, None, db


def _lce_ref(input, weight, target, bias=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """F.cross_entropy(F.linear(input, weight, bias), target, ...), with SPEC's 0 (not NaN) for a
    mean over no counted row."""
    logits = torch.nn.functional.linear(input, weight, bias).flatten(0, -2)
    per_row = torch.nn.functional.cross_entropy(logits, target.reshape(-1), ignore_index=ignore_index,
                                                reduction="none", label_smoothing=label_smoothing)
    if reduction == "none":
        return per_row.view(target.shape)
    return reduce(per_row, reduction, rows=int((target != ignore_index).sum()))


def _lce_sample(shape, dtype, device, gen):
    N, H = shape[0], shape[-1]
    V = 4 * H + 1
    x = randn((N, H), dtype, device, gen)
    w = randn((V, H), dtype, device, gen, H ** -0.5)
    target = torch.randint(0, V, (N,), generator=gen, device=gen.device)
    target[1::7] = -100  # row 0 counted: a NaN put first in the input must reach the loss
    return x, w, target.to(device), randn((V,), dtype, device, gen, 0.1), -100, "mean", 0.0


def _lce_min_bytes(input, weight, target, bias=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """The design's minimum (issue 16: chunks of rows through the GEMM template and the row
    kernels, never N x V at once), for the forward without gradients and the VJP that recomputes
    the logits (what ``spec.forward`` and ``spec.vjp`` without formed gradients run). Each
    chunk's logits pass through one [chunk, V] buffer: written by the GEMM and read by the
    online log-sum-exp (forward: 2 N V elements); in the VJP written by the recomputing GEMM,
    read and overwritten with dZ by the cross-entropy VJP kernel, read by the dX and dW GEMMs
    (5 N V), whose operands x and W are each read a second time. Each of the k chunks reads the
    whole weight (and bias) in each of its GEMMs, and dW (db) accumulates over them: written
    once, then read and written k - 1 times. Only a GEMM that fused the row kernels into its
    epilogue (a row's log-sum-exp across vocabulary tiles) would keep the logits out of memory."""
    N, V = target.numel(), weight.shape[0]
    k = runtime.cdiv(N, chunk_rows(N, V, weight.shape[1], input.dtype, input.device)) if N else 1
    w, b = runtime.nbytes(weight), runtime.nbytes(bias)
    rows = runtime.nbytes(target) + N * 4  # targets and the saved log-sum-exp
    out = runtime.nbytes(input) // max(input.shape[-1], 1) if reduction == "none" else input.element_size()
    logits = N * V * input.element_size()
    fwd = runtime.nbytes(input) + k * (w + b) + rows + out + 2 * logits
    bwd = 3 * runtime.nbytes(input) + (4 * k - 1) * w + (3 * k - 1) * b + rows + out + 5 * logits
    return fwd, bwd


def _lce_flops(input, weight, *rest):
    """The op's GEMMs, as F.linear + F.cross_entropy count them: logits forward, dX and dW backward
    (a training step here runs the last two in its forward, the VJP only scales)."""
    f = 2 * input.numel() * weight.shape[0]
    return f, 2 * f


LCE_ARGS = (Arg("input"), Arg("weight"), Arg("target"), Arg("bias", "tensor?", None), Arg("ignore_index", "int", -100),
            Arg("reduction", "str", "mean"), Arg("label_smoothing", "float", 0.0))
linear_cross_entropy = register(OpSpec(
    name="linear_cross_entropy", family="matmul", args=LCE_ARGS,
    forward=_lce_forward, forward_saved=_lce_forward_saved, n_saved=5, forward_needs=True, vjp=_lce_vjp, reference=_lce_ref,
    vjp_consumes_saved=True,
    fwd_kernels=(gemm_fwd_kernel, ce_logits_fwd_kernel, combine_fwd_kernel),
    bwd_kernels=(gemm_vjp_kernel, ce_logits_bwd_kernel, broadcast_bwd_kernel),
    check=_lce_check, alloc=_lce_alloc,
    vjp_alloc=lambda x, w, t, b, *rest: [x.new_empty(x.shape), torch.empty_like(w), None,
                                        b.new_empty(b.shape) if b is not None else None],
    min_bytes=_lce_min_bytes, flops=_lce_flops, sample=_lce_sample,
    doc="linear_cross_entropy(input, weight, target, bias=None, ignore_index=-100, reduction='mean', "
        "label_smoothing=0.0) = F.cross_entropy(F.linear(input, weight, bias), target, ...) for input [N, H] or "
        "[B, T, H]; chunked over rows, never an N x V tensor; a mean over no counted row is 0.")).fn
