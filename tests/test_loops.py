"""Every loop of every kernel run 1 time, exactly one full block, and several blocks plus a
remainder; every partial-sum path with several partials; bitwise repeatability across programs.

Sizes are picked from the block sizes the launchers choose under the interpreter (asserted
below with ``interpreter_plan``, so that each test says why its size was picked; on a GPU only
the values are checked). The interpreter plans few, large programs; the paths a GPU takes
(several programs per reduction, each writing a partial row that a fixed-order combine adds)
are reached with ``gpu_plans``: the launchers plan as the compiled backend would (4096-element
tiles, a given number of programs to fill the device) while the kernels still run in the
interpreter.
"""
from __future__ import annotations

import math
import types
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from triton_ops import replay, runtime, tune
from triton_ops.launchers.matmul import gemm_config
from helpers import DEVICE, assert_close, reference_grads

F64 = torch.float64


def interpreter_plan(condition):
    """A block size the interpreter's launchers choose (a GPU chooses others: there, only the
    values are checked)."""
    assert condition or not runtime.INTERPRETER


@pytest.fixture
def gpu_plans(monkeypatch):
    """``gpu_plans(module, ..., programs=P)``: the launchers of these ``triton_ops.launchers``
    modules plan as on a GPU. The planners' caches and the launchers' plan memos are keyed on
    shapes, not on the planning mode: they are cleared whenever the mode changes (here and at
    teardown), so that no plan made under one mode is launched under the other."""

    def use(*modules, programs):
        proxy = types.SimpleNamespace(**{k: getattr(runtime, k) for k in dir(runtime) if not k.startswith("__")})
        proxy.INTERPRETER = False
        proxy.tile_elements = lambda: 4096
        proxy.device_programs = lambda device: programs
        proxy.min_split_elements = lambda: 1  # split the small interpreted shapes, as large ones are
        for m in modules:
            monkeypatch.setattr(m, "runtime", proxy)
        runtime.clear_plan_caches()

    yield use
    monkeypatch.undo()
    runtime.clear_plan_caches()


def _rand(*shape, gen, scale=1.0, shift=0.0):
    return (torch.randn(shape, generator=gen, dtype=F64) * scale + shift).to(DEVICE)


def _check(name, args, what, grad_args=None):
    """Forward and every floating gradient of ``name`` against its float64 reference (tight)."""
    spec = triton_ops.registry[name]
    idx = grad_args if grad_args is not None else [
        i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]
    args = [a.detach().requires_grad_() if i in idx else a for i, a in enumerate(args)]
    out = spec.fn(*args)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=F64).to(DEVICE) if out.dim() \
        else torch.tensor(0.7, dtype=F64, device=DEVICE)
    ref, ref_grads = reference_grads(spec.reference, args, g, idx)
    assert_close(out, ref, F64, f"{what} forward")
    for i, gr, rg in zip(idx, torch.autograd.grad(out, [args[i] for i in idx], g), ref_grads):
        assert gr.dtype == args[i].dtype
        assert_close(gr, rg, F64, f"{what} grad {spec.args[i].name}")
    return out


def _grads(out, inputs, g):
    return [out.detach().clone(), *torch.autograd.grad(out, inputs, g)]


# ------------------------------------------------------------------------------------------------
# GEMM: the K loop (matmul, linear forward; the bias row sums of the weight gradient), the M x N
# tile grid and its GROUP_M ordering


@pytest.mark.parametrize("K,block_k,steps", [(1, 16, 1), (64, 64, 1), (150, 64, 3)])
def test_gemm_k_loop(K, block_k, steps):
    cfg = gemm_config(20, 30, K, F64)
    interpreter_plan(cfg["BLOCK_K"] == block_k and runtime.cdiv(K, block_k) == steps)
    gen = torch.Generator().manual_seed(K)
    _check("matmul", [_rand(20, K, gen=gen), _rand(K, 30, gen=gen), "ieee"], f"matmul K={K}")
    # linear: bias and activation in the GEMM epilogue; x [K, 40]: the weight gradient's K loop
    # runs over K rows (dz, or g itself without an activation)
    w, b = _rand(24, K, gen=gen, scale=0.3), _rand(24, gen=gen)
    rows, w2 = _rand(K, 40, gen=gen), _rand(24, 40, gen=gen, scale=0.3)
    interpreter_plan(gemm_config(24, 40, K, F64)["BLOCK_K"] == block_k)
    for activation in (None, "gelu"):
        _check("linear", [_rand(2, 3, K, gen=gen), w, b, activation, "ieee"], f"linear in={K} {activation}")
        _check("linear", [rows, w2, b, activation, "ieee"], f"linear rows={K} {activation}")
    # the template's bias-gradient row sums (DB: linear_cross_entropy's db) run with the K loop
    from triton_ops.launchers.matmul import gemm

    a, b2 = _rand(K, 24, gen=gen), _rand(K, 40, gen=gen)
    db = torch.empty(24, dtype=F64, device=DEVICE)
    c = gemm(a, b2, transpose_a=True, out_dtype=F64, db=db, precision="ieee")[0]
    assert_close(c, a.cpu().T @ b2.cpu(), F64, f"gemm a^T b K={K}")
    assert_close(db, a.cpu().sum(0), F64, f"gemm row sums K={K}")


def test_gemm_several_tiles_grouped():
    # 16 x 16 x 16 tiles: 70 x 60 is 5 x 4 tiles (the last row and column partial) in groups of
    # GROUP_M = 2 rows (the last group one row), K = 40 is 2 full K blocks and a remainder. (With
    # a column count prime to GROUP_M, some wrong orderings are still a permutation of the tiles.)
    cfg = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2, num_warps=4, num_stages=1)
    gen = torch.Generator().manual_seed(1)
    with tune.forced("gemm", cfg):
        assert gemm_config(70, 60, 40, F64) == cfg
        a, b = _rand(70, 40, gen=gen), _rand(40, 60, gen=gen)
        _check("matmul", [a, b, "ieee"], "matmul 5x4 tiles")
        a3, b3 = _rand(2, 70, 40, gen=gen), _rand(2, 40, 33, gen=gen).transpose(1, 2).contiguous().transpose(1, 2)
        _check("matmul", [a3, b3, "ieee"], "batched matmul 5x3 tiles")
        x, w, bias = _rand(70, 40, gen=gen), _rand(33, 40, gen=gen, scale=0.3), _rand(33, gen=gen)
        _check("linear", [x, w, bias, "leaky_relu", "ieee"], "linear 5x3 tiles")


@pytest.fixture
def gemm_launches(monkeypatch):
    """The fixed arguments (TMA, EVEN_K, PRECISION, BATCH ...) and grid of every GEMM launch.
    A compiled backend's replay launches past ``LaunchPlan.__call__``: replays are switched off
    there; the interpreter's replays go through it, so they stay on (and warm calls are seen)."""
    if runtime.backend() != "interpreter":
        monkeypatch.setattr(replay, "ENABLED", False)
    seen = []
    call = runtime.LaunchPlan.__call__

    def spy(plan, **values):
        if "BLOCK_K" in plan.fixed:
            seen.append({**plan.fixed, "grid": plan.grid})
        return call(plan, **values)

    monkeypatch.setattr(runtime.LaunchPlan, "__call__", spy)
    return seen


