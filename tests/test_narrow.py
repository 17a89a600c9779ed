"""16-bit tensors take ``scalar``'s NARROW math in the ops that have it (``unary_op(f_narrow=)``,
``elementwise_loss(loss_narrow=)``): float32 arithmetic good to ~1e-5 relative instead of
libdevice's correctly rounded forms. Over every representable bfloat16 / float16 input of the
op's domain, the 16-bit result may be at most one ulp further from the truth (the op's float64
path, rounded to 16 bits) than the accurate float32 path's result rounded to 16 bits: the NARROW
math adds no more than the output's own rounding to what float32 arithmetic already gets wrong
(log_cosh near 0, d + log1p(exp(-2d)) - log 2, cancels in any float32 form).

Under the interpreter the SFU's log2 is numpy's (exact); the series, their thresholds and the
special values are what runs here. The GPU's ``lg2.approx`` adds <= 2^-22 absolute near 1 and a
few float32 ulp elsewhere (scalar.py), far inside the ulp allowed.
"""
import math

import pytest
import torch

import triton_ops
from helpers import DEVICE

DTYPES = (torch.bfloat16, torch.float16)


def every_value(dtype, lo, hi):
    """Every finite value of ``dtype`` in [lo, hi], in order. bfloat16 subnormals are left out:
    the interpreter's bfloat16 conversions move them (a plain copy, ``triton_ops.identity``, turns
    -1.166e-38 into -1.139e-38), whatever the math; the GPU converts them exactly."""
    bits = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(dtype)
    keep = torch.isfinite(bits) & (bits >= lo) & (bits <= hi)
    if dtype == torch.bfloat16:
        keep &= (bits == 0) | (bits.abs() >= torch.finfo(dtype).tiny)
    return bits[keep].sort().values


def ulps_apart(a, b):
    """Distance in units of the last place between two same-dtype tensors (same sign or zero)."""
    assert a.dtype == b.dtype
    ia, ib = a.view(torch.int16).to(torch.int32), b.view(torch.int16).to(torch.int32)
    # the sign-magnitude bit patterns as one ordered integer line
    ia = torch.where(ia < 0, -(ia & 0x7FFF), ia)
    ib = torch.where(ib < 0, -(ib & 0x7FFF), ib)
    return (ia - ib).abs()


def assert_one_ulp_at_most_further(narrow, accurate, truth64):
    """``narrow`` no more than one ulp further from the float64 ``truth64`` than ``accurate``
    (both 16-bit)."""
    truth = truth64.to(narrow.dtype)
    special = (torch.isnan(narrow) & torch.isnan(truth)) | (torch.isinf(truth) & (narrow == truth))
    if truth.dtype == torch.bfloat16:  # a result below the normal range: the interpreter's store moves it
        special |= truth64.abs() < torch.finfo(truth.dtype).tiny
    far = ~special & (ulps_apart(narrow, truth) > ulps_apart(accurate, truth) + 1)
    assert not far.any(), (f"{int(far.sum())} values beyond one ulp, e.g. {narrow[far][:4].tolist()} vs float32 "
                           f"{accurate[far][:4].tolist()}, truth {truth[far][:4].tolist()}")


