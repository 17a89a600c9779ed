"""The GEMM template of the matmul family (matmul, linear, one_hot_embedding):
``C = act(A @ B + bias)`` for 2-D or batched 3-D operands read through their strides (a
transposed operand is never materialized). Optional pieces, all ``tl.constexpr``:

* epilogue: bias, the pre-activation saved for the backward (``SAVE_Z``), an activation;
* ``DB``: the row sums of A (the linear bias gradient) added in the same loop;
* ``ACCUMULATE``: C (and the DB row sums) added to what the output already holds, so that a
  gradient summed over row chunks (``linear_cross_entropy``'s dW, db) needs no extra buffer.

The grid is persistent (``min(tiles, SMs x programs per SM)`` programs, each walking tiles in
grouped order); A and B arrive either through host-built tensor descriptors (``TMA``: bulk
copies on Hopper, also run by the interpreter) or through pointers (any strides).
"""
import triton
import triton.language as tl

from ..tiles import call, helper, joined


@helper
def _desc_tile(desc, batch, r0, c0, BATCHED: tl.constexpr, R: tl.constexpr, C: tl.constexpr,
               TRANSPOSED: tl.constexpr):
    # the [R, C] block at (r0, c0) of a descriptor over the operand's own memory order; a
    # transposed operand's block is its [C, R] block at (c0, r0), read K-contiguous and flipped
    if TRANSPOSED:
        t = _desc_tile(desc, batch, c0, r0, BATCHED, C, R, False).T
    elif BATCHED:
        t = desc.load([batch, r0, c0]).reshape(R, C)
    else:
        t = desc.load([r0, c0])
    return t


@helper
def _epilogue(acc, rm, rn, M, N, batch64, c_ptr, z_ptr, bias_ptr, c_st, z_st, bias_st, p,
              EPILOGUE: tl.constexpr, HAS_PARAM: tl.constexpr, HAS_BIAS: tl.constexpr, SAVE_Z: tl.constexpr,
              ACCUMULATE: tl.constexpr, ACC: tl.constexpr):
    # rows rm x columns rn of C: + bias, z saved, the activation, + what C holds, stored
    c_mask = (rm < M)[:, None] & (rn < N)[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn.to(tl.int64) * bias_st, mask=rn < N, other=0.0).to(ACC)[None, :]
    if SAVE_Z:
        tl.store(z_ptr + batch64 * z_st[0] + rm[:, None].to(tl.int64) * z_st[1]
                 + rn[None, :].to(tl.int64) * z_st[2], acc.to(z_ptr.dtype.element_ty), mask=c_mask)
    if EPILOGUE is not None:
        acc = call(EPILOGUE, acc, acc, p, 1, HAS_PARAM, False)
    c_ptrs = c_ptr + batch64 * c_st[0] + rm[:, None].to(tl.int64) * c_st[1] + rn[None, :].to(tl.int64) * c_st[2]
    if ACCUMULATE:
        acc += tl.load(c_ptrs, mask=c_mask, other=0.0).to(ACC)
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