@pytest.mark.parametrize("K", [40, 48])
def test_gemm_persistent_walk_tma_and_pointer_paths(K, gemm_launches):
    # 16 x 16 x 16 tiles: 72 x 60 is 20 tiles, walked by 3 programs (the interpreter's persistent
    # grid; a GPU's is its SM slots): programs 0 and 1 own 7 tiles, program 2 six. K = 48 is
    # 3 full K steps (the unmasked loop of the pointer path), K = 40 two and a remainder.
    # float32 operands: contiguous and stored-transposed ones are read through tensor
    # descriptors; a base off the 16-byte grid or a column step through pointers.
    cfg = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2, num_warps=4, num_stages=1)
    gen = torch.Generator().manual_seed(K)
    f32 = lambda t: t.float()  # noqa: E731
    a, b = _rand(72, K, gen=gen), _rand(K, 60, gen=gen)
    layouts = {
        "contiguous": (f32(a), f32(b), True),
        "stored transposed": (f32(a).t().contiguous().t(), f32(b).t().contiguous().t(), True),
        "base off 16 bytes": (f32(_rand(72 * K + 1, gen=gen))[1:].view(72, K), f32(b), False),
        "column step 2": (f32(a), f32(_rand(K, 120, gen=gen))[:, ::2], False),
    }
    with tune.forced("gemm", cfg):
        for what, (x, y, tma) in layouts.items():
            gemm_launches.clear()
            c = triton_ops.matmul(x, y, "ieee")
            assert_close(c, x.double() @ y.double(), torch.float32, f"matmul {what}", scale=K / 4)
            (launch,) = gemm_launches
            interpreter_plan(launch["grid"] == (3, 1, 1))
            assert launch["TMA"] == tma and launch["EVEN_K"] == (K % 16 == 0), what
            # the VJP GEMMs (dA = g B^T, dB = A^T g) on the same path
            xr, yr = x.detach().requires_grad_(), y.detach().requires_grad_()
            g = f32(_rand(72, 60, gen=gen))
            dx, dy = torch.autograd.grad(triton_ops.matmul(xr, yr, "ieee"), [xr, yr], g)
            assert_close(dx, g.double() @ y.double().T, torch.float32, f"{what} grad a", scale=60 / 4)
            assert_close(dy, x.double().T @ g.double(), torch.float32, f"{what} grad b", scale=72 / 4)


def test_gemm_batch_is_walked_not_gridded(gemm_launches):
    # the tiles of every batch entry are one 1-D walk: 7 batch entries x 2 x 2 tiles on 3
    # programs, and a batch past the grid's y limit (65,535) still plans one grid axis
    from triton_ops.launchers.matmul import _gemm_plan, _layout

    cfg = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2, num_warps=4, num_stages=1)
    gen = torch.Generator().manual_seed(3)
    with tune.forced("gemm", cfg):
        a, b = _rand(7, 20, 24, gen=gen).float(), _rand(7, 24, 32, gen=gen).float()
        assert_close(triton_ops.matmul(a, b, "ieee"), a.double() @ b.double(), torch.float32, "batched", scale=6)
        (launch,) = gemm_launches
        assert launch["BATCH"] == 7 and launch["BATCHED"] and launch["TMA"]
        interpreter_plan(launch["grid"] == (3, 1, 1))
        big = torch.empty(70_000, 20, 24), torch.empty(70_000, 24, 32)
        from triton_ops.fwd.matmul import gemm_fwd_kernel
        _, pointers, tma, _ = _gemm_plan(gemm_fwd_kernel, *map(_layout, big), False, False, torch.float32, None,
                                         None, False, False, False, "ieee", None, False, a.device)
        for plan in (pointers, tma):
            assert plan.fixed["BATCH"] == 70_000 and plan.grid[1:] == (1, 1) and plan.grid[0] <= 70_000 * 4


def test_gemm_float32_precision_follows_torch(gemm_launches):
    # float32 without precision= follows torch.get_float32_matmul_precision() (the same switch
    # as torch.backends.cuda.matmul.allow_tf32), decided per call: plans are cached per setting
    gen = torch.Generator().manual_seed(4)
    a, b = _rand(20, 24, gen=gen).float(), _rand(24, 30, gen=gen).float()
    before = torch.get_float32_matmul_precision()
    try:
        for setting, precision, expected in [("highest", None, "ieee"), ("high", None, "tf32"),
                                             ("medium", None, "tf32"), ("high", "ieee", "ieee"),
                                             ("highest", "tf32", "tf32")]:
            torch.set_float32_matmul_precision(setting)
            gemm_launches.clear()
            triton_ops.matmul(a, b, precision)
            assert [launch["PRECISION"] for launch in gemm_launches] == [expected], (setting, precision)
        gemm_launches.clear()
        triton_ops.matmul(a.bfloat16(), b.bfloat16())  # 16-bit operands: the precision has no say
        assert gemm_launches[0]["PRECISION"] == "ieee"
    finally:
        torch.set_float32_matmul_precision(before)


# ------------------------------------------------------------------------------------------------
# linear's dz pass (row loop, row chunks and their bias-sum partials) and one_hot_embedding's
# gather (the onehot scan, the column loop, the product fallback's K loop, the count chunks)


def test_linear_dz_row_loop_and_chunks():
    from triton_ops.launchers.reduce import column_chunks

    # 600 rows of 32, 64 columns: 38,400 elements are 2 chunks of at least min_split_elements
    # (16,384), 320 rows (10 row blocks) each, the last one 280 rows, each writing one partial
    # row of the bias sums: dz, the combine, dx, dW. 64 x 96 is one chunk, whose sums are the
    # bias gradient itself: dz, dx, dW.
    interpreter_plan(column_chunks(600, 64, DEVICE) == (32, 64, 2, 320))
    interpreter_plan(column_chunks(64, 96, DEVICE)[2] == 1)
    gen = torch.Generator().manual_seed(600)
    for R, N, launches in ((600, 64, 4), (64, 96, 3)):
        x, w, b = _rand(R, 20, gen=gen), _rand(N, 20, gen=gen, scale=0.3), _rand(N, gen=gen)
        for activation in ("gelu", "elu"):
            _check("linear", [x, w, b, activation, "ieee"], f"linear {R} rows {activation}")
        args = [t.detach().requires_grad_() for t in (x, w, b)]
        out = triton_ops.linear(*args, "gelu", "ieee")
        before = runtime.launch_count()
        torch.autograd.grad(out, args, torch.ones_like(out))
        interpreter_plan(runtime.launch_count() - before == launches)


@pytest.mark.parametrize("sms,chunks", [(1, 4), (4, 9), (64, 18)])
def test_linear_dz_gpu_plan_chunks(gpu_plans, sms, chunks):
    from triton_ops.launchers import linear, reduce

    # as on a GPU: 48 columns in one 64-column block, 64-row blocks, min(18, 4 * sms) chunks of
    # whole row blocks (16 chunks of 69 rows become 9 of 128)
    gpu_plans(linear, reduce, programs=4 * sms)
    assert reduce.column_chunks(1100, 48, DEVICE)[:3] == (64, 64, chunks)
    gen = torch.Generator().manual_seed(sms)
    x, w, b = _rand(1100, 12, gen=gen), _rand(48, 12, gen=gen, scale=0.3), _rand(48, gen=gen)
    _check("linear", [x, w, b, "gelu", "ieee"], f"linear {chunks} chunks")


