"""Launcher of linear_cross_entropy: the GEMM template and the cross-entropy row kernels over
chunks of rows, so that no N x V tensor ever exists.

Rows are taken a chunk at a time: the chunk's logits come from the GEMM template into one
[chunk, V] buffer, reused by every chunk; the cross-entropy row kernels read them with an online
log-sum-exp (loss and the log-sum-exp per row, N floats, saved).

When the call will need gradients (``needs``, reduction "mean" or "sum"), the forward forms them
while each chunk's logits are live, as Liger-Kernel does: dZ = (softmax(z) - onehot(t)) / N
(smoothed) written over z itself (the cross-entropy VJP kernel with g = 1), then dX[chunk] =
dZ @ W and dW += dZ^T @ X[chunk], db += column sums of dZ (GEMM with ACCUMULATE, in chunk order:
no atomics). Three GEMMs per chunk in all; the VJP only scales the saved dX, dW, db by
g x factor x N (factor = 1 / rows counted for a mean: known only once every chunk is done, on
the device; no host sync).

Otherwise (no gradient wanted, or reduction "none", whose upstream gradient is per row and must
weigh every row of dZ before dW sums over rows) the forward runs the logits GEMM only and the VJP
recomputes the logits chunk by chunk: four GEMMs in a training step.

The formed gradients are the mean over all N rows (dZ scaled by 1/N in the kernel, a host
number): the row count of a mean is known only after the last chunk, and a plain sum over rows
could overflow float16's range in dW before the VJP scales it down.

Extra memory: one [chunk, V] buffer (``chunk_rows``)."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.broadcast import broadcast_bwd_kernel
from ..bwd.matmul import gemm_vjp_kernel
from ..fwd.matmul import gemm_fwd_kernel
from ..scalar import product
from ..tiles import split_float
from .loss import ce_logits_forward_plan, ce_logits_vjp_plan, combine_mean, layout, partial_dtype
from .matmul import gemm
from .pointwise import pointwise


def _fill_rows(V: int, dtype, device) -> int:
    """Rows for which the cross-entropy row kernels launch one full wave: 2 x device_programs
    programs (device_programs aims at 4 per SM; a row kernel of 8 warps keeps 8 resident)."""
    programs = 2 * runtime.device_programs(device)
    _, launched = ce_logits_forward_plan(((programs, V), (V, 1)), ((programs,), (1,)), False, 1, "mean", dtype,
                                         alone=False)
    return programs * runtime.cdiv(programs, launched)


@runtime.plan_cache
def chunk_rows(N: int, V: int, H: int, dtype=torch.float32, device=None) -> int:
    """Rows per chunk, a power of two: the logits chunk about the input's size (chunk x V ~ N x H,
    as Liger), raised toward a full wave of the row kernels but at most 4x that size, so the
    extra memory stays a small multiple of the input's. At 8192 x 128256 x 4096 on the H200 of
    2026-11-28 (bench.variants lce, the whole step): 1024 rows (4x) 45.8 ms, 2048 rows (8x) 42.1
    ms, torch 41.9 ms; the step's peak with 2048 rows was 1568 MB, 0.26x torch's 6012 (issue 16
    asks <= 0.25x), and 1024 rows hold 250 MB of bf16 logits less (~0.22x) at 1.09x torch's time."""
    budget = runtime.next_pow2(runtime.cdiv(N, runtime.cdiv(V, max(H, 1))))
    chunk = max(budget, min(runtime.next_pow2(_fill_rows(V, dtype, device)), 4 * budget))
    return max(1, min(runtime.next_pow2(N), chunk))


def _chunks(x2, weight, bias, kernel):
    """Per chunk of rows, in order: (first row, rows, logits view), the logits computed into one
    [chunk, V] buffer that every chunk reuses (so each view is valid until the next chunk's)."""
    N, H = x2.shape
    V = weight.shape[0]
    chunk = chunk_rows(N, V, H, x2.dtype, x2.device)
    logits = x2.new_empty((min(chunk, N), V))
    for r0 in range(0, N, chunk):
        n = min(chunk, N - r0)
        z = logits[:n]
        gemm(x2[r0:r0 + n], weight, transpose_b=True, out_dtype=z.dtype, bias=bias, out=z, kernel=kernel)
        yield r0, n, z


def _chunk_grads(first, r0, z, x2, weight, t, g, lse, factor, reduction, label_smoothing, ignore_index, dx, dw,
                 db, scale=1.0):
    """One chunk's share of the gradients: dZ = g * factor * (softmax(z) - onehot(t) smoothed)
    written over z (``factor``: the pointer's for a mean, else ``scale``; ``g`` None: 1), then
    dX[chunk] = dZ @ W, dW (+)= dZ^T @ X[chunk] and db (+)= its column sums (``first``: the
    first chunk writes, the others add, in order)."""
    n = z.shape[0]
    tc, lc = t[r0:r0 + n], lse[r0:r0 + n]
    gc = g if reduction != "none" or g is None else g[r0:r0 + n]
    launch = ce_logits_vjp_plan(layout(z), layout(tc), False, layout(gc) if gc is not None else None, layout(z), None,
                                1, reduction, z.dtype, z.device)
    c = launch.fixed["COMPUTE"]
    launch(dz_ptr=z, dt_ptr=z, z_ptr=z, t_ptr=tc, g_ptr=gc if gc is not None else z, lse_ptr=lc, tsum_ptr=lc,
           factor_ptr=factor,
           numbers=(*split_float(label_smoothing, c), *split_float(scale, c)), ignore_index=ignore_index)
    if dx is not None:
        gemm(z, weight, out_dtype=dx.dtype, out=dx[r0:r0 + n], kernel=gemm_vjp_kernel)
    if dw is not None:
        gemm(z, x2[r0:r0 + n], transpose_a=True, out_dtype=dw.dtype, out=dw, db=db, accumulate=not first,
             kernel=gemm_vjp_kernel)


