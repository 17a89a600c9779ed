"""Launcher of the GEMM template (matmul, linear, one_hot_embedding; forward and VJP): tiles from
the tuning store or a heuristic, decided once per plan."""
from __future__ import annotations

import functools
import os

import torch
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from .. import runtime
from ..fwd.matmul import gemm_fwd_kernel
from ..tiles import split_float
from ..tune import lookup


def _strides3(shape_strides, transpose: bool = False) -> tuple[int, int, int]:
    """(batch, row, col) strides of a 2-D or 3-D operand (its transpose when asked)."""
    if shape_strides is None:
        return (0, 0, 0)
    st = shape_strides[1]
    b, r, c = (0, *st) if len(st) == 2 else st
    return (b, c, r) if transpose else (b, r, c)


def default_precision() -> str:
    """float32 GEMMs without ``precision=``: what ``torch.get_float32_matmul_precision()`` says
    ('highest': IEEE float32; 'high' / 'medium': TF32). It is the same switch as SPEC's
    ``torch.backends.cuda.matmul.allow_tf32``: torch sets one from the other."""
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def resolve_precision(precision, dtype) -> str:
    if precision is None:
        precision = default_precision()
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"triton_ops: precision must be 'ieee', 'tf32' or None, got {precision!r}")
    return precision if dtype == torch.float32 else "ieee"


def gemm_config(M: int, N: int, K: int, dtype, *, pointers: bool = False, precision: str = "tf32") -> dict:
    """Tile sizes (the tuning store may override them per shape bucket: ``triton_ops.tune``).
    ``pointers``: loads through int64 address tiles instead of TMA, whose registers beside a
    128 x 256 accumulator spill (sm_90 report): those GEMMs take 128 x 128 tiles. A fused
    epilogue (bias, saved z, activation) runs in two column halves (``SUBTILE``), so it keeps
    the wide tile: whole, its temporaries spilled."""
    tuned = lookup("gemm", dtype, (M, N, K))
    if tuned:
        return tuned
    if runtime.INTERPRETER:
        # big tiles: the interpreter runs programs one after another, and each A tile is read
        # once per column of tiles, each B tile once per row of tiles
        return dict(BLOCK_M=min(128, max(16, runtime.next_pow2(M))), BLOCK_N=min(128, max(16, runtime.next_pow2(N))),
                    BLOCK_K=min(64, max(16, runtime.next_pow2(K))), GROUP_M=8, num_warps=4, num_stages=1)
    wide = N > 128 and M > 64 and not pointers
    if dtype in (torch.float16, torch.bfloat16):
        # Triton's persistent-matmul tutorial's H100 tile: 128 x 256 x 64, 3 stages (144 KiB of
        # shared memory: one program per SM), 8 warps (128 accumulator registers a thread)
        return dict(BLOCK_M=128, BLOCK_N=256 if wide else 128, BLOCK_K=64, GROUP_M=8,
                    num_warps=8, num_stages=3 if wide or pointers else 4)
    if dtype == torch.float32 and precision == "tf32":
        # The 16-bit tile in TF32: 128 x 256 x 32 is the same 48 KiB a stage (144 KiB in 3), the
        # same 128-register accumulator and four wgmma a stage (k8 where 16-bit has k16): on sm_90
        # under Triton 3.6 it compiles as the bf16 kernel that ran 1.00x cuBLAS on the H200 of
        # 2026-11-28 (192 registers against 189, no spills, one program an SM). The 128 x 128 x 32
        # tile it replaces (114 registers) ran the persistent grid one program an SM too (the grid
        # assumes 255 registers): 8 warps an SM, linear's forward 0.70x cuBLAS on that run.
        return dict(BLOCK_M=128, BLOCK_N=256 if wide else 128 if N > 64 else 64, BLOCK_K=32, GROUP_M=8,
                    num_warps=8, num_stages=3)
    # IEEE float32 and float64: no tensor cores (FMA), the accumulator and both operand tiles
    # live in registers. float32: 64 x 64 x 16 tiles of 4 warps, 3 stages, the fastest of
    # bench.variants gemm32 on the H200 of 2026-11-28 at 4096^3 (37.1 TFLOP/s forward, 18.9 the
    # VJP; 64 x 64 x 32 of 8 warps, 2 stages: 22.2 and 10.3). float64: that 64 x 64 x 32 of 8
    # warps (4 warps spill its 8-byte accumulator on sm_90)
    if dtype == torch.float32:
        return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=3)
    return dict(BLOCK_M=64, BLOCK_N=64, BLOCK_K=32, GROUP_M=8, num_warps=8, num_stages=2)


