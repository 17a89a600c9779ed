"""The GEMM template of the matmul family (matmul, linear, one_hot_embedding) and its launcher.

``C = act(A @ B + bias)`` for 2-D or batched 3-D operands read through their strides (a
transposed operand is never materialized). Optional pieces, all ``tl.constexpr``:

* epilogue: bias, the pre-activation saved for the backward (``SAVE_Z``), an activation;
* prologue: ``A = g * act'(z)`` computed while loading A (the linear VJP's dz, never stored);
* ``DB``: the row sums of A (the linear bias gradient) added in the same loop.

``bwd/matmul.py`` instantiates this template as the VJP kernel.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import runtime
from ..tiles import call, joined, split_float


@triton.jit
def gemm_kernel(c_ptr, z_ptr, db_ptr, a_ptr, b_ptr, bias_ptr, za_ptr, M, N, K, numbers,
                a_st, b_st, c_st, z_st, za_st, bias_st,
                EPILOGUE: tl.constexpr, PROLOGUE: tl.constexpr, HAS_PARAM: tl.constexpr, HAS_BIAS: tl.constexpr,
                SAVE_Z: tl.constexpr, DB: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                GROUP_M: tl.constexpr):
    # One program owns a [BLOCK_M, BLOCK_N] tile of C (one batch entry) and walks K in BLOCK_K
    # steps. Bytes: each A tile is read cdiv(N, BLOCK_N) times and each B tile cdiv(M, BLOCK_M)
    # times (L2 catches most of it thanks to the GROUP_M ordering); C (and z) written once.
    # The grid is 1-D, batch entries outermost: grid axis 1 would cap the batch at 65,535.
    n_m = tl.cdiv(M, BLOCK_M)
    n_n = tl.cdiv(N, BLOCK_N)
    batch = tl.program_id(0).to(tl.int64) // (n_m * n_n)
    pid = tl.program_id(0) % (n_m * n_n)
    group = pid // (GROUP_M * n_n)
    first_m = group * GROUP_M
    rows_in_group = tl.minimum(n_m - first_m, GROUP_M)
    pid_m = first_m + (pid % (GROUP_M * n_n)) % rows_in_group
    pid_n = (pid % (GROUP_M * n_n)) // rows_in_group
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = rm < M
    n_mask = rn < N
    a_base = a_ptr + batch * a_st[0] + rm[:, None].to(tl.int64) * a_st[1]
    za_base = za_ptr + batch * za_st[0] + rm[:, None].to(tl.int64) * za_st[1]
    b_base = b_ptr + batch * b_st[0] + rn[None, :].to(tl.int64) * b_st[2]
    p = joined(numbers[0], numbers[1], ACC)
    acc = tl.zeros([BLOCK_M, BLOCK_N], ACC)
    row_sum = tl.zeros([BLOCK_M], ACC)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        k_mask = rk < K
        a_mask = m_mask[:, None] & k_mask[None, :]
        a = tl.load(a_base + rk[None, :].to(tl.int64) * a_st[2], mask=a_mask, other=0.0)
        if PROLOGUE is not None:  # A = g * act'(z), element by element
            za = tl.load(za_base + rk[None, :].to(tl.int64) * za_st[2], mask=a_mask, other=0.0).to(ACC)
            a = tl.where(a_mask, a.to(ACC) * call(PROLOGUE, za, za, p, 1, HAS_PARAM, False), 0.0)
        if DB:
            row_sum += tl.sum(a.to(ACC), axis=1)
        b = tl.load(b_base + rk[:, None].to(tl.int64) * b_st[1], mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        if UPCAST:  # the interpreter's dot is exact only in float32/float64
            acc += tl.dot(a.to(ACC), b.to(ACC))
        else:
            acc += tl.dot(a.to(b.dtype), b, input_precision=PRECISION, out_dtype=ACC)
    c_mask = m_mask[:, None] & n_mask[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn.to(tl.int64) * bias_st, mask=n_mask, other=0.0).to(ACC)[None, :]
    if SAVE_Z:
        tl.store(z_ptr + batch * z_st[0] + rm[:, None].to(tl.int64) * z_st[1] + rn[None, :].to(tl.int64) * z_st[2],
                 acc.to(z_ptr.dtype.element_ty), mask=c_mask)
    if EPILOGUE is not None:
        acc = call(EPILOGUE, acc, acc, p, 1, HAS_PARAM, False)
    tl.store(c_ptr + batch * c_st[0] + rm[:, None].to(tl.int64) * c_st[1] + rn[None, :].to(tl.int64) * c_st[2],
             acc.to(c_ptr.dtype.element_ty), mask=c_mask)
    if DB:
        if pid_n == 0:
            tl.store(db_ptr + rm, row_sum.to(db_ptr.dtype.element_ty), mask=m_mask)


def _strides3(t: torch.Tensor | None, transpose: bool = False) -> tuple[int, int, int]:
    """(batch, row, col) strides of a 2-D or 3-D operand (its transpose when asked)."""
    if t is None:
        return (0, 0, 0)
    st = tuple(t.stride())
    b, r, c = (0, *st) if t.dim() == 2 else st
    return (b, c, r) if transpose else (b, r, c)


def resolve_precision(precision, dtype) -> str:
    if precision is None:
        precision = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
    if precision not in ("ieee", "tf32"):
        raise ValueError(f"triton_ops: precision must be 'ieee', 'tf32' or None, got {precision!r}")
    return precision if dtype == torch.float32 else "ieee"


def gemm_config(M: int, N: int, K: int, dtype) -> dict:
    """Tile sizes (the tuning store may override them: ``triton_ops.tune``)."""
    from ..tune import lookup

    tuned = lookup("gemm", dtype, (M, N, K))
    if tuned:
        return tuned
    if runtime.INTERPRETER:
        # big tiles: the interpreter runs programs one after another, and each A tile is read
        # once per column of tiles, each B tile once per row of tiles
        return dict(BLOCK_M=min(128, max(16, runtime.next_pow2(M))), BLOCK_N=min(128, max(16, runtime.next_pow2(N))),
                    BLOCK_K=min(64, max(16, runtime.next_pow2(K))), GROUP_M=8, num_warps=4, num_stages=1)
    small = dtype in (torch.float16, torch.bfloat16)
    return dict(BLOCK_M=128, BLOCK_N=128 if N > 64 else 64, BLOCK_K=64 if small else 32, GROUP_M=8,
                num_warps=8, num_stages=3 if small else 2)


def gemm(a, b, *, out_dtype, transpose_a=False, transpose_b=False, bias=None, epilogue=None, prologue=None,
         prologue_z=None, param=None, save_z=False, db=None, precision=None, kernel=gemm_kernel):
    """``C = epilogue(op(a) @ op(b) + bias)`` for 2-D or batched 3-D a and b, op = transpose
    when asked (read through strides). ``prologue(z)`` multiplies op(a) element by element
    (``prologue_z`` laid out like op(a)); ``db`` receives the row sums of the (scaled) op(a).
    Returns ``(C, z)`` (z the pre-activation when ``save_z``)."""
    a_st, b_st = _strides3(a, transpose_a), _strides3(b, transpose_b)
    batched = a.dim() == 3 or b.dim() == 3
    M = a.shape[-1] if transpose_a else a.shape[-2]
    K = a.shape[-2] if transpose_a else a.shape[-1]
    N = b.shape[-2] if transpose_b else b.shape[-1]
    batch = max(a.shape[0] if a.dim() == 3 else 1, b.shape[0] if b.dim() == 3 else 1)
    out_shape = (batch, M, N) if batched else (M, N)
    c = torch.empty(out_shape, dtype=out_dtype, device=a.device)
    z = torch.empty(out_shape, dtype=out_dtype, device=a.device) if save_z else None
    if c.numel() == 0:
        return c, z
    compute = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    cfg = gemm_config(M, N, K, a.dtype)
    launch_cfg = {k: v for k, v in cfg.items() if k in ("num_warps", "num_stages")}
    tiles = runtime.cdiv(M, cfg["BLOCK_M"]) * runtime.cdiv(N, cfg["BLOCK_N"])
    runtime.launch(
        kernel, (tiles * batch,), c, z if z is not None else c, db if db is not None else c, a, b,
        bias if bias is not None else c, prologue_z if prologue_z is not None else a, M, N, K,
        split_float(param if param is not None else 0.0, tl.float64 if compute == torch.float64 else tl.float32),
        a_st, b_st, _strides3(c), _strides3(z), _strides3(prologue_z, transpose_a),
        bias.stride(0) if bias is not None else 0,
        EPILOGUE=epilogue, PROLOGUE=prologue, HAS_PARAM=param is not None, HAS_BIAS=bias is not None,
        SAVE_Z=save_z, DB=db is not None, PRECISION=resolve_precision(precision, a.dtype),
        UPCAST=runtime.INTERPRETER or compute == torch.float64,
        ACC=tl.float64 if compute == torch.float64 else tl.float32,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"], GROUP_M=cfg["GROUP_M"], **launch_cfg)
    return c, z
