"""Launcher of linear_cross_entropy: the GEMM template and the cross-entropy row kernels over
chunks of rows, so that no N x V tensor ever exists.

Rows are taken a chunk at a time: the chunk's logits come from the GEMM template into one
[chunk, V] buffer, reused by every chunk; the cross-entropy row kernels read them with an online
log-sum-exp. Forward: loss and the log-sum-exp per row (N floats, saved). Backward, chunk by
chunk: the logits again (one GEMM), their gradient formed in place in the same buffer (the
cross-entropy VJP kernel, g and the mean's 1/count applied there), then dX[chunk] = dZ @ W and
dW += dZ^T @ X[chunk], db += column sums of dZ (GEMM with ACCUMULATE, in chunk order: no atomics).
Extra memory: one [chunk, V] buffer, chunk chosen so that it is about the size of the input.

The forward does not compute the gradients (as Liger-Kernel does when grad is enabled): a custom
op's forward cannot know whether a gradient will be asked for, reduction="none" needs the
upstream gradient per row before dW can be formed, and an evaluation forward stays one GEMM. The
price is one more GEMM per training step (4 instead of 3)."""
from __future__ import annotations

from .. import runtime
from ..bwd.matmul import gemm_vjp_kernel
from ..fwd.matmul import gemm_fwd_kernel
from ..fwd.reduce import combine_fwd_kernel
from ..tiles import split_float
from .loss import ce_logits_forward_plan, ce_logits_vjp_plan, layout
from .matmul import gemm
from .reduce import combine_partials


def chunk_rows(N: int, V: int, H: int) -> int:
    """Rows per chunk: a power of two with chunk x V about N x H (the logits chunk no larger than
    the input), so the extra memory is a small multiple of the input's."""
    return max(1, min(runtime.next_pow2(N), runtime.next_pow2(runtime.cdiv(N, runtime.cdiv(V, max(H, 1))))))


def _chunks(x2, weight, bias, kernel):
    """Per chunk of rows, in order: (first row, rows, logits view), the logits computed into one
    [chunk, V] buffer that every chunk reuses (so each view is valid until the next chunk's)."""
    N, H = x2.shape
    V = weight.shape[0]
    chunk = chunk_rows(N, V, H)
    logits = x2.new_empty((min(chunk, N), V))
    for r0 in range(0, N, chunk):
        n = min(chunk, N - r0)
        z = logits[:n]
        gemm(x2[r0:r0 + n], weight, transpose_b=True, out_dtype=z.dtype, bias=bias, out=z, kernel=kernel)
        yield r0, n, z


def linear_cross_entropy_forward(input, weight, target, bias, ignore_index, reduction, label_smoothing, out, lse,
                                 factor):
    """The loss into ``out`` and the log-sum-exp per row into ``lse`` (saved for the VJP);
    ``factor`` receives 1 / (rows counted) for a mean (on the device: no host sync)."""
    factor.fill_(1.0)
    x2, t = input.reshape(-1, input.shape[-1]), target.reshape(-1)
    N, V = x2.shape[0], weight.shape[0]
    if N == 0:
        return out.zero_(), lse, factor
    reduce = reduction != "none"
    chunk = min(chunk_rows(N, V, x2.shape[1]), N)
    sizes = [min(chunk, N - r0) for r0 in range(0, N, chunk)]
    plans = [ce_logits_forward_plan(((n, V), (V, 1)), ((n,), t.stride()), False, 1, reduction, x2.dtype) for n in sizes]
    # "mean"/"sum": one (sum, count) partial per program of every chunk, added in order at the end
    partials = lse.new_empty((sum(p for _, p in plans), 2)) if reduce else None
    mass = lse.new_empty((chunk,))  # the kernel's target mass per row: unused with class indices
    flat = out.view(-1)
    p0 = 0
    for (r0, n, z), (launch, p) in zip(_chunks(x2, weight, bias, gemm_fwd_kernel), plans):
        tc = t[r0:r0 + n]
        launch(loss_ptr=partials[p0:p0 + p] if reduce else flat[r0:r0 + n], lse_ptr=lse[r0:r0 + n], tsum_ptr=mass,
               z_ptr=z, t_ptr=tc, numbers=split_float(label_smoothing, launch.fixed["COMPUTE"]),
               ignore_index=ignore_index)
        p0 += p
    if reduce:
        combine_partials(partials, out, kernel=combine_fwd_kernel, factor_out=factor)
    return out, lse, factor


def linear_cross_entropy_vjp(input, weight, target, bias, ignore_index, reduction, label_smoothing, grad, lse,
                             factor, need_x, need_w, need_b):
    """(dinput, dweight, dbias); dweight and dbias accumulated chunk by chunk in a fixed order."""
    x2, t = input.reshape(-1, input.shape[-1]), target.reshape(-1)
    N, H = x2.shape
    dx = x2.new_empty((N, H)) if need_x else None
    dw = weight.new_empty(weight.shape) if need_w or need_b else None
    db = bias.new_empty(bias.shape) if need_b else None  # contiguous: the GEMM writes its row sums so
    if N == 0 or not (need_x or need_w or need_b):
        for d in (dw, db):
            if d is not None:
                d.zero_()
        return (dx.view(input.shape) if need_x else None), (dw if need_w else None), db
    g_element = reduction != "none"
    g = grad if g_element else grad.reshape(-1)
    for i, (r0, n, z) in enumerate(_chunks(x2, weight, bias, gemm_vjp_kernel)):
        tc, gc = t[r0:r0 + n], (g if g_element else g[r0:r0 + n])
        # dZ = g * factor * (softmax(z) - onehot(t) smoothed), written over z itself
        launch = ce_logits_vjp_plan(layout(z), layout(tc), False, layout(gc), layout(z), None, 1, reduction,
                                    z.dtype)
        c = launch.fixed["COMPUTE"]
        launch(dz_ptr=z, dt_ptr=z, z_ptr=z, t_ptr=tc, g_ptr=gc, lse_ptr=lse[r0:r0 + n], tsum_ptr=lse[r0:r0 + n],
               factor_ptr=factor, numbers=(*split_float(label_smoothing, c), *split_float(1.0, c)),
               ignore_index=ignore_index)
        if need_x:
            gemm(z, weight, out_dtype=dx.dtype, out=dx[r0:r0 + n], kernel=gemm_vjp_kernel)
        if need_w or need_b:
            gemm(z, x2[r0:r0 + n], transpose_a=True, out_dtype=dw.dtype, out=dw, db=db, accumulate=i > 0,
                 kernel=gemm_vjp_kernel)
    return (dx.view(input.shape) if need_x else None), (dw if need_w else None), db
