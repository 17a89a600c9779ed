"""Launchers of the shape-moving layers: the transpose (tiled for 2-D) and the embedding gather/gradient."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.shape import embedding_bounds_kernel, embedding_bwd_kernel, transpose_vjp_kernel
from ..fwd.shape import embedding_fwd_kernel, transpose_fwd_kernel
from .pointwise import broadcast_to


@runtime.plan_cache
def _transpose_plan(kernel, M, N, strides):
    bm, bn = (64, 64) if runtime.INTERPRETER else (32, 32)
    return runtime.LaunchPlan(kernel, (runtime.cdiv(M, bm) * runtime.cdiv(N, bn),), {"num_warps": 4},
                              M=M, N=N, x_s0=strides[0], x_s1=strides[1], BLOCK_M=bm, BLOCK_N=bn)


def transpose(x, dim0, dim1, *, backward=False):
    """``x.transpose(dim0, dim1)`` materialized contiguous (``backward``: the VJP entry points).
    A 2-D swap runs the tiled kernel; any other pair of axes is the map template copying the
    strided view (one read, one write: its planner orders the axes)."""
    if x.dim() != 2 or dim0 == dim1:
        view = x.transpose(dim0, dim1)
        return broadcast_to(view, view.shape, backward=backward)
    M, N = x.shape
    out = x.new_empty((N, M))
    if x.numel():
        kernel = transpose_vjp_kernel if backward else transpose_fwd_kernel
        _transpose_plan(kernel, M, N, tuple(x.stride()))(out_ptr=out, x_ptr=x)
    return out


def _index_layout(indices):
    return tuple(indices.shape) or (1,), tuple(indices.stride()) or (0,)


@runtime.plan_cache
def _gather_plan(i_layout, V, E, w_strides):
    n = runtime.numel(i_layout[0])
    bi, be = min(runtime.next_pow2(n), 64), min(runtime.next_pow2(E), 1024 if runtime.INTERPRETER else 256)
    return runtime.LaunchPlan(embedding_fwd_kernel, (runtime.cdiv(n, bi), runtime.cdiv(E, be)), {"num_warps": 4},
                              n=n, V=V, E=E, i_sizes=i_layout[0], i_st=i_layout[1], w_s0=w_strides[0],
                              w_s1=w_strides[1], BLOCK_I=bi, BLOCK_E=be)


def embedding_forward(indices, weight):
    V, E = weight.shape
    out = weight.new_empty((*indices.shape, E))
    if indices.numel() and E:
        _gather_plan(_index_layout(indices), V, E, tuple(weight.stride()))(out_ptr=out, w_ptr=weight, idx_ptr=indices)
    return out


@runtime.plan_cache
def _scatter_plans(i_layout, V, E, g_strides, dtype):
    n = runtime.numel(i_layout[0])
    bounds_block = min(runtime.next_pow2(V + 1), 1024)
    bounds = runtime.LaunchPlan(embedding_bounds_kernel, (runtime.cdiv(V + 1, bounds_block),),
                                {"num_warps": runtime.num_warps_for(bounds_block)}, n=n, V=V, steps=n.bit_length(),
                                BLOCK=bounds_block)
    if runtime.INTERPRETER:  # few, large programs
        be = min(runtime.next_pow2(E), 256)
        bv = min(runtime.next_pow2(V), max(1, runtime.tile_elements() // be), 4096)
        bi = min(64, max(1, runtime.tile_elements() // (bv * be)))
    else:  # a [4, 4, 256] tile: up to 4 occurrences of 4 rows per step, 128-bit loads of g's rows
        bv, bi, be = 4, 4, min(runtime.next_pow2(E), 256)
    # the gradient programs search their rows' bounds themselves when the rows fit one block
    # (the bounds kernel would be one program's searches too) or the searches are short (fewer
    # probes than a launch costs): one launch after the sort
    search = runtime.cdiv(V, bv) == 1 or n < runtime.min_split_elements()
    gather = runtime.LaunchPlan(embedding_bwd_kernel, (runtime.cdiv(V, bv), runtime.cdiv(E, be)),
                                {"num_warps": runtime.num_warps_for(bv * bi * be)}, n=n, steps=n.bit_length(), V=V,
                                E=E, i_sizes=i_layout[0], g_i=g_strides[:-1] or (0,), g_e=g_strides[-1],
                                SEARCH=search, COMPUTE=runtime.compute_dtype(dtype), BLOCK_V=bv, BLOCK_I=bi,
                                BLOCK_E=be)
    return (None if search else bounds), gather


def embedding_vjp(indices, weight, grad):
    """The weight gradient: the indices sorted once (stable); the bounds of each row's segment
    found by a parallel binary search (in the gradient kernel itself when it is cheap there);
    then each row of dweight sums its segment of g's rows in
    their original order (row ownership: deterministic, no atomics)."""
    V, E = weight.shape
    dw = torch.empty_like(weight, memory_format=torch.contiguous_format)
    if indices.numel() == 0 or E == 0:
        return dw.zero_()
    # one device sort of n keys (a torch op: replayed as the same call, see replay.py)
    ordered, order = torch.sort(indices.reshape(-1), stable=True)
    bounds, gather = _scatter_plans(_index_layout(indices), V, E, tuple(grad.stride()), weight.dtype)
    if bounds is None:
        gather(dw_ptr=dw, g_ptr=grad, order_ptr=order, bounds_ptr=ordered, sorted_ptr=ordered)  # bounds_ptr unread
        return dw
    segments = torch.empty(V + 1, dtype=torch.int64, device=indices.device)
    bounds(bounds_ptr=segments, sorted_ptr=ordered)
    gather(dw_ptr=dw, g_ptr=grad, order_ptr=order, bounds_ptr=segments, sorted_ptr=ordered)
    return dw
