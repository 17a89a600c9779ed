"""Layers and linear algebra (SPEC section 4): matmul, linear (fused activation), one-hot
embedding, layer_norm, transpose, embedding."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.linear import linear_dz_bwd_kernel
from ..bwd.matmul import gemm_vjp_kernel
from ..bwd.norm import layer_norm_bwd_kernel
from ..bwd.norm_long import norm_columns_bwd_kernel, norm_row_sums_kernel
from ..bwd.reduce import combine_vjp_kernel
from ..bwd.shape import embedding_bwd_kernel, embedding_fix_kernel, embedding_keys_kernel, transpose_vjp_kernel
from ..fwd.matmul import gemm_fwd_kernel
from ..fwd.norm import layer_norm_fwd_kernel
from ..fwd.one_hot import nonfinite_count_fwd_kernel, one_hot_gather_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..bwd.broadcast import broadcast_bwd_kernel
from ..bwd.pointwise import pointwise_vjp_kernel
from ..fwd.pointwise import pointwise_fwd_kernel
from ..fwd.shape import embedding_fwd_kernel, transpose_fwd_kernel
from ..launchers.linear import linear_dz
from ..launchers.matmul import gemm
from ..launchers.one_hot import one_hot_embedding_forward
from ..launchers.norm import layer_norm_forward, layer_norm_vjp, stat_dtype
from ..launchers.pointwise import pointwise_vjp, reduce_to
from ..launchers.shape import embedding_forward, embedding_vjp, transpose as transpose_launch
from ..spec import Arg, OpSpec, needs_all, register, registry


def randn(shape, dtype, device, gen, scale=1.0):
    return (torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64) * scale).to(device, dtype)


def same_dtype(op, named):
    dtypes = {t.dtype for t in named.values() if isinstance(t, torch.Tensor)}
    if len(dtypes) > 1:
        raise TypeError(f"triton_ops.{op}: all tensors must have one dtype, got "
                        + ", ".join(f"{k}={v.dtype}" for k, v in named.items() if isinstance(v, torch.Tensor)))


# --------------------------------------------------------------------------------------------
# matmul(a, b, precision=None)


def _matmul_check(a, b, precision):
    op = "matmul"
    runtime.check_float(op, "a", a)
    runtime.check_float(op, "b", b)
    runtime.check_devices(op, {"a": a, "b": b})
    same_dtype(op, {"a": a, "b": b})
    if a.dim() not in (2, 3) or b.dim() != a.dim():
        raise ValueError(f"triton_ops.{op}: expected two 2-D or two 3-D tensors, got shapes {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2] or (a.dim() == 3 and a.shape[0] != b.shape[0]):
        raise ValueError(f"triton_ops.{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied")
    if precision not in (None, "ieee", "tf32"):
        raise ValueError(f"triton_ops.{op}: precision must be 'ieee', 'tf32' or None, got {precision!r}")
    return a, b, precision


def _matmul_vjp(a, b, precision, grad, needs=None):
    need_a, need_b = needs_all(MATMUL_ARGS, (a, b), needs)
    da = gemm(grad, b, transpose_b=True, out_dtype=a.dtype, precision=precision, kernel=gemm_vjp_kernel)[0] \
        if need_a else None
    db = gemm(a, grad, transpose_a=True, out_dtype=b.dtype, precision=precision, kernel=gemm_vjp_kernel)[0] \
        if need_b else None
    return da, db


def _mm_flops(a, b, *rest):
    f = 2 * a.numel() * b.shape[-1]
    return f, 2 * f


MATMUL_ARGS = (Arg("a"), Arg("b"), Arg("precision", "str?", None))
matmul = register(OpSpec(
    name="matmul", family="matmul", args=MATMUL_ARGS,
    forward=lambda a, b, precision: gemm(a, b, out_dtype=a.dtype, precision=precision)[0],
    vjp=_matmul_vjp, reference=lambda a, b, precision=None: a @ b,
    fwd_kernels=(gemm_fwd_kernel,), bwd_kernels=(gemm_vjp_kernel,),
    check=_matmul_check,
    alloc=lambda a, b, precision: a.new_empty((*a.shape[:-1], b.shape[-1])),
    vjp_alloc=lambda a, b, precision, grad: [a.new_empty(a.shape), b.new_empty(b.shape)],
    min_bytes=lambda a, b, precision=None: (
        runtime.nbytes(a) + runtime.nbytes(b) + a.numel() // a.shape[-1] * b.shape[-1] * a.element_size(),
        2 * (a.numel() // a.shape[-1] * b.shape[-1] * a.element_size()) + 2 * (runtime.nbytes(a) + runtime.nbytes(b))),
    flops=_mm_flops,
    sample=lambda shape, dtype, device, gen: (randn(shape, dtype, device, gen),
                                              randn(tuple(shape[::-1]), dtype, device, gen)),
    doc="matmul(a, b, precision=None): a @ b for 2-D or batched 3-D tensors; precision 'ieee' | 'tf32' "
        "for float32 (None: torch.get_float32_matmul_precision(), 'highest' -> 'ieee', else 'tf32').")).fn


# --------------------------------------------------------------------------------------------
# linear(x, weight, bias=None, activation=None, precision=None)


def _activation(op, name):
    if name is None:
        return None
    spec = registry.get(name) if isinstance(name, str) else None
    if spec is None or spec.family != "unary":
        known = sorted(n for n, s in registry.items() if s.family == "unary")
        raise ValueError(f"triton_ops.{op}: activation must be None or a registered unary op {known}, got {name!r}")
    return spec.extras


def _linear_check(x, weight, bias, activation, precision):
    op = "linear"
    runtime.check_float(op, "x", x)
    runtime.check_float(op, "weight", weight)
    if bias is not None:
        runtime.check_float(op, "bias", bias)
    runtime.check_devices(op, {"x": x, "weight": weight, "bias": bias})
    same_dtype(op, {"x": x, "weight": weight, "bias": bias})
    if weight.dim() != 2 or x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"triton_ops.{op}: x {tuple(x.shape)} and weight {tuple(weight.shape)} do not match "
                         "(expected x [..., in] and weight [out, in])")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"triton_ops.{op}: bias shape {tuple(bias.shape)} must be ({weight.shape[0]},)")
    _activation(op, activation)
    if precision not in (None, "ieee", "tf32"):
        raise ValueError(f"triton_ops.{op}: precision must be 'ieee', 'tf32' or None, got {precision!r}")
    return x, weight, bias, activation, precision


def _rows2d(t):
    """``t`` as [rows, last axis] (not ``reshape(-1, n)``: ambiguous when the last axis is 0)."""
    return t.reshape(runtime.numel(t.shape[:-1]), t.shape[-1])


def _linear_alloc(x, weight, bias, activation, precision):
    out_shape = (*x.shape[:-1], weight.shape[0])
    z_shape = out_shape if activation is not None else (0,)
    return x.new_empty(out_shape), x.new_empty(z_shape)


def _linear_forward_saved(x, weight, bias, activation, precision):
    act = _activation("linear", activation)
    x2 = _rows2d(x)  # a view unless x's leading axes cannot be flattened
    epilogue = runtime.narrowed(act["f"], act["f_narrow"], x.dtype) if act else None
    y, z = gemm(x2, weight, transpose_b=True, out_dtype=x.dtype, bias=bias, epilogue=epilogue,
                param=act["param"] if act else None, save_z=act is not None, precision=precision)
    out_shape = (*x.shape[:-1], weight.shape[0])
    z = z.view(out_shape) if z is not None else x.new_empty((0,))
    return y.view(out_shape), z


def _linear_vjp(x, weight, bias, activation, precision, grad, needs=None, saved=None):
    need_x, need_w, need_b = needs_all(LINEAR_ARGS, (x, weight, bias), needs)
    act = _activation("linear", activation)
    (z,) = saved
    g2 = _rows2d(grad)
    db = bias.new_empty(bias.shape) if need_b else None  # contiguous: the kernels write it densely
    if act:  # dz = g * act'(z) once, the bias sums in the same pass
        df = runtime.narrowed(act["df"], act["df_narrow"], grad.dtype, z.dtype)
        dz = linear_dz(g2, _rows2d(z), df, act["param"], db=db) if need_x or need_w or need_b else None
    else:
        dz = g2
        if need_b:
            db = reduce_to(g2, bias.shape)
    mm = dict(precision=precision, kernel=gemm_vjp_kernel)
    dx = gemm(dz, weight, out_dtype=x.dtype, **mm)[0].view(x.shape) if need_x else None
    dw = gemm(dz, _rows2d(x), transpose_a=True, out_dtype=weight.dtype, **mm)[0] if need_w else None
    return dx, dw, db


def _linear_ref(x, weight, bias=None, activation=None, precision=None):
    y = torch.nn.functional.linear(x, weight, bias)
    if activation is None:
        return y
    spec = registry[activation]
    return spec.reference(y) if spec.extras["param"] is None else spec.reference(y, spec.extras["param"])


def _linear_min_bytes(x, weight, bias=None, activation=None, precision=None):
    y = x.numel() // x.shape[-1] * weight.shape[0] * x.element_size()
    saved = y if activation is not None else 0
    fwd = runtime.nbytes(x) + runtime.nbytes(weight) + runtime.nbytes(bias) + y + saved
    # the two GEMMs read dz (with an activation: g and z read once, dz written once by the dz
    # pass, which also sums db; without: dz is g, and db takes one more read of g) and x, W
    # and write dx, dW
    dz = y + saved + y if activation is not None else (y if bias is not None else 0)
    bwd = dz + 2 * y + 2 * (runtime.nbytes(x) + runtime.nbytes(weight)) + runtime.nbytes(bias)
    return fwd, bwd


LINEAR_ARGS = (Arg("x"), Arg("weight"), Arg("bias", "tensor?", None), Arg("activation", "str?", None),
               Arg("precision", "str?", None))
linear = register(OpSpec(
    name="linear", family="matmul", args=LINEAR_ARGS, vjp_layout_only=("bias",),
    forward=None, forward_saved=_linear_forward_saved, n_saved=1, vjp=_linear_vjp, reference=_linear_ref,
    fwd_kernels=(gemm_fwd_kernel,),
    bwd_kernels=(linear_dz_bwd_kernel, combine_vjp_kernel, pointwise_vjp_kernel, gemm_vjp_kernel),
    check=_linear_check, alloc=_linear_alloc,
    vjp_alloc=lambda x, w, b, *rest: [x.new_empty(x.shape), w.new_empty(w.shape),
                                      b.new_empty(b.shape) if b is not None else None],
    min_bytes=_linear_min_bytes,
    flops=lambda x, w, *rest: (2 * x.numel() * w.shape[0], 4 * x.numel() * w.shape[0]),
    sample=lambda shape, dtype, device, gen: (randn(shape, dtype, device, gen),
                                              randn((shape[-1] // 2 + 1, shape[-1]), dtype, device, gen, 0.2),
                                              randn((shape[-1] // 2 + 1,), dtype, device, gen), "gelu"),
    doc="linear(x, weight, bias=None, activation=None, precision=None): act(x @ weight^T + bias); the bias "
        "and activation run in the GEMM epilogue; the backward forms dz = g * act'(z) and the bias sums in one pass, "
        "then dx = dz weight and dW = dz^T x as plain GEMMs.")).fn


# --------------------------------------------------------------------------------------------
# one_hot_embedding(onehot, weight) = onehot @ weight over any leading axes


def _ohe_check(onehot, weight):
    op = "one_hot_embedding"
    runtime.check_float(op, "onehot", onehot)
    runtime.check_float(op, "weight", weight)
    runtime.check_devices(op, {"onehot": onehot, "weight": weight})
    same_dtype(op, {"onehot": onehot, "weight": weight})
    if weight.dim() != 2 or onehot.dim() < 1 or onehot.shape[-1] != weight.shape[0]:
        raise ValueError(f"triton_ops.{op}: onehot {tuple(onehot.shape)} and weight {tuple(weight.shape)} do not "
                         "match (expected onehot [..., V] and weight [V, E])")
    return onehot, weight


def _ohe_forward(onehot, weight):
    return one_hot_embedding_forward(_rows2d(onehot), weight).view(*onehot.shape[:-1], weight.shape[1])


def _ohe_vjp(onehot, weight, grad, needs=None):
    need_o, need_w = needs_all(OHE_ARGS, (onehot, weight), needs)
    g2 = _rows2d(grad)
    d_onehot = gemm(g2, weight, transpose_b=True, out_dtype=onehot.dtype, precision="ieee",
                    kernel=gemm_vjp_kernel)[0].view(onehot.shape) if need_o else None
    d_weight = gemm(_rows2d(onehot), g2, transpose_a=True, out_dtype=weight.dtype,
                    precision="ieee", kernel=gemm_vjp_kernel)[0] if need_w else None
    return d_onehot, d_weight


def _ohe_min_bytes(onehot, weight):
    out = onehot.numel() // onehot.shape[-1] * weight.shape[1] * onehot.element_size()
    # forward: onehot read once (each row's nonzero entries), weight read once (its non-finite
    # entries per column: 0 * inf is NaN in the product), one weight row gathered per output row
    fwd = runtime.nbytes(onehot) + runtime.nbytes(weight) + 2 * out
    bwd = 2 * (runtime.nbytes(onehot) + runtime.nbytes(weight)) + 2 * out
    return fwd, bwd


def _onehot_sample(shape, dtype, device, gen):
    V = shape[-1]
    idx = torch.randint(0, V, tuple(shape[:-1]), generator=gen, device=gen.device)
    return (torch.nn.functional.one_hot(idx, V).to(device, dtype), randn((V, 16), dtype, device, gen))


OHE_ARGS = (Arg("onehot"), Arg("weight"))
one_hot_embedding = register(OpSpec(
    name="one_hot_embedding", family="matmul", args=OHE_ARGS, forward=_ohe_forward, vjp=_ohe_vjp,
    reference=lambda onehot, weight: onehot @ weight,
    fwd_kernels=(nonfinite_count_fwd_kernel, combine_fwd_kernel, one_hot_gather_fwd_kernel),
    bwd_kernels=(gemm_vjp_kernel,), check=_ohe_check,
    alloc=lambda o, w: o.new_empty((*o.shape[:-1], w.shape[1])),
    vjp_alloc=lambda o, w, grad: [o.new_empty(o.shape), w.new_empty(w.shape)],
    min_bytes=_ohe_min_bytes,
    flops=lambda o, w: (2 * o.numel() * w.shape[1], 4 * o.numel() * w.shape[1]),
    sample=_onehot_sample,
    doc="one_hot_embedding(onehot, weight): onehot [..., V] @ weight [V, E] (a real-valued one-hot input); "
        "one-hot rows are gathered (a block holding a row with several nonzero entries runs the product).")).fn


# --------------------------------------------------------------------------------------------
# layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5)


def _ln_check(x, normalized_shape, weight, bias, eps):
    op = "layer_norm"
    runtime.check_float(op, "x", x)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            runtime.check_float(op, name, t)
    runtime.check_devices(op, {"x": x, "weight": weight, "bias": bias})
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else (
        tuple(normalized_shape) if isinstance(normalized_shape, (list, tuple)) else (None,))
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):  # as F.layer_norm
        raise TypeError(f"triton_ops.{op}: normalized_shape must be an int or a sequence of ints, got "
                        f"{normalized_shape!r}")
    if not shape or tuple(x.shape[x.dim() - len(shape):]) != shape or len(shape) > x.dim():
        raise ValueError(f"triton_ops.{op}: normalized_shape {shape} must be the trailing axes of x {tuple(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"triton_ops.{op}: {name} shape {tuple(t.shape)} must equal normalized_shape {shape}")
    eps = runtime.check_param(op, "eps", eps, nonneg=True)
    return x, list(shape), weight, bias, eps


def _ln_alloc(x, normalized_shape, weight, bias, eps):
    """y, and the per-row mean and rstd saved for the VJP: one [2, R] tensor (one allocation)."""
    D = runtime.numel(normalized_shape)
    R = x.numel() // D if D else 0
    return torch.empty_like(x), x.new_empty((2, R), dtype=stat_dtype(x))


def _ln_forward(x, normalized_shape, weight, bias, eps):
    """The forward alone (no gradient will be asked for): no statistics written."""
    return layer_norm_forward(x, normalized_shape, weight, bias, eps, torch.empty_like(x))[0]


def _ln_forward_saved(x, normalized_shape, weight, bias, eps):
    return layer_norm_forward(x, normalized_shape, weight, bias, eps,
                              *_ln_alloc(x, normalized_shape, weight, bias, eps))


def _ln_vjp(x, normalized_shape, weight, bias, eps, grad, needs=None, saved=None):
    (stats,) = saved
    need_x, need_w, need_b = needs_all(LN_ARGS, (x, normalized_shape, weight, bias, eps), needs)
    return layer_norm_vjp(x, normalized_shape, weight, bias, grad, stats, need_x, need_w, need_b)


def _ln_min_bytes(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    D = runtime.numel(normalized_shape)
    R = x.numel() // max(D, 1)
    params = runtime.nbytes(weight) + runtime.nbytes(bias)
    stats = 2 * R * (8 if x.dtype == torch.float64 else 4)
    fwd = 2 * runtime.nbytes(x) + params  # the forward alone stores no statistics (a training forward adds them)
    bwd = 3 * runtime.nbytes(x) + runtime.nbytes(weight) + stats + params
    return fwd, bwd


LN_ARGS = (Arg("x"), Arg("normalized_shape", "int[]"), Arg("weight", "tensor?", None), Arg("bias", "tensor?", None),
           Arg("eps", "float", 1e-5))
layer_norm = register(OpSpec(
    name="layer_norm", family="norm", args=LN_ARGS, vjp_layout_only=("bias",),
    forward=_ln_forward, forward_saved=_ln_forward_saved, n_saved=1, vjp=_ln_vjp,
    reference=lambda x, normalized_shape, weight=None, bias=None, eps=1e-5: torch.nn.functional.layer_norm(
        x, list(normalized_shape), weight, bias, eps),
    fwd_kernels=(layer_norm_fwd_kernel,),
    bwd_kernels=(layer_norm_bwd_kernel, norm_row_sums_kernel, norm_columns_bwd_kernel, combine_vjp_kernel),
    check=_ln_check, alloc=_ln_alloc,
    vjp_alloc=lambda x, ns, w, b, eps, grad: [torch.empty_like(x), w.new_empty(w.shape) if w is not None else None,
                                              b.new_empty(b.shape) if b is not None else None],
    min_bytes=_ln_min_bytes,
    sample=lambda shape, dtype, device, gen: (randn(shape, dtype, device, gen, 2.0) + 0.5, [shape[-1]],
                                              randn((shape[-1],), dtype, device, gen) + 1.0,
                                              randn((shape[-1],), dtype, device, gen)),
    doc="layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) (= F.layer_norm).")).fn


# --------------------------------------------------------------------------------------------
# transpose(x) and embedding(indices, weight)


def _transpose_check(x, dim0, dim1):
    runtime.check_float("transpose", "x", x)
    runtime.check_devices("transpose", {"x": x})
    if x.dim() == 0:
        raise ValueError("triton_ops.transpose: x must have at least one axis, got a 0-d tensor")
    return x, runtime.normalize_dims("transpose", dim0, x.dim())[0], runtime.normalize_dims("transpose", dim1, x.dim())[0]


def _transpose_shape(x, dim0, dim1):
    shape = list(x.shape)
    shape[dim0], shape[dim1] = shape[dim1], shape[dim0]
    return shape


transpose = register(OpSpec(
    name="transpose", family="shape", args=(Arg("x"), Arg("dim0", "int", 0), Arg("dim1", "int", 1)),
    vjp_layout_only=("x",), vjp_shape_only=("x",),
    forward=lambda x, dim0, dim1: transpose_launch(x, dim0, dim1),
    vjp=lambda x, dim0, dim1, grad, needs=None: (transpose_launch(grad, dim0, dim1, backward=True),),
    reference=lambda x, dim0=0, dim1=1: x.transpose(dim0, dim1).contiguous(),
    fwd_kernels=(transpose_fwd_kernel, pointwise_fwd_kernel), bwd_kernels=(transpose_vjp_kernel, broadcast_bwd_kernel),
    check=_transpose_check,
    alloc=lambda x, dim0, dim1: x.new_empty(_transpose_shape(x, dim0, dim1)),
    vjp_alloc=lambda x, dim0, dim1, grad: [x.new_empty(x.shape)],
    # the gradient may be the view g.transpose(dim0, dim1) (eager's is)
    min_bytes=lambda x, dim0=0, dim1=1: (2 * runtime.nbytes(x), 0),
    sample=lambda shape, dtype, device, gen: (randn(shape, dtype, device, gen),),
    doc="transpose(x, dim0=0, dim1=1): x with axes dim0 and dim1 swapped, materialized contiguous "
        "(= x.transpose(dim0, dim1).contiguous(); a tiled kernel for 2-D).")).fn


def _emb_check(indices, weight):
    op = "embedding"
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"triton_ops.{op}: indices must be an int64 or int32 tensor")
    runtime.check_float(op, "weight", weight)
    runtime.check_devices(op, {"indices": indices, "weight": weight})
    if weight.dim() != 2:
        raise ValueError(f"triton_ops.{op}: weight must be 2-D [V, E], got {tuple(weight.shape)}")
    # Interpreter (CPU): checked before launch (real values only: not fake/meta tensors, not while
    # torch.compile traces); CUDA: no host sync, an out-of-range index gives a row of NaN
    if runtime.INTERPRETER and indices.numel() and runtime.has_values(indices):
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= weight.shape[0]:
            raise IndexError(f"triton_ops.{op}: index {lo if lo < 0 else hi} is out of range for {weight.shape[0]} rows")
    return indices, weight


def _emb_vjp(indices, weight, grad, needs=None):
    _, need_w = needs_all(EMB_ARGS, (indices, weight), needs)
    return None, (embedding_vjp(indices, weight, grad) if need_w else None)


EMB_ARGS = (Arg("indices"), Arg("weight"))
embedding = register(OpSpec(
    name="embedding", family="shape", args=EMB_ARGS, forward=embedding_forward, vjp=_emb_vjp,
    vjp_layout_only=("weight",),
    reference=lambda indices, weight: torch.nn.functional.embedding(indices, weight),
    fwd_kernels=(embedding_fwd_kernel,), bwd_kernels=(embedding_keys_kernel, embedding_bwd_kernel, embedding_fix_kernel), check=_emb_check,
    alloc=lambda i, w: w.new_empty((*i.shape, w.shape[1])),
    vjp_alloc=lambda i, w, grad: [None, torch.empty_like(w, memory_format=torch.contiguous_format)],
    min_bytes=lambda i, w: (runtime.nbytes(i) + 2 * i.numel() * w.shape[1] * w.element_size(),
                            runtime.nbytes(i) + i.numel() * w.shape[1] * w.element_size() + runtime.nbytes(w)),
    sample=lambda shape, dtype, device, gen: (
        torch.randint(0, 50, tuple(shape), generator=gen, device=gen.device).to(device),
        randn((50, 24), dtype, device, gen)),
    doc="embedding(indices, weight): weight[indices] (= F.embedding); deterministic weight gradient.")).fn
