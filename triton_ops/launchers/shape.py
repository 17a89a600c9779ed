"""Launchers of the shape-moving layers: the transpose (tiled for 2-D) and the embedding gather/gradient."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.shape import embedding_bwd_kernel, embedding_fix_kernel, embedding_keys_kernel, transpose_vjp_kernel
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


def _key_dtype(V):
    """The narrowest integer type holding every key (an index in [0, V) or -1): a radix sort runs
    one pass per key byte."""
    return torch.int16 if V <= 1 << 15 else torch.int32 if V <= 1 << 31 else torch.int64


# The chunk programs on a GPU: sorted positions a chunk, E tiles (bytes of a row segment: a bf16
# row of 1024 whole), warps, and the walk's pipeline stages (STAGES - 1 rows of g in flight a
# program). The H200 of 2026-11-28 measured the matrix-product kernel before this one (512-byte
# tiles, 255 registers, 2 programs an SM) at 162 us for 65536 indices into 32768 x 1024 bf16 (24%
# of clone). This one walks the positions with one running row: sm_90, Triton 3.6 and 3.9, 80
# registers, 6 programs an SM, 10 KiB of g in flight a program (docs/benchmarks/
# issue13-embedding3.md; bench.variants embedding measures the others).
SCATTER_CHUNK, SCATTER_TILE_BYTES, SCATTER_WARPS, SCATTER_STAGES = 32, 2048, 4, 6


@runtime.plan_cache
def _scatter_plans(i_layout, V, E, g_strides, dtype):
    n = runtime.numel(i_layout[0])
    be = min(runtime.next_pow2(E), SCATTER_TILE_BYTES // runtime.dtype_size(dtype))
    if runtime.INTERPRETER:  # few, large programs
        chunk = min(max(runtime.next_pow2(n), 16), max(16, runtime.tile_elements() // be), 256)
        spill = chunk
        bv = min(runtime.next_pow2(V), max(1, runtime.tile_elements() // be))
        keys_block = min(runtime.next_pow2(n), runtime.tile_elements())
    else:  # the last run's rows up to 8 past a chunk finished by the chunk
        chunk, spill, bv, keys_block = SCATTER_CHUNK, 8, 32, 1024
    chunks, zero_programs = runtime.cdiv(n, chunk), runtime.cdiv(V, bv)
    keys = runtime.LaunchPlan(embedding_keys_kernel, (runtime.cdiv(n, keys_block),),
                              {"num_warps": runtime.num_warps_for(keys_block)}, n=n, V=V, i_sizes=i_layout[0],
                              i_st=i_layout[1], BLOCK=keys_block)
    sums = runtime.LaunchPlan(embedding_bwd_kernel, (zero_programs + chunks,),
                              {"num_warps": SCATTER_WARPS},
                              n=n, V=V, E=E, i_sizes=i_layout[0], g_i=g_strides[:-1] or (0,), g_e=g_strides[-1],
                              zero_programs=zero_programs, COMPUTE=runtime.compute_dtype(dtype),
                              BLOCK_I=chunk, SPILL=spill, ZERO_ROWS=bv, BLOCK_E=be, STAGES=SCATTER_STAGES)
    # long runs (a frequent index) only: the chunk where one starts adds up the others' partials
    fix_c, fix_e = min(runtime.next_pow2(chunks), 64), min(runtime.next_pow2(E), 64 if dtype == torch.float64 else 128)
    fix = None if chunks == 1 else runtime.LaunchPlan(
        embedding_fix_kernel, (runtime.cdiv(chunks, fix_c), runtime.cdiv(E, fix_e)), {"num_warps": 4}, n=n, E=E,
        chunks=chunks, BLOCK_I=chunk, SPILL=spill, BLOCK_C=fix_c, BLOCK_P=64, BLOCK_E=fix_e)
    return keys, sums, fix, chunks


def embedding_vjp(indices, weight, grad):
    """The weight gradient: each index turned into a sort key and its row flagged as named; the
    keys sorted once (stable); then programs owning chunks of the sorted positions sum the rows of
    g each run of one index names and write its dweight row once (runs crossing chunks: see
    ``bwd.shape.chunk_segments``; a fix-up launch adds the partials of long runs), programs
    owning blocks of rows write 0 to the rows no index names. Deterministic, no atomics."""
    V, E = weight.shape
    dw = torch.empty_like(weight, memory_format=torch.contiguous_format)
    if indices.numel() == 0 or E == 0:
        return dw.zero_()
    keys_plan, sums, fix, chunks = _scatter_plans(_index_layout(indices), V, E, tuple(grad.stride()), weight.dtype)
    n = indices.numel()
    keys = torch.empty(n, dtype=_key_dtype(V), device=indices.device)
    flags = torch.zeros(V, dtype=torch.int8, device=indices.device)
    keys_plan(keys_ptr=keys, flags_ptr=flags, idx_ptr=indices)
    # one device sort of n keys (a torch op: replayed as the same call, see replay.py)
    ordered, order = torch.sort(keys, stable=True)
    partials = torch.empty((chunks, 2, E), dtype=torch.float64 if weight.dtype == torch.float64 else torch.float32,
                           device=dw.device)
    sums(dw_ptr=dw, part_ptr=partials, g_ptr=grad, order_ptr=order, keys_ptr=ordered, flags_ptr=flags)
    if fix is not None:
        fix(dw_ptr=dw, part_ptr=partials, keys_ptr=ordered)
    return dw