UNARY = {  # op, domain of x, parameter
    "log": (0.0, math.inf, ()),
    "safe_log": (0.0, math.inf, (1e-6,)),
    "elu": (-30.0, 30.0, (1.0,)),
    "gelu_erf": (-20.0, 20.0, ()),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_narrow_math_rounds_as_the_float32_path(name, dtype):
    spec = triton_ops.registry[name]
    assert spec.extras["f_narrow"] is not None
    lo, hi, params = UNARY[name]
    x = every_value(dtype, lo, hi).to(DEVICE)
    narrow = spec.fn(x, *params)
    accurate = spec.fn(x.float(), *params).to(dtype)
    truth = x.double() * phi64(x) if name == "gelu_erf" else spec.fn(x.double(), *params)
    assert_one_ulp_at_most_further(narrow, accurate, truth)


def phi64(x):
    """Phi(x) in float64 through erfc: 0.5 (1 + erf(x / sqrt 2)), the op's (and torch's) form,
    cancels for x < -5 in float32 and x < -8 in float64 itself."""
    return 0.5 * torch.special.erfc(-x.double() / math.sqrt(2.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gelu_erf_narrow_gradient_rounds_as_the_float32_path(dtype):
    spec = triton_ops.registry["gelu_erf"]
    assert spec.extras["df_narrow"] is not None
    x = every_value(dtype, -20.0, 20.0).to(DEVICE)

    def grad(v):
        v = v.detach().requires_grad_(True)
        return torch.autograd.grad(spec.fn(v), v, torch.ones_like(v))[0]

    x64 = x.double()
    truth = phi64(x) + x64 * torch.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
    assert_one_ulp_at_most_further(grad(x), grad(x.float()).to(dtype), truth)


def test_unary_narrow_math_special_values():
    for dtype in DTYPES:
        x = torch.tensor([0.0, -0.0, -1.0, 1.0, math.inf, math.nan], dtype=dtype, device=DEVICE)
        torch.testing.assert_close(triton_ops.log(x), torch.log(x.float()).to(dtype), equal_nan=True)
        torch.testing.assert_close(triton_ops.elu(x), torch.nn.functional.elu(x.float()).to(dtype), equal_nan=True)
        torch.testing.assert_close(triton_ops.gelu_erf(x), triton_ops.gelu_erf(x.float()).to(dtype), equal_nan=True)


LOSSES = {  # op, the first operand's domain, the second operand's values, extra arguments
    "binary_cross_entropy": (0.0, 1.0, (0.0, 1.0, 0.25, 0.5), (1e-6,)),
    "bce_log_clamp": (0.0, 1.0, (0.0, 1.0, 0.25, 0.5), ()),
    "bce_with_logits": (-40.0, 40.0, (0.0, 1.0, 0.3), ()),
    "log_cosh_loss": (-20.0, 20.0, (0.0, 1.5, -3.0), ()),
    "poisson_nll_full": (-8.0, 8.0, (0.0, 1.0, 2.5, 40.0), ()),
    "poisson_nll_rate": (0.0, 60.0, (0.0, 1.0, 2.5, 40.0), (1e-8,)),
    "poisson_nll_rate_full": (0.0, 60.0, (0.0, 1.0, 2.5, 40.0), (1e-8,)),
}


def log_cosh_truth(x, t, reduction):
    """log cosh(x - t) in float64 down to d = 0: the op's formula (and SPEC's reference) cancels
    to 0 below d ~ 1e-8 in float64 too, where the value is d^2 / 2."""
    d = (x.double() - t.double()).abs()
    v = torch.where(d < 1e-2, d * d / 2 - d ** 4 / 12, d + torch.log1p(torch.exp(-2 * d)) - math.log(2))
    return v if reduction == "none" else v.sum()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_narrow_math_rounds_as_the_float32_path(name, dtype):
    lo, hi, targets, params = LOSSES[name]
    first = every_value(dtype, lo, hi)
    x = first.repeat(len(targets)).to(DEVICE)
    t = torch.tensor(targets, dtype=dtype).repeat_interleave(len(first)).to(DEVICE)
    op = triton_ops.registry[name].fn
    for reduction in ("none", "sum"):
        narrow = op(x, t, *params, reduction=reduction)
        accurate = op(x.float(), t.float(), *params, reduction=reduction).to(dtype)
        truth = (log_cosh_truth(x, t, reduction) if name == "log_cosh_loss"
                 else op(x.double(), t.double(), *params, reduction=reduction))
        assert narrow.dtype == dtype
        assert_one_ulp_at_most_further(narrow.reshape(-1), accurate.reshape(-1), truth.reshape(-1))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cross_entropy_narrow_math_rounds_as_the_float32_path(dtype):
    q = every_value(dtype, 0.0, 1.0)
    q = q[: q.numel() // 64 * 64].reshape(-1, 64).to(DEVICE)
    p = torch.softmax(torch.linspace(-3, 3, q.numel()).reshape(q.shape), -1).to(DEVICE, dtype)
    narrow = triton_ops.cross_entropy(q, p, reduction="none")
    accurate = triton_ops.cross_entropy(q.float(), p.float(), reduction="none").to(dtype)
    assert_one_ulp_at_most_further(narrow, accurate, triton_ops.cross_entropy(q.double(), p.double(), reduction="none"))


# ------------------------------------------------------------------------------------------------
# SUMMED: a reduced loss forward ("sum", "mean") of 16-bit tensors stores no element, only their
# sum, whose error is at most the sum of the elements' absolute errors (plus float32 accumulation's
# own). scalar.py's SUMMED forms drop the series that kept each element's relative error small
# near a zero of the loss; each element's absolute error stays below 2^-20 T, T the sum of its
# terms' sizes, a log term w log z counting w (1 + |log z|) (the SFU's 2^-22 absolute near z = 1,
# 2 ulp of the log elsewhere), an exp term e^x (1 + |x|) (its argument rounded, as tl.exp's).


def _stirling_size(t):
    return torch.where(t > 1, (t + 0.5) * (1 + t.clamp_min(1).log().abs()) + t + 2.5, 0.0)


SUMMED_SIZES = {  # op: T per element, from float64 operands (the first one clamped as the op does)
    "binary_cross_entropy": lambda p, y, eps: (
        y * (1 - p.clamp(eps, 1 - eps).log()) + (1 - y) * (1 - (1 - p.clamp(eps, 1 - eps)).log())),
    "bce_log_clamp": lambda p, y: y * (1 - p.log().clamp_min(-100)) + (1 - y) * (1 - (1 - p).log().clamp_min(-100)),
    "bce_with_logits": lambda x, y: x.clamp_min(0) + (x * y).abs() + 1 + torch.log1p(torch.exp(-x.abs())),
    "log_cosh_loss": lambda x, t: 2 * (x - t).abs() + 2,
    "poisson_nll_full": lambda x, t: x.exp() * (1 + x.abs()) + (t * x).abs() + _stirling_size(t),
    "poisson_nll_rate": lambda x, t, eps: x.abs() + t * (1 + (x + eps).log().abs()),
    "poisson_nll_rate_full": lambda x, t, eps: x.abs() + t * (1 + (x + eps).log().abs()) + _stirling_size(t),
}


def assert_summed_within_bound(name, x, t, params, reduction, size, rows=None):
    """``name``'s reduced 16-bit forward against its float64 truth: within the SUMMED bound, the
    float32 accumulation's (the kernel adds each lane's terms, then the lanes: ~N / 32768 + 20
    roundings deep under the interpreter) and one ulp of the 16-bit result."""
    op = triton_ops.registry[name].fn
    out = op(x, t, *params, reduction=reduction)
    x64, t64 = x.double(), t.double()
    if name == "log_cosh_loss":
        elements = log_cosh_truth(x, t, "none")
    else:
        elements = op(x64, t64, *params, reduction="none")
    n = rows if rows is not None else x.numel()
    scale = 1.0 / n if reduction == "mean" else 1.0
    truth = elements.sum() * scale
    depth = x.numel() / 32768 + 20
    bound = (2.0 ** -20 * size.sum() + depth * 2.0 ** -24 * elements.abs().sum()) * scale
    bound += torch.finfo(x.dtype).eps * truth.abs()
    if truth.abs() > torch.finfo(x.dtype).max:  # a float16 sum past 65504
        assert torch.isinf(out), (name, reduction, out)
        return
    err = (out.double() - truth).abs()
    assert err <= bound, f"{name} {reduction} {x.dtype}: {out.item()} vs {truth.item()}, error {err.item():.3g} " \
                         f"> bound {bound.item():.3g}"


def _worst_cases(name, dtype):
    """Inputs at the SUMMED forms' worst: losses near 0 where a log's argument is near 1 (a
    confident, right prediction; d near 0), the SFU's absolute error there a large relative one,
    so that the sum stays small and its own rounding does not hide it; and, for the poisson forms,
    large terms that cancel (x = log t, x = t)."""
    ones = torch.ones(4096, dtype=dtype)
    if name in ("binary_cross_entropy", "bce_log_clamp"):
        # p = 1 (clamped to 1 - eps: a loss of eps, or of 0), the last values below 1; p near 0, y = 0
        p1 = torch.cat([ones, every_value(dtype, 0.98, 1.0)])
        p0 = every_value(dtype, 0.0, 2.0 ** -12)
        return torch.cat([p1, p0]), torch.cat([torch.ones_like(p1), torch.zeros_like(p0)])
    if name == "bce_with_logits":  # log1p(e^-|x|) below 1e-7: 1 + e^-|x| rounds to 1
        x = every_value(dtype, 16.0, 40.0)
        return torch.cat([x, -x]), torch.cat([torch.ones_like(x), torch.zeros_like(x)])
    if name == "log_cosh_loss":  # d + log1p(e^-2d) - log 2 cancels to d^2 / 2
        d = every_value(dtype, 0.0, 2.0 ** -6)
        return d, torch.zeros_like(d)
    if name == "poisson_nll_full":  # exp(x) - t x + Stirling, near its minimum x = log t
        t = every_value(dtype, 1.0, 40.0)
        return t.double().log().to(dtype), t
    x = every_value(dtype, 0.5, 40.0)  # the rate forms, at their minimum x = t
    return x, x


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(SUMMED_SIZES))
def test_loss_summed_math_within_its_bound(name, dtype):
    lo, hi, targets, params = LOSSES[name]
    first = every_value(dtype, lo, hi)
    sweep = (first.repeat(len(targets)), torch.tensor(targets, dtype=dtype).repeat_interleave(len(first)))
    for x, t in (sweep, _worst_cases(name, dtype)):
        x, t = x.to(DEVICE), t.to(DEVICE)
        size = SUMMED_SIZES[name](x.double(), t.double(), *params)
        for reduction in ("sum", "mean"):
            assert_summed_within_bound(name, x, t, params, reduction, size)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cross_entropy_summed_math_within_its_bound(dtype):
    # confident rows: the mass on classes whose q is near 1 (or q near 0 with no mass)
    q = every_value(dtype, 0.9, 1.0)
    q = q[: q.numel() // 16 * 16].reshape(-1, 16).to(DEVICE)
    p = torch.full(q.shape, 1.0 / 16, dtype=dtype, device=DEVICE)
    size = p.double() * (1 - q.double().clamp(1e-6, 1 - 1e-6).log())
    for reduction in ("sum", "mean"):
        out = triton_ops.cross_entropy(q, p, reduction=reduction)
        truth = triton_ops.cross_entropy(q.double(), p.double(), reduction=reduction)
        scale = 1.0 / q.shape[0] if reduction == "mean" else 1.0
        bound = (2.0 ** -20 * size.sum() + 24 * 2.0 ** -24 * truth.abs() / scale) * scale
        bound += torch.finfo(dtype).eps * truth.abs()
        assert (out.double() - truth).abs() <= bound, (reduction, out.item(), truth.item(), bound.item())


def _small_loss_regimes(name, dtype, n=4096):
    """(label, first operand, second operand) where each element's loss is small: a confident,
    right prediction (p near 0 with y = 0, p = 1 with y = 1: bfloat16 rounds sigmoid(x > 7) to 1;
    |x| large on the label's side), a good fit (log cosh of a small residual), a zero count; the
    seams where a series hands over to the SFU (1/64, d = 1/4); and the op's ordinary sample. The
    SUMMED forms' absolute error at a small loss would be a large relative one."""
    gen = torch.Generator().manual_seed(0)

    def uniform(lo, hi):
        return torch.rand(n, generator=gen, dtype=torch.float64) * (hi - lo) + lo

    zeros, ones = torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    if name in ("binary_cross_entropy", "bce_log_clamp"):
        cases = [("y=0 p~[1e-7,1e-4]", uniform(1e-7, 1e-4), zeros), ("y=0 p~[1e-8,1e-6]", uniform(1e-8, 1e-6), zeros),
                 ("y=1 p~[1-1e-3,1]", 1 - uniform(0, 1e-3), ones), ("y=0 p~[0.01,0.03]", uniform(0.01, 0.03), zeros)]
    elif name == "bce_with_logits":
        cases = [("y=1 x~[10,14]", uniform(10, 14), ones), ("y=1 x~[16,20]", uniform(16, 20), ones),
                 ("y=0 x~[-20,-10]", uniform(-20, -10), zeros), ("y=1 x~[3,5]", uniform(3, 5), ones)]
    elif name == "log_cosh_loss":
        cases = [(f"d~N(0,{s:g})", torch.randn(n, generator=gen, dtype=torch.float64) * s, zeros) for s in (1e-3, 1e-4)]
        cases.append(("d~[0.2,0.3]", uniform(0.2, 0.3), zeros))
    elif name == "poisson_nll_full":  # exp(x) - t x: a zero count at a small rate
        cases = [("t=0 x~[-20,-10]", uniform(-20, -10), zeros)]
    else:  # the rate forms, x - t log(x + eps): a zero count, a count below 1 (no Stirling term)
        cases = [("t=0 x~[1e-4,1e-3]", uniform(1e-4, 1e-3), zeros), ("t=0.01 x~[1e-3,1e-2]", uniform(1e-3, 1e-2),
                                                                        ones * 0.01)]
    x, t = triton_ops.registry[name].sample((n,), torch.float64, "cpu", gen)[:2]
    cases.append(("ordinary", x, t))
    return [(label, a.to(DEVICE, dtype), b.to(DEVICE, dtype)) for label, a, b in cases]


# The mean is stored in the input dtype: two of its ulps on top of float32's own error, 2^-7
# (bfloat16) and 2^-10 (float16) relative, or two subnormal steps for a mean below the normal range
SUMMED_SLACK = {torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10}


def _relative_errors(op, args, truth, reduction):
    """The relative errors of a reduction of 16-bit ``args`` (SUMMED) and of the same values in
    float32 (the accurate path) against the float64 ``truth``, and the slack allowed on top."""
    summed = op(*args, reduction=reduction).double()
    accurate = op(*[a.float() if isinstance(a, torch.Tensor) else a for a in args], reduction=reduction).double()
    info = torch.finfo(args[0].dtype)
    slack = max(SUMMED_SLACK[args[0].dtype], 2 * info.tiny * info.eps / truth.abs().item() if truth != 0 else 0.0)
    def relative(v):  # 0 for an exact 0 (bce_log_clamp of p = 1, y = 1)
        return (v - truth).abs().item() / truth.abs().item() if truth != 0 else (0.0 if v == 0 else math.inf)
    return relative(summed), relative(accurate), slack


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(SUMMED_SIZES))
def test_loss_summed_mean_as_accurate_as_float32_where_the_loss_is_small(name, dtype):
    op = triton_ops.registry[name].fn
    params = LOSSES[name][3]
    for label, x, t in _small_loss_regimes(name, dtype):
        # a float16 mean of the smallest losses is subnormal (below 6e-5): their sum is 4096 times it
        for reduction in ("mean", "sum"):
            if name == "log_cosh_loss":
                truth = log_cosh_truth(x, t, "sum") / (x.numel() if reduction == "mean" else 1)
            else:
                truth = op(x.double(), t.double(), *params, reduction=reduction)
            summed, accurate, slack = _relative_errors(op, (x, t, *params), truth, reduction)
            assert summed <= accurate + slack, \
                f"{name} {label} {dtype} {reduction}: {summed:.3g} vs float32 {accurate:.3g}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cross_entropy_summed_mean_as_accurate_as_float32_where_the_loss_is_small(dtype):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 16, generator=gen, dtype=torch.float64)
    hot = torch.nn.functional.one_hot(logits.argmax(-1), 16).double()
    for label, scale in (("confident rows", None), ("rows ~1e-2", 8.0), ("ordinary", 1.0)):
        # the target the argmax: a right prediction, whose loss -log q is small where q is near 1
        # (confident: q = 1 in 16 bits, clamped to 1 - eps, a loss of 1e-6 a row)
        q = torch.softmax(logits * scale, -1) if scale else torch.where(hot == 1, 1.0, 1e-9)
        q, p = q.to(DEVICE, dtype), hot.to(DEVICE, dtype)
        if label == "ordinary":
            p = torch.softmax(torch.randn(256, 16, generator=gen, dtype=torch.float64), -1).to(DEVICE, dtype)
        for reduction in ("mean", "sum"):
            truth = triton_ops.cross_entropy(q.double(), p.double(), reduction=reduction)
            summed, accurate, slack = _relative_errors(triton_ops.cross_entropy, (q, p), truth, reduction)
            assert summed <= accurate + slack, f"{label} {dtype} {reduction}: {summed:.3g} vs float32 {accurate:.3g}"


def test_loss_summed_forms_are_chosen_for_reduced_16_bit_forwards(monkeypatch):
    """SUMMED for "sum" and "mean" of 16-bit tensors; "none" keeps NARROW (each element stored),
    float32 the accurate form; an eps below 2^-100 (a log argument could be subnormal) NARROW."""
    from triton_ops.ops import loss

    seen = []
    real = loss.loss_forward
    monkeypatch.setattr(loss, "loss_forward", lambda fn, *a, **kw: (seen.append(fn.__name__), real(fn, *a, **kw))[1])
    p = torch.full((8,), 0.25, dtype=torch.bfloat16, device=DEVICE)
    for dtype, reduction, eps, form in ((torch.bfloat16, "mean", 1e-6, "bce_summed"),
                                        (torch.float16, "sum", 1e-6, "bce_summed"),
                                        (torch.bfloat16, "none", 1e-6, "bce_narrow"),
                                        (torch.float32, "mean", 1e-6, "bce_l"),
                                        (torch.bfloat16, "mean", 1e-40, "bce_narrow")):
        seen.clear()
        triton_ops.binary_cross_entropy(p.to(dtype), p.to(dtype), eps, reduction=reduction)
        assert seen == [form], (dtype, reduction, eps, seen)
    seen.clear()
    triton_ops.cross_entropy(p.reshape(2, 4), p.reshape(2, 4), reduction="none")  # rows stored: NARROW
    triton_ops.cross_entropy(p.reshape(2, 4), p.reshape(2, 4), reduction="sum")
    assert seen == ["xent_narrow", "xent_summed"]


def test_loss_summed_special_values():
    bf = torch.bfloat16
    # bfloat16 holds 1e-39 (subnormal in float32 too): log 1e-39 = -89.8 is no clamp's -100; 1 - p
    # of every p, and p = 0, 1 (0 and 100 per element)
    p = torch.tensor([1e-39, 0.0, 1.0, 0.5], dtype=bf, device=DEVICE)
    y = torch.ones_like(p)
    truth = (-torch.log(p.double())).clamp_max(100.0).sum()  # 190.5: 100 for a flushed 1e-39 would be 200.7
    # (the interpreter moves a bfloat16 subnormal by ~2%: 0.02 in its log; one ulp of 190 is 1)
    assert abs(triton_ops.bce_log_clamp(p, y, reduction="sum").double() - truth) < 2.0
    # an eps below 2^-100 takes the NARROW form: -log(1e-40) = 92.1, where a flushed log gives inf
    zero = torch.zeros(4, dtype=bf, device=DEVICE)
    out = triton_ops.binary_cross_entropy(zero, torch.ones_like(zero), 1e-40, reduction="mean")
    assert abs(out.double() - 92.1) < 1.0, out
    # NaN in gives NaN out; inf as the float32 forms
    for name, x, t, params in (("binary_cross_entropy", [0.5, math.nan], [1.0, 0.0], (1e-6,)),
                               ("bce_log_clamp", [math.nan, 0.5], [1.0, 1.0], ()),
                               ("bce_with_logits", [math.inf, 1.0], [0.0, 1.0], ()),
                               ("log_cosh_loss", [math.inf, 0.0], [0.0, 1.0], ()),
                               ("poisson_nll_full", [1.0, 0.0], [math.nan, 2.0], ()),
                               ("poisson_nll_rate", [math.nan, 1.0], [1.0, 2.0], (1e-8,)),
                               ("poisson_nll_rate_full", [1.0, 1.0], [math.inf, 2.0], (1e-8,))):
        op = triton_ops.registry[name].fn
        for dtype in DTYPES:
            a, b = torch.tensor(x, dtype=dtype, device=DEVICE), torch.tensor(t, dtype=dtype, device=DEVICE)
            for reduction in ("sum", "mean"):
                torch.testing.assert_close(op(a, b, *params, reduction=reduction).float(),
                                           op(a.float(), b.float(), *params, reduction=reduction),
                                           equal_nan=True, rtol=1e-2, atol=1e-2, msg=f"{name} {dtype} {reduction}")