def linear_cross_entropy_forward(input, weight, target, bias, ignore_index, reduction, label_smoothing, out, lse=None,
                                 factor=None, dx=None, dw=None, db=None):
    """The loss into ``out``; with ``lse`` and ``factor`` (a gradient will be asked for), the
    log-sum-exp per row (saved for the VJP) and 1 / (rows counted) for a mean (on the device: no
    host sync). ``dx`` ([N, H]), ``dw``, ``db``: where given, the gradients of the loss summed
    over rows and divided by N (g = 1), formed chunk by chunk (reduction "mean" or "sum" only).
    Returns ``out`` (and ``lse``, ``factor`` when given)."""
    x2, t = input.reshape(-1, input.shape[-1]), target.reshape(-1)
    N, V = x2.shape[0], weight.shape[0]
    save = lse is not None
    forming = dx is not None or dw is not None or db is not None
    if db is not None and dw is None:  # the bias gradient rides on the dW GEMM
        dw = weight.new_empty(weight.shape)
    if N == 0:
        for d in (dw, db):
            if d is not None:
                d.zero_()
        return (out.zero_(), lse, factor.fill_(1.0)) if save else out.zero_()  # the VJP's scale reads the factor
    reduce = reduction != "none"
    dx = dx.view(N, -1) if dx is not None else None
    chunk = min(chunk_rows(N, V, x2.shape[1], x2.dtype, x2.device), N)
    sizes = [min(chunk, N - r0) for r0 in range(0, N, chunk)]
    # one chunk of one program: the row kernel writes the loss and the factor itself (FINAL), no
    # partials, no combine
    plans = [ce_logits_forward_plan(((n, V), (V, 1)), ((n,), t.stride()), False, 1, reduction, x2.dtype, save,
                                    alone=len(sizes) == 1, smooth=label_smoothing != 0) for n in sizes]
    final = plans[0][0].fixed["FINAL"]
    # "mean"/"sum": one (sum, count) partial per program of every chunk, added in order at the end
    partials = x2.new_empty((sum(p for _, p in plans), 2), dtype=partial_dtype(x2.dtype)) if reduce and not final \
        else None
    flat = out.view(-1)
    p0 = 0
    for (r0, n, z), (launch, p) in zip(_chunks(x2, weight, bias, gemm_fwd_kernel), plans):
        lc = lse[r0:r0 + n] if save else out  # (no target mass with class indices; unsaved: unread)
        loss = flat[r0:r0 + n] if not reduce else out if final else partials[p0:p0 + p]
        launch(loss_ptr=loss, lse_ptr=lc, tsum_ptr=lc, factor_ptr=factor if save else out, z_ptr=z,
               t_ptr=t[r0:r0 + n], numbers=split_float(label_smoothing, launch.fixed["COMPUTE"]),
               ignore_index=ignore_index)
        if forming:  # g = 1 and 1/N: see the module's note
            _chunk_grads(r0 == 0, r0, z, x2, weight, t, None, lse, factor, "sum", label_smoothing, ignore_index,
                         dx, dw, db, scale=1.0 / N)
        p0 += p
    if partials is not None:
        combine_mean(partials, out, factor)
    return (out, lse, factor) if save else out


def linear_cross_entropy_scale(grad, factor, formed, rows: int, in_place: bool = False):
    """The gradients a forward formed (the mean over all ``rows``), each times g x factor x rows:
    one scalar product, then one read and one write of each; ``in_place``: written over the
    formed ones (the caller owns them), so that the step never holds both."""
    if all(f is None for f in formed):
        return list(formed)
    s = pointwise(product, factor.new_empty(()), grad, factor.view(()), float(rows), arity=2,
                  kernel=broadcast_bwd_kernel)
    return [pointwise(product, f if in_place else torch.empty_like(f), f, s, 1.0, arity=2, kernel=broadcast_bwd_kernel)
            if f is not None else None for f in formed]


def linear_cross_entropy_vjp(input, weight, target, bias, ignore_index, reduction, label_smoothing, grad, lse,
                             factor, need_x, need_w, need_b):
    """(dinput, dweight, dbias) with the logits recomputed chunk by chunk; dweight and dbias
    accumulated in a fixed order."""
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
    for r0, n, z in _chunks(x2, weight, bias, gemm_vjp_kernel):
        _chunk_grads(r0 == 0, r0, z, x2, weight, t, grad.reshape(-1) if reduction == "none" else grad, lse, factor,
                     reduction, label_smoothing, ignore_index, dx, dw, db)
    return (dx.view(input.shape) if need_x else None), (dw if need_w else None), db
