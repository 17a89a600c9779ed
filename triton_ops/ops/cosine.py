"""``cosine_similarity_loss`` (SPEC section 3): one cosine over the flattened tensors or one per
slice along ``dim``; the forward saves <x,t>, |x|^2, |t|^2 per slice for a one-pass VJP."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.loss import cosine_bwd_kernel
from ..fwd.loss import cosine_finish_kernel, cosine_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..launchers.loss import cosine_forward, cosine_vjp, partial_dtype
from ..spec import Arg, OpSpec, needs_all, register
from .loss import check_pair, check_reduction, loss_min_bytes, nd, normalize_dim, randn_pair, reduce


def _cos_check(x, t, dim, eps, reduction):
    check_pair("cosine_similarity_loss", x, t, "x", "t")
    if dim is not None:
        dim = normalize_dim("cosine_similarity_loss", dim, x.dim())
    eps = runtime.check_param("cosine_similarity_loss", "eps", eps, positive=True)
    check_reduction("cosine_similarity_loss", reduction)
    return x, t, dim, eps, reduction


def _cos_class_dims(x, dim):
    dim = nd(dim, x.dim())
    return tuple(range(x.dim())) if dim is None else ((dim,) if x.dim() else ())


def _cos_out_shape(x, dim, reduction):
    dim = nd(dim, x.dim())
    if reduction != "none" or dim is None:
        return ()
    return tuple(s for d, s in enumerate(x.shape) if d != dim)


def _cos_out(x, t, dim, reduction):
    return x.new_empty(_cos_out_shape(x, dim, reduction), dtype=torch.result_type(x, t))


def _cos_alloc(x, t, dim, eps, reduction):
    dim = nd(dim, x.dim())
    rows = 1 if dim is None or x.dim() == 0 else x.numel() // max(x.shape[dim], 1)
    return _cos_out(x, t, dim, reduction), x.new_empty((3, rows), dtype=partial_dtype(x.dtype, t.dtype))


def _cos_forward(x, t, dim, eps, reduction):
    """No gradient wanted: the loss only (no statistics stored)."""
    return cosine_forward(x, t, _cos_class_dims(x, dim), eps, reduction, _cos_out(x, t, dim, reduction))


def _cos_forward_saved(x, t, dim, eps, reduction):
    return cosine_forward(x, t, _cos_class_dims(x, dim), eps, reduction, *_cos_alloc(x, t, dim, eps, reduction))


def _cos_vjp(x, t, dim, eps, reduction, grad, needs=None, saved=None):
    (stats,) = saved
    dim = nd(dim, x.dim())
    need_x, need_t = needs_all(COS_ARGS, (x, t), needs)
    g_dim = None if reduction != "none" or dim is None else dim
    return cosine_vjp(x, t, _cos_class_dims(x, dim), g_dim, eps, reduction, grad, stats, need_x, need_t)


def _cos_ref(x, t, dim=None, eps=1e-6, reduction="mean"):
    if dim is None:
        dot, nx, nt = (x * t).sum(), x.norm(), t.norm()
    else:
        dot, nx, nt = (x * t).sum(dim), x.norm(dim=dim), t.norm(dim=dim)
    per = 1 - dot / (nx.clamp_min(eps) * nt.clamp_min(eps))
    return reduce(per, reduction)


def _cos_min_bytes(x, t, dim=None, eps=1e-6, reduction="mean"):
    rows = 1 if dim is None or x.dim() == 0 else x.numel() // max(x.shape[dim], 1)
    out = rows if reduction == "none" else 1
    stats = 3 * rows * 4
    fwd, bwd = loss_min_bytes(x, t, reduction, out, out)
    return fwd + stats, bwd + stats


COS_ARGS = (Arg("x"), Arg("t"), Arg("dim", "int?", None), Arg("eps", "float", 1e-6), Arg("reduction", "str", "mean"))
cosine_similarity_loss = register(OpSpec(
    name="cosine_similarity_loss", family="loss", args=COS_ARGS,
    forward=_cos_forward, forward_saved=_cos_forward_saved, n_saved=1, vjp=_cos_vjp, reference=_cos_ref,
    fwd_kernels=(cosine_fwd_kernel, combine_fwd_kernel, cosine_finish_kernel), bwd_kernels=(cosine_bwd_kernel,),
    check=_cos_check, alloc=_cos_alloc,
    vjp_alloc=lambda x, t, *rest: [torch.empty_like(x), torch.empty_like(t)],
    min_bytes=_cos_min_bytes,
    sample=lambda shape, dtype, device, gen: (*randn_pair(shape, dtype, device, gen), -1, 1e-6, "mean"),
    doc="cosine_similarity_loss(x, t, dim=None, eps=1e-6, reduction='mean'): 1 - <x,t>/(max(|x|,eps) max(|t|,eps)), "
        "one cosine over the flattened tensors (dim=None) or one per slice along dim.")).fn
