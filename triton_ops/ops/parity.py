"""Registry ops that give ``triton_ops.functional`` PyTorch's exact math (SPEC section 6) where
SPEC sections 1-3 chose differently: the exact-erf GELU, binary cross-entropy with torch's log
clamp at -100, the logits form of binary cross-entropy, and the other ``poisson_nll_loss`` forms.
Each is the same template as its section 1-3 sibling (``unary_op`` / ``elementwise_loss``) with
other scalar functions: no kernel of its own."""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .. import scalar
from .loss import _prob_pair, elementwise_loss, poisson_dt, poisson_dx, reduce
from .unary import unary_op


# --------------------------------------------------------------------------------------------
# gelu_erf: 0.5 x (1 + erf(x / sqrt 2)), torch's default GELU


@triton.jit
def gelu_erf_f(x):
    return 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))


@triton.jit
def gauss_narrow(x, SHIFT: tl.constexpr):
    """(Phi(x), SHIFT + log2 of the density's exp(-x^2/2)): Phi(x) = 1 - Phi(-|x|), Phi(-|x|) =
    erfc(|x| / sqrt 2) / 2, relative accuracy in both tails. A SHIFT costs the forward one
    instruction (k alone folds into an FMA of half_erfc's sum) and the gradient none (k is used
    twice there)."""
    k = x * x * -0.7213475204444817  # -x^2 / 2 in base 2 (log2(e) / 2)
    if SHIFT != 0:
        k = k + SHIFT
    half_erfc = scalar.half_erfc_narrow(tl.abs(x), k, SHIFT)
    return tl.where(x >= 0, 1.0 - half_erfc, half_erfc), k


@triton.jit
def gelu_erf_narrow(x):
    phi, _ = gauss_narrow(x, 0)
    return x * phi


@triton.jit
def gelu_erf_df_narrow(x):
    phi, k24 = gauss_narrow(x, 24)
    # x phi(x) = x (2^-24 / sqrt(2 pi)) 2^k24: the SFU's 2^k24 stays normal where phi(x) itself
    # would flush to 0 (|x| 13.2-14.1) and x phi(x) is still a normal float32 (a 16-bit gradient
    # of ~1e-37 there, which the float32 path gives)
    return phi + x * 2.3778812909211677e-08 * scalar.exp2_ftz(k24)


@triton.jit
def gelu_erf_df(x):
    # Phi(x) + x phi(x); 0.3989... = 1 / sqrt(2 pi)
    return 0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476)) + x * 0.3989422804014327 * tl.exp(-0.5 * x * x)


gelu_erf = unary_op("gelu_erf", gelu_erf_f, gelu_erf_df, f_narrow=gelu_erf_narrow, df_narrow=gelu_erf_df_narrow,
                    reference=lambda x: 0.5 * x * (1 + torch.special.erf(x / math.sqrt(2.0))),
                    doc="gelu_erf(x): exact GELU 0.5x(1 + erf(x/sqrt 2)) (= F.gelu(x), approximate='none').").fn


# --------------------------------------------------------------------------------------------
# binary cross-entropy as torch computes it


@triton.jit
def bce_torch_l(p, y, NARROW: tl.constexpr = False):
    # NaN propagates through the clamps, as through torch's clamp_min
    if NARROW == scalar.SUMMED:
        # log2 units (-100 / ln 2 = -144.27), ln 2 once. p may be subnormal (bfloat16 holds 1e-40,
        # whose log -92 is not clamped): its log keeps the fix-up; 1 - p never is
        a, b = scalar.log2_pair_summed(p, True)
        a = tl.maximum(a, -144.26950408889634, propagate_nan=tl.PropagateNan.ALL)
        b = tl.maximum(b, -144.26950408889634, propagate_nan=tl.PropagateNan.ALL)
        r = -0.6931471805599453 * scalar.weighted(y, a, b)
    else:
        r = -(y * tl.maximum(scalar.log(p, NARROW), -100.0, propagate_nan=tl.PropagateNan.ALL)
              + (1.0 - y) * tl.maximum(scalar.log(1.0 - p, NARROW), -100.0, propagate_nan=tl.PropagateNan.ALL))
    return r


@triton.jit
def bce_torch_narrow(p, y):
    return bce_torch_l(p, y, True)


@triton.jit
def bce_torch_summed(p, y):
    return bce_torch_l(p, y, scalar.SUMMED)


