"""Scalar math shared by forward and VJP kernels.

``libdevice`` (tanh, expm1, log1p ...) does not run under Triton's interpreter, so each function
exists in two forms: libdevice on the GPU, where it is accurate and fast, and a portable form built
from ``tl.exp``/``tl.log`` for the interpreter. The choice is made once, at import, from the
backend. The portable forms keep full relative accuracy near 0 (Kahan's tricks), where the naive
``exp(x) - 1`` or ``2*sigmoid(2z) - 1`` lose every digit.
"""
import triton
import triton.language as tl

from .runtime import INTERPRETER
from .tiles import helper


@helper
def _expm1_portable(x):
    u = tl.exp(x)
    um1 = u - 1.0
    # (u - 1) * x / log(u) cancels the rounding error of u (Kahan); needs u != 1.
    exact_zero = um1 == 0.0
    log_u = tl.log(tl.where(exact_zero, 2.0, u))
    kahan = tl.where(exact_zero, x, um1 * x / log_u)
    return tl.where(tl.abs(x) < 0.5, kahan, um1)


@helper
def _log1p_portable(x):
    u = 1.0 + x
    d = u - 1.0
    exact_zero = d == 0.0
    kahan = tl.where(exact_zero, x, tl.log(u) * x / tl.where(exact_zero, 1.0, d))
    return tl.where(tl.abs(x) < 0.5, kahan, tl.log(u))


@helper
def _tanh_portable(z):
    t = _expm1_portable(-2.0 * tl.abs(z))  # in (-1, 0]: no overflow for any z
    r = -t / (t + 2.0)
    return tl.where(z < 0, -r, r)


if INTERPRETER:
    @helper
    def _log2_approx(x):
        # the GPU's lg2.approx with its documented worst absolute error near 1 (2^-22) added: the
        # tests on CPU then check the NARROW forms' error budget against the SFU's real error
        return tl.log2(x) + 2.384185791015625e-07

    @helper
    def _log2_ftz(x):
        # lg2.approx.ftz: as _log2_approx, subnormal inputs read as 0 (a result of -inf)
        return _log2_approx(tl.where(tl.abs(x) < 1.1754943508222875e-38, 0.0 * x, x))

    @helper
    def _rcp_approx(x):
        return 1.0 / x

    @helper
    def exp2_ftz(x):
        # ex2.approx.ftz: a result below float32's normal range is 0 (as on the GPU, so the tests
        # on CPU see the flush a caller must allow for)
        r = tl.math.exp2(x)
        return tl.where(r < 1.1754943508222875e-38, 0.0 * r, r)

    expm1 = _expm1_portable
    log1p = _log1p_portable
    tanh = _tanh_portable
else:  # pragma: no cover - exercised on the GPU machine
    from triton.language.extra import libdevice

    @triton.jit
    def expm1(x):
        return libdevice.expm1(x)

    @triton.jit
    def log1p(x):
        return libdevice.log1p(x)

    @triton.jit
    def tanh(x):
        return libdevice.tanh(x)

    @triton.jit
    def _log2_approx(x):
        # the SFU's log2 (one MUFU.LG2): absolute error <= 2^-22 on [0.5, 2], a few ulp elsewhere;
        # subnormal inputs kept (no .ftz)
        return tl.inline_asm_elementwise("lg2.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                         pack=1)

    @triton.jit
    def _log2_ftz(x):
        # the SFU's log2 alone (one MUFU.LG2): _log2_approx without ptxas's fix-up for subnormal
        # inputs (4 instructions), which are read as 0 (a result of -inf)
        return tl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                         pack=1)

    @triton.jit
    def exp2_ftz(x):
        # one MUFU.EX2 (``tl.math.exp2`` lowers to ex2.approx.ftz; ``tl.exp`` adds a subnormal
        # fix-up, 3 more instructions): 2 ulp, a result below 2^-126 is 0
        return tl.math.exp2(x)

    @triton.jit
    def _rcp_approx(x):
        # the SFU's reciprocal (one MUFU.RCP, ~1 ulp) for x in a normal range (no .ftz cost)
        return tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True,
                                         pack=1)


