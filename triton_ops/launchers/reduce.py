"""Launcher of the fixed-order combine of per-program partial sums (every deterministic reduction)."""
from __future__ import annotations

import torch

from .. import runtime
from ..bwd.reduce import combine_vjp_kernel
from ..tiles import split_float


_memo = runtime.plan_memo()

# warp slots of one SM (sm_80 / sm_90: 2048 threads), and the most programs one SM holds
WARPS_PER_SM, PROGRAMS_PER_SM = 64, 32


def full_wave(device, num_warps: int) -> int:
    """Programs of ``num_warps`` warps that fill every SM's warp slots once: at least one full
    wave whatever the kernel's registers and shared memory let fit (``bench/static.py``'s
    ``ctas_per_sm`` is at most this). ``runtime.device_programs`` is 4 programs per SM (the
    interpreter's: a few programs, which this scales alike)."""
    per_sm = min(PROGRAMS_PER_SM, max(1, WARPS_PER_SM // num_warps))
    return max(1, runtime.device_programs(device) * per_sm // 4)


def most_partial_rows(input_bytes: int, row_bytes: int) -> int:
    """How many partial rows of ``row_bytes`` a split reduction may write: each is written, then
    read by the combine, and together they stay within 1/32 of the bytes of the input reduced
    (at least one)."""
    return max(1, input_bytes // (64 * row_bytes))


# A split's grid aims at up to SPLIT_WAVES full waves (``full_wave``: programs at the most resident
# per SM): 6 waves of 8-warp programs are 48 an SM, whole waves at 1, 2, 3, 4, 6 or 8 resident and
# >= 0.96 of the last wave at 5 or 7, whatever the compiled kernel's registers allow. Of the splits
# within 1% (BALANCE_SLACK) of the best balance, the fewest parts (partial rows, combine reads).
SPLIT_WAVES, BALANCE_SLACK = 6, 0.01


def residencies(num_warps: int) -> range:
    """The programs per SM a kernel of ``num_warps`` warps may end up with (1 at the most
    registers, up to its warp slots)."""
    return range(1, min(PROGRAMS_PER_SM, max(1, WARPS_PER_SM // num_warps)) + 1)


def split_balance(work: int, per: int, tiles: int, device, num_warps: int) -> float:
    """The worst, over ``residencies``, share of the device's program slots at work while
    ``tiles`` x cdiv(work, per) programs run, each walking ``per`` of ``work`` (the last part
    less): the work over (whole waves x slots x per). A memory-bound kernel's time scales as the
    inverse."""
    sms = max(1, runtime.device_programs(device) // 4)
    programs = tiles * runtime.cdiv(work, per)
    return min(tiles * work / (runtime.cdiv(programs, sms * r) * sms * r * per) for r in residencies(num_warps))


def wave_split(work: int, tiles: int, parts: int, device, num_warps: int, unit: int = 1) -> int:
    """How much of a loop over ``work`` each program walks (a multiple of ``unit``, or all of it)
    when the loop is split into at most ``parts`` parts of ``tiles`` programs each: the split
    whose grid fills whole waves, or nearly, at any residency the compiled kernel ends up with
    (``split_balance``; no compile at plan time), and at least one full wave where the parts
    allow. No more than ``SPLIT_WAVES`` full waves; the fewest parts within ``BALANCE_SLACK`` of
    the best balance."""
    tiles = max(1, tiles)
    parts = min(parts, runtime.cdiv(work, unit), runtime.cdiv(SPLIT_WAVES * full_wave(device, num_warps), tiles))
    if parts <= 1:
        return max(1, work)
    pers = sorted({min(work, runtime.cdiv(runtime.cdiv(work, p), unit) * unit) for p in range(1, parts + 1)},
                  reverse=True)  # fewer parts first
    scores = [split_balance(work, per, tiles, device, num_warps) for per in pers]
    best = max(scores)
    return next(per for per, score in zip(pers, scores) if score >= best * (1 - BALANCE_SLACK))


def combine_block_k(K: int, part_dtype, device, divide: bool) -> int:
    """Columns per program: on a GPU as few as fill the device (``device_programs``, 4 per SM),
    but at least 16 bytes a row (one 128-bit load) and at most 256; the (sum, count) pair of a
    division stays in one program. The interpreter: few, wide programs."""
    if divide:
        return runtime.next_pow2(K)
    if runtime.INTERPRETER:
        return min(runtime.next_pow2(K), 1024)
    widest = max(1, 16 // runtime.dtype_size(part_dtype))
    wanted = runtime.next_pow2(runtime.cdiv(K, runtime.device_programs(device)))
    return min(runtime.next_pow2(K), 256, max(wanted, widest))


@runtime.plan_cache
def _combine_plan(kernel, P: int, K: int, stride: int, part_dtype, divide: bool, second, device) -> runtime.LaunchPlan:
    """``second``: (P2, K2, stride2, offset2) of a second reduction in the same launch, or None."""
    P2, K2, stride2, offset2 = second or (0, 0, 0, 0)
    block_k = combine_block_k(K + K2, part_dtype, device, divide)
    block_p = min(runtime.next_pow2(max(P, P2)), max(1, runtime.tile_elements() // block_k))
    blocks = runtime.cdiv(K, block_k)
    last = max((P - 1) * stride + K, offset2 + (P2 - 1) * stride2 + K2) - 1  # the last partial read
    return runtime.LaunchPlan(kernel, (blocks + runtime.cdiv(K2, block_k),), {"num_warps": 4}, P=P, K=K,
                              stride=stride, P2=P2, K2=K2, stride2=stride2, offset2=offset2, blocks=blocks,
                              DIVIDE=divide, SECOND=second is not None, COMPUTE=runtime.compute_dtype(part_dtype),
                              BLOCK_P=block_p, BLOCK_K=block_k, INDEX_64=runtime.needs_int64(last))


def combine_partials(partials: torch.Tensor, out: torch.Tensor, scale: float = 1.0, kernel=combine_vjp_kernel,
                     factor_out: torch.Tensor | None = None,
                     second: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """``out.view(-1) = scale * partials.sum(0)`` for ``partials`` [P, K] (contiguous rows, any
    row stride) and contiguous ``out``.

    ``second`` = (partials2, out2): a second reduction of the same kind in the same launch, its
    partials in the same buffer as ``partials`` (after them, or interleaved row by row): two
    gradients, one launch (LayerNorm's dweight and dbias; both broadcast operands of a binary VJP).

    With ``factor_out`` (a one-element tensor), ``partials`` is [P, 2] of (sum, count) and
    ``out = scale * sum / max(count, 1)``, the factor ``scale / max(count, 1)`` going to
    ``factor_out`` (a "mean over the rows counted", with no host sync). ``kernel``: the VJP
    entry point, or ``fwd/reduce.combine_fwd_kernel`` in a forward."""
    divide = factor_out is not None
    desc = None
    if second is not None:
        part2 = second[0]
        desc = (*part2.shape, part2.stride(0), (part2.data_ptr() - partials.data_ptr()) // part2.element_size())
    key = (id(kernel), partials.shape, partials.stride(0), partials.dtype, divide, desc, partials.device)
    launch = _memo.get(key)
    if launch is None:
        P, K = partials.shape
        launch = _memo[key] = _combine_plan(kernel, P, K, partials.stride(0), partials.dtype, divide, desc,
                                            partials.device)
    s_hi, s_lo = split_float(scale, launch.fixed["COMPUTE"])
    aux = factor_out if divide else second[1] if second is not None else out
    launch(out_ptr=out, aux_ptr=aux, part_ptr=partials, s_hi=s_hi, s_lo=s_lo)
    return out


def column_chunks(R: int, C: int, device) -> tuple[int, int, int, int]:
    """(BLOCK_R, BLOCK_C, chunks, rows per chunk) of a kernel that sums the columns of R x C into
    one partial row per program (``tiles.column_chunk``), the chunks then combined: columns
    first (contiguous stores), rows up to one tile, and the rows split into chunks only as far as
    the column blocks leave the device idle (each chunk costs one partial row of C sums and the
    combine's launch: a chunk walks at least ``runtime.min_split_elements``)."""
    block_c = min(runtime.next_pow2(C), 1024 if runtime.INTERPRETER else 256)
    block_r = max(1, min(runtime.next_pow2(R), runtime.tile_elements() // block_c, 32 if runtime.INTERPRETER else 64))
    chunks = max(1, min(runtime.cdiv(R, block_r), runtime.device_programs(device) // runtime.cdiv(C, block_c),
                        R * C // runtime.min_split_elements()))
    rows_per_chunk = runtime.cdiv(runtime.cdiv(R, chunks), block_r) * block_r
    return block_r, block_c, runtime.cdiv(R, rows_per_chunk), rows_per_chunk
