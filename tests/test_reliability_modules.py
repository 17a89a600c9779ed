"""Issue 14, classes 9 and 10: module surgery that never changes a module it was not asked to
change, and outputs that may be modified in place like torch's."""
from __future__ import annotations

import pytest
import torch

import triton_ops
import triton_ops.nn as tnn
from helpers import DEVICE
from reliability_helpers import OPS, float_args, sample, upstream


def test_replace_a_module_used_twice():
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 4).double()
    model = torch.nn.Sequential(shared, torch.nn.Tanh(), shared, torch.nn.Sequential(shared)).to(DEVICE)
    x = torch.randn(3, 4, dtype=torch.float64, device=DEVICE)
    expected = model(x)
    original_dict = dict(shared.__dict__)
    tnn.replace(model, verbose=False)
    assert isinstance(model[0], tnn.Linear) and model[0] is model[2] is model[3][0]
    assert model[0].weight is shared.weight  # the same parameters (optimizer references hold)
    assert type(shared) is torch.nn.Linear and shared.__dict__ is not model[0].__dict__
    assert shared.__dict__ == original_dict and "activation" not in shared.__dict__
    model[0].register_buffer("extra", torch.zeros(1))
    assert "extra" not in shared._buffers
    torch.testing.assert_close(model(x), expected)


def test_fuse_activations_leaves_a_shared_linear_alone():
    torch.manual_seed(0)
    lin = tnn.Linear(4, 4).double().to(DEVICE)
    fused_here = torch.nn.Sequential(lin, tnn.GELU())
    elsewhere = torch.nn.Sequential(lin, torch.nn.Identity())
    x = torch.randn(3, 4, dtype=torch.float64, device=DEVICE)
    before_here, before_elsewhere = fused_here(x), elsewhere(x)
    tnn.fuse_activations(fused_here)
    assert fused_here[0].activation == "gelu" and isinstance(fused_here[1], torch.nn.Identity)
    assert lin.activation is None and fused_here[0].weight is lin.weight
    torch.testing.assert_close(fused_here(x), before_here)
    torch.testing.assert_close(elsewhere(x), before_elsewhere)


def test_relu_inplace_after_a_replaced_linear_trains():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(inplace=True), torch.nn.Linear(4, 2)).double()
    twin = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
    twin.load_state_dict(model.state_dict())
    model, twin = model.to(DEVICE), twin.to(DEVICE)
    tnn.replace(model, verbose=False)
    x = torch.randn(3, 2, 5, dtype=torch.float64, device=DEVICE)  # 3-D: the output is reshaped inside
    model(x).square().sum().backward()
    twin(x).square().sum().backward()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.parametrize("name", OPS)
def test_every_output_may_be_modified_in_place(name):
    spec = triton_ops.registry[name]
    args = sample(name)
    idx = float_args(name, args)
    for i in idx:
        args[i] = args[i].requires_grad_()
    out = spec.fn(*args)
    g = upstream(out)
    plain = torch.autograd.grad(out, [args[i] for i in idx], g, allow_unused=True)
    out = spec.fn(*args)
    assert out._base is None, f"{name}: the output is a view"
    out.mul_(3.0)  # autograd must route the gradient through the in-place op
    scaled = torch.autograd.grad(out, [args[i] for i in idx], g, allow_unused=True)
    for a, b in zip(plain, scaled):
        if a is not None:
            torch.testing.assert_close(b, 3.0 * a)