def _one_hot_case(N, V, E, gen):
    """One-hot rows (one scaled, one empty), a row of two nonzero entries (its block runs the
    product) and non-finite weights in two columns."""
    onehot = F.one_hot(torch.randint(0, V, (N,), generator=gen), V).to(F64)
    onehot[1] *= -3.0
    onehot[2] = 0.0
    onehot[N - 1, :2] = torch.tensor([0.5, 2.0])
    w = torch.randn(V, E, generator=gen, dtype=F64)
    w[V - 1, 1], w[V // 2, E - 1] = float("inf"), float("nan")
    return onehot.to(DEVICE), w.to(DEVICE)


def _check_one_hot(onehot, w, what):
    out = triton_ops.one_hot_embedding(onehot, w)
    ref = onehot.cpu() @ w.cpu()
    assert torch.equal(out.isnan().cpu(), ref.isnan()) and torch.equal(out.isinf().cpu(), ref.isinf()), what
    assert_close(out.cpu()[ref.isfinite()], ref[ref.isfinite()], F64, what)
    finite = torch.nan_to_num(w, nan=0.0, posinf=1.0)  # the gradients: the two GEMMs
    _check("one_hot_embedding", [onehot, finite], f"{what} gradients")


def test_one_hot_embedding_loops():
    # onehot [40, 2000]: the scan runs 2 blocks of 1024 columns; E = 300: 2 column blocks of 256;
    # the product fallback's K loop 2 steps; the one gather program counts the non-finite
    # weights itself in steps of 1024 rows (the count kernel's 8 chunks of 256 rows: unused)
    from triton_ops.launchers.reduce import column_chunks

    interpreter_plan(column_chunks(2000, 300, DEVICE) == (32, 512, 8, 256))
    _check_one_hot(*_one_hot_case(40, 2000, 300, torch.Generator().manual_seed(40)), "one_hot 40x2000x300")


def test_one_hot_embedding_gpu_plan(gpu_plans):
    from triton_ops.launchers import one_hot, reduce

    # as on a GPU: 16-row blocks (the last of 3 holds the product row), a scan of 256 columns (2
    # steps over 300), the fallback's K loop of 64 (5 steps), 64-column blocks (2 over 100),
    # weight counts in 10 chunks of 32 rows
    gpu_plans(one_hot, reduce, programs=10)
    assert reduce.column_chunks(300, 100, DEVICE) == (32, 128, 10, 32)
    _check_one_hot(*_one_hot_case(40, 300, 100, torch.Generator().manual_seed(41)), "one_hot GPU plan")


# ------------------------------------------------------------------------------------------------
# LayerNorm: the row loop, the column loop of long rows, and the dweight/dbias partials


def _ln_plan(R, D):
    from triton_ops.launchers.norm import ln_config

    return ln_config(R, D, DEVICE, backward=True)


@pytest.mark.parametrize("R,row_blocks", [(1, 1), (512, 1), (1100, 3)])
def test_layer_norm_row_loop(R, row_blocks):
    block_r, block_d, programs, rows_per_program = _ln_plan(R, 48)
    interpreter_plan((block_d, programs) == (64, 1) and runtime.cdiv(R, block_r) == row_blocks)
    interpreter_plan(block_r == min(512, runtime.next_pow2(R)))
    gen = torch.Generator().manual_seed(R)
    x, w, b = _rand(R, 48, gen=gen, scale=2.0, shift=1.0), _rand(48, gen=gen, shift=1.0), _rand(48, gen=gen)
    _check("layer_norm", [x, [48], w, b, 1e-5], f"layer_norm R={R}")


@pytest.mark.parametrize("D,single,col_blocks", [(16384, True, 1), (16385, False, 2), (20000, False, 2)])
def test_layer_norm_long_row_loops(D, single, col_blocks):
    # rows longer than one 16384-column block: chunked statistics (Chan's merge) and a second
    # pass; 5 rows of 2 per block: 2 full row blocks and a remainder
    block_r, block_d, _, _ = _ln_plan(5, D)
    interpreter_plan((D <= block_d) == single and runtime.cdiv(D, block_d) == col_blocks)
    interpreter_plan(runtime.cdiv(5, block_r) == 3)
    gen = torch.Generator().manual_seed(D)
    x, w, b = _rand(5, D, gen=gen, scale=3.0, shift=5.0), _rand(D, gen=gen, shift=1.0), _rand(D, gen=gen)
    _check("layer_norm", [x, [D], w, b, 1e-5], f"layer_norm D={D}")


@pytest.mark.parametrize("sms", [1, 4, 64])
def test_layer_norm_gpu_plan_partials(gpu_plans, sms):
    from triton_ops.launchers import norm, reduce

    # as on a GPU with `sms` multiprocessors: 32-row blocks (2048-element steps: norm.ROW_CONFIGS
    # for rows of 1024 columns or fewer), min(35 blocks, 4 sms) persistent programs, each walking
    # blocks apart and writing one partial row of dweight/dbias for the fixed-order combine
    gpu_plans(norm, reduce, programs=4 * sms)
    block_r, block_d, programs, rows_per_program = norm.ln_config(1100, 48, DEVICE, backward=True)
    assert (block_r, block_d, programs) == (32, 64, min(35, 4 * sms))
    assert sms == 64 or rows_per_program > block_r  # several row blocks per program
    gen = torch.Generator().manual_seed(sms)
    x, w, b = _rand(1100, 48, gen=gen, scale=2.0), _rand(48, gen=gen, shift=1.0), _rand(48, gen=gen)
    _check("layer_norm", [x, [48], w, b, 1e-5], f"layer_norm {programs} programs")
    x2, w2, b2 = _rand(7, 9000, gen=gen), _rand(9000, gen=gen, shift=1.0), _rand(9000, gen=gen)
    # long rows on a GPU (past 8192 columns): a row-sums launch (one row a program), then
    # [8 rows x 512 columns] blocks in shares of rows, whose partial rows the combine adds
    layouts = (("x", x2.stride()), ("g", x2.stride()), ("dx", x2.stride()))
    sums, columns, parts = norm._long_rows_plans((7, 9000), layouts, w2.stride(), 1, F64, True, True, True, DEVICE)
    assert sums.grid[0] == 7 and columns.fixed["BLOCK_D"] == 512 and columns.grid[0] == 18
    assert columns.grid[1] == 1 and parts is None  # 7 rows: one block of 8, one share
    _check("layer_norm", [x2, [9000], w2, b2, 1e-5], f"layer_norm long rows {programs} programs")
    if sms == 64:  # enough programs to split 130 rows in shares (their partial rows within 1/32 of x: 2)
        x3, w3, b3 = _rand(130, 8200, gen=gen), _rand(8200, gen=gen, shift=1.0), _rand(8200, gen=gen)
        layouts3 = (("x", x3.stride()), ("g", x3.stride()), ("dx", x3.stride()))
        _, columns, parts = norm._long_rows_plans((130, 8200), layouts3, w3.stride(), 1, F64, True, True, True, DEVICE)
        assert columns.grid[1] == 2 and parts == (2, 2 * 8200)  # partial rows, combined
        _check("layer_norm", [x3, [8200], w3, b3, 1e-5], "layer_norm long rows in 2 shares")
        _check("rms_norm", [x3, [8200], w3, 1e-5], "rms_norm long rows in 2 shares")
    # RMSNorm plans its rows the same way (one dweight partial row per program)
    _check("rms_norm", [x, [48], w, 1e-5], f"rms_norm {programs} programs")
    _check("rms_norm", [x2, [9000], w2, 1e-5], f"rms_norm long rows {programs} programs")


def _launched(fn):
    """The kernels ``fn``'s calls launch, replays switched off: a compiled backend's replay calls
    the driver directly, past ``launch_count`` (the interpreter's goes through its LaunchPlans),
    so whether a call was warm would change the count on a GPU alone."""
    with mock.patch.object(replay, "ENABLED", False):
        before = runtime.launch_count()
        fn()
        return runtime.launch_count() - before


# (gradients asked for, LayerNorm VJP launches with partials: the row kernel, then one combine
# for dweight and dbias together, or for the one asked for)
NORM_NEEDS = [((0, 2, 3), 2), ((0, 2), 2), ((0, 3), 2), ((0,), 1)]


# rows longer than one tile (the interpreter's tile: 16384 columns, a GPU's: 8192), two of them
# within one share (a GPU splits a share only for 16384 elements a part: runtime.min_split_elements)
LONG_ROW = 16385 if runtime.INTERPRETER else 8200


@pytest.mark.parametrize("R,D", [(20, 48), (2, LONG_ROW)])
@pytest.mark.parametrize("grad_args,_", NORM_NEEDS)
def test_norm_vjp_one_program_writes_parameter_gradients(R, D, grad_args, _):
    # one program owns every row (rows of one tile kept in registers), or one share holds every
    # long row: the kernel writes dweight/dbias itself, no partials and no combine (one VJP
    # launch; long rows: the row sums' launch, then the columns')
    block_r, block_d, programs, _rows = _ln_plan(R, D)
    assert programs == 1 and (D <= block_d or R <= block_r)
    from triton_ops.launchers import norm

    vjp_launches = 1 if D <= norm.single_columns() else 2
    gen = torch.Generator().manual_seed(R)
    x, w, b = _rand(R, D, gen=gen, scale=2.0, shift=1.0), _rand(D, gen=gen, shift=1.0), _rand(D, gen=gen)
    assert _launched(lambda: _check("layer_norm", [x, [D], w, b, 1e-5], f"layer_norm {R}x{D}", grad_args)) \
        == 1 + vjp_launches
    rms_args = [i for i in grad_args if i != 3]
    assert _launched(lambda: _check("rms_norm", [x, [D], w, 1e-5], f"rms_norm {R}x{D}", rms_args)) == 1 + vjp_launches



@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_norm_long_rows_parameter_gradients_rounded_once(name):
    # bfloat16 parameters, rows of 16385 walked in 3 row blocks by one program: the sums stay in
    # a float32 partial row and are rounded to bfloat16 once (writing into dW block by block
    # would round every block's running sum: errors of about 2^-9 of the running sum)
    block_r, block_d, programs, _ = _ln_plan(5, 16385)
    interpreter_plan(programs == 1 and 16385 > block_d and runtime.cdiv(5, block_r) == 3)
    gen = torch.Generator().manual_seed(11)
    bf16 = torch.bfloat16
    x, w, b, g = (_rand(5, 16385, gen=gen, scale=2.0).to(bf16), _rand(16385, gen=gen, shift=1.0).to(bf16),
                  _rand(16385, gen=gen).to(bf16), _rand(5, 16385, gen=gen).to(bf16))
    spec = triton_ops.registry[name]
    args = (x, [16385], w, b, 1e-5) if name == "layer_norm" else (x, [16385], w, 1e-5)
    grads = spec.vjp(*args, g, saved=list(spec.forward_saved(*args)[1:]))
    x64, g64 = x.double().cpu(), g.double().cpu()
    x_hat = (torch.nn.functional.layer_norm(x64, [16385], eps=1e-5) if name == "layer_norm"
             else x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + 1e-5))
    expected = [(g64 * x_hat).sum(0)] + ([g64.sum(0)] if name == "layer_norm" else [])
    for got, ref in zip(grads[1:], expected):
        # in bfloat16 ulps of the exact sum: one rounding (the interpreter truncates: under 1 ulp,
        # 0.5 on average) against one per row block (3.5 on average, measured)
        ulp = torch.exp2(torch.floor(torch.log2(ref.abs().clamp_min(1e-30))) - 7)  # bfloat16: 8 significant bits
        err = (got.double().cpu() - ref).abs() / (ulp + 1e-6)  # + 1e-6: sums that cancel to about 0
        assert float(err.mean()) < 1.0 and float(err.max()) < 2.0, (name, float(err.mean()), float(err.max()))


