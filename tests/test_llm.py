"""LLM training ops (SPEC section 7): softmax, log_softmax, rms_norm, silu, relu, swiglu,
linear_cross_entropy; their nn modules; a GPT-style model trained eagerly, compiled and under FSDP2."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch.utils._python_dispatch import TorchDispatchMode

import triton_ops
from triton_ops import nn as tnn
from triton_ops.bwd.softmax import widen_again
from helpers import DEVICE, DTYPES, Allocations, assert_close, cast_keep_layout, counted_bytes, reference_grads
from test_layers import test_gradcheck_and_opcheck as layers_gradcheck_and_opcheck

HERE = os.path.dirname(__file__)
INTERP = triton_ops.backend() == "interpreter"


def _rand(shape, gen, scale=1.0):
    return torch.randn(shape, generator=gen, dtype=torch.float64) * scale


def _check(name, args, dtype, gen, scale=1.0, grads=True):
    """Forward (and every floating gradient) against the float64 reference on the same inputs."""
    spec = triton_ops.registry[name]
    out = spec.fn(*args)
    idx = [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]
    g = cast_keep_layout(_rand(tuple(out.shape), gen), dtype) if out.dim() \
        else torch.tensor(0.7, dtype=dtype, device=DEVICE)
    ref, ref_grads = reference_grads(spec.reference, args, g, idx)
    assert out.dtype == dtype
    assert_close(out, ref, dtype, f"{name} forward", scale=scale)
    if not grads:
        return
    got = torch.autograd.grad(out, [args[i] for i in idx], g)
    for i, gr, rg in zip(idx, got, ref_grads):
        assert gr.shape == args[i].shape and gr.dtype == args[i].dtype
        assert_close(gr, rg, dtype, f"{name} grad of {spec.args[i].name}", scale=scale)


def _leaf(t, dtype):
    return cast_keep_layout(t, dtype).requires_grad_()


# ------------------------------------------------------------------------------------------------
# softmax, log_softmax


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_softmax_any_dim_and_layout(name, dtype):
    gen = torch.Generator().manual_seed(0)
    grads = dtype in (torch.float32, torch.float64)  # half precision: forward only (SPEC asks bf16 forward)
    x = _leaf(_rand((5, 6, 37), gen, 3.0), dtype)
    for dim in (-1, 0, 1):  # classes innermost, outermost, in the middle: read through strides
        _check(name, (x, dim), dtype, gen, scale=2.0, grads=grads)
    xt = _leaf(_rand((37, 9), gen, 3.0).t(), dtype)  # transposed: rows strided by 1, classes by 9
    _check(name, (xt, -1), dtype, gen, scale=2.0, grads=grads)
    xs = _leaf(_rand((11, 40), gen, 3.0)[::2, 1::3], dtype)  # sliced both ways
    _check(name, (xs, 1), dtype, gen, scale=2.0, grads=grads)
    _check(name, (_leaf(_rand((), gen), dtype), 0), dtype, gen, grads=grads)  # 0-d
    _check(name, (_leaf(_rand((0, 5), gen), dtype), -1), dtype, gen, grads=grads)  # empty


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_bfloat16_gradient(name):
    """The VJP keeps bfloat16 x and g 16-bit across its row sum and widens them again after it
    (``bwd/softmax.widen_again``): its dx against float64 on the same rounded inputs, one row of
    a tile and rows looped in chunks."""
    gen = torch.Generator().manual_seed(5)
    for shape in ((6, 37), (3, 70_000)):
        x = _leaf(_rand(shape, gen, 3.0), torch.bfloat16)
        _check(name, (x, -1), torch.bfloat16, gen, scale=2.0)


@triton.jit
def _widen_kernel(out_ptr, in_ptr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, widen_again(tl.load(in_ptr + offs), tl.float32))


def test_widen_again_is_the_conversion():
    """``widen_again`` of every bfloat16 bit pattern (normal, subnormal, zero, inf, NaN of both
    signs) is its float32 value bit for bit."""
    bits = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16)
    x = bits.view(torch.bfloat16).to(DEVICE)
    out = torch.empty(x.shape, dtype=torch.float32, device=DEVICE)
    _widen_kernel[(x.numel() // 8192,)](out, x, BLOCK=8192)
    assert torch.equal(out.cpu().view(torch.int32), x.cpu().float().view(torch.int32))


def test_softmax_reads_strided_input_without_a_copy():
    """A non-last dim: the kernel reads x through its strides (no transposed copy of the input)."""
    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(64, 32, device=DEVICE)
    with Ops() as ops:
        triton_ops.softmax(x, 0)
    assert not [n for n in ops.names if "copy" in n or "clone" in n or "contiguous" in n], ops.names


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "rms_norm"])
def test_forward_alone_stores_no_statistics(name):
    """Under no_grad the forward writes y only (no log-sum-exp / rstd allocated, 4 bytes a row
    less), bit for bit the y of the training forward, which saves the statistic."""
    spec = triton_ops.registry[name]
    x = torch.randn(6, 40, device=DEVICE)
    args = (x, [40], torch.randn(40, device=DEVICE), 1e-5) if name == "rms_norm" else (x, -1)
    with counted_bytes() as alone:
        y = spec.forward(*args)
    with counted_bytes() as training:
        y_saved, stat = spec.forward_saved(*args)
    assert torch.equal(y, y_saved)
    if INTERP:  # counts need the interpreter
        assert training.total - alone.total == 6 * 4
    expected = torch.rsqrt(x.pow(2).mean(-1) + 1e-5) if name == "rms_norm" else torch.logsumexp(x, -1)
    torch.testing.assert_close(stat, expected)
    with torch.no_grad():
        assert torch.equal(spec.fn(*args), y)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_minus_inf_entries_as_torch(name):
    ref = getattr(torch, name)
    inf = float("-inf")
    for cols in (5, 70_000):  # one block, and the looped online path
        x = torch.randn(4, cols, dtype=torch.float64)
        x[0, 1:] = inf          # one finite entry
        x[1, :] = inf           # only -inf: NaN, as torch
        x[2, ::2] = inf
        x = x.to(DEVICE).requires_grad_()
        g = torch.randn(4, cols, dtype=torch.float64, device=DEVICE)
        out = triton_ops.registry[name].fn(x, -1)
        xr = x.detach().cpu().requires_grad_()
        expected = ref(xr, -1)
        torch.testing.assert_close(out.cpu(), expected.detach(), equal_nan=True, rtol=1e-10, atol=1e-12)
        (dx,) = torch.autograd.grad(out, x, g)
        (dr,) = torch.autograd.grad(expected, xr, g.cpu())
        torch.testing.assert_close(dx.cpu(), dr, equal_nan=True, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_70000_long_row(name):
    gen = torch.Generator().manual_seed(1)
    x = _leaf(_rand((3, 70_000), gen, 4.0), torch.float32)
    _check(name, (x, -1), torch.float32, gen, scale=4.0)


# ------------------------------------------------------------------------------------------------
# rms_norm


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rms_norm(dtype):
    gen = torch.Generator().manual_seed(2)
    grads = dtype in (torch.float32, torch.float64)
    x = _leaf(_rand((6, 4, 40), gen, 2.0), dtype)
    w = _leaf(_rand((4, 40), gen) + 1, dtype)
    _check("rms_norm", (x, [4, 40], w, None), dtype, gen, scale=8.0, grads=grads)   # two normalized axes
    _check("rms_norm", (x, [40], w[0].detach().requires_grad_(), 1e-5), dtype, gen, scale=8.0, grads=grads)
    xt = _leaf(_rand((33, 7), gen).t(), dtype)  # non-contiguous rows
    _check("rms_norm", (xt, [33], None, None), dtype, gen, scale=8.0, grads=grads)
    w_strided = _leaf((_rand((66,), gen) + 1)[::2], dtype)  # a strided weight
    assert w_strided.stride() == (2,)
    _check("rms_norm", (xt, [33], w_strided, None), dtype, gen, scale=8.0, grads=grads)
    w_t = _leaf(_rand((40, 4), gen).t() + 1, dtype)  # a transposed 2-D weight
    assert not w_t.is_contiguous()
    _check("rms_norm", (x, [4, 40], w_t, None), dtype, gen, scale=8.0, grads=grads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_rms_norm_default_eps_is_torchs(dtype):
    x = (torch.randn(4, 16, dtype=torch.float64) * 1e-4).to(DEVICE, dtype)  # eps matters at this scale
    w = torch.rand(16, dtype=torch.float64).to(DEVICE, dtype)
    ref = F.rms_norm(x.double(), [16], w.double(), eps=torch.finfo(dtype).eps)
    assert_close(triton_ops.rms_norm(x, [16], w), ref, dtype, "rms_norm eps=None")
    assert_close(tnn.RMSNorm(16).to(DEVICE, dtype)(x), F.rms_norm(x.double(), [16], eps=torch.finfo(dtype).eps),
                 dtype, "nn.RMSNorm eps=None")


def test_rms_norm_70000_long_row_and_deterministic_weight_grad():
    gen = torch.Generator().manual_seed(3)
    x = _leaf(_rand((3, 70_000), gen, 3.0), torch.float32)
    w = _leaf(_rand((70_000,), gen) + 1, torch.float32)
    _check("rms_norm", (x, [70_000], w, None), torch.float32, gen, scale=20.0)
    x = _leaf(_rand((300, 48), gen), torch.float32)
    w = _leaf(_rand((48,), gen), torch.float32)
    g = _rand((300, 48), gen).float().to(DEVICE)
    runs = [torch.autograd.grad(triton_ops.rms_norm(x, [48], w), (x, w), g) for _ in range(2)]
    assert all(torch.equal(p, q) for p, q in zip(*runs))


# ------------------------------------------------------------------------------------------------
# silu, relu, swiglu (the registry suites of test_unary / test_binary also run them)


def test_silu_relu_special_values_as_torch():
    x = torch.tensor([-0.0, 0.0, float("nan"), float("inf"), float("-inf"), -3.0, 2.5], dtype=torch.float64,
                     device=DEVICE, requires_grad=True)
    for ours, theirs in ((triton_ops.silu, F.silu), (triton_ops.relu, F.relu)):
        out = ours(x)
        expected = theirs(x.detach().cpu())
        torch.testing.assert_close(out.cpu(), expected, equal_nan=True, rtol=0, atol=0)
    (g,) = torch.autograd.grad(triton_ops.relu(x).sum(), x)
    assert g[:2].tolist() == [0.0, 0.0]  # the gradient at 0 is 0, as torch


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_swiglu_broadcasting_and_reduce_back(dtype):
    gen = torch.Generator().manual_seed(4)
    grads = dtype in (torch.float32, torch.float64)
    gate = _leaf(_rand((3, 5, 8), gen), dtype)
    up = _leaf(_rand((5, 1), gen), dtype)        # broadcast along two axes
    _check("swiglu", (gate, up), dtype, gen, scale=4.0, grads=grads)
    _check("swiglu", (up, gate), dtype, gen, scale=4.0, grads=grads)
    spec = triton_ops.registry["swiglu"]
    dg, du = spec.vjp(gate.detach(), up.detach(), torch.randn(3, 5, 8, device=DEVICE).to(dtype))
    assert dg.shape == gate.shape and du.shape == up.shape  # reduced back by the VJP itself, not by autograd


# ------------------------------------------------------------------------------------------------
# linear_cross_entropy


def _lce_args(dtype, gen, B=2, T=11, H=16, V=50, bias=True, ignore_every=4, layout="contiguous"):
    x = _rand((B, T, H), gen)
    w = _rand((V, H), gen, H ** -0.5)
    b = _rand((V,), gen, 0.1)
    if layout == "strided":  # sliced input and bias, transposed weight
        x = _rand((B, T, 2 * H), gen)[..., ::2]
        w = _rand((H, V), gen, H ** -0.5).t()
        b = _rand((2 * V,), gen, 0.1)[1::2]
    target = torch.randint(0, V, (B, T), generator=gen)
    if ignore_every:
        target.view(-1)[::ignore_every] = -100
    b = _leaf(b, dtype) if bias else None
    return _leaf(x, dtype), _leaf(w, dtype), target.to(DEVICE), b


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_linear_cross_entropy_values_and_gradients(dtype, reduction):
    gen = torch.Generator().manual_seed(5)
    grads = dtype in (torch.float32, torch.float64)
    for smoothing, bias, layout in ((0.0, True, "contiguous"), (0.1, False, "strided"), (0.0, True, "strided")):
        x, w, t, b = _lce_args(dtype, gen, bias=bias, layout=layout)
        # half precision: the logits are rounded to the dtype first (as F.linear's output)
        _check("linear_cross_entropy", (x, w, t, b, -100, reduction, smoothing), dtype, gen,
               scale=20.0 if reduction == "sum" else 4.0, grads=grads)
        x2 = x.detach()[0].requires_grad_()  # (N, H) input
        _check("linear_cross_entropy", (x2, w, t[0], b, -100, reduction, smoothing), dtype, gen,
               scale=20.0 if reduction == "sum" else 4.0, grads=grads)


def test_linear_cross_entropy_float64_is_tight_against_torch():
    gen = torch.Generator().manual_seed(6)
    x, w, t, b = _lce_args(torch.float64, gen, T=37)  # 74 rows: several chunks of 16
    loss = triton_ops.linear_cross_entropy(x, w, t, b, label_smoothing=0.05)
    xr, wr, br = (v.detach().cpu().requires_grad_() for v in (x, w, b))
    ref = F.cross_entropy(F.linear(xr, wr, br).flatten(0, 1), t.cpu().flatten(), label_smoothing=0.05)
    torch.testing.assert_close(loss.cpu(), ref.detach(), rtol=1e-12, atol=0)
    ours = torch.autograd.grad(loss, (x, w, b))
    theirs = torch.autograd.grad(ref, (xr, wr, br))
    for a, r in zip(ours, theirs):
        torch.testing.assert_close(a.cpu(), r, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_all_ignored(reduction):
    gen = torch.Generator().manual_seed(7)
    x, w, _, b = _lce_args(torch.float32, gen)
    t = torch.full((2, 11), -100, device=DEVICE)
    loss = triton_ops.linear_cross_entropy(x, w, t, b, reduction=reduction)
    assert loss.item() == 0.0  # torch gives NaN for "mean"; SPEC: 0
    for gr in torch.autograd.grad(loss, (x, w, b)):
        assert torch.equal(gr, torch.zeros_like(gr))


def test_linear_cross_entropy_deterministic():
    gen = torch.Generator().manual_seed(8)
    x, w, t, b = _lce_args(torch.float32, gen, T=40)
    runs = [torch.autograd.grad(triton_ops.linear_cross_entropy(x, w, t, b), (x, w, b)) for _ in range(2)]
    assert all(torch.equal(p, q) for p, q in zip(*runs))


@pytest.mark.parametrize("T,launches", [(64, 2), (96, 13)], ids=["one-chunk", "six-chunks"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_forward_without_gradients(reduction, T, launches):
    """No gradient wanted: one chunk of one row-kernel program is the logits GEMM and the row
    kernel, which writes the loss itself (2 launches); more chunks write (sum, count) partials,
    combined at the end (2 per chunk + 1). Values against torch; the bytes (interpreter, float32
    as the bench) within 5% of the design's minimum (the chunk's logits written once and read once)."""
    gen = torch.Generator().manual_seed(T)
    H, V = (96, 96) if T == 64 else (8, 200)
    x, w, t, _ = _lce_args(torch.float32, gen, B=1, T=T, H=H, V=V, bias=False)
    spec = triton_ops.registry["linear_cross_entropy"]
    args = spec.check(x.detach()[0], w.detach(), t[0], None, -100, reduction, 0.0)
    chunks = triton_ops.runtime.cdiv(T, triton_ops.launchers.llm.chunk_rows(T, V, H, torch.float32, x.device))
    with torch.no_grad(), counted_bytes() as c:
        loss = triton_ops.linear_cross_entropy(*args)
    if INTERP:  # the interpreter's plans (and counts)
        assert chunks == (1 if T == 64 else 6) and c.launches == launches, (chunks, c.launches)
        assert c.total <= 1.05 * spec.min_bytes(*args)[0], (c.total, spec.min_bytes(*args)[0])
    assert_close(loss, spec.reference(*args), torch.float32, f"linear_cross_entropy no_grad {reduction}")


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_linear_cross_entropy_never_allocates_n_by_v(reduction):
    gen = torch.Generator().manual_seed(9)
    N, H, V = 96, 8, 200
    x, w, t, b = _lce_args(torch.float32, gen, B=1, T=N, H=H, V=V)
    with Allocations() as unfused:  # the check itself can fail: the unfused pair allocates N x V
        F.cross_entropy(F.linear(x, w, b).flatten(0, 1), t.flatten())
    assert max(n for n, _, _ in unfused.numels) >= N * V
    with Allocations() as fused:
        loss = triton_ops.linear_cross_entropy(x, w, t, b, reduction=reduction)
        g = torch.ones_like(loss)
        torch.autograd.grad(loss, (x, w, b), g)
    biggest = max(fused.numels)
    chunk = triton_ops.launchers.llm.chunk_rows(N, V, H, x.dtype, x.device)
    assert chunk < N
    assert biggest[0] <= max(chunk * V, V * H), biggest  # the [chunk, V] logits buffer, or dW itself
    assert all(n < N * V for n, _, _ in fused.numels)


class _GemmLaunches:
    """Launches of the GEMM template's entry points (every launch goes through a LaunchPlan once
    replays are off: a compiled backend's replay calls the driver directly)."""

    def __init__(self, monkeypatch):
        from triton_ops import replay, runtime

        monkeypatch.setattr(replay, "ENABLED", False)
        from triton_ops.bwd.matmul import gemm_vjp_kernel
        from triton_ops.fwd.matmul import gemm_fwd_kernel

        self.count = 0
        call = runtime.LaunchPlan.__call__

        def counted(plan, **values):
            self.count += plan.kernel in (gemm_fwd_kernel, gemm_vjp_kernel)
            return call(plan, **values)

        monkeypatch.setattr(runtime.LaunchPlan, "__call__", counted)

    def take(self) -> int:
        n, self.count = self.count, 0
        return n


