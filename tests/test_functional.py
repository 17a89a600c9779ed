"""triton_ops.functional (SPEC section 6) against torch.nn.functional, driven by PyTorch's own
OpInfo sample inputs (the layouts, shapes, keyword arguments and edge values torch tests itself
with), plus signatures, NotImplementedError, patch() and the model-level checks."""
from __future__ import annotations

import inspect
import warnings

import pytest
import torch
import torch.nn.functional as F

import triton_ops
import triton_ops.functional as TF

op_db = pytest.importorskip("torch.testing._internal.common_methods_invocations").op_db

# OpInfo name -> how to call triton_ops.functional with an OpInfo sample (input, *args, **kwargs)
TOP_LEVEL = ("softmax", "log_softmax", "matmul")  # OpInfo names them as torch.* functions
CALLS = {n if n in TOP_LEVEL else f"nn.functional.{n}": getattr(TF, n) for n in TF.__all__}
CALLS["nn.functional.embedding"] = lambda weight, idx, **kw: TF.embedding(idx, weight, **kw)
OPINFOS = [o for o in op_db if o.name in CALLS and o.variant_test_name in ("", "with_dtype")]
# every function of SPEC section 6 has an OpInfo: none is left untested by this file
assert {o.name for o in OPINFOS} == set(CALLS), set(CALLS) - {o.name for o in OPINFOS}

PER_OP = {torch.float64: 12, torch.float32: 8, torch.float16: 4, torch.bfloat16: 4}  # samples per op: the time budget

# What triton_ops deliberately does not accept, by sample: (OpInfo name, predicate, exception).
# Each is a documented difference (docs/ops.md), asserted to raise exactly that error.
REFUSED = [
    # torch's layer_norm / rms_norm accept a negative eps (rsqrt of a possibly negative number);
    # the registry ops reject it as a bad parameter (SPEC section 0, errors)
    ("nn.functional.layer_norm", lambda s: s.kwargs.get("eps", 1.0) < 0, ValueError),
    ("nn.functional.rms_norm", lambda s: (s.kwargs.get("eps") or 1.0) < 0, ValueError),
    ("nn.functional.huber_loss", lambda s: s.kwargs.get("delta", 1.0) <= 0, ValueError),
    ("nn.functional.cross_entropy", lambda s: s.kwargs.get("weight") is not None
     and s.kwargs.get("label_smoothing", 0.0) > 0, NotImplementedError),
]


def _subset(samples, k):
    """Every n-th sample, k of them: spread over the generator's variety, deterministic."""
    samples = list(samples)
    step = max(1, len(samples) // k)
    return samples[::step][:k]


def _refusal(opinfo, sample):
    return next((exc for name, pred, exc in REFUSED if name == opinfo.name and pred(sample)), None)


def _clone(value, dtype=None):
    """A detached copy (cast to ``dtype`` for floating tensors) that requires grad as the original."""
    if isinstance(value, torch.Tensor):
        v = value.detach().clone()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        return v.requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v, dtype) for k, v in value.items()}
    return value


def _leaves(args, kwargs):
    flat = list(args) + list(kwargs.values())
    return [v for v in flat if isinstance(v, torch.Tensor) and v.requires_grad]