def test_rms_norm_vjp_plan_pipelined(gpu_plans):
    # as on an H200: rows of 8192 columns in 16384-element steps (two rows, one 16-warp program
    # an SM), the row loop pipelined at RMS_BWD_STAGES where the buffers of a program's next steps
    # fit in ROW_BWD_SMEM an SM (16-bit: 2 x 64 KiB), the plain loop where they do not (float32)
    from triton_ops.launchers import norm

    gpu_plans(norm, programs=4 * 132)
    layouts = (("x", (8192, 1)), ("g", (8192, 1)), ("dx", (8192, 1)))
    for dtype, stages in ((torch.bfloat16, norm.RMS_BWD_STAGES), (torch.float16, norm.RMS_BWD_STAGES),
                          (torch.float32, 1)):
        launch, parts = norm._rms_plan((16384, 8192), layouts, (1,), 1, dtype, True, DEVICE, True)
        assert (launch.fixed["BLOCK_R"], launch.fixed["STAGES"], launch.grid[0], parts) == (2, stages, 132, (132, 8192))
    assert norm.RMS_BWD_STAGES == 3  # 2 stages wait for every copy at the loop's top (no overlap)
    assert norm.bwd_stages(3, 2, 1024, torch.float32) == 3  # 4 programs an SM x 2 buffers x 16 KiB (x and g)


@pytest.mark.parametrize("grad_args,vjp_launches", NORM_NEEDS)
def test_norm_vjp_partials_one_combine(gpu_plans, grad_args, vjp_launches):
    # 16 persistent programs (4 an SM on 4 SMs) over 35 row blocks (as on a GPU): one partials
    # buffer holds every program's dweight row and dbias row, added by one combine launch
    from triton_ops.launchers import norm

    gpu_plans(norm, programs=4 * 4)
    assert norm.ln_config(1100, 48, DEVICE, backward=True)[2] == 16
    gen = torch.Generator().manual_seed(len(grad_args))
    x, w, b = _rand(1100, 48, gen=gen, scale=2.0), _rand(48, gen=gen, shift=1.0), _rand(48, gen=gen)
    assert _launched(lambda: _check("layer_norm", [x, [48], w, b, 1e-5], "layer_norm partials", grad_args)) \
        == 1 + vjp_launches
    rms_args = [i for i in grad_args if i != 3]
    assert _launched(lambda: _check("rms_norm", [x, [48], w, 1e-5], "rms_norm partials", rms_args)) \
        == 1 + (2 if 2 in rms_args else 1)


def test_layer_norm_combine_mixed_parameter_dtypes(gpu_plans):
    # the one combine of both parameters' (float64) partial rows stores each half in its own
    # parameter's dtype: a float32 dweight rounded once, a float64 dbias
    from triton_ops.launchers import norm

    gpu_plans(norm, programs=4 * 4)
    gen = torch.Generator().manual_seed(5)
    x, w, b, g = _rand(1100, 48, gen=gen), _rand(48, gen=gen, shift=1.0).float(), _rand(48, gen=gen), \
        _rand(1100, 48, gen=gen)
    spec = triton_ops.registry["layer_norm"]
    args = (x, [48], w, b, 1e-5)
    _, dw, db = spec.vjp(*args, g, saved=list(spec.forward_saved(*args)[1:]))
    assert (dw.dtype, db.dtype) == (torch.float32, F64)
    x_hat = torch.nn.functional.layer_norm(x.cpu(), [48], eps=1e-5)
    assert_close(dw, (g.cpu() * x_hat).sum(0), torch.float32, "layer_norm dweight (float32 weight)")
    assert_close(db, g.cpu().sum(0), F64, "layer_norm dbias (float64 bias)")


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_norm_parameter_gradients_repeat_bitwise(gpu_plans, name):
    # 1100 x 48: one program in the interpreter (the row kernel writes dW/db itself), then the
    # GPU plan: 35 programs, partial rows and the fixed-order combine
    from triton_ops.launchers import norm

    gen = torch.Generator().manual_seed(3)
    x = _rand(1100, 48, gen=gen).float().requires_grad_()
    w, b = _rand(48, gen=gen).float().requires_grad_(), _rand(48, gen=gen).float().requires_grad_()
    g = _rand(1100, 48, gen=gen).float()
    params = (w, b) if name == "layer_norm" else (w,)

    def call():
        return _grads(triton_ops.registry[name].fn(x, [48], *params, 1e-5), (x, *params), g)

    first = [call() for _ in range(2)]
    gpu_plans(norm, programs=4 * 132)
    assert norm.ln_config(1100, 48, DEVICE, backward=True)[2] == 35
    second = [call() for _ in range(2)]
    for runs in (first, second):
        assert all(torch.equal(p, q) for p, q in zip(*runs))
    # another summation order (35 partial rows, then the combine): equal to float32 rounding only,
    # whose bound for two orders of 1100 terms is 2 x 1100 x 2^-24 x the largest term (|g| |x_hat|,
    # at most |g| x sqrt(48) for a row of 48); the data's terms are far below that bound
    bound = 2 * 1100 * 2.0 ** -24 * float(g.abs().max()) * 48 ** 0.5
    for p, q in zip(first[0], second[0]):
        torch.testing.assert_close(p, q, rtol=0, atol=bound)


# ------------------------------------------------------------------------------------------------
# fixed-order combine of partials (launchers/reduce.py)