@pytest.mark.parametrize("route", ["eager", "custom_op", "compiled"])
def test_linear_cross_entropy_gemm_count(monkeypatch, route):
    # a training step: 3 GEMMs per chunk, all in the forward (logits, dX, dW), as Liger; the VJP
    # only scales. reduction="none" recomputes the logits in the VJP (4), no_grad runs 1.
    gen = torch.Generator().manual_seed(14)
    N, H, V = 96, 8, 200
    x, w, t, b = _lce_args(torch.float32, gen, B=1, T=N, H=H, V=V)
    chunks = -(-N // triton_ops.launchers.llm.chunk_rows(N, V, H, x.dtype, x.device))
    assert chunks > 1
    spec = triton_ops.registry["linear_cross_entropy"]
    torch._dynamo.reset()
    fn = {"eager": spec.fn, "custom_op": spec.via_custom_op,
          "compiled": torch.compile(spec.fn, fullgraph=True, dynamic=False)}[route]
    gemms = _GemmLaunches(monkeypatch)
    for reduction, forward, backward in (("mean", 3, 0), ("sum", 3, 0), ("none", 1, 3)):
        loss = fn(x, w, t, b, reduction=reduction)
        assert gemms.take() == forward * chunks, reduction
        grads = torch.autograd.grad(loss, (x, w, b), torch.ones_like(loss))
        assert gemms.take() == backward * chunks, reduction
        ref = F.cross_entropy(F.linear(x, w, b).flatten(0, 1), t.flatten(), reduction=reduction)
        for g, r in zip(grads, torch.autograd.grad(ref, (x, w, b), torch.ones_like(ref))):
            assert_close(g, r, torch.float32, f"{route} {reduction}")
    with torch.no_grad():
        fn(x, w, t, b)
    assert gemms.take() == chunks
    if route == "eager":  # a frozen weight: the forward forms dX only (dW GEMMs skipped)
        loss = fn(x, w.detach(), t, b.detach())
        (dx,) = torch.autograd.grad(loss, x)
        assert gemms.take() == 2 * chunks
        assert_close(dx, torch.autograd.grad(F.cross_entropy(F.linear(x, w, b).flatten(0, 1), t.flatten()), x)[0],
                     torch.float32, "frozen weight")


def test_linear_cross_entropy_formed_and_recomputed_gradients_agree():
    # The raw VJP without the forward's formed gradients recomputes them: both paths, one answer;
    # the custom op takes ``needs`` (its fake kernel gives the formed gradients' shapes).
    from triton_ops.spec import _to_op_args

    gen = torch.Generator().manual_seed(15)
    spec = triton_ops.registry["linear_cross_entropy"]
    x, w, t, b = (v.detach() if v.is_floating_point() else v for v in _lce_args(torch.float64, gen, T=37))
    g = torch.tensor(0.7, dtype=torch.float64, device=DEVICE)
    for reduction in ("mean", "sum"):
        args = (x, w, t, b, -100, reduction, 0.1)
        formed = spec.launchers.forward_saved(*args, needs=[True, True, False, True])
        plain = spec.launchers.forward_saved(*args)
        assert all(s.shape == (0,) for s in plain[3:]) and formed[3].shape == x.shape and formed[4].shape == w.shape
        assert torch.equal(formed[0], plain[0]) and torch.equal(formed[1], plain[1])
        scaled = spec.vjp(*args, g, saved=list(formed[1:]))
        recomputed = spec.vjp(*args, g, saved=list(plain[1:]))
        for a, r in zip(scaled, recomputed):
            if a is not None:
                torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-15)
        op_args = tuple(_to_op_args(spec.args, (x.float(), w.float(), t, b.float(), -100, reduction, 0.1)))
        torch.library.opcheck(spec.custom_op, (*op_args, [True, True, False, True]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_linear_cross_entropy_half_gradients_formed_in_range(dtype):
    # 4096 rows that all push class 0 down: summed over rows, dW[0] would reach about -4096 x 20,
    # past float16's 65504; the forward forms the mean over rows (1/N), the VJP scales it back.
    gen = torch.Generator().manual_seed(16)
    N, H, V = 4096, 4, 8
    x = (20 + torch.randn(N, H, generator=gen)).to(DEVICE, dtype).requires_grad_()
    w = (torch.randn(V, H, generator=gen) * 0.05).to(DEVICE, dtype).requires_grad_()
    t = torch.zeros(N, dtype=torch.int64, device=DEVICE)
    loss = triton_ops.linear_cross_entropy(x, w, t)
    dx, dw = torch.autograd.grad(loss, (x, w))
    x32, w32 = (v.detach().float().requires_grad_() for v in (x, w))
    ref = F.cross_entropy(F.linear(x32, w32), t)
    rx, rw = torch.autograd.grad(ref, (x32, w32))
    assert torch.isfinite(dw).all() and torch.isfinite(dx).all()
    # half rounding of the logits, dZ and the chunk-by-chunk dW accumulation (as the dtype's own F.linear)
    torch.testing.assert_close(dw.float(), rw, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(dx.float(), rx, rtol=2e-2, atol=1e-5)


def test_linear_cross_entropy_errors():
    x, w = torch.randn(4, 8, device=DEVICE), torch.randn(10, 8, device=DEVICE)
    t = torch.tensor([0, 1, 2, 3], device=DEVICE)
    with pytest.raises(ValueError, match="triton_ops.linear_cross_entropy: input"):
        triton_ops.linear_cross_entropy(x, w.t(), t)
    with pytest.raises(ValueError, match="triton_ops.linear_cross_entropy: target shape"):
        triton_ops.linear_cross_entropy(x, w, t[:3])
    with pytest.raises(TypeError, match="triton_ops.linear_cross_entropy: target"):
        triton_ops.linear_cross_entropy(x, w, t.float())
    with pytest.raises(ValueError, match="triton_ops.linear_cross_entropy: reduction"):
        triton_ops.linear_cross_entropy(x, w, t, reduction="avg")
    if DEVICE.type == "cpu":
        with pytest.raises(IndexError, match="triton_ops.linear_cross_entropy"):
            triton_ops.linear_cross_entropy(x, w, torch.tensor([0, 1, 2, 10], device=DEVICE))
    with pytest.raises(ValueError, match="triton_ops.rms_norm: normalized_shape"):
        triton_ops.rms_norm(x, [3])
    with pytest.raises(IndexError, match="triton_ops.softmax"):
        triton_ops.softmax(x, 2)


# ------------------------------------------------------------------------------------------------
# gradcheck, opcheck, torch.compile


NEW_OPS = ["softmax", "log_softmax", "rms_norm", "silu", "relu", "swiglu", "linear_cross_entropy"]


@pytest.mark.parametrize("name", NEW_OPS)
def test_gradcheck_and_opcheck(name):
    layers_gradcheck_and_opcheck(name)  # float64 gradcheck of every floating argument, opcheck in float32


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(12)
    x = _leaf(_rand((4, 6, 16), gen), torch.float32)
    w_norm = _leaf(_rand((16,), gen) + 1, torch.float32)
    w_up = _leaf(_rand((16, 16), gen, 0.25), torch.float32)
    head = _leaf(_rand((40, 16), gen, 0.25), torch.float32)
    t = torch.randint(0, 40, (4, 6), generator=gen).to(DEVICE)

    def f(x, w_norm, w_up, head, t):
        h = triton_ops.rms_norm(x, [16], w_norm)
        h = h + triton_ops.swiglu(h, triton_ops.matmul(h.flatten(0, 1), w_up).view_as(h))
        h = h + triton_ops.silu(h) - triton_ops.relu(h) + triton_ops.softmax(h, 1) + triton_ops.log_softmax(h, -1)
        return triton_ops.linear_cross_entropy(h, head, t, label_smoothing=0.1)

    leaves = (x, w_norm, w_up, head)
    eager = f(*leaves, t)
    eager_grads = torch.autograd.grad(eager, leaves)
    compiled = torch.compile(f, fullgraph=True)
    loss = compiled(*leaves, t)
    grads = torch.autograd.grad(loss, leaves)
    torch.testing.assert_close(loss, eager, rtol=1e-6, atol=1e-6)
    for g, e in zip(grads, eager_grads):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# nn modules, replace(), the GPT-style model


def test_nn_modules_state_dict_and_replace():
    pairs = [(tnn.RMSNorm(6), torch.nn.RMSNorm(6)), (tnn.RMSNorm([2, 3], elementwise_affine=False),
                                                     torch.nn.RMSNorm([2, 3], elementwise_affine=False)),
             (tnn.Embedding(10, 4), torch.nn.Embedding(10, 4))]
    for ours, theirs in pairs:
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        ours.load_state_dict(theirs.state_dict())
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 6), torch.nn.RMSNorm(6, eps=1e-5), torch.nn.SiLU(),
                                torch.nn.Linear(6, 6), torch.nn.ReLU(), torch.nn.Softmax(dim=-1),
                                torch.nn.Embedding(10, 6, padding_idx=0)).to(DEVICE, torch.float64)
    reference = [m for m in model]
    idx = torch.randint(0, 10, (3, 5), device=DEVICE)
    expected = model[:6](idx)
    tnn.replace(model, verbose=False)
    assert [type(m) for m in model] == [tnn.Embedding, tnn.RMSNorm, tnn.SiLU, tnn.Linear, tnn.ReLU, tnn.Softmax,
                                        torch.nn.Embedding]  # padding_idx: left alone
    assert [id(p) for m in model for p in m.parameters()] == [id(p) for m in reference for p in m.parameters()]
    torch.testing.assert_close(model[:6](idx), expected, rtol=1e-12, atol=1e-12)
    legacy = tnn.Softmax()  # dim=None: torch's implicit choice
    x = torch.randn(2, 3, 4, device=DEVICE)
    with pytest.warns(UserWarning):
        expected = torch.nn.Softmax()(x)
    torch.testing.assert_close(legacy(x), expected)


def test_gpt_fused_head_matches_unfused_and_trains():
    from gpt import batch, make_model

    model = make_model(device=DEVICE)
    idx, targets = batch(device=DEVICE)
    _, unfused = model(idx, targets)
    unfused_grads = torch.autograd.grad(unfused, list(model.parameters()))
    tnn.fuse_lm_head_loss(model)
    logits, fused = model(idx, targets)
    assert logits is None  # the logits never exist on the training path
    fused_grads = torch.autograd.grad(fused, list(model.parameters()))
    torch.testing.assert_close(fused, unfused, rtol=1e-12, atol=0)
    for a, b in zip(fused_grads, unfused_grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert model(idx)[0].shape == (4, 8, 64)  # without targets: the logits, for generation


@pytest.mark.skipif(not INTERP, reason="the gloo check runs on CPU tensors")
def test_fsdp2_two_processes_match_one():
    proc = subprocess.run([sys.executable, os.path.join(HERE, "fsdp_check.py")], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "fsdp ok" in proc.stdout


# ------------------------------------------------------------------------------------------------
# bytes (interpreter)


@pytest.mark.skipif(not INTERP, reason="counts need the interpreter")
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "rms_norm"])
def test_row_kernels_move_their_minimum_bytes(name):
    from triton_ops.counting import count_bytes

    spec = triton_ops.registry[name]
    args = spec.bind(*spec.sample((256, 1024), torch.float32, DEVICE, torch.Generator().manual_seed(13)))
    fwd_min, bwd_min = spec.min_bytes(*args)
    with count_bytes() as fwd:
        _, *saved = spec.forward_saved(*spec.check(*args))
    with count_bytes() as bwd:
        spec.vjp(*args, torch.randn(256, 1024, device=DEVICE), saved=saved)
    print(f"{name}: forward {fwd.total / fwd_min:.3f} x min, backward {bwd.total / bwd_min:.3f} x min")
    rereads = 0
    if name == "rms_norm":  # the weight once per program, each owning one row block (a GPU's re-reads hit L2)
        from triton_ops.launchers.norm import ln_config

        block_r = ln_config(256, 1024, DEVICE, backward=False)[0]
        rereads = (triton_ops.runtime.cdiv(256, block_r) - 1) * 1024 * 4
    assert fwd_min <= fwd.total <= 1.01 * fwd_min + rereads  # one read of x, one write of y, 4 bytes a row
    assert bwd_min <= bwd.total <= 1.05 * bwd_min  # + the weight-gradient partials for rms_norm
