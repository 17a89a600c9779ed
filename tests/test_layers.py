"""Layers and linear algebra (SPEC section 4)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from triton_ops.counting import count_bytes
from triton_ops.spec import _to_op_args
from helpers import DEVICE, DTYPES, assert_close, cast_keep_layout, counted_bytes, reference_grads

LAYERS = ["matmul", "linear", "one_hot_embedding", "layer_norm", "transpose", "embedding"]
INTERP = triton_ops.backend() == "interpreter"


def _rand(shape, gen, scale=1.0):
    return torch.randn(shape, generator=gen, dtype=torch.float64) * scale


def _check(name, args, dtype, gen, scale=1.0, grad_scale=None):
    """Forward and gradients against float64; ``grad_scale`` (default ``scale``) for gradients
    whose sums are longer than the forward's."""
    spec = triton_ops.registry[name]
    out = spec.fn(*args)
    g = cast_keep_layout(_rand(tuple(out.shape), gen), dtype)
    idx = [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]
    ref, ref_grads = reference_grads(spec.reference, args, g, idx)
    assert_close(out, ref, dtype, f"{name} forward", scale=scale)
    grads = torch.autograd.grad(out, [args[i] for i in idx], g)
    for i, gr, rg in zip(idx, grads, ref_grads):
        assert gr.shape == args[i].shape and gr.dtype == args[i].dtype
        assert_close(gr, rg, dtype, f"{name} grad of {spec.args[i].name}",
                     scale=scale if grad_scale is None else grad_scale)