@triton.jit
def bce_torch_dp(p, y):
    # torch's EPSILON = 1e-12 keeps the gradient finite at p in {0, 1}; torch stores it as a float32
    return (p - y) / tl.maximum(p * (1.0 - p), 9.999999960041972e-13, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def bce_torch_dy(p, y):
    # torch differentiates the unclamped logs: -logit(p)
    return tl.log(1.0 - p) - tl.log(p)


def _bce_torch_ref(p, y, reduction="mean"):
    return reduce(-(y * torch.log(p).clamp_min(-100) + (1 - y) * torch.log(1 - p).clamp_min(-100)), reduction)


bce_log_clamp = elementwise_loss(
    "bce_log_clamp", bce_torch_l, bce_torch_dp, bce_torch_dy, names=("p", "y"), reference=_bce_torch_ref,
    sample=_prob_pair, loss_narrow=bce_torch_narrow, loss_summed=bce_torch_summed,
    doc="bce_log_clamp(p, y, reduction='mean'): binary cross-entropy with each log clamped at -100 "
        "(= F.binary_cross_entropy).").fn


@triton.jit
def bce_logits_l(x, y, NARROW: tl.constexpr = False):
    # max(x, 0) - x y + log(1 + exp(-|x|)): no overflow for any x
    return tl.maximum(x, 0.0) - x * y + scalar.log1p_of(scalar.exp_of(-tl.abs(x), NARROW), NARROW)


@triton.jit
def bce_logits_narrow(x, y):
    return bce_logits_l(x, y, True)


@triton.jit
def bce_logits_summed(x, y):
    return bce_logits_l(x, y, scalar.SUMMED)


@triton.jit
def bce_logits_dx(x, y):
    return tl.sigmoid(x) - y


def _bce_logits_ref(x, y, reduction="mean"):
    return reduce(x.clamp_min(0) - x * y + torch.log1p(torch.exp(-x.abs())), reduction)


def _logit_pair(shape, dtype, device, gen):
    x = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64) * 3
    y = torch.rand(shape, generator=gen, device=gen.device, dtype=torch.float64)
    return x.to(device, dtype), y.to(device, dtype)


bce_with_logits = elementwise_loss(
    # d/dt = -x, as in the poisson loss
    "bce_with_logits", bce_logits_l, bce_logits_dx, poisson_dt, reference=_bce_logits_ref, sample=_logit_pair,
    loss_narrow=bce_logits_narrow, loss_summed=bce_logits_summed,
    doc="bce_with_logits(x, y, reduction='mean'): -[y log sigmoid(x) + (1-y) log(1 - sigmoid(x))], stable "
        "(= F.binary_cross_entropy_with_logits without weights).").fn


# --------------------------------------------------------------------------------------------
# poisson_nll_loss: the rate form (log_input=False) and Stirling's term (full=True)


@triton.jit
def stirling(t, NARROW: tl.constexpr = False):
    # t log t - t + 0.5 log(2 pi t) where t > 1, else 0 (torch's masking); one log: log(2 pi t) =
    # log t + log(2 pi)
    if NARROW == scalar.SUMMED:
        # = (t + 1/2)(log t - 1) + 1/2 + log(2 pi) / 2: two FMAs on the log; t <= 1 needs no guard
        # (its log, -inf or NaN, is not selected)
        r = tl.where(t > 1.0, (t + 0.5) * (scalar.log2_summed(t) * 0.6931471805599453 - 1.0) + 1.4189385332046727,
                     0.0)
    else:
        safe = tl.where(t > 1.0, t, 2.0)
        log_t = scalar.log(safe, NARROW)
        r = tl.where(t > 1.0, safe * log_t - safe + 0.5 * (log_t + 1.8378770664093453), 0.0)
    return r


@triton.jit
def stirling_dt(t):
    safe = tl.where(t > 1.0, t, 2.0)
    return tl.where(t > 1.0, tl.log(safe) + 0.5 / safe, 0.0)


@triton.jit
def poisson_full_l(x, t, NARROW: tl.constexpr = False):
    return scalar.exp_of(x, NARROW) - t * x + stirling(t, NARROW)


@triton.jit
def poisson_full_narrow(x, t):
    return poisson_full_l(x, t, True)


@triton.jit
def poisson_full_summed(x, t):
    return poisson_full_l(x, t, scalar.SUMMED)


