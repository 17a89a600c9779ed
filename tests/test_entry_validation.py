"""Every public entry point validates before a launch (issue 14, class 4): the raw launchers
``registry[op].forward/vjp`` and the ``torch.ops.triton_ops.*`` custom ops refuse a wrongly
shaped, typed or placed upstream gradient, saved statistics or argument, naming the op and the
argument - never reading out of bounds."""
import pytest
import torch

import triton_ops
from triton_ops.spec import _to_op_args
from helpers import DEVICE

OPS = sorted(triton_ops.registry)


def _sample(spec):
    args = spec.sample((6, 10), torch.float32, DEVICE, torch.Generator().manual_seed(0))
    out = spec.forward(*args)
    return args, out


@pytest.mark.parametrize("name", OPS)
def test_raw_vjp_refuses_a_bad_grad(name):
    spec = triton_ops.registry[name]
    args, out = _sample(spec)
    spec.vjp(*args, torch.ones_like(out))  # the right one is accepted
    wrong_shape = torch.ones(out.numel() + 3, dtype=out.dtype, device=DEVICE)
    with pytest.raises(ValueError, match=rf"triton_ops\.{name}: grad has shape"):
        spec.vjp(*args, wrong_shape)
    with pytest.raises(TypeError, match=rf"triton_ops\.{name}: grad has dtype"):
        spec.vjp(*args, torch.ones_like(out, dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"triton_ops\.{name}: grad is on meta"):
        spec.vjp(*args, torch.ones_like(out, device="meta"))
    with pytest.raises(TypeError, match=rf"triton_ops\.{name}: grad must be a tensor"):
        spec.vjp(*args, 1.0)


@pytest.mark.parametrize("name", [n for n in OPS if triton_ops.registry[n].n_saved])
def test_raw_vjp_refuses_bad_saved_statistics(name):
    spec = triton_ops.registry[name]
    args, out = _sample(spec)
    saved = list(spec.launchers.forward_saved(*spec.check(*spec.bind(*args)))[1:])
    spec.vjp(*args, torch.ones_like(out), saved=saved)
    with pytest.raises(ValueError, match=rf"triton_ops\.{name}: saved must hold"):
        spec.vjp(*args, torch.ones_like(out), saved=saved[:-1])
    short = [s[:0] if s.dim() else s.reshape(1).expand(0) for s in saved]
    if any(s.shape != t.shape for s, t in zip(short, saved)):
        with pytest.raises(ValueError, match=rf"triton_ops\.{name}: saved\[\d\] has shape"):
            spec.vjp(*args, torch.ones_like(out), saved=short)


@pytest.mark.parametrize("name", OPS)
def test_custom_ops_validate_when_called_directly(name):
    spec = triton_ops.registry[name]
    args, out = _sample(spec)
    values = spec.check(*spec.bind(*args))
    op_args = _to_op_args(spec.args, values)
    # a wrongly typed first tensor argument (an integer tensor where a float one goes)
    first = next(i for i, v in enumerate(op_args) if isinstance(v, torch.Tensor))
    bad = list(op_args)
    bad[first] = torch.ones(op_args[first].shape, dtype=torch.int16, device=DEVICE)
    if op_args[first].is_floating_point():
        with pytest.raises((TypeError, ValueError), match=rf"triton_ops\.{name}"):
            spec.custom_op(*bad)
    # the VJP op with a wrongly shaped upstream gradient
    saved = [list(spec.launchers.forward_saved(*values)[1:])] if spec.n_saved else []
    needs = [isinstance(values[i], torch.Tensor) and values[i].is_floating_point() for i in spec.tensor_args]
    spec.vjp_op(*op_args, *saved, torch.ones_like(out), needs)
    with pytest.raises(ValueError, match=rf"triton_ops\.{name}: grad has shape"):
        spec.vjp_op(*op_args, *saved, torch.ones(out.numel() + 1, dtype=out.dtype, device=DEVICE), needs)


def test_custom_op_checks_shapes():
    a, b = torch.randn(3, 4, device=DEVICE), torch.randn(5, 4, device=DEVICE)
    with pytest.raises(ValueError, match="triton_ops.mul: cannot broadcast"):
        torch.ops.triton_ops.mul(a, 0.0, b, 0.0)
    with pytest.raises(ValueError, match="triton_ops.linear"):
        torch.ops.triton_ops.linear(a, b.T.contiguous(), None, None, None)  # in_features 4 vs 5