# --------------------------------------------------------------------------------------------
# NARROW math: float32 arithmetic whose result is stored in 16 bits (float16 / bfloat16 tensors).
# The output keeps 11 significant bits at most, so an error of ~1e-5 relative is far below its
# half-ulp (2^-12 = 2.4e-4); libdevice's correctly rounded forms cost ~28 instructions each,
# these ~6-10 (bench/static.py's instr_per_element: the forwards of log, elu and the log losses
# are bound by instruction issue on a bf16 tensor). Near the points where a fast form's absolute
# error would be a large relative one (log near 1, expm1 near 0) a short series takes over.
# Called with NARROW=False they are the accurate forms.

# The thresholds are literals inside the kernels (Triton reads no plain globals): 1/32 for log1p's
# series u - u^2/2 + u^3/3 - u^4/4 (truncation u^4/5 < 2e-7 relative; SUMMED: 1/64 for u - u^2/2),
# 1/16 for expm1's series x + x^2/2 + x^3/6 (truncation x^3/24 < 1e-5 relative); 0.693... = ln 2.
#
# SUMMED (NARROW=SUMMED, a third level): 16-bit inputs whose values are only summed, never stored
# one by one (a loss forward with reduction "sum" or "mean", chosen in Python). The error of a sum
# is at most the sum of its terms' errors (plus float32 accumulation's own, the same at every
# level). The SFU's forms, ~2^-22 absolute, run without ptxas's subnormal fix-up where the argument
# cannot be subnormal (the caller's domain says when), and a log term that is a loss's whole value
# near its zero (log q near q = 1: a confident, right prediction; log1p(e) for small e; log cosh
# near 0) keeps a short series there: its relative error stays small, so a sum of small losses
# (all of one sign) keeps a relative error as small, not the SFU's 2^-22 over a sum of 1e-6.
# Terms beside a larger one (Stirling's, t log(x + eps) beside x) take the SFU alone. The bound per
# element, used by tests/test_narrow.py: |error| <= 2^-20 (1 + sum of |terms|).
SUMMED = tl.constexpr(2)


@helper
def log2_summed(x, SUBNORMAL: tl.constexpr = False):
    """log2 x for SUMMED forms: the SFU's lg2.approx (absolute error <= 2^-22 on [0.5, 2], 2 ulp
    elsewhere), .ftz unless x may be SUBNORMAL (ftz reads a subnormal x as 0: -inf)."""
    if SUBNORMAL:
        r = _log2_approx(x)
    else:
        r = _log2_ftz(x)
    return r


@helper
def _log1p_series(u, NARROW: tl.constexpr, UNIT: tl.constexpr = 1.0):
    # UNIT log(1 + u) below the series' limit (UNIT = 1 / ln 2: log2 units, folded into the
    # coefficients). NARROW: four terms up to 1/32 (truncation u^4/5 < 2e-7 relative: each element
    # is stored); SUMMED: two up to 1/64 (u^2/3 < 8.2e-5 = 2^-13.6 relative: a sum of such terms
    # keeps that relative accuracy, below a 16-bit result's half-ulp; the SFU's 2^-22 absolute is
    # then < 1.1e-5 relative of the log at the limit)
    if NARROW == SUMMED:
        r = u * (UNIT + u * (UNIT * -0.5))
    else:
        r = u * (UNIT + u * (UNIT * -0.5 + u * (UNIT * 0.3333333432674408 + u * (UNIT * -0.25))))
    return r


@helper
def _in_series_range(u, NARROW: tl.constexpr):
    # |u| below _log1p_series' limit for its level
    if NARROW == SUMMED:
        r = tl.abs(u) < 0.015625
    else:
        r = tl.abs(u) < 0.03125
    return r