def _run(fn, sample, dtype=None, grad=True):
    args = _clone((sample.input, *sample.args), dtype)
    kwargs = _clone(sample.kwargs, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's broadcasting / implicit-dim warnings: asserted elsewhere
        out = fn(*args, **kwargs)
    leaves = _leaves(args, kwargs)
    if not grad or not leaves or not out.requires_grad:
        return out.detach(), []
    g = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad(out, leaves, g, allow_unused=True)
    return out.detach(), [None if gr is None else gr.detach() for gr in grads]


def _close(actual, expected, truth, what):
    """``actual`` equals torch's ``expected`` to the dtype's default tolerance, or else is no
    farther from the float64 ``truth`` than torch's own result is (torch's rounding noise, e.g.
    a float32 layer_norm gradient that is exactly 0 in exact math, is not a target)."""
    try:
        torch.testing.assert_close(actual, expected, equal_nan=True)
        return
    except AssertionError as err:
        if actual.dtype == torch.float64:
            raise AssertionError(f"{what}: {err}") from None
        ours = (actual.double() - truth).abs().nan_to_num(0.0).max()
        theirs = (expected.double() - truth).abs().nan_to_num(0.0).max()
        assert torch.equal(actual.isnan(), expected.isnan()), f"{what}: NaN pattern differs"
        assert ours <= theirs, f"{what}: {err}\n(ours {float(ours):.3g} from the float64 truth, torch {float(theirs):.3g})"


def _samples(opinfo, dtype, grad):
    return _subset(opinfo.sample_inputs("cpu", dtype, requires_grad=grad), PER_OP[dtype])


def _torch_fn(opinfo):
    return opinfo.op


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("opinfo", OPINFOS, ids=lambda o: f"{o.name}-{o.variant_test_name}".rstrip("-"))
def test_opinfo_values_and_gradients(opinfo, dtype):
    ours_fn = CALLS[opinfo.name]
    checked = 0
    for sample in _samples(opinfo, dtype, grad=True):
        refused = _refusal(opinfo, sample)
        if refused is not None:
            with pytest.raises(refused):
                _run(ours_fn, sample)
            continue
        expected, expected_grads = _run(_torch_fn(opinfo), sample)
        actual, actual_grads = _run(ours_fn, sample)
        what = f"{opinfo.name} {sample}"
        assert actual.dtype == expected.dtype, what
        truth, truth_grads = _run(_torch_fn(opinfo), sample, dtype=torch.float64) if dtype != torch.float64 \
            else (expected, expected_grads)
        _close(actual, expected, truth, what)
        assert len(actual_grads) == len(expected_grads)
        for a, e, t in zip(actual_grads, expected_grads, truth_grads):
            if e is None:
                assert a is None or not a.any(), what
            else:
                _close(a, e, t, f"{what} gradient")
        checked += 1
    assert checked, f"{opinfo.name}: every sample refused"


# Half precision: ours computes in float32 and rounds once; torch's CPU half kernels round along
# the way. Both are compared with the float64 truth, ours within a few units in the last place
# of the dtype, scaled by the output's magnitude (a sum over many elements is large).
HALF_ULP = {torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("opinfo", OPINFOS, ids=lambda o: f"{o.name}-{o.variant_test_name}".rstrip("-"))
def test_opinfo_half_forward(opinfo, dtype):
    if dtype not in opinfo.supported_dtypes("cpu"):
        pytest.skip(f"torch has no {dtype} CPU kernel for {opinfo.name}")
    ours_fn = CALLS[opinfo.name]
    checked = 0
    for sample in _samples(opinfo, dtype, grad=False):
        refused = _refusal(opinfo, sample)
        if refused is not None:
            continue  # asserted in float32/float64 above
        if opinfo.variant_test_name == "with_dtype":
            continue  # the output dtype is float64: nothing half about it
        actual, _ = _run(ours_fn, sample, grad=False)
        truth, _ = _run(_torch_fn(opinfo), sample, dtype=torch.float64, grad=False)
        assert actual.dtype == dtype
        scale = max(1.0, float(truth.abs().nan_to_num(0, 0, 0).max())) if truth.numel() else 1.0
        ulp = HALF_ULP[dtype]
        torch.testing.assert_close(actual.double(), truth, rtol=4 * ulp, atol=4 * ulp * scale, equal_nan=True,
                                   msg=lambda m: f"{opinfo.name} {sample}: {m}")
        checked += 1
    if opinfo.variant_test_name != "with_dtype":
        assert checked, f"{opinfo.name}: no sample checked"
