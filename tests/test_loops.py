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

import types

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from triton_ops import runtime, tune
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
    # linear: bias and activation in the GEMM epilogue, the activation's derivative in the
    # gradient GEMMs' prologue; x [K, 40]: the weight gradient's K loop runs over K rows, and
    # the bias gradient's row sums with it
    w, b = _rand(24, K, gen=gen, scale=0.3), _rand(24, gen=gen)
    rows, w2 = _rand(K, 40, gen=gen), _rand(24, 40, gen=gen, scale=0.3)
    interpreter_plan(gemm_config(24, 40, K, F64)["BLOCK_K"] == block_k)
    for activation in (None, "gelu"):
        _check("linear", [_rand(2, 3, K, gen=gen), w, b, activation, "ieee"], f"linear in={K} {activation}")
        _check("linear", [rows, w2, b, activation, "ieee"], f"linear rows={K} {activation}")


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
    from triton_ops.launchers import norm

    # as on a GPU with `sms` multiprocessors: 128-row blocks (8192-element steps), min(9 blocks,
    # sms) persistent programs, each walking blocks sms apart and writing one partial row of
    # dweight/dbias for the fixed-order combine
    gpu_plans(norm, programs=4 * sms)
    block_r, block_d, programs, rows_per_program = norm.ln_config(1100, 48, DEVICE, backward=True)
    assert (block_r, block_d, programs) == (128, 64, min(9, sms))
    assert sms == 64 or rows_per_program > block_r  # several row blocks per program
    gen = torch.Generator().manual_seed(sms)
    x, w, b = _rand(1100, 48, gen=gen, scale=2.0), _rand(48, gen=gen, shift=1.0), _rand(48, gen=gen)
    _check("layer_norm", [x, [48], w, b, 1e-5], f"layer_norm {programs} programs")
    x2, w2, b2 = _rand(7, 9000, gen=gen), _rand(9000, gen=gen, shift=1.0), _rand(9000, gen=gen)
    assert norm.ln_config(7, 9000, DEVICE, backward=True)[:2] == (4, 2048)  # long rows on a GPU: 4 a step
    _check("layer_norm", [x2, [9000], w2, b2, 1e-5], f"layer_norm long rows {programs} programs")
    # RMSNorm plans its rows the same way (one dweight partial row per program)
    _check("rms_norm", [x, [48], w, 1e-5], f"rms_norm {programs} programs")
    _check("rms_norm", [x2, [9000], w2, 1e-5], f"rms_norm long rows {programs} programs")


def test_layer_norm_parameter_gradients_repeat_bitwise(gpu_plans):
    # 1100 x 48: 9 programs on a GPU (one program in the interpreter); then the GPU plan itself
    from triton_ops.launchers import norm

    gen = torch.Generator().manual_seed(3)
    x = _rand(1100, 48, gen=gen).float().requires_grad_()
    w, b = _rand(48, gen=gen).float().requires_grad_(), _rand(48, gen=gen).float().requires_grad_()
    g = _rand(1100, 48, gen=gen).float()
    first = [_grads(triton_ops.layer_norm(x, [48], w, b), (x, w, b), g) for _ in range(2)]
    gpu_plans(norm, programs=4 * 132)
    assert norm.ln_config(1100, 48, DEVICE, backward=True)[2] == 9
    second = [_grads(triton_ops.layer_norm(x, [48], w, b), (x, w, b), g) for _ in range(2)]
    for runs in (first, second):
        assert all(torch.equal(p, q) for p, q in zip(*runs))
    for p, q in zip(first[0], second[0]):  # another summation order: equal to float32 rounding only
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)


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
    from triton_ops.launchers import pointwise

    # out [7, 5, 96]: the program loop runs over A = 5 (forward) / 7 (VJP of x) elements, split
    # in `programs` chunks (the last one shorter); the VJP writes one dx partial row per chunk
    gpu_plans(pointwise, programs=programs)
    assert pointwise.a_chunks(7, 1, DEVICE) == programs
    gen = torch.Generator().manual_seed(programs)
    _check("mul", [_rand(1, 5, 96, gen=gen), _rand(7, 1, 96, gen=gen)], f"mul {programs} A chunks")
    _check("mul", [_rand(1, 96, gen=gen), _rand(7, 96, gen=gen)], f"mul row {programs} A chunks")
    _check("div", [_rand(7, 96, gen=gen), _rand(1, 96, gen=gen, shift=3.0)], f"div {programs} A chunks")