@helper
def gemm_tiles(c_ptr, z_ptr, db_ptr, a_ptr, b_ptr, bias_ptr, a_desc, b_desc, M, N, K, BATCH, numbers,
               a_st, b_st, c_st, z_st, bias_st,
               EPILOGUE: tl.constexpr, HAS_PARAM: tl.constexpr, HAS_BIAS: tl.constexpr,
               SAVE_Z: tl.constexpr, DB: tl.constexpr, ACCUMULATE: tl.constexpr, PRECISION: tl.constexpr,
               UPCAST: tl.constexpr, TMA: tl.constexpr, A_T: tl.constexpr, B_T: tl.constexpr,
               BATCHED: tl.constexpr, EVEN_K: tl.constexpr,
               ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
               GROUP_M: tl.constexpr, SUBTILE: tl.constexpr):
    # One program owns the tiles tile0, tile0 + programs, ... of the BATCH x cdiv(M, BLOCK_M) x
    # cdiv(N, BLOCK_N) tiles of C (batch outermost, GROUP_M rows of tiles per group), and for
    # each walks K in BLOCK_K steps. Bytes: each A tile is read cdiv(N, BLOCK_N) times and each
    # B tile cdiv(M, BLOCK_M) times (L2 catches most of it thanks to the grouping); C (and z)
    # written once. The tile walk is one loop over a 1-D grid: no grid axis caps the batch.
    # TMA: A and B through tensor descriptors (out-of-bounds rows and columns read as zeros, so
    # the loads need no mask); A_T / B_T: the operand is stored transposed (op(A) = A^T).
    # Pointers: rows past M (columns past N) are clamped to row 0 so that the main loop's loads
    # are unmasked when BLOCK_K divides K (EVEN_K); those rows are never stored.
    n_m = tl.cdiv(M, BLOCK_M)
    n_n = tl.cdiv(N, BLOCK_N)
    per_batch = n_m * n_n
    p = joined(numbers[0], numbers[1], ACC)
    for tile in range(tl.program_id(0), per_batch * BATCH, tl.num_programs(0)):
        batch = tile // per_batch
        pid = tile % per_batch
        group = pid // (GROUP_M * n_n)
        first_m = group * GROUP_M
        rows_in_group = tl.minimum(n_m - first_m, GROUP_M)
        pid_m = first_m + (pid % (GROUP_M * n_n)) % rows_in_group
        pid_n = (pid % (GROUP_M * n_n)) // rows_in_group
        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        m_mask = rm < M
        n_mask = rn < N
        batch64 = batch.to(tl.int64)
        rk = tl.arange(0, BLOCK_K)
        # pointer path: int64 row (column) addresses formed once per tile,
        # the K offsets added per step (address tiles carried across steps spill on sm_90)
        if not TMA:
            a_rows = a_ptr + batch64 * a_st[0] + tl.where(m_mask, rm, 0).to(tl.int64) * a_st[1]
            b_cols = b_ptr + batch64 * b_st[0] + tl.where(n_mask, rn, 0).to(tl.int64) * b_st[2]
        acc = tl.zeros([BLOCK_M, BLOCK_N], ACC)
        row_sum = tl.zeros([BLOCK_M], ACC)
        for k0 in range(0, K, BLOCK_K):
            k_mask = rk < K - k0
            kk = k0 + rk.to(tl.int64)
            if TMA:
                a = _desc_tile(a_desc, batch, pid_m * BLOCK_M, k0, BATCHED, BLOCK_M, BLOCK_K, A_T)
                b = _desc_tile(b_desc, batch, k0, pid_n * BLOCK_N, BATCHED, BLOCK_K, BLOCK_N, B_T)
            else:
                a_ptrs = a_rows[:, None] + kk[None, :] * a_st[2]
                b_ptrs = b_cols[None, :] + kk[:, None] * b_st[1]
                if EVEN_K:
                    a = tl.load(a_ptrs)
                    b = tl.load(b_ptrs)
                else:
                    a = tl.load(a_ptrs, mask=k_mask[None, :], other=0.0)
                    b = tl.load(b_ptrs, mask=k_mask[:, None], other=0.0)
            if DB:  # rows past M are clamped copies: their sums are never stored
                row_sum += tl.sum(a.to(ACC), axis=1)
            if UPCAST:  # the interpreter's dot is exact only in float32/float64
                acc += tl.dot(a.to(ACC), b.to(ACC))
            else:
                acc += tl.dot(a.to(b.dtype), b, input_precision=PRECISION, out_dtype=ACC)
        if SUBTILE:  # the epilogue in two [BLOCK_M, BLOCK_N / 2] halves: half its temporaries live
            left, right = acc.reshape(BLOCK_M, 2, BLOCK_N // 2).permute(0, 2, 1).split()
            half = pid_n * BLOCK_N + tl.arange(0, BLOCK_N // 2)
            _epilogue(left, rm, half, M, N, batch64, c_ptr, z_ptr, bias_ptr, c_st, z_st, bias_st, p,
                      EPILOGUE, HAS_PARAM, HAS_BIAS, SAVE_Z, ACCUMULATE, ACC)
            _epilogue(right, rm, half + BLOCK_N // 2, M, N, batch64, c_ptr, z_ptr, bias_ptr, c_st, z_st, bias_st, p,
                      EPILOGUE, HAS_PARAM, HAS_BIAS, SAVE_Z, ACCUMULATE, ACC)
        else:
            _epilogue(acc, rm, rn, M, N, batch64, c_ptr, z_ptr, bias_ptr, c_st, z_st, bias_st, p,
                      EPILOGUE, HAS_PARAM, HAS_BIAS, SAVE_Z, ACCUMULATE, ACC)
        if DB:
            if pid_n == 0:
                if ACCUMULATE:
                    row_sum += tl.load(db_ptr + rm, mask=m_mask, other=0.0).to(ACC)
                tl.store(db_ptr + rm, row_sum.to(db_ptr.dtype.element_ty), mask=m_mask)