SMEM_PER_SM = 228 * 1024  # Hopper; an older GPU holds fewer programs per SM than this assumes
REGS_PER_SM = 65536


def persistent_programs(tiles: int, cfg: dict, itemsize: int, device) -> int:
    """Programs of the persistent grid: one per resident slot (SMs x programs per SM, from the
    pipeline's shared memory and the warps), never more than there are tiles."""
    if runtime.INTERPRETER:
        return min(tiles, 3)  # programs run one after another: few, each walking several tiles
    # registers are known only after compiling: assume the most (255 a thread), so that every
    # program of the grid is resident at once (a late one would walk its tiles after the others)
    smem = cfg["num_stages"] * (cfg["BLOCK_M"] + cfg["BLOCK_N"]) * cfg["BLOCK_K"] * itemsize + 1024
    per_sm = max(1, min(SMEM_PER_SM // smem, REGS_PER_SM // (256 * 32 * cfg["num_warps"])))
    return min(tiles, _sms(device) * per_sm)


@functools.cache
def _sms(device) -> int:
    if runtime.COMPILE_ONLY:
        return 132  # the H100 SXM the compile-only backend targets
    return torch.cuda.get_device_properties(device).multi_processor_count


@functools.cache
def tma_capable(device) -> bool:
    """Whether tensor descriptors can feed this device's GEMM: Hopper and later (compile-only
    targets sm_90), and the interpreter, which runs descriptor loads as masked loads.
    ``TRITON_OPS_TMA=0`` keeps every GEMM on the pointer path (a Triton whose descriptors fail)."""
    if os.environ.get("TRITON_OPS_TMA", "1") == "0":
        return False
    if runtime.INTERPRETER or runtime.COMPILE_ONLY:
        return True
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 9


def _tma_layout(layout, transpose: bool, batched: bool):
    """(descriptor shape, strides, transposed) over an operand's own memory for a TMA read, or
    None where TMA cannot read it: the innermost stride must be 1 and every other stride a
    positive multiple of 16 bytes (the base address is checked per call)."""
    shape, strides, dtype = layout
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return None
    rows, cols = (shape[-1], shape[-2]) if transpose else (shape[-2], shape[-1])
    _, r_st, c_st = _strides3(layout, transpose)
    b_st = strides[0] if len(shape) == 3 else 0
    itemsize = dtype.itemsize
    if c_st == 1:
        dims, st, flipped = [rows, cols], [r_st, 1], False
    elif r_st == 1:
        dims, st, flipped = [cols, rows], [c_st, 1], True
    else:
        return None
    if batched:
        if len(shape) != 3:
            return None
        dims, st = [shape[0], *dims], [b_st, *st]
    if 0 in dims or any(s <= 0 or s * itemsize % 16 for s in st[:-1]):
        return None
    return dims, st, flipped


class _PlannedDescriptor(TensorDescriptor):
    """A host tensor descriptor whose checks (unit inner stride, 16-byte strides, block shape)
    the plan made once (``_tma_layout``) and ``gemm`` the base's alignment per call: built per
    call without them (about 1 µs instead of 4 on this project's CPU)."""

    def __post_init__(self):
        pass


def _layout(t):
    return (tuple(t.shape), tuple(t.stride()), t.dtype) if t is not None else None


def _key(t):
    """``_layout`` as the call holds it (a memo key, no tuple building)."""
    return (t.shape, t.stride(), t.dtype) if t is not None else None


_memo = runtime.plan_memo()
BLOCKS = ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M")


@runtime.plan_cache
def _gemm_plan(kernel, a, b, transpose_a, transpose_b, out_dtype, bias, epilogue, has_param,
               save_z, db, precision, out, accumulate, device):
    """(out shape, pointer LaunchPlan, TMA LaunchPlan or None, the two descriptors' (shape,
    strides, block)) for one combination of operand layouts and options; ``a``, ``b``, ``bias``,
    ``out`` are (shape, strides, dtype) (``out`` None: a fresh contiguous C),
    ``db`` a bool and ``precision`` resolved."""
    a_shape, b_shape = a[0], b[0]
    batched = len(a_shape) == 3 or len(b_shape) == 3
    M = a_shape[-1] if transpose_a else a_shape[-2]
    K = a_shape[-2] if transpose_a else a_shape[-1]
    N = b_shape[-2] if transpose_b else b_shape[-1]
    batch = max(a_shape[0] if len(a_shape) == 3 else 1, b_shape[0] if len(b_shape) == 3 else 1)
    out_shape = (batch, M, N) if batched else (M, N)
    z_strides = (M * N, N, 1) if batched else (0, N, 1)  # a fresh contiguous z (and C without ``out``)
    c_strides = _strides3(out) if out is not None else z_strides
    compute = torch.float64 if torch.float64 in (a[2], b[2]) else torch.float32
    precision = resolve_precision(precision, a[2])
    fixed = dict(
        M=M, N=N, K=K, BATCH=batch,
        a_st=_strides3(a, transpose_a), b_st=_strides3(b, transpose_b), c_st=c_strides,
        z_st=z_strides if save_z else (0, 0, 0),
        bias_st=bias[1][0] if bias is not None else 0,
        EPILOGUE=epilogue, HAS_PARAM=has_param, HAS_BIAS=bias is not None,
        SAVE_Z=save_z, DB=db, ACCUMULATE=accumulate, PRECISION=precision,
        UPCAST=runtime.INTERPRETER or compute == torch.float64,
        ACC=tl.float64 if compute == torch.float64 else tl.float32, BATCHED=batched)

    def plan(tma, a_t=False, b_t=False):
        cfg = gemm_config(M, N, K, a[2], pointers=not tma, precision=precision)
        tiles = runtime.cdiv(M, cfg["BLOCK_M"]) * runtime.cdiv(N, cfg["BLOCK_N"]) * batch
        grid = (max(1, persistent_programs(tiles, cfg, a[2].itemsize, device)),)
        options = {k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")}
        return runtime.LaunchPlan(kernel, grid, options, **fixed, TMA=tma, A_T=a_t, B_T=b_t,
                                  EVEN_K=K % cfg["BLOCK_K"] == 0, **{k: cfg[k] for k in BLOCKS},
                                  SUBTILE=(epilogue is not None or save_z) and cfg["BLOCK_N"] >= 32)

    pointers = plan(False)
    ta, tb = _tma_layout(a, transpose_a, batched), _tma_layout(b, transpose_b, batched)
    if not (ta and tb and tma_capable(device)):
        return out_shape, pointers, None, None
    tma = plan(True, ta[2], tb[2])
    if tma.grid == (1, 1, 1) and not runtime.INTERPRETER:  # the persistent grid: one program per tile at most
        # One output tile: one program, no pipeline across SMs to keep fed, so TMA gains nothing
        # while each descriptor costs host time on every call (built, then encoded by the
        # driver). The interpreter's tiles are the whole problem at every test shape: it keeps
        # TMA there, so that the tests run the descriptor path.
        return out_shape, pointers, None, None
    bm, bn, bk = (tma.fixed[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    blocks = ([bk, bm] if ta[2] else [bm, bk]), ([bn, bk] if tb[2] else [bk, bn])
    descs = tuple((dims, st, [1, *blk] if batched else blk) for (dims, st, _), blk in zip((ta, tb), blocks))
    return out_shape, pointers, tma, descs


def _contiguous_along(x, axis: int):
    """``x`` with ``axis`` (-1 or -2 of its own storage) contiguous: a copy where it is not (of
    one matrix, expanded again, where a 3-D ``x`` repeats one over its batch)."""
    if x.stride(axis) == 1 or x.shape[axis] == 1:
        return x
    if x.dim() == 3 and x.stride(0) == 0:
        return _contiguous_along(x[0], axis).expand(x.shape)
    return x.contiguous() if axis == -1 else x.transpose(-1, -2).contiguous().transpose(-1, -2)


def _float32_operands(a, b, transpose_a: bool, transpose_b: bool, precision: str):
    """float32 operands in the layouts whose GEMM compiles best on sm_90, a copy of any other (its
    bytes twice: a 8192^2 operand ~0.13 ms beside a GEMM of 3 ms or more). A: K contiguous, both
    precisions. B: TF32's wgmma reads it K-major too, where Triton fed a [K, N] B by transposing
    each tile through registers inside the K loop (0.16x cuBLAS on the H200 of 2026-11-28, where
    a K-major B ran 0.70x); IEEE float32 (FMA units) compiles best from a [K, N] B, N contiguous:
    96 registers (5 programs an SM under Triton 3.6), where a transposed A or B takes 216-236 (2
    an SM) and ran the VJP's GEMMs at half the forward's 37 TFLOP/s on the same run."""
    a = _contiguous_along(a, -2 if transpose_a else -1)
    b_axis = -2 if precision == "tf32" else -1  # of op(b) = [K, N] stored as is
    return a, _contiguous_along(b, (-1 if b_axis == -2 else -2) if transpose_b else b_axis)


def gemm(a, b, *, out_dtype, transpose_a=False, transpose_b=False, bias=None, epilogue=None, param=None,
         save_z=False, db=None, precision=None, kernel=gemm_fwd_kernel, out=None, accumulate=False):
    """``C = epilogue(op(a) @ op(b) + bias)`` for 2-D or batched 3-D a and b, op = transpose
    when asked (read through strides); ``db`` receives the row sums of op(a).
    ``out``: write C there (any strides) instead of a new tensor; ``accumulate``: add to what
    ``out`` (and ``db``) hold. ``precision``: float32's 'ieee' | 'tf32', None for
    ``default_precision()``. Returns ``(C, z)`` (z the pre-activation when ``save_z``).
    ``kernel``: the forward entry point or ``bwd/matmul.gemm_vjp_kernel``."""
    precision = precision or default_precision()  # resolved per call: the global setting may change
    if a.dtype == torch.float32 and b.dtype == torch.float32 and not runtime.INTERPRETER:
        a, b = _float32_operands(a, b, transpose_a, transpose_b, precision)
    key = (id(kernel), a.shape, a.stride(), a.dtype, b.shape, b.stride(), b.dtype, transpose_a, transpose_b,
           out_dtype, _key(bias), id(epilogue), param is None, save_z, db is None,
           precision, _key(out), accumulate, a.device)
    planned = _memo.get(key)
    if planned is None:
        planned = _memo[key] = _gemm_plan(
            kernel, _layout(a), _layout(b), transpose_a, transpose_b, out_dtype, _layout(bias), epilogue,
            param is not None, save_z, db is not None, precision, _layout(out), accumulate, a.device)
    out_shape, launch, tma, descs = planned
    c = torch.empty(out_shape, dtype=out_dtype, device=a.device) if out is None else out
    z = torch.empty(out_shape, dtype=out_dtype, device=a.device) if save_z else None
    if c.numel() == 0:
        return c, z
    a_desc, b_desc = a, b  # unused by the pointer path
    if tma is not None and not (a.data_ptr() | b.data_ptr()) & 15:  # TMA needs 16-byte aligned bases
        launch = tma
        a_desc, b_desc = (_PlannedDescriptor(t, *d) for t, d in zip((a, b), descs))
    launch(c_ptr=c, z_ptr=z if z is not None else c, db_ptr=db if db is not None else c, a_ptr=a, b_ptr=b,
           bias_ptr=bias if bias is not None else c, a_desc=a_desc, b_desc=b_desc,
           numbers=split_float(param if param is not None else 0.0, launch.fixed["ACC"]))
    return c, z
