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
        e = tl.math.exp2(x * -1.4426950408889634)
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
