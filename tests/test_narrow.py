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