@helper
def _log2_sfu(x, NARROW: tl.constexpr):
    # a SUMMED form's log arguments are 0 or normal (the caller's domain, loss_form's eps): .ftz
    if NARROW == SUMMED:
        r = log2_summed(x)
    else:
        r = _log2_approx(x)
    return r


@helper
def log(x, NARROW: tl.constexpr):
    """log x. NARROW (and SUMMED): the SFU's log2 away from 1 (there |log x| > 0.015, so its
    absolute error 2^-22 is < 1.1e-5 relative), the series of log1p(x - 1) near 1 (x - 1 exact
    there), where the log, and a loss made of it, is small: a sum of small losses keeps its
    relative accuracy too."""
    if NARROW:
        u = x - 1.0
        r = tl.where(_in_series_range(u, NARROW), _log1p_series(u, NARROW), _log2_sfu(x, NARROW) * 0.6931471805599453)
    else:
        r = tl.log(x)
    return r


@helper
def log1p_of(u, NARROW: tl.constexpr):
    """log(1 + u). NARROW (and SUMMED): the series for small |u| (where 1 + u would round u
    away), else the SFU's log2 of 1 + u."""
    if NARROW:
        r = tl.where(_in_series_range(u, NARROW), _log1p_series(u, NARROW),
                     _log2_sfu(1.0 + u, NARROW) * 0.6931471805599453)
    else:
        r = log1p(u)
    return r


@helper
def log2_pair_summed(q, SUBNORMAL: tl.constexpr = False):
    """(log2 q, log2(1 - q)) for SUMMED forms (q in [0, 1]; a NaN, or a q outside, gives NaN in
    one of them): the SFU's log2 of each, and where q or 1 - q is within 1/64 of 1 (its log small:
    a small loss's whole value) the series of log2(1 - s), s = min(q, 1 - q) exact (1 - q is, for
    q >= 1/2). One series serves both: only one of them can be near 1. SUBNORMAL: as
    log2_summed's, for q (1 - q is 0 or normal)."""
    c = 1.0 - q
    near = _log1p_series(-tl.minimum(q, c), SUMMED, 1.4426950408889634)
    a = tl.where(q > 0.984375, near, log2_summed(q, SUBNORMAL))
    b = tl.where(q < 0.015625, near, log2_summed(c))
    return a, b


@helper
def exp_of(x, NARROW: tl.constexpr):
    """exp x. SUMMED: one multiply and the SFU's ex2.approx.ftz (``tl.exp`` wraps it in a fix-up
    for subnormal results, 3 more instructions): 2 ulp, a result below 2^-126 is 0."""
    if NARROW == SUMMED:
        r = exp2_ftz(x * 1.4426950408889634)
    else:
        r = tl.exp(x)
    return r


@helper
def weighted(y, a, b):
    """y a + (1 - y) b, as y a + (b - y b): two FMAs (one instruction fewer), and exact for a
    hard label y in {0, 1} with a, b finite (b - b = 0, then a or b)."""
    return y * a + (b - y * b)


@helper
def expm1_of(x, NARROW: tl.constexpr):
    """exp(x) - 1. NARROW: exp(x) - 1 (the SFU's exp, ~2^-22 relative) where |x| >= 1/16 (there
    |expm1 x| > 0.06, so the cancellation costs < 1e-5 relative), the series below."""
    if NARROW:
        r = tl.where(tl.abs(x) < 0.0625, x * (1.0 + x * (0.5 + x * 0.1666666716337204)), tl.exp(x) - 1.0)
    else:
        r = expm1(x)
    return r


@helper
def div_rounded(a, b, COMPUTE: tl.constexpr):
    """a / b correctly rounded on its own: float32's ``/`` may become a reciprocal whose multiply
    the compiler folds into a neighbouring FMA, differently in two variants of one kernel (a
    value stored or not); float64's ``/`` is already correctly rounded."""
    if COMPUTE == tl.float32:
        return tl.math.div_rn(a, b)
    return a / b


