"""Losses (SPEC section 3): values and gradients of input and target, every reduction."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from triton_ops.spec import _to_op_args
from helpers import DEVICE, DTYPES, assert_close, cast_keep_layout, reference_grads

LOSSES = sorted(n for n, s in triton_ops.registry.items() if s.family == "loss")
REDUCTIONS = ["mean", "sum", "none"]


def test_all_spec_losses_registered():
    assert set(LOSSES) >= {"mse_loss", "mae_loss", "huber_loss", "hinge_loss", "poisson_loss", "log_cosh_loss",
                           "binary_cross_entropy", "cross_entropy", "cross_entropy_logits",
                           "cosine_similarity_loss"}


def _args(name, dtype, reduction, gen, shape=(6, 33), transposed=False):
    spec = triton_ops.registry[name]
    args = list(spec.bind(*spec.sample(shape, torch.float64, "cpu", gen)))
    names = [a.name for a in spec.args]
    args[names.index("reduction")] = reduction
    for i in spec.tensor_args:
        a = args[i]
        if a.is_floating_point():
            a = a.mT.contiguous().mT if transposed and a.dim() == 2 else a
            args[i] = cast_keep_layout(a, dtype).requires_grad_()
        else:
            args[i] = a.to(DEVICE)
    return spec, args


def _upstream(out, gen, dtype):
    if out.dim() == 0:
        return torch.tensor(0.7, dtype=dtype, device=DEVICE)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    return cast_keep_layout(g, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", LOSSES)
def test_values_and_gradients(name, dtype, reduction):
    gen = torch.Generator().manual_seed(7)
    spec, args = _args(name, dtype, reduction, gen, transposed=(dtype == torch.float32))
    out = spec.fn(*args)
    g = _upstream(out, gen, out.dtype)
    tensor_idx = [i for i in spec.tensor_args if args[i].is_floating_point()]
    ref, ref_grads = reference_grads(spec.reference, args, g, tensor_idx)
    # float16/bfloat16 sums over ~200 elements: the tolerance grows with the reduction length
    assert_close(out, ref, dtype, f"{name} {reduction}", scale=20.0 if reduction == "sum" else 4.0)
    grads = torch.autograd.grad(out, [args[i] for i in tensor_idx], g)
    for i, gr, rg in zip(tensor_idx, grads, ref_grads):
        assert gr.shape == args[i].shape and gr.dtype == args[i].dtype
        assert_close(gr, rg, dtype, f"{name} {reduction} grad of {spec.args[i].name}", scale=4.0)


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_float64(name):
    for reduction in REDUCTIONS:
        spec, args = _args(name, torch.float64, reduction, torch.Generator().manual_seed(3), shape=(3, 5))
        idx = [i for i in spec.tensor_args if args[i].is_floating_point()]

        def f(*ts, args=args, idx=idx):
            full = list(args)
            for i, t in zip(idx, ts):
                full[i] = t
            return spec.fn(*full)

        assert torch.autograd.gradcheck(f, tuple(args[i] for i in idx), fast_mode=True), reduction


@pytest.mark.parametrize("name", LOSSES)
def test_opcheck(name):
    for reduction in ("mean", "none"):
        spec, args = _args(name, torch.float32, reduction, torch.Generator().manual_seed(4), shape=(4, 7))
        torch.library.opcheck(spec.custom_op, tuple(_to_op_args(spec.args, args)))


@pytest.mark.parametrize("name", LOSSES)
def test_deterministic_and_expanded_upstream(name):
    spec, args = _args(name, torch.float32, "none", torch.Generator().manual_seed(5), shape=(16, 40))
    runs = []
    for _ in range(2):
        out = spec.fn(*args)
        g = torch.tensor(1.3, device=DEVICE).expand(out.shape)  # an expanded upstream gradient
        runs.append([out, *torch.autograd.grad(out, [a for a in args if isinstance(a, torch.Tensor)
                                                     and a.requires_grad], g)])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_empty_input_gives_zero():
    for name in LOSSES:
        spec = triton_ops.registry[name]
        spec_args, args = _args(name, torch.float32, "mean", torch.Generator().manual_seed(0), shape=(0, 5))
        out = spec.fn(*args)
        assert out.shape == () and out.item() == 0.0, name


def test_errors():
    x, t = torch.randn(3, 4, device=DEVICE), torch.randn(3, 4, device=DEVICE)
    with pytest.raises(ValueError, match="triton_ops.mse_loss: t shape"):
        triton_ops.mse_loss(x, t[:, :2])
    with pytest.raises(ValueError, match="triton_ops.mae_loss: reduction"):
        triton_ops.mae_loss(x, t, reduction="avg")
    with pytest.raises(ValueError, match="triton_ops.huber_loss: delta must be > 0"):
        triton_ops.huber_loss(x, t, delta=0.0)
    with pytest.raises(ValueError, match="triton_ops.binary_cross_entropy: eps"):
        triton_ops.binary_cross_entropy(x.sigmoid(), t.sigmoid(), eps=-1.0)
    with pytest.raises(ValueError, match="triton_ops.cosine_similarity_loss: eps"):
        triton_ops.cosine_similarity_loss(x, t, eps=0.0)
    with pytest.raises(TypeError, match="triton_ops.mse_loss: t"):
        triton_ops.mse_loss(x, t.long())
    with pytest.raises(ValueError, match="triton_ops.cross_entropy_logits: class-index target shape"):
        triton_ops.cross_entropy_logits(x, torch.zeros(4, dtype=torch.long, device=DEVICE))
    if DEVICE.type == "cpu":
        with pytest.raises(IndexError, match="triton_ops.cross_entropy_logits"):
            triton_ops.cross_entropy_logits(x, torch.tensor([0, 1, 9], device=DEVICE))


# ------------------------------------------------------------------------------------------------
# edge cases


def test_log_cosh_is_stable_for_huge_differences():
    x = torch.tensor([1000.0, -1000.0, 0.5], dtype=torch.float64, device=DEVICE, requires_grad=True)
    t = torch.zeros(3, dtype=torch.float64, device=DEVICE)
    out = triton_ops.log_cosh_loss(x, t, reduction="none")
    expected = torch.tensor([1000 - 0.6931471805599453, 1000 - 0.6931471805599453, 0.12011450695827751],
                            dtype=torch.float64)
    assert torch.isfinite(out).all()
    assert_close(out, expected, torch.float64, "log_cosh |d|=1000")
    (gx,) = torch.autograd.grad(out.sum(), x)
    assert_close(gx, torch.tanh(x.detach()), torch.float64, "tanh")


def test_ce_logits_huge_logits_and_many_classes():
    gen = torch.Generator().manual_seed(1)
    z = (torch.randn(2, 70_000, generator=gen) * 1e4).to(DEVICE).requires_grad_()
    target = torch.tensor([5, 69_999], device=DEVICE)
    out = triton_ops.cross_entropy_logits(z, target)
    ref = F.cross_entropy(z.detach().double().cpu(), target.cpu())
    assert torch.isfinite(out) and abs(out.item() - ref.item()) <= 1e-4 * max(1.0, abs(ref.item()))
    (gz,) = torch.autograd.grad(out, z)
    zr = z.detach().double().cpu().requires_grad_()
    (rz,) = torch.autograd.grad(F.cross_entropy(zr, target.cpu()), zr)
    assert torch.isfinite(gz).all() and (gz.double().cpu() - rz).abs().max() < 1e-5


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ce_logits_matches_pytorch_layout_dim1(smoothing):
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(4, 7, 3, 5, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_()
    target = torch.randint(0, 7, (4, 3, 5), generator=gen).to(DEVICE)
    target[0, 0, :] = -100
    for reduction in REDUCTIONS:
        out = triton_ops.cross_entropy_logits(z, target, dim=1, label_smoothing=smoothing, reduction=reduction)
        ref = F.cross_entropy(z.detach().cpu(), target.cpu(), label_smoothing=smoothing, reduction=reduction)
        assert_close(out, ref, torch.float64, f"dim=1 {reduction}")
        g = torch.randn(out.shape, dtype=torch.float64, device=DEVICE) if out.dim() else torch.tensor(
            0.3, dtype=torch.float64, device=DEVICE)
        (gz,) = torch.autograd.grad(out, z, g)
        zr = z.detach().cpu().requires_grad_()
        (rz,) = torch.autograd.grad(F.cross_entropy(zr, target.cpu(), label_smoothing=smoothing,
                                                    reduction=reduction), zr, g.cpu())
        assert_close(gz, rz, torch.float64, f"dim=1 {reduction} grad")
    probs = torch.softmax(torch.randn(4, 7, 3, 5, generator=gen, dtype=torch.float64), 1).to(DEVICE).requires_grad_()
    out = triton_ops.cross_entropy_logits(z, probs, dim=1, label_smoothing=smoothing)
    assert_close(out, F.cross_entropy(z.detach().cpu(), probs.detach().cpu(), label_smoothing=smoothing),
                 torch.float64, "probability targets")
    assert torch.autograd.gradcheck(
        lambda a, b: triton_ops.cross_entropy_logits(a, b, dim=1, label_smoothing=smoothing), (z, probs),
        fast_mode=True)


def test_ce_logits_all_ignored():
    z = torch.randn(3, 5, device=DEVICE, requires_grad=True)
    target = torch.full((3,), -100, device=DEVICE)
    out = triton_ops.cross_entropy_logits(z, target)
    (gz,) = torch.autograd.grad(out, z)
    assert out.item() == 0.0 and torch.count_nonzero(gz) == 0


def test_cosine_dims():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 6, 7, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_()
    t = torch.randn(5, 6, 7, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_()
    for dim in (None, 0, 1, -1):
        for reduction in REDUCTIONS:
            out = triton_ops.cosine_similarity_loss(x, t, dim=dim, reduction=reduction)
            ref = triton_ops.registry["cosine_similarity_loss"].reference(x.detach().cpu(), t.detach().cpu(), dim,
                                                                          1e-6, reduction)
            assert_close(out, ref, torch.float64, f"cosine dim={dim} {reduction}")
            if dim is not None and reduction == "mean":
                assert_close(out, (1 - F.cosine_similarity(x.detach().cpu(), t.detach().cpu(), dim=dim)).mean(),
                             torch.float64, "vs F.cosine_similarity")
        assert torch.autograd.gradcheck(lambda a, b: triton_ops.cosine_similarity_loss(a, b, dim=dim), (x, t),
                                        fast_mode=True)
    zero = torch.zeros(4, dtype=torch.float64, device=DEVICE, requires_grad=True)
    other = torch.randn(4, dtype=torch.float64, device=DEVICE)
    (gz,) = torch.autograd.grad(triton_ops.cosine_similarity_loss(zero, other), zero)
    assert_close(gz, -other / (1e-6 * other.norm()), torch.float64, "|x| < eps branch")


def test_bce_clamp_and_targets_require_grad():
    p = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64, device=DEVICE, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64, device=DEVICE, requires_grad=True)
    out = triton_ops.binary_cross_entropy(p, y, reduction="none")
    assert torch.isfinite(out).all()
    gp, gy = torch.autograd.grad(out.sum(), (p, y))
    assert gp[0] == 0 and gp[2] == 0 and torch.isfinite(gy).all()


@pytest.mark.skipif(triton_ops.backend() != "interpreter",
                    reason="launches and bytes are counted on the interpreter's plans")
@pytest.mark.parametrize("rows,launches", [(8, 1), (64, 2)], ids=["one-program", "partials"])
@pytest.mark.parametrize("name", ["cross_entropy_logits", "cosine_similarity_loss"])
def test_row_loss_one_program_is_one_launch(name, rows, launches):
    """Rows that fit one program (the interpreter's 32768-element tile: 8 x 1000) are one launch
    writing the reduced loss (and, with a gradient to come, the saved statistics); more rows (64
    x 1000: 2 programs) write a partial per program, added by the combine. Under no_grad the
    forward stores no statistics: its bytes are the inputs (and one gathered logit per row) and
    the loss. Values and gradients against the float64 reference either way."""
    from triton_ops.counting import count_bytes

    gen = torch.Generator().manual_seed(rows)
    spec = triton_ops.registry[name]
    for reduction in ("mean", "sum"):
        args = list(spec.bind(*spec.sample((rows, 1000), torch.float64, "cpu", gen)))
        args[[a.name for a in spec.args].index("reduction")] = reduction
        x = args[0].requires_grad_()
        with count_bytes() as t:
            out = spec.fn(*args)
        assert t.launches == launches, (reduction, t.launches)
        ref, (ref_grad,) = reference_grads(spec.reference, args, torch.tensor(0.7, dtype=torch.float64), [0])
        assert_close(out, ref, torch.float64, f"{name} {rows} rows {reduction}")
        (grad,) = torch.autograd.grad(out, [x], torch.tensor(0.7, dtype=torch.float64))
        assert_close(grad, ref_grad, torch.float64, f"{name} {rows} rows {reduction} gradient")
        with torch.no_grad(), count_bytes() as t:
            again = spec.fn(*args)
        assert t.launches == launches and torch.equal(again, out)
        if name == "cross_entropy_logits":
            z, target = args[0], args[1]
            # 2 programs: their (sum, count) written and read, the unread factor in the first slot
            partials = 0 if launches == 1 else 2 * (2 * 2 * 8) + 8
            # the logits, the targets, one gathered logit per row, the loss
            assert t.total == z.numel() * 8 + target.numel() * 8 + rows * 8 + 8 + partials, t.total
        else:  # x and t, the loss; 2 programs: their partial sums written and read
            assert t.total == 2 * rows * 1000 * 8 + 8 + (0 if launches == 1 else 2 * 2 * 8), t.total


def test_cross_entropy_vjp_splits_long_rows_over_programs():
    """Few rows of many classes (linear_cross_entropy's chunks): the VJP splits each row's classes
    over programs to fill a wave; every class of every row is written, the last split partial."""
    from triton_ops.launchers import loss

    gen = torch.Generator().manual_seed(3)
    # an odd class count: every split (in 16-class units on a GPU) leaves a partial last chunk
    z = (torch.randn(4, 70_001, generator=gen, dtype=torch.float64) * 3).to(DEVICE).requires_grad_()
    t = torch.tensor([5, -100, 70_000, 34_000], device=DEVICE)
    g = torch.tensor(0.7, dtype=torch.float64, device=DEVICE)
    plan = loss.ce_logits_vjp_plan(loss.layout(z), loss.layout(t), False, loss.layout(g), loss.layout(z), None, 1,
                                   "mean", z.dtype, z.device)
    assert plan.grid[1] > 1 and 70_001 % plan.fixed["c_per_program"]  # split, the last chunk partial
    out = triton_ops.cross_entropy_logits(z, t, label_smoothing=0.1)
    (dz,) = torch.autograd.grad(out, z, g)
    zr = z.detach().cpu().requires_grad_()
    expected = F.cross_entropy(zr, t.cpu(), label_smoothing=0.1)
    (dr,) = torch.autograd.grad(expected, zr, g.cpu())
    torch.testing.assert_close(out.detach().cpu(), expected.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dz.cpu(), dr, rtol=1e-10, atol=1e-14)


def test_reduced_forward_pipelines_16_bit_tiles_of_long_chunks():
    from triton_ops.launchers.loss import PIPELINE_STAGES, reduce_stages
    bf16, f32 = torch.bfloat16, torch.float32
    # the H200 bench's chunk: 25472 rows of 4096-element tiles, 16-bit x and t (2 x 16 KiB shared)
    assert reduce_stages(4096, 1, 25472, bf16, bf16) == PIPELINE_STAGES == 3
    assert reduce_stages(4096, 1, 25472, f32, f32) == 1       # 2 x 32 KiB: would cap the CTAs per SM
    assert reduce_stages(4096, 1, 25472, bf16, f32) == 1
    assert reduce_stages(4096, 1, 3 * 4096, bf16, bf16) == 1  # too few whole tiles to pay the prologue
    assert reduce_stages(1, 4096, 1, bf16, bf16) == 1         # reduction "none": one tile a program


# The pipelined loop (STAGES = 3) runs where a program walks >= 4 whole 4096-element tiles: only at
# GPU sizes (the interpreter plans one chunk and ignores num_stages)
GPU_SIZED = pytest.mark.skipif(DEVICE.type != "cuda", reason="GPU-sized chunks: the pipelined reduced forward")
REDUCED_LOSSES = [n for n in LOSSES if triton_ops.registry[n].fwd_kernels[0].__name__ == "loss_reduce_kernel"]


def _stages_launched(monkeypatch):
    from triton_ops import runtime
    seen = []
    call = runtime.LaunchPlan.__call__

    def recording(plan, **values):
        if "STAGES" in plan.fixed:
            seen.append(plan.fixed["STAGES"])
        return call(plan, **values)

    monkeypatch.setattr(runtime.LaunchPlan, "__call__", recording)
    return seen


@GPU_SIZED
def test_pipelined_reduced_forward_reads_every_tile_once(monkeypatch):
    # per column 4 targets of 1 against q = 1/2, one in each quarter of the rows: each [4, 1024]
    # tile holds some; a tile skipped, read twice or read in another's place moves a column's sum
    # by log 2 (a sum of 4 log 2 in bfloat16: 2^-8 relative)
    seen = _stages_launched(monkeypatch)
    R, C = 65536, 1024
    q = torch.full((R, C), 0.5, dtype=torch.bfloat16, device=DEVICE)
    p = torch.zeros((R, C), dtype=torch.bfloat16, device=DEVICE)
    cols = torch.arange(C, device=DEVICE)
    for j in range(4):
        p[(2 * cols + j * (R // 4)) % R, cols] = 1.0
    out = triton_ops.cross_entropy(q, p, dim=0, reduction="none")
    assert seen == [3]
    torch.testing.assert_close(out.double().cpu(), torch.full((C,), 4 * math.log(2), dtype=torch.float64),
                               rtol=2.0 ** -8, atol=0)


@GPU_SIZED
@pytest.mark.parametrize("name", REDUCED_LOSSES)
def test_pipelined_reduced_forward_values(name, monkeypatch):
    seen = _stages_launched(monkeypatch)
    spec, args = _args(name, torch.bfloat16, "mean", torch.Generator().manual_seed(3), shape=(8192, 4096))
    with torch.no_grad():
        out = spec.fn(*args)
    ref = spec.reference(*[a.detach().double().cpu() if isinstance(a, torch.Tensor) else a for a in args])
    assert seen == [3], seen
    assert_close(out, ref, torch.bfloat16, name)