# matmul tolerances: sums of K products; float32 on a GPU uses TF32 unless precision="ieee"
def _mm_scale(dtype, k):
    return max(1.0, k / 8) if dtype in (torch.float16, torch.bfloat16) else max(1.0, k / 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matmul_2d_3d_transposed(dtype):
    gen = torch.Generator().manual_seed(0)
    a = cast_keep_layout(_rand((37, 20), gen).t(), dtype).requires_grad_()      # [20, 37], transposed strides
    b = cast_keep_layout(_rand((37, 29), gen), dtype).requires_grad_()
    _check("matmul", (a, b, "ieee"), dtype, gen, scale=_mm_scale(dtype, 37))
    a3 = cast_keep_layout(_rand((3, 19, 24), gen), dtype).requires_grad_()
    b3 = cast_keep_layout(_rand((3, 17, 24), gen).transpose(1, 2), dtype).requires_grad_()
    _check("matmul", (a3, b3, "ieee"), dtype, gen, scale=_mm_scale(dtype, 24))


@pytest.mark.parametrize("activation", [None, "gelu", "elu", "leaky_relu", "sqrt"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear(dtype, activation):
    gen = torch.Generator().manual_seed(1)
    x = cast_keep_layout(_rand((2, 5, 33), gen), dtype).requires_grad_()
    w = cast_keep_layout(_rand((21, 33), gen, 0.3), dtype).requires_grad_()
    b = cast_keep_layout(_rand((21,), gen), dtype).requires_grad_()
    _check("linear", (x, w, b, activation, "ieee"), dtype, gen, scale=_mm_scale(dtype, 33))
    _check("linear", (x, w, None, activation, "ieee"), dtype, gen, scale=_mm_scale(dtype, 33))


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_linear_backward_dz_once_bias_sums_deterministic(activation):
    """Enough rows for several row chunks in the dz pass (900 x 40: two chunks of at least
    min_split_elements; the bias gradient from partial rows, combined in a fixed order): values, the same bits on a second call, and the launches and
    bytes of the plan (dz pass + combine + two plain GEMMs; without an activation the GEMMs read
    g itself and the bias sum is a reduce)."""
    gen = torch.Generator().manual_seed(11)
    x = _rand((3, 300, 24), gen).float().to(DEVICE).requires_grad_()
    w = (_rand((40, 24), gen) * 0.3).float().to(DEVICE).requires_grad_()
    b = _rand((40,), gen).float().to(DEVICE).requires_grad_()
    # dW = dz^T x and the bias gradient sum the 900 rows: float32 rounding of a 900-term sum (terms
    # ~1, |sum| ~ 30) drifts by ~sqrt(900) * 2^-24 * 30 ~ 5e-5, past K=24's tolerance (the GPU's
    # K loop missed by 2.1e-5 at one element near cancellation); the longest sum sets the scale
    _check("linear", (x, w, b, activation, "ieee"), torch.float32, gen, scale=_mm_scale(torch.float32, 24),
           grad_scale=_mm_scale(torch.float32, 900))
    spec = triton_ops.registry["linear"]
    args = spec.check(x.detach(), w.detach(), b.detach(), activation, "ieee")
    saved = list(spec.forward_saved(*args)[1:])
    g = _rand((3, 300, 40), gen).float().to(DEVICE)
    first = spec.vjp(*args, g, saved=saved)
    with counted_bytes() as t:
        again = spec.vjp(*args, g, saved=saved)
    for a, b2 in zip(first, again):
        assert torch.equal(a, b2)
    if INTERP:  # counts need the interpreter
        # dz pass + combine + dx + dW; without an activation: the reduce + its combine (36,000
        # elements split in chunks of min_split_elements) + dx + dW
        assert t.launches == 4, t.launches
        assert t.total <= 1.05 * spec.min_bytes(*args)[1], (t.total, spec.min_bytes(*args)[1])


@pytest.mark.parametrize("V,E,launches", [(40, 7, 1), (300, 120, 3)], ids=["own-count", "count-chunks"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_one_hot_embedding_gather_and_product_blocks(dtype, V, E, launches):
    """Rows in several gather blocks: one-hot rows with values other than 1, an all-zero row, a
    block holding a row of two nonzero entries (that block runs the product), and non-finite
    weights (0 * inf is NaN in the product: the gather must agree, except at a row's own
    entry). Values as the reference, NaN and inf where it has them. A small weight: each gather
    program counts its non-finite entries itself (one launch); a larger one: counted first, in
    row chunks (partials + combine), then gathered."""
    gen = torch.Generator().manual_seed(12)
    onehot = F.one_hot(torch.randint(0, V, (150,), generator=gen), V).double()
    onehot[3] *= 2.5
    onehot[4] = 0.0
    onehot[140, :2] = torch.tensor([0.5, -1.0])  # the last block: the product path
    w = _rand((V, E), gen)
    w[2, 1], w[35, 4], w[36, 4] = float("inf"), float("nan"), -float("inf")
    onehot[5], onehot[6] = 0.0, 0.0
    onehot[5, 2] = onehot[6, 36] = 1.0  # its own inf: inf; every other row: NaN in column 1
    onehot, w = cast_keep_layout(onehot, dtype), cast_keep_layout(w, dtype)
    before = triton_ops.runtime.launch_count()
    out = triton_ops.registry["one_hot_embedding"].forward(onehot, w)
    assert triton_ops.runtime.launch_count() - before == launches or not INTERP  # the interpreter's blocks
    ref = onehot.double().cpu() @ w.double().cpu()
    assert torch.equal(out.isnan().cpu(), ref.isnan()) and torch.equal(out.isinf().cpu(), ref.isinf())
    fin = ref.isfinite()
    torch.testing.assert_close(out.double().cpu()[fin], ref[fin], rtol=1e-6 if dtype == torch.float64 else 1e-2,
                               atol=1e-6 if dtype == torch.float64 else 1e-2)


def test_one_hot_embedding_forward_is_a_gather():
    """One-hot rows: one gather program that counts the non-finite weights itself (one launch,
    no count buffer), bytes within 5% of the gather's minimum (onehot + weight once, one weight
    row per output row, the output)."""
    gen = torch.Generator().manual_seed(13)
    spec = triton_ops.registry["one_hot_embedding"]
    onehot = F.one_hot(torch.randint(0, 96, (64,), generator=gen), 96).float().to(DEVICE)
    w = _rand((96, 96), gen).float().to(DEVICE)
    with counted_bytes() as t:
        out = spec.forward(onehot, w)
    assert torch.equal(out.cpu(), w.cpu()[onehot.cpu().argmax(1)])
    if INTERP:  # counts need the interpreter
        assert t.launches == 1, t.launches  # the interpreter's one 64-row block
        assert t.total <= 1.05 * spec.min_bytes(onehot, w)[0], (t.total, spec.min_bytes(onehot, w)[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_norm(dtype):
    gen = torch.Generator().manual_seed(2)
    x = cast_keep_layout(_rand((6, 4, 40), gen, 2.0) + 1.0, dtype).requires_grad_()
    w = cast_keep_layout(_rand((4, 40), gen) + 1, dtype).requires_grad_()
    b = cast_keep_layout(_rand((4, 40), gen), dtype).requires_grad_()
    _check("layer_norm", (x, [4, 40], w, b, 1e-5), dtype, gen, scale=8.0)
    xt = cast_keep_layout(_rand((33, 7), gen).t(), dtype).requires_grad_()  # non-contiguous rows
    _check("layer_norm", (xt, [33], None, None, 1e-5), dtype, gen, scale=8.0)


def test_layer_norm_long_rows():
    gen = torch.Generator().manual_seed(3)
    x = (_rand((2, 70_000), gen) * 3 + 5).float().to(DEVICE).requires_grad_()
    w = (_rand((70_000,), gen) + 1).float().to(DEVICE).requires_grad_()
    b = _rand((70_000,), gen).float().to(DEVICE).requires_grad_()
    _check("layer_norm", (x, [70_000], w, b, 1e-5), torch.float32, gen, scale=20.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_transpose_embedding_one_hot(dtype):
    gen = torch.Generator().manual_seed(4)
    x = cast_keep_layout(_rand((70, 45), gen)[::2], dtype).requires_grad_()
    _check("transpose", (x,), dtype, gen)
    idx = torch.randint(0, 30, (5, 9), generator=gen).to(DEVICE)
    w = cast_keep_layout(_rand((30, 20), gen), dtype).requires_grad_()
    _check("embedding", (idx, w), dtype, gen, scale=4.0)
    onehot = cast_keep_layout(F.one_hot(torch.randint(0, 30, (4, 6), generator=gen), 30).double(), dtype)
    _check("one_hot_embedding", (onehot.requires_grad_(), w), dtype, gen, scale=_mm_scale(dtype, 30))


@pytest.mark.parametrize("name", LAYERS)
def test_gradcheck_and_opcheck(name):
    gen = torch.Generator().manual_seed(5)
    spec = triton_ops.registry[name]
    args = list(spec.bind(*spec.sample((3, 8), torch.float64, DEVICE, gen)))
    if name == "matmul":
        args[2] = "ieee"
    if name == "linear":
        args[4] = "ieee"
    idx = [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]
    for i in idx:
        args[i] = args[i].requires_grad_()

    def f(*ts):
        full = list(args)
        for i, t in zip(idx, ts):
            full[i] = t
        return spec.fn(*full)

    assert torch.autograd.gradcheck(f, tuple(args[i] for i in idx), fast_mode=True)
    f32 = [a.detach().float().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
           for a in args]
    torch.library.opcheck(spec.custom_op, tuple(_to_op_args(spec.args, spec.check(*f32))))


def test_parameter_gradients_are_bitwise_repeatable():
    gen = torch.Generator().manual_seed(6)
    x = _rand((64, 48), gen).float().to(DEVICE).requires_grad_()
    w = _rand((48,), gen).float().to(DEVICE).requires_grad_()
    b = _rand((48,), gen).float().to(DEVICE).requires_grad_()
    g = _rand((64, 48), gen).float().to(DEVICE)
    idx = torch.randint(0, 40, (300,), generator=gen).to(DEVICE)
    table = _rand((40, 32), gen).float().to(DEVICE).requires_grad_()
    ge = _rand((300, 32), gen).float().to(DEVICE)
    runs = []
    for _ in range(2):
        y = triton_ops.layer_norm(x, [48], w, b)
        e = triton_ops.embedding(idx, table)
        runs.append([*torch.autograd.grad(y, (x, w, b), g), *torch.autograd.grad(e, table, ge)])
    assert all(torch.equal(p, q) for p, q in zip(*runs))


def test_errors():
    a = torch.randn(3, 4, device=DEVICE)
    with pytest.raises(ValueError, match="triton_ops.matmul: shapes"):
        triton_ops.matmul(a, a)
    with pytest.raises(TypeError, match="triton_ops.matmul: all tensors must have one dtype"):
        triton_ops.matmul(a, a.t().double())
    with pytest.raises(ValueError, match="triton_ops.linear: activation"):
        triton_ops.linear(a, a, activation="softmax")
    with pytest.raises(ValueError, match="triton_ops.layer_norm: normalized_shape"):
        triton_ops.layer_norm(a, [3])
    with pytest.raises(IndexError, match="triton_ops.transpose"):  # dim 1 of a 1-D tensor, as torch
        triton_ops.transpose(a[0])
    with pytest.raises(TypeError, match="triton_ops.embedding: indices"):
        triton_ops.embedding(a, a)
    if DEVICE.type == "cpu":
        with pytest.raises(IndexError, match="triton_ops.embedding"):
            triton_ops.embedding(torch.tensor([0, 3], device=DEVICE), a)


# ------------------------------------------------------------------------------------------------
# bytes (interpreter)


@pytest.mark.skipif(not INTERP, reason="counts need the interpreter")
def test_layer_norm_bytes():
    spec = triton_ops.registry["layer_norm"]
    x, w, b = torch.randn(256, 1024), torch.randn(1024), torch.randn(1024)
    args = (x, [1024], w, b, 1e-5)
    fwd_min, bwd_min = spec.min_bytes(*args)
    with count_bytes() as fwd:
        spec.forward(*args)
    saved = list(spec.forward_saved(*args)[1:])
    with count_bytes() as bwd:
        spec.vjp(*args, torch.randn(256, 1024), saved=saved)
    print(f"layer_norm forward {fwd.total / fwd_min:.3f} x min, backward {bwd.total / bwd_min:.3f} x min "
          f"({bwd.launches} launches)")
    assert fwd_min <= fwd.total <= 1.05 * fwd_min
    assert bwd_min <= bwd.total <= 1.10 * bwd_min


@pytest.mark.skipif(not INTERP, reason="counts need the interpreter")
def test_linear_gelu_writes_output_and_saved_preactivation_only():
    x, w, b = torch.randn(64, 96), torch.randn(80, 96), torch.randn(80)
    spec = triton_ops.registry["linear"]
    with count_bytes() as fwd:
        spec.forward(x, w, b, "gelu")
    out_bytes = 64 * 80 * 4
    assert fwd.stores == 2 * out_bytes  # y, and the pre-activation z saved for the backward
    with count_bytes() as plain:
        spec.forward(x, w, b, None)
    assert plain.stores == out_bytes


@pytest.mark.skipif(not INTERP, reason="counts need the interpreter")
def test_matmul_tile_reads():
    from triton_ops.launchers.matmul import gemm_config

    M, K, N = 96, 80, 112
    a, b = torch.randn(M, K), torch.randn(K, N)
    cfg = gemm_config(M, N, K, torch.float32)
    with count_bytes() as c:
        triton_ops.registry["matmul"].forward(a, b)
    n_tiles = -(-N // cfg["BLOCK_N"])
    m_tiles = -(-M // cfg["BLOCK_M"])
    expected_loads = 4 * (M * K * n_tiles + K * N * m_tiles)  # A read once per column of tiles, B per row
    print(f"matmul {M}x{K}x{N}, tiles {cfg['BLOCK_M']}x{cfg['BLOCK_N']}x{cfg['BLOCK_K']}: loads {c.loads} B "
          f"= |A| x {n_tiles} + |B| x {m_tiles}; stores {c.stores} B")
    assert c.loads == expected_loads and c.stores == 4 * M * N


def test_layer_norm_forward_alone_stores_no_statistics():
    """Under no_grad the forward writes y only (8 bytes a row less), bit for bit the y of the
    training forward, which also stores mean and rstd."""
    spec = triton_ops.registry["layer_norm"]
    x, w, b = (torch.randn(*shape, device=DEVICE) for shape in ((6, 40), (40,), (40,)))
    args = (x, [40], w, b, 1e-5)
    with counted_bytes() as alone:
        y = spec.forward(*args)
    with counted_bytes() as training:
        y_saved, stats = spec.forward_saved(*args)
    assert torch.equal(y, y_saved)
    # one [2, R] allocation: the mean, then rstd
    assert stats.shape == (2, 6)
    torch.testing.assert_close(stats[0], x.mean(-1))
    torch.testing.assert_close(stats[1], torch.rsqrt(x.var(-1, unbiased=False) + 1e-5))
    if INTERP:  # counts need the interpreter
        assert training.total - alone.total == 2 * 6 * 4
    with torch.no_grad():
        assert torch.equal(triton_ops.layer_norm(*args), y)


def test_float32_gemm_operands_take_the_layouts_that_compile_best():
    """On a GPU a float32 GEMM's operands are copied into the layouts whose kernels compile best on
    sm_90 (launchers/matmul._float32_operands): op(a) K-contiguous always; op(b) K-contiguous for
    TF32 (wgmma reads it K-major) and N-contiguous for IEEE float32. The values never change, a
    copy is made only where the layout differs, and a batch repeating one matrix stays one."""
    from triton_ops.launchers.matmul import _contiguous_along, _float32_operands

    a, b = torch.randn(8, 16, dtype=torch.float32), torch.randn(16, 12, dtype=torch.float32)
    for ta in (False, True):
        for tb in (False, True):
            stored_a = a.t().contiguous() if ta else a  # op(stored_a) == a
            stored_b = b.t().contiguous() if tb else b
            for precision in ("tf32", "ieee"):
                a2, b2 = _float32_operands(stored_a, stored_b, ta, tb, precision)
                op_a, op_b = (a2.t() if ta else a2), (b2.t() if tb else b2)
                assert torch.equal(op_a, a) and torch.equal(op_b, b)
                assert op_a.stride(-1) == 1
                assert op_b.stride(-2 if precision == "tf32" else -1) == 1, (ta, tb, precision, op_b.stride())
                assert (a2 is stored_a) == (not ta) and (b2 is stored_b) == ((precision == "tf32") == tb)
    repeated = torch.randn(6, 4).expand(3, 6, 4)
    k_major = _contiguous_along(repeated, -2)
    assert torch.equal(k_major, repeated) and k_major.stride(0) == 0 and k_major.stride(-2) == 1