@helper
def lowest(COMPUTE: tl.constexpr):
    """The lowest finite value of COMPUTE (float32 or float64): a running maximum that starts
    there, not at -inf, never subtracts -inf from -inf."""
    if COMPUTE == tl.float64:
        v = -1.7976931348623157e308
    else:
        v = -3.4028234663852886e38
    return v


@helper
def exp_neg(x, COMPUTE: tl.constexpr):
    """exp(-x). float32: one multiply and one MUFU.EX2 (``tl.math.exp2`` lowers to
    ``ex2.approx.ftz``, where ``tl.exp`` wraps the same instruction in a subnormal fix-up: 3 more
    instructions per element), the sign in the constant (a negation would cost an instruction
    of its own under Triton 3.6); a result below 2^-126 is 0. float64: ``tl.exp``, accurate."""
    if COMPUTE == tl.float64:
        e = tl.exp(-x)
    else:
        e = exp2_ftz(x * -1.4426950408889634)
    return e


@helper
def nan_else(x, v):
    """``x`` where it is NaN, else ``v``: a piecewise derivative whose cases compare ``x`` would
    turn a NaN input into a finite gradient (NaN fails every comparison)."""
    return tl.where(x != x, x, v)


@helper
def sign(x):
    """sign(x) with sign(0) = 0 (NaN stays NaN)."""
    return tl.where(x > 0, 1.0, tl.where(x < 0, -1.0, x * 0.0))


@triton.jit
def identity(x):
    """f(x) = x: the map template as a copy (a gradient broadcast back, ``replicate``)."""
    return x


@triton.jit
def one_xy(x, y):
    """d(x + y)/dy = 1: the VJP template as a plain sum over broadcast axes (``sum``, reduce-back)."""
    return 1.0


@triton.jit
def product(x, y, p):
    """x * y * p: a tensor times a device scalar and a host number (linear_cross_entropy's VJP
    scaling the gradients its forward formed)."""
    return x * y * p


@helper
def half_erfc_narrow(a, k, SHIFT: tl.constexpr):
    """Phi(-a) = erfc(z) / 2 for a >= 0, z = a / sqrt 2, to ~1e-7 relative (~1e-6 with a SHIFT);
    ``k`` = SHIFT - z^2 log2(e): -a^2 / 2 in base 2, SHIFT octaves up, which the caller's Gaussian
    density exp2(k) 2^-SHIFT shares (a SHIFT of 24 moves the SFU's flush to 0 below 2^-126 24
    octaves later; the scale folds into the density's constant; float32's rounding of numbers
    near 24 costs the ~1e-6). erfc(z) = t exp(P(t) - z^2), t = 1 / (1 + z/2), the form of
    Numerical Recipes' erfcc with P a degree-9 fit of log(erfc(z) / t) + z^2 on z in [0, 14]
    (largest error 7.4e-8 with float32 coefficients). Here P is scaled to base 2, the halving and
    -SHIFT folded into its constant term, z's scale into t's constant: t 2^(P2(t) + k), one
    MUFU.RCP, ten FMAs and one MUFU.EX2 (.ftz, so where Phi(-a) falls below 2^-126 (a > 13.2) it
    is 0, as the float32 path's 1 + erf(-z) already is past a = 5.9). The accuracy matters where a
    caller cancels: gelu_erf's gradient Phi(x) + x phi(x) crosses 0 at x = -0.75, two terms of 0.23."""
    t = _rcp_approx(1.0 + 0.35355339059327373 * a)
    p = 0.23226246822492408 * t - 1.1080007775254603
    p = p * t + 1.9635372229322587
    p = p * t - 1.3946058313605156
    p = p * t + 0.20456932954044818
    p = p * t - 0.16681777008252585
    p = p * t + 0.10658559115874625
    p = p * t + 0.5461362184207307
    p = p * t + 1.44205293916442
    p = p * t - (2.8257193010259334 + SHIFT)
    return t * exp2_ftz(p + k)