@triton.jit
def poisson_full_dt(x, t):
    return -x + stirling_dt(t)


@triton.jit
def poisson_rate_l(x, t, eps, NARROW: tl.constexpr = False):
    if NARROW == scalar.SUMMED:
        # the SFU alone, no series near x + eps = 1: the log is small there beside x (about 1)
        r = x - t * (scalar.log2_summed(x + eps) * 0.6931471805599453)
    else:
        r = x - t * scalar.log(x + eps, NARROW)
    return r


@triton.jit
def poisson_rate_narrow(x, t, eps):
    return poisson_rate_l(x, t, eps, True)


@triton.jit
def poisson_rate_summed(x, t, eps):
    return poisson_rate_l(x, t, eps, scalar.SUMMED)


@triton.jit
def poisson_rate_dx(x, t, eps):
    return 1.0 - t / (x + eps)


@triton.jit
def poisson_rate_dt(x, t, eps):
    return -tl.log(x + eps)


@triton.jit
def poisson_rate_full_l(x, t, eps, NARROW: tl.constexpr = False):
    return poisson_rate_l(x, t, eps, NARROW) + stirling(t, NARROW)


@triton.jit
def poisson_rate_full_narrow(x, t, eps):
    return poisson_rate_full_l(x, t, eps, True)


@triton.jit
def poisson_rate_full_summed(x, t, eps):
    return poisson_rate_full_l(x, t, eps, scalar.SUMMED)


@triton.jit
def poisson_rate_full_dt(x, t, eps):
    return -tl.log(x + eps) + stirling_dt(t)


def _stirling_ref(t):
    safe = torch.where(t > 1, t, 2.0)  # the masked branch must not put log(0) into the gradient
    return torch.where(t > 1, safe * torch.log(safe) - safe + 0.5 * torch.log(2 * math.pi * safe), 0.0)


def _counts_pair(shape, dtype, device, gen, rate=False):
    x = torch.randn(shape, generator=gen, device=gen.device, dtype=torch.float64) * 0.5
    x = x.exp() if rate else x
    # counts + 0.5: away from t = 1, where Stirling's masked term jumps (finite differences would see it)
    t = torch.poisson(torch.full(shape, 2.0, dtype=torch.float64, device=gen.device), generator=gen) + 0.5
    return x.to(device, dtype), t.to(device, dtype)


poisson_nll_full = elementwise_loss(
    "poisson_nll_full", poisson_full_l, poisson_dx, poisson_full_dt, sample=_counts_pair, loss_narrow=poisson_full_narrow,
    loss_summed=poisson_full_summed,
    reference=lambda x, t, reduction="mean": reduce(torch.exp(x) - t * x + _stirling_ref(t), reduction),
    doc="poisson_nll_full(x, t, reduction='mean'): exp(x) - t x + Stirling's term of t where t > 1 "
        "(= F.poisson_nll_loss(log_input=True, full=True)).").fn
poisson_nll_rate = elementwise_loss(
    "poisson_nll_rate", poisson_rate_l, poisson_rate_dx, poisson_rate_dt, param=("eps", 1e-8),
    loss_narrow=poisson_rate_narrow, loss_summed=poisson_rate_summed,
    sample=lambda *a: _counts_pair(*a, rate=True),
    reference=lambda x, t, eps=1e-8, reduction="mean": reduce(x - t * torch.log(x + eps), reduction),
    doc="poisson_nll_rate(x, t, eps=1e-8, reduction='mean'): x - t log(x + eps), x the rate "
        "(= F.poisson_nll_loss(log_input=False)).").fn
poisson_nll_rate_full = elementwise_loss(
    "poisson_nll_rate_full", poisson_rate_full_l, poisson_rate_dx, poisson_rate_full_dt, param=("eps", 1e-8),
    loss_narrow=poisson_rate_full_narrow, loss_summed=poisson_rate_full_summed,
    sample=lambda *a: _counts_pair(*a, rate=True),
    reference=lambda x, t, eps=1e-8, reduction="mean": reduce(x - t * torch.log(x + eps) + _stirling_ref(t),
                                                               reduction),
    doc="poisson_nll_rate_full(x, t, eps=1e-8, reduction='mean'): x - t log(x + eps) + Stirling's term "
        "(= F.poisson_nll_loss(log_input=False, full=True)).").fn