def test_sum_of_everything_gpu_plan_b_blocks(gpu_plans):
    from triton_ops.launchers import pointwise

    # replicate's gradient (and sum over every axis) on a GPU: the 0-d result stays in slot 1, so
    # that all 15000 elements are tile rows (4 blocks of 4096, one partial sum each) rather than
    # a one-element tile looped over every axis
    gpu_plans(pointwise, programs=8)
    assert not pointwise.vjp_should_swap((300, 50), (300, 50), (), False, True)
    assert pointwise.tile_shape(15000, 1, F64, 15000)[:2] == (4096, 1)
    gen = torch.Generator().manual_seed(5)
    _check("replicate", [_rand(gen=gen), [300, 50]], "replicate 4 B blocks")
    _check("sum", [_rand(300, 50, gen=gen), [0, 1], False], "sum of everything 4 B blocks")


def test_reductions_repeat_bitwise(gpu_plans):
    from triton_ops.launchers import pointwise

    gen = torch.Generator().manual_seed(4)
    # 300 x 128: 2 B blocks of 256 rows in the interpreter, 5 of 64 rows (64 columns wide) on a GPU
    x, y = _rand(300, 128, gen=gen).float().requires_grad_(), _rand(1, 128, gen=gen).float().requires_grad_()
    g = _rand(300, 128, gen=gen).float()
    for plan in ("interpreter", "gpu"):
        if plan == "gpu":
            gpu_plans(pointwise, programs=3)
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


@pytest.mark.parametrize("programs", [2, 8])
def test_loss_gpu_plan_r_chunks(gpu_plans, monkeypatch, programs):
    from triton_ops.launchers import loss

    # 10000 elements in 4096-element blocks: 3 blocks, split over min(3, programs) chunks (the
    # last one partial), one partial sum each
    gpu_plans(loss, programs=programs)
    partials = _spy_partials(monkeypatch, loss)
    gen = torch.Generator().manual_seed(programs)
    x, t = _rand(10000, gen=gen), _rand(10000, gen=gen)
    for reduction in ("mean", "sum"):
        _check("huber_loss", [x, t, 0.5, reduction], f"huber {reduction} {programs} chunks")
    assert partials == [(min(3, programs), 1)] * 2
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
    # 4 programs, one partial (sum, count) each
    gpu_plans(loss, programs=8)
    block_r, block_c = loss.rows_config(7, C)
    programs = runtime.cdiv(7, block_r)
    assert runtime.cdiv(C, block_c) == class_blocks and programs == (4 if C >= 2048 else 1)
    partials = _spy_partials(monkeypatch, loss)
    triton_ops.cross_entropy_logits(torch.zeros(7, C, device=DEVICE), torch.zeros(7, dtype=torch.long, device=DEVICE))
    assert partials == [(programs, 2)]  # (sum, count) per program
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


# ------------------------------------------------------------------------------------------------
# embedding weight gradient: the index loop; transpose tiles


@pytest.mark.parametrize("n,steps", [(1, 1), (64, 1), (150, 3)])
def test_embedding_index_loop(n, steps):
    assert runtime.cdiv(n, 64) == steps  # BLOCK_I = 64 indices per step
    gen = torch.Generator().manual_seed(n)
    idx = torch.randint(0, 30, (n,), generator=gen).to(DEVICE)
    idx[0] = 29
    _check("embedding", [idx, _rand(30, 20, gen=gen)], f"embedding n={n}")


def test_embedding_gpu_plan_vocabulary_blocks(gpu_plans):
    from triton_ops.launchers import shape

    gpu_plans(shape, programs=8)  # 64-row vocabulary blocks: 200 rows are 4 (one partial)
    gen = torch.Generator().manual_seed(6)
    idx = torch.randint(0, 200, (5, 41), generator=gen).to(DEVICE)
    _check("embedding", [idx, _rand(200, 70, gen=gen)], "embedding 4 vocabulary blocks")


def test_transpose_tiles():
    gen = torch.Generator().manual_seed(7)
    interpreter_plan(runtime.cdiv(130, 64) * runtime.cdiv(70, 64) == 6)  # 64 x 64 tiles
    _check("transpose", [_rand(130, 70, gen=gen)], "transpose 3 x 2 tiles")
    _check("transpose", [_rand(64, 64, gen=gen).t()], "transpose one exact tile, transposed strides")
