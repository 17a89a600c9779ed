"""Launchers of softmax and log_softmax along any dim: rows are every element of the other axes
(merged where contiguous for all tensors), the class axis read in place through its stride."""
from __future__ import annotations

import torch

from .. import runtime
from ..broadcast import aligned_strides, plan_reduce
from ..bwd.softmax import softmax_bwd_kernel
from ..fwd.softmax import softmax_fwd_kernel
from .norm import ln_config


def _layout(t):
    """(shape, strides); a 0-d tensor is one row of one class."""
    return (tuple(t.shape), tuple(t.stride())) if t.dim() else ((1,), (1,))


@runtime.plan_cache
def _plan(backward, layouts, dim, log, dtype, device, stats=False):
    """``layouts``: ((name, (shape, strides)), ...) of the tensors the kernel reads or writes,
    all of x's shape; the kernel takes ``<name>_r`` (row strides) and ``<name>_c`` (class stride).
    ``stats``: the forward stores the log-sum-exp per row."""
    kernel = softmax_bwd_kernel if backward else softmax_fwd_kernel
    shape = layouts[0][1][0]
    meta = {k: aligned_strides(torch.empty_strided(shape, st, device="meta"), shape) for k, (_, st) in layouts}
    _, rows = plan_reduce(shape, [dim], meta)
    C = shape[dim]
    R = runtime.numel(shape) // C
    block_r, block_c, programs, rows_per_program = ln_config(R, C, device, backward=False)
    strides = {}
    for k, (_, st) in layouts:
        strides[f"{k}_r"] = rows.strides[k]
        strides[f"{k}_c"] = st[dim] if C > 1 else 0
    return runtime.LaunchPlan(
        kernel, (programs,), {"num_warps": runtime.num_warps_for(block_r * block_c)},
        r_sizes=rows.sizes, R=R, C=C, rows_per_program=rows_per_program, **strides, LOG=log, SINGLE=C <= block_c,
        COMPUTE=runtime.compute_dtype(dtype), BLOCK_R=block_r, BLOCK_C=block_c,
        INDEX_64=runtime.needs_int64(*(runtime.max_offset(*lay) for _, lay in layouts)),
        **({} if backward else {"STATS": stats}))


def softmax_forward(x, dim, log, y, lse=None):
    """softmax (log_softmax when ``log``) of x along ``dim`` (non-negative) into ``y``, and the
    log-sum-exp per row into ``lse`` (saved for the VJP) when given."""
    if x.numel():
        launch = _plan(False, (("x", _layout(x)), ("y", _layout(y))), dim, log, x.dtype, x.device, lse is not None)
        launch(y_ptr=y, lse_ptr=lse if lse is not None else y, x_ptr=x)
    return y, lse


def softmax_vjp(x, dim, log, grad, lse):
    """dx from x, the upstream gradient and the forward's log-sum-exp (p = exp(x - lse) recomputed)."""
    dx = torch.empty_like(x)
    if x.numel():
        launch = _plan(True, (("x", _layout(x)), ("g", _layout(grad)), ("dx", _layout(dx))),
                       dim, log, x.dtype, x.device)
        launch(dx_ptr=dx, x_ptr=x, g_ptr=grad, lse_ptr=lse)
    return dx