@pytest.mark.parametrize("P,steps", [(1, 1), (32, 1), (100, 4)])
def test_combine_partials_p_loop(P, steps):
    from triton_ops.launchers.reduce import combine_partials

    K = 1024  # one 1024-column block, so 32-row blocks of partials
    interpreter_plan(runtime.tile_elements() // K == 32)
    interpreter_plan(runtime.cdiv(P, min(32, runtime.next_pow2(P))) == steps)
    partials = torch.randn(P, K, generator=torch.Generator().manual_seed(P), dtype=F64).to(DEVICE)
    out = combine_partials(partials, torch.empty(K, dtype=F64, device=DEVICE), scale=0.5)
    assert_close(out, 0.5 * partials.sum(0), F64, f"combine P={P}")


@pytest.mark.parametrize("programs,block_k,p_steps", [(8, 128, 4), (64, 16, 1)])
def test_combine_partials_gpu_plan_column_blocks(gpu_plans, programs, block_k, p_steps):
    from triton_ops.launchers import reduce

    # as on a GPU aiming at `programs` programs: K = 1000 columns in blocks of K / programs
    # (rounded up to a power of 2) -> 8 or 63 programs, each adding 100 partial rows in blocks of
    # 4096 / block_k rows; the (sum, count) pair of a division stays in one program
    gpu_plans(reduce, programs=programs)
    assert reduce.combine_block_k(1000, torch.float32, DEVICE, False) == block_k
    assert runtime.cdiv(100, min(128, 4096 // block_k)) == p_steps
    assert reduce.combine_block_k(2, torch.float32, DEVICE, True) == 2
    assert reduce.combine_block_k(1000, F64, DEVICE, False) >= 2  # 16 bytes a row at least
    gen = torch.Generator().manual_seed(programs)
    partials = torch.randn(100, 1000, generator=gen, dtype=F64).to(DEVICE)
    runs = [reduce.combine_partials(partials, torch.empty(1000, dtype=F64, device=DEVICE), scale=0.5)
            for _ in range(2)]
    assert_close(runs[0], 0.5 * partials.sum(0), F64, f"combine {programs} programs")
    assert torch.equal(runs[0], runs[1])


# ------------------------------------------------------------------------------------------------
# pointwise templates: column blocks, B blocks (dy partials) and A chunks (dx partials)


@pytest.mark.parametrize("n,programs", [(1, 1), (32768, 1), (70001, 3)])
def test_unary_column_blocks(n, programs):
    from triton_ops.launchers.pointwise import tile_shape

    interpreter_plan(runtime.cdiv(n, tile_shape(1, n, F64, n)[1]) == programs)
    x = _rand(n, gen=torch.Generator().manual_seed(n))
    _check("gelu", [x], f"gelu n={n}")
    _check("leaky_relu", [x, 0.2], f"leaky_relu n={n}")


@pytest.mark.parametrize("B,b_blocks", [(1, 1), (128, 1), (300, 3)])
def test_reduce_back_over_b_blocks(B, b_blocks):
    from triton_ops.launchers.pointwise import tile_shape

    # y [1, 256] is broadcast along B rows: its gradient (and sum over dim 0) is a column sum per
    # 128-row tile, one partial row per B block, combined in a fixed order
    block_b, block_c, _ = tile_shape(B, 256, F64, B * 256)
    interpreter_plan(block_c == 256 and runtime.cdiv(B, block_b) == b_blocks)
    gen = torch.Generator().manual_seed(B)
    x, y = _rand(B, 256, gen=gen), _rand(1, 256, gen=gen)
    _check("mul", [x, y], f"mul B={B}")
    _check("sum", [x, [0], False], f"sum B={B}")
    _check("sum_to", [x, (1, 256)], f"sum_to B={B}")


@pytest.mark.parametrize("work,tiles,parts,unit", [(10, 1, 6, 1), (7, 3, 4, 1), (32768, 1, 10 ** 6, 1),
                                                   (16384, 128, 128, 1), (134217728, 1, 10 ** 6, 16), (5, 1, 8, 1),
                                                   (9, 1, 1, 1), (100, 4, 50, 16)])
def test_wave_split_covers_the_loop_within_its_parts(monkeypatch, work, tiles, parts, unit):
    from triton_ops.launchers import reduce

    monkeypatch.setattr(reduce.runtime, "device_programs", lambda device: 4 * 132)
    per = reduce.wave_split(work, tiles, parts, DEVICE, 8, unit)
    made = runtime.cdiv(work, per)
    assert (per % unit == 0 or per == work) and 1 <= made <= max(1, parts), (work, parts, per, made)
    assert tiles * made <= max(tiles, reduce.SPLIT_WAVES * reduce.full_wave(DEVICE, 8))


def test_wave_split_fills_whole_waves_at_any_residency(monkeypatch):
    """On 132 SMs, the bench shapes' split reductions (issue 13): a loss over 2^27 elements (one
    tile of 4096 a step) and add's broadcast-operand gradient at 16384 x 8192 (128 column blocks,
    at most 128 partial rows). The splits sized for one full wave of 32-register programs (1058
    and 16 x 67 = 1072 programs) leave half the last wave empty at 8 resident; the balanced ones
    fill >= 0.94 of every wave whatever 1 to 8 programs of 8 warps the kernel's registers let fit."""
    from triton_ops.launchers import reduce

    monkeypatch.setattr(reduce.runtime, "device_programs", lambda device: 4 * 132)
    old = reduce.split_balance(32768 * 4096, 31 * 4096, 1, DEVICE, 8)
    assert old == pytest.approx(0.5, abs=0.01)  # 1058 programs: 2 waves at 8 resident, the second 2 programs
    per = reduce.wave_split(32768 * 4096, 1, 10 ** 6, DEVICE, 8, unit=16)
    assert per % 16 == 0 and reduce.split_balance(32768 * 4096, per, 1, DEVICE, 8) >= 0.95
    assert runtime.cdiv(32768 * 4096, per) == 5270  # 39.9 programs an SM: whole waves at 1, 2, 4, 5, 8
    per = reduce.wave_split(16384, 128, 128, DEVICE, 8)
    assert reduce.split_balance(16384, per, 128, DEVICE, 8) >= 0.94 and runtime.cdiv(16384, per) == 41
    # already many waves of tiles: no split
    assert reduce.wave_split(100, 20000, 100, DEVICE, 8) == 100


def test_small_reductions_stay_in_one_program(monkeypatch):
    """On a GPU plan, a reduction is split across programs only while each keeps
    ``min_split_elements`` to walk: an [8, 16] gradient sum is one program (no partials, no
    combine launch), a [4096, 256] one splits into 64 parts at most (as many as that allows:
    under one wave), a [65536, 1024] one into whole waves of 8-warp programs (8 per SM on 132
    SMs; 18 A steps a program: 3641), or 12 parts in 132 tiles of 16-warp programs (3 waves at
    4 per SM); ``most`` caps the parts (a VJP's partial rows)."""
    from triton_ops.launchers import pointwise

    monkeypatch.setattr(pointwise.runtime, "INTERPRETER", False)
    monkeypatch.setattr(pointwise.runtime, "device_programs", lambda device: 528)

    def parts(*args, **kw):
        return runtime.cdiv(args[0], pointwise.a_split(*args, **kw))

    assert parts(8, 1, DEVICE, 8 * 16, 8) == 1
    assert parts(4096, 1, DEVICE, 4096 * 256, 8) == 4096 * 256 // runtime.min_split_elements()
    assert parts(1 << 16, 1, DEVICE, (1 << 16) * 1024, 8) == 3641
    assert parts(1 << 16, 132, DEVICE, (1 << 16) * 1024, 16) == 12
    assert parts(1 << 16, 1, DEVICE, (1 << 16) * 1024, 8, most=100) <= 100


def test_reduce_back_tile_takes_64_rows():
    from triton_ops.launchers.pointwise import REDUCE_ROWS, tile_shape

    # [64, 1000] * [1, 1000]: the default tile is 32 rows of 1024 columns; b's gradient (a column
    # sum over the rows) takes 64 rows of 512 instead: one B block, so no partial rows to write,
    # read back and combine (a second launch, 2/32 more bytes)
    interpreter_plan(tile_shape(64, 1000, F64, 64000)[:2] == (32, 1024) and REDUCE_ROWS == 64)
    gen = torch.Generator().manual_seed(6)
    a, b, g = _rand(64, 1000, gen=gen), _rand(1, 1000, gen=gen), _rand(64, 1000, gen=gen)
    spec = triton_ops.registry["mul"]
    before = runtime.launch_count()
    da, db = spec.vjp(a, b, g)
    interpreter_plan(runtime.launch_count() - before == 1)
    assert_close(db, (g * a).sum(0, keepdim=True), F64, "mul db 64 rows")
    assert_close(da, g * b, F64, "mul da 64 rows")


@pytest.mark.parametrize("programs", [2, 3])
def test_pointwise_gpu_plan_a_chunks(gpu_plans, programs):
    from triton_ops.launchers import pointwise, reduce

    # out [7, 5, 96]: the forward's program loop runs over A = 5 elements, split in one-step
    # parts (a device of under one SM: no wave to fill with fewer); the VJP of x (A = 7) stays one
    # part (a dx partial row would pass 1/32 of g's bytes)
    gpu_plans(pointwise, reduce, programs=programs)
    assert pointwise.a_split(5, 1, DEVICE, 7 * 5 * 96, 8) == 1
    gen = torch.Generator().manual_seed(programs)
    _check("mul", [_rand(1, 5, 96, gen=gen), _rand(7, 1, 96, gen=gen)], f"mul {programs} A chunks")
    _check("mul", [_rand(1, 96, gen=gen), _rand(7, 96, gen=gen)], f"mul row {programs} A chunks")
    _check("div", [_rand(7, 96, gen=gen), _rand(1, 96, gen=gen, shift=3.0)], f"div {programs} A chunks")
    # out [40, 23, 96]: the forward loops over A = 23 in 12 parts of 2 (2 tiles of 32 rows), the
    # last one shorter
    assert pointwise.a_split(23, 2, DEVICE, 40 * 23 * 96, 8) == 2
    _check("mul", [_rand(1, 23, 96, gen=gen), _rand(40, 1, 96, gen=gen)], f"mul forward {programs} A chunks")
    # [301, 96] against [1, 96]: no B axes, so the tile's rows are A steps (A_ROWS): 32 of 128
    # columns (one column block; a sum alone: 4 warps, an elementwise gradient too: 8); the sum
    # over A = 301 runs in 4 parts of 76 rows (the last 73; each's last step partly masked; 4
    # parts at most: partial rows within 1/64 of g), each writing one partial row; swiglu's gate
    # gradient is elementwise, stored row by row
    a_rows = [_rand(1, 96, gen=gen), _rand(301, 96, gen=gen)]
    for need_dy, warps in ((False, 4), (True, 8)):
        min_rows, tile_warps = pointwise.A_ROWS_TILES[need_dy]
        assert pointwise.tile_shape(301, 96, F64, 301 * 96, min_rows=min_rows, warps=tile_warps) == (32, 128, warps)
    assert pointwise.most_partial_rows(301 * 96 * 8, 96 * 8) == 4
    assert pointwise.a_split(301, 1, DEVICE, 301 * 96, 4, most=4) == 76
    _check("mul", a_rows, f"mul A_ROWS {programs}")
    _check("swiglu", a_rows[::-1], f"swiglu A_ROWS {programs}")
    _check("sum", [a_rows[1], [0], True], f"sum A_ROWS {programs}")


@pytest.mark.parametrize("name", ["mul", "div"])
def test_both_operands_reduced_one_combine(gpu_plans, monkeypatch, name):
    from triton_ops.launchers import pointwise, reduce
    from triton_ops.ops import binary

    # out [128, 100, 64]: a [1, 100, 64] in slot 0 (summed over A = 128 in 2 chunks: 2 dx partial
    # rows; more would pass 1/32 of g's bytes), b [128, 1, 64] in slot 1 (a column sum over
    # B = 100 rows in 64-row blocks: 2 dy partial rows); both partials in one buffer, added by
    # one combine launch whose second half stores b's gradient in b's own dtype
    gpu_plans(pointwise, reduce, programs=8)
    gen = torch.Generator().manual_seed(3)
    a, b = _rand(1, 100, 64, gen=gen).float(), _rand(128, 1, 64, gen=gen, shift=3.0)
    g = _rand(128, 100, 64, gen=gen)
    dfa, dfb = {"mul": (binary.take_b, binary.take_a), "div": (binary.div_da, binary.div_db)}[name]
    seen, combine = [], pointwise.combine_partials

    def spy(partials, out, **kw):
        seen.append((tuple(partials.shape), tuple(kw["second"][0].shape) if kw.get("second") else None))
        return combine(partials, out, **kw)

    monkeypatch.setattr(pointwise, "combine_partials", spy)
    runs = []
    for _ in range(2):
        launches = _launched(lambda: runs.append(pointwise.pointwise_vjp(g, (128, 100, 64), dfa, dfb, x=a, y=b,
                                                                          arity=2, swap=False)))
        assert launches == 2  # the VJP kernel, one combine
    assert seen == [((2, 100 * 64), (2, 128 * 64))] * 2
    a64, b64 = a.double().requires_grad_(), b.double().requires_grad_()
    ra, rb = torch.autograd.grad(a64 * b64 if name == "mul" else a64 / b64, (a64, b64), g)
    (da, db), again = runs
    assert (da.dtype, db.dtype) == (torch.float32, F64)
    assert_close(da, ra, torch.float32, f"{name} da, one combine")
    assert_close(db, rb, F64, f"{name} db, one combine")
    assert torch.equal(da, again[0]) and torch.equal(db, again[1])


def test_a_rows_one_chunk_stays_one():
    # x [1, 96] in slot 0, y [300, 96]: no B axes (A_ROWS, 32-row steps). The interpreter walks
    # A in one program: 300 rows are not rounded down to 288 (a second chunk, partials, a combine)
    from triton_ops.launchers import pointwise
    from triton_ops.ops import binary

    gen = torch.Generator().manual_seed(8)
    a, b, g = _rand(1, 96, gen=gen), _rand(300, 96, gen=gen), _rand(300, 96, gen=gen)
    before = runtime.launch_count()
    da, db = pointwise.pointwise_vjp(g, (300, 96), binary.take_b, binary.take_a, x=a, y=b, arity=2, swap=False)
    interpreter_plan(runtime.launch_count() - before == 1)
    assert_close(da, (g * b).sum(0, keepdim=True), F64, "A_ROWS da")
    assert_close(db, g * a, F64, "A_ROWS db")


def test_sum_of_everything_gpu_plan_b_blocks(gpu_plans):
    from triton_ops.launchers import pointwise, reduce

    # replicate's gradient (and sum over every axis) on a GPU: the 0-d result stays in slot 1, so
    # that all 15000 elements are tile rows (4 blocks of 4096, one partial sum each) rather than
    # a one-element tile looped over every axis
    gpu_plans(pointwise, reduce, programs=8)
    assert not pointwise.vjp_should_swap((300, 50), (300, 50), (), False, True)
    assert pointwise.tile_shape(15000, 1, F64, 15000)[:2] == (4096, 1)
    gen = torch.Generator().manual_seed(5)
    _check("replicate", [_rand(gen=gen), [300, 50]], "replicate 4 B blocks")
    _check("sum", [_rand(300, 50, gen=gen), [0, 1], False], "sum of everything 4 B blocks")


def test_reductions_repeat_bitwise(gpu_plans):
    from triton_ops.launchers import pointwise, reduce

    gen = torch.Generator().manual_seed(4)
    # 300 x 128: 2 B blocks of 256 rows in the interpreter, 5 of 64 rows (64 columns wide) on a GPU
    x, y = _rand(300, 128, gen=gen).float().requires_grad_(), _rand(1, 128, gen=gen).float().requires_grad_()
    g = _rand(300, 128, gen=gen).float()
    for plan in ("interpreter", "gpu"):
        if plan == "gpu":
            gpu_plans(pointwise, reduce, programs=3)
        runs = [[triton_ops.sum(x, [0]), *_grads(triton_ops.mul(x, y), (x, y), g)] for _ in range(2)]
        assert all(torch.equal(p, q) for p, q in zip(*runs)), plan


# ------------------------------------------------------------------------------------------------
# losses: the reduction loop, the GPU plan's R chunks, the class loop of cross_entropy_logits and
# the column loop of cosine_similarity_loss


@pytest.mark.parametrize("R,steps", [(1, 1), (32768, 1), (70000, 3)])
def test_loss_reduction_loop(R, steps):
    # "mean": everything is reduced, K = 1, so R runs in blocks of the whole 32768-element tile
    interpreter_plan(runtime.cdiv(R, min(runtime.next_pow2(R), runtime.tile_elements())) == steps)
    gen = torch.Generator().manual_seed(R)
    x, t = _rand(R, gen=gen), _rand(R, gen=gen)
    for name in ("mse_loss", "log_cosh_loss"):
        for reduction in ("mean", "sum"):
            _check(name, [x, t, reduction], f"{name} {reduction} R={R}")


def _spy_partials(monkeypatch, module):
    """The shapes of the partials ``module`` hands to ``combine_partials``."""
    seen = []
    combine = module.combine_partials

    def spy(partials, *args, **kwargs):
        seen.append(tuple(partials.shape))
        return combine(partials, *args, **kwargs)

    monkeypatch.setattr(module, "combine_partials", spy)
    return seen


@pytest.mark.parametrize("programs", [1, 8])
def test_loss_gpu_plan_r_chunks(gpu_plans, monkeypatch, programs):
    from triton_ops.launchers import loss, reduce

    # 10000 elements in 4096-element blocks: 3 blocks, so 3 chunks at most (each walks a block
    # at least); under one wave of 8-warp programs (2 for programs=1, a quarter SM; 16 for 8)
    # every chunk fills more of it: 3 of 3344 elements (multiples of 16: aligned starts; the
    # last one partial), one partial sum each
    gpu_plans(loss, reduce, programs=programs)
    partials = _spy_partials(monkeypatch, loss)
    gen = torch.Generator().manual_seed(programs)
    x, t = _rand(10000, gen=gen), _rand(10000, gen=gen)
    for reduction in ("mean", "sum"):
        _check("huber_loss", [x, t, 0.5, reduction], f"huber {reduction} {programs} chunks")
    assert partials == [(3, 1)] * 2 and reduce.wave_split(10000, 1, 3, DEVICE, 8, unit=16) == 3344
    q = torch.softmax(_rand(50, 200, gen=gen), -1)
    p = torch.softmax(_rand(50, 200, gen=gen), -1)
    _check("cross_entropy", [q, p, 0, 1e-6, "mean"], f"cross_entropy dim=0 {programs} chunks")
    out = triton_ops.mse_loss(x.float(), t.float())
    assert torch.equal(out, triton_ops.mse_loss(x.float(), t.float()))


@pytest.mark.parametrize("C,class_blocks", [(1, 1), (2048, 1), (5000, 3)])
def test_row_kernels_class_loop_gpu_plan(gpu_plans, monkeypatch, C, class_blocks):
    from triton_ops.launchers import loss

    # as on a GPU: 2048-class blocks (the online log-sum-exp rescales when a later block holds a
    # larger logit: the ramp makes sure one does), 4096 / 2048 = 2 rows per program: 7 rows are
    # 4 programs, one partial (sum, count) each; fewer classes: one program, which writes the
    # loss itself (no partials, no combine)
    gpu_plans(loss, programs=8)
    block_r, block_c = loss.rows_config(7, C)
    programs = runtime.cdiv(7, block_r)
    assert runtime.cdiv(C, block_c) == class_blocks and programs == (4 if C >= 2048 else 1)
    partials = _spy_partials(monkeypatch, loss)
    triton_ops.cross_entropy_logits(torch.zeros(7, C, device=DEVICE), torch.zeros(7, dtype=torch.long, device=DEVICE))
    assert partials == ([(programs, 2)] if programs > 1 else [])  # (sum, count) per program
    gen = torch.Generator().manual_seed(C)
    z = _rand(7, C, gen=gen, scale=2.0) + torch.linspace(0, 6, C, dtype=F64, device=DEVICE)
    target = torch.randint(0, C, (7,), generator=gen).to(DEVICE)
    target[2] = -100
    probs = torch.softmax(_rand(7, C, gen=gen), -1)
    for reduction in ("mean", "sum", "none"):
        _check("cross_entropy_logits", [z, target, -1, -100, 0.1, reduction], f"ce C={C} {reduction}")
        _check("cross_entropy_logits", [z, probs, -1, -100, 0.0, reduction], f"ce probs C={C} {reduction}")
        if C > 1:
            _check("cosine_similarity_loss", [z, probs, -1, 1e-6, reduction], f"cosine C={C} {reduction}")


def test_class_loop_pipelined_on_a_gpu_plan(gpu_plans):
    from triton_ops.launchers import loss

    # as on a GPU: 9000 classes are 5 steps of 2048 (the last partial: its lanes load -inf), 16-bit
    # and float32 logits with index targets take the 3-stage class loop (launchers/loss.stream_stages),
    # float64 and float32 probabilities (2 x 32 KiB steps) the plain one. The interpreter ignores
    # num_stages; a GPU runs the pipelined loop here, its values and the saved log-sum-exp (the
    # gradient) against float64
    gpu_plans(loss, programs=8)
    gen = torch.Generator().manual_seed(9000)
    z = _rand(7, 9000, gen=gen, scale=2.0) + torch.linspace(0, 6, 9000, dtype=F64, device=DEVICE)
    target = torch.randint(0, 9000, (7,), generator=gen).to(DEVICE)
    target[2] = -100
    probs = torch.softmax(_rand(7, 9000, gen=gen), -1)
    for dtype, t, stages in ((torch.float32, target, 3), (torch.bfloat16, target, 3), (F64, target, 1),
                             (torch.bfloat16, probs.to(torch.bfloat16), 3), (torch.float32, probs.float(), 1)):
        plan, _ = loss.ce_logits_forward_plan(loss.layout(z), loss.layout(t), t.is_floating_point(), 1, "mean",
                                              dtype, t_dtype=t.dtype if t.is_floating_point() else None)
        assert plan.fixed["STAGES"] == stages, (dtype, t.dtype)
        if stages == 1:
            continue
        zd = z.to(dtype).requires_grad_()
        out = triton_ops.cross_entropy_logits(zd, t, label_smoothing=0.1)
        (dz,) = torch.autograd.grad(out, zd)
        z64 = zd.detach().double().cpu().requires_grad_()
        ref = F.cross_entropy(z64, t.cpu() if not t.is_floating_point() else t.double().cpu(), label_smoothing=0.1)
        (dref,) = torch.autograd.grad(ref, z64)
        assert_close(out, ref.to(dtype), dtype, f"pipelined class loop {dtype} {t.dtype}")
        assert_close(dz, dref.to(dtype), dtype, f"pipelined class loop {dtype} {t.dtype} gradient")


def test_row_kernels_class_loop_interpreter():
    from triton_ops.launchers import loss

    # the interpreter's own plan: 32768-class blocks, so 40000 classes are 2 (one partial)
    block_r, block_c = loss.rows_config(3, 40000)
    interpreter_plan(block_c == 32768 and runtime.cdiv(40000, block_c) == 2)
    gen = torch.Generator().manual_seed(5)
    z = _rand(3, 40000, gen=gen) + torch.linspace(0, 6, 40000, dtype=F64, device=DEVICE)
    t = _rand(3, 40000, gen=gen)
    _check("cross_entropy_logits", [z, torch.tensor([1, 39999, 20000], device=DEVICE), -1, -100, 0.0, "mean"],
           "ce 40000 classes")
    _check("cosine_similarity_loss", [z, t, -1, 1e-6, "none"], "cosine 40000 columns")



@pytest.mark.parametrize("programs,numel,chunks,fwd_chunks", [(8, 5000, 3, 1), (2, 10000, 5, 1), (16, 140000, 35, 8),
                                                              (8, 2048, 1, 1)])
def test_cosine_dim_none_column_chunks_gpu_plan(gpu_plans, programs, numel, chunks, fwd_chunks):
    from triton_ops.launchers import loss

    # as on a GPU: dim=None is one slice of numel elements in 2048-element steps, split over
    # min(steps, 4 x programs) chunks (whole steps each, the last one partial). The forward's
    # chunks also walk at least min_split_elements each (on a GPU 16384: fwd_chunks; here 1, so
    # that these small slices split): their partial statistics are added by one finishing
    # program (2 launches); one chunk is one launch (the program's loss is the output). The VJP
    # has no finishing pass and walks the same chunks.
    gpu_plans(loss, programs=programs)
    assert loss.column_chunks(1, numel, 1, 2048, None)[0] == chunks
    assert loss.column_chunks(1, numel, 1, 2048, None, least=16384)[0] == fwd_chunks
    gen = torch.Generator().manual_seed(numel)
    x, t = _rand(numel, gen=gen), _rand(numel, gen=gen) + 0.5 * _rand(numel, gen=gen)
    for reduction in ("mean", "sum", "none"):
        launches = _launched(lambda: _check("cosine_similarity_loss", [x, t, None, 1e-6, reduction],
                                            f"cosine dim=None {chunks} chunks {reduction}"))
        assert launches == (2 if chunks > 1 else 1) + 1
    tiny = x * 1e-9  # |x| < eps: the gradient's eps branch
    _check("cosine_similarity_loss", [tiny, t, None, 1e-6, "mean"], f"cosine dim=None |x| < eps {chunks} chunks")
    _check("cosine_similarity_loss", [x.view(2, -1), t.view(2, -1).t().contiguous().t(), None, 1e-6, "sum"],
           f"cosine dim=None of a 2-D tensor, t column-major, {chunks} chunks")
    xf = x.float().requires_grad_()
    one = torch.tensor(1.0, device=DEVICE)
    runs = [_grads(triton_ops.cosine_similarity_loss(xf, t.float()), [xf], one) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*runs))  # fixed-order partials: bitwise repeatable


# ------------------------------------------------------------------------------------------------
# embedding weight gradient: the index loop; transpose tiles


@pytest.mark.parametrize("n,V", [(1, 30), (64, 30), (150, 30), (300, 3), (7, 4096)])
def test_embedding_segment_loop(n, V):
    """Segments of the sorted indices: one occurrence, several, a row named by every index
    (V=3: segments of ~100 steps), and rows no index names (written 0)."""
    gen = torch.Generator().manual_seed(n)
    idx = torch.randint(0, V, (n,), generator=gen).to(DEVICE)
    idx[0] = V - 1
    out = _check("embedding", [idx, _rand(V, 20, gen=gen)], f"embedding n={n} V={V}")
    assert out.shape == (n, 20)


@pytest.mark.parametrize("n,V,launches", [(64, 30, 2), (16384, 2000, 3)], ids=["one-chunk", "chunks"])
def test_embedding_launches(n, V, launches):
    """The keys kernel, then the run sums; past one chunk of sorted positions, the fix-up of long
    runs too (the sort and the flags' fill are torch ops). Values against the float64 reference."""
    gen = torch.Generator().manual_seed(n)
    idx = torch.randint(0, V, (n,), generator=gen).to(DEVICE)
    w, g = _rand(V, 20, gen=gen), _rand(n, 20, gen=gen)
    before = runtime.launch_count()
    _, dw = triton_ops.registry["embedding"].vjp(idx, w, g)
    interpreter_plan(runtime.launch_count() - before == launches)
    assert_close(dw, torch.zeros_like(w).index_add_(0, idx, g), F64, f"embedding dweight {n} indices")


def test_embedding_weight_gradient_layouts_and_unnamed_rows():
    """int32 and 2-D strided indices, a transposed upstream gradient, the VJP launcher called
    directly (exact shape, untouched rows exactly 0, the sum in index order bitwise repeatable)."""
    gen = torch.Generator().manual_seed(11)
    w = _rand(40, 9, gen=gen)
    idx = torch.randint(0, 20, (12, 7), generator=gen).to(DEVICE).t()  # rows 20..39 never named
    g = _rand(9, 7, 12, gen=gen).permute(2, 1, 0).transpose(0, 1)      # [7, 12, 9], strided
    vjp = triton_ops.registry["embedding"].vjp
    for indices in (idx, idx.to(torch.int32)):
        _, dw = vjp(indices, w, g)
        ref = torch.zeros_like(w).index_add_(0, idx.reshape(-1), g.reshape(-1, 9))
        assert dw.shape == w.shape
        assert_close(dw, ref, F64, "embedding dweight")
        assert torch.equal(dw[20:], torch.zeros_like(dw[20:]))
        assert torch.equal(vjp(indices, w, g)[1], dw)


def test_embedding_unchecked_out_of_range_indices_add_nothing():
    """What CUDA gets (no pre-launch check there): an index outside [0, V) lies outside every
    segment of the sorted indices, so it adds to no row and is never read past the table."""
    w = torch.zeros(4, 3, dtype=F64, device=DEVICE)
    idx = torch.tensor([-5, 1, 9, 1, 4, 0], device=DEVICE)
    g = torch.arange(18, dtype=F64, device=DEVICE).view(6, 3)
    _, dw = triton_ops.registry["embedding"].launchers.vjp(idx, w, g)
    assert torch.equal(dw, torch.stack([g[5], g[1] + g[3], torch.zeros_like(g[0]), torch.zeros_like(g[0])]))


def _runs(kind, n, V, gen):
    """Sorted runs of every length around a 32-position chunk and its 8-position overhang."""
    if kind == "random":
        return torch.randint(0, V, (n,), generator=gen)
    if kind == "all-equal":  # one run over every chunk: partials, one fix-up walk of 64-row steps
        return torch.full((n,), V - 1)
    if kind == "skewed":  # a few frequent indices (long runs) among rare ones (short runs, gaps)
        frequent = torch.randint(0, 3, (n,), generator=gen) * (V // 3)
        return torch.where(torch.rand(n, generator=gen) < 0.7, frequent, torch.randint(0, V, (n,), generator=gen))
    # run lengths 1..40 in turn: runs ending just before, at and past a chunk's end and its overhang
    lengths = torch.arange(n) % 40 + 1
    return torch.repeat_interleave(torch.arange(n) % V, lengths)[:n][torch.randperm(n, generator=gen)]


@pytest.mark.parametrize("kind,n,V", [("random", (5, 41), 200), ("random", (300,), 3), ("all-equal", (2500,), 7),
                                      ("skewed", (1500,), 90), ("lengths", (2000,), 500)])
def test_embedding_gpu_plan_chunks(gpu_plans, kind, n, V):
    """As on a GPU: chunks of 32 sorted positions, 8 positions of overhang, the fix-up adding the
    partials of longer runs (64 chunks a program); against float64 and bitwise repeatable."""
    from triton_ops.launchers import shape

    gpu_plans(shape, programs=8)
    gen = torch.Generator().manual_seed(6)
    count = math.prod(n)
    idx = _runs(kind, count, V, gen).view(n).to(DEVICE)
    w, g = _rand(V, 70, gen=gen), _rand(*n, 70, gen=gen)
    vjp = triton_ops.registry["embedding"].vjp
    _, dw = vjp(idx, w, g)
    assert_close(dw, torch.zeros_like(w).index_add_(0, idx.reshape(-1), g.reshape(-1, 70)), F64,
                 f"embedding {kind} runs")
    assert torch.equal(vjp(idx, w, g)[1], dw)
    if kind == "random" and count > 32:
        _check("embedding", [idx, w], f"embedding {kind} runs, autograd")


def test_embedding_gpu_plan_unchecked_indices_and_bf16(gpu_plans):
    """GPU plans: indices outside [0, V) (unchecked on CUDA) sort first as key -1, in runs that
    cross chunks, and add nothing; bfloat16 g and dweight (float32 sums, one rounding)."""
    from triton_ops.launchers import shape

    gpu_plans(shape, programs=8)
    gen = torch.Generator().manual_seed(8)
    idx = torch.randint(0, 40, (900,), generator=gen)
    idx[:100] = -7
    idx[100:150] = 40
    idx = idx[torch.randperm(900, generator=gen)].to(DEVICE)
    g = _rand(900, 40, gen=gen)
    ok = (idx >= 0) & (idx < 40)
    ref = torch.zeros(40, 40, dtype=F64, device=DEVICE).index_add_(0, idx[ok], g[ok])
    _, dw = triton_ops.registry["embedding"].launchers.vjp(idx, torch.zeros(40, 40, dtype=F64, device=DEVICE), g)
    assert_close(dw, ref, F64, "embedding out-of-range indices")
    _, dw16 = triton_ops.registry["embedding"].launchers.vjp(
        idx, torch.zeros(40, 40, dtype=torch.bfloat16, device=DEVICE), g.to(torch.bfloat16))
    assert dw16.dtype == torch.bfloat16
    assert_close(dw16, torch.zeros_like(ref).index_add_(0, idx[ok], g.to(torch.bfloat16).double()[ok]),
                 torch.bfloat16, "embedding bfloat16")


def test_transpose_tiles():
    gen = torch.Generator().manual_seed(7)
    interpreter_plan(runtime.cdiv(130, 64) * runtime.cdiv(70, 64) == 6)  # 64 x 64 tiles
    _check("transpose", [_rand(130, 70, gen=gen)], "transpose 3 x 2 tiles")
    _check("transpose", [_rand(64, 64, gen=gen).t()], "transpose one exact tile, transposed strides")
