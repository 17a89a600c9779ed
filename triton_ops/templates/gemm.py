"""The GEMM template of the matmul family (matmul, linear, one_hot_embedding):
``C = act(A @ B + bias)`` for 2-D or batched 3-D operands read through their strides (a
transposed operand is never materialized). Optional pieces, all ``tl.constexpr``:

* epilogue: bias, the pre-activation saved for the backward (``SAVE_Z``), an activation;
* prologue: ``A = g * act'(z)`` computed while loading A (the linear VJP's dz, never stored);
* ``DB``: the row sums of A (the linear bias gradient) added in the same loop;
* ``ACCUMULATE``: C (and the DB row sums) added to what the output already holds, so that a
  gradient summed over row chunks (``linear_cross_entropy``'s dW, db) needs no extra buffer.
"""
import triton
import triton.language as tl

from ..tiles import call, helper, joined


@helper
def gemm_tiles(c_ptr, z_ptr, db_ptr, a_ptr, b_ptr, bias_ptr, za_ptr, M, N, K, numbers,
               a_st, b_st, c_st, z_st, za_st, bias_st,
               EPILOGUE: tl.constexpr, PROLOGUE: tl.constexpr, HAS_PARAM: tl.constexpr, HAS_BIAS: tl.constexpr,
               SAVE_Z: tl.constexpr, DB: tl.constexpr, ACCUMULATE: tl.constexpr, PRECISION: tl.constexpr,
               UPCAST: tl.constexpr,
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
    c_ptrs = c_ptr + batch * c_st[0] + rm[:, None].to(tl.int64) * c_st[1] + rn[None, :].to(tl.int64) * c_st[2]
    if ACCUMULATE:
        acc += tl.load(c_ptrs, mask=c_mask, other=0.0).to(ACC)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)
    if DB:
        if pid_n == 0:
            if ACCUMULATE:
                row_sum += tl.load(db_ptr + rm, mask=m_mask, other=0.0).to(ACC)
            tl.store(db_ptr + rm, row_sum.to(db_ptr.dtype.element_ty), mask=m_mask)
