"""Training loops: nn drop-ins, replace(), a compiled training step, autocast, DDP."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import triton_ops
from triton_ops import nn as tnn
from helpers import DEVICE

HERE = os.path.dirname(__file__)


def _mixed_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.LayerNorm(12), torch.nn.Linear(12, 24), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(24, 16),
        torch.nn.ELU(0.5), torch.nn.Dropout(0.0), torch.nn.Linear(16, 16), torch.nn.LeakyReLU(0.2),
        torch.nn.GELU(),  # exact erf GELU: swapped too, onto gelu_erf
        torch.nn.Linear(16, 5)).to(DEVICE, torch.float64)


def test_state_dict_round_trips():
    pairs = [(tnn.Linear(7, 3), torch.nn.Linear(7, 3)), (tnn.Linear(7, 3, bias=False), torch.nn.Linear(7, 3, bias=False)),
             (tnn.LayerNorm((4, 5)), torch.nn.LayerNorm((4, 5))),
             (tnn.LayerNorm(5, elementwise_affine=False), torch.nn.LayerNorm(5, elementwise_affine=False))]
    for ours, theirs in pairs:
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        ours.load_state_dict(theirs.state_dict())
        theirs.load_state_dict(ours.state_dict())
        for k, v in ours.state_dict().items():
            assert v.shape == theirs.state_dict()[k].shape and torch.equal(v, theirs.state_dict()[k])


def test_replace_matches_torch_outputs_and_gradients():
    reference = _mixed_model()
    model = _mixed_model()
    params_before = [id(p) for p in model.parameters()]
    model = tnn.replace(model, verbose=False)
    swapped = {old for _, old, _ in model.triton_ops_replaced}
    assert swapped == {"LayerNorm", "Linear", "GELU", "ELU", "LeakyReLU"}
    assert type(model[8]) is tnn.GELU and model[8].approximate == "none" and model[8].kernel == "gelu_erf"
    assert type(model[2]) is tnn.GELU and model[2].kernel == "gelu" and type(model[1]) is tnn.Linear
    assert [id(p) for p in model.parameters()] == params_before  # the same Parameter objects
    x = torch.randn(6, 12, dtype=torch.float64, device=DEVICE)
    y = torch.randint(0, 5, (6,), device=DEVICE)
    loss_ours = tnn.CrossEntropyLoss()(model(x), y)
    loss_ref = torch.nn.CrossEntropyLoss()(reference(x), y)
    loss_ours.backward()
    loss_ref.backward()
    assert torch.allclose(loss_ours, loss_ref, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-9, atol=1e-12), name
    loss_module = tnn.replace(torch.nn.CrossEntropyLoss(label_smoothing=0.1), verbose=False)
    assert type(loss_module) is tnn.CrossEntropyLoss and loss_module.label_smoothing == 0.1


def test_fuse_activations_keeps_the_math():
    model = tnn.replace(_mixed_model(), verbose=False)
    x = torch.randn(4, 12, dtype=torch.float64, device=DEVICE)
    before = model(x)
    tnn.fuse_activations(model)
    assert model[1].activation == "gelu" and isinstance(model[2], torch.nn.Identity)
    assert model[6].activation is None  # LeakyReLU(0.2) is not the op's default slope: left alone
    assert torch.allclose(model(x), before, rtol=1e-12, atol=1e-12)


def test_compiled_training_step_matches_eager():
    torch._dynamo.reset()
    model = tnn.replace(_mixed_model().float(), verbose=False)
    tnn.fuse_activations(model)
    loss_fn = tnn.CrossEntropyLoss()
    x = torch.randn(8, 12, device=DEVICE)
    y = torch.randint(0, 5, (8,), device=DEVICE)

    def forward_loss(x, y):
        return loss_fn(model(x), y)

    eager = forward_loss(x, y)
    eager_grads = torch.autograd.grad(eager, list(model.parameters()))
    compiled = torch.compile(forward_loss, fullgraph=True)
    loss = compiled(x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert torch.allclose(loss, eager, rtol=1e-6, atol=1e-6)
    for g, e in zip(grads, eager_grads):
        assert torch.allclose(g, e, rtol=1e-5, atol=1e-6)


def test_autocast_dtypes():
    dtype = torch.bfloat16
    lin = tnn.Linear(16, 8).to(DEVICE)
    ln = tnn.LayerNorm(8).to(DEVICE)
    x = torch.randn(4, 16, device=DEVICE)
    with torch.autocast(DEVICE.type, dtype=dtype):
        h = lin(x)
        mm = triton_ops.matmul(x, x.t())
        n = ln(h)
        loss = tnn.CrossEntropyLoss()(n, torch.tensor([0, 1, 2, 3], device=DEVICE))
        ref_h = torch.nn.functional.linear(x, lin.weight, lin.bias)
    assert h.dtype == mm.dtype == ref_h.dtype == dtype
    assert n.dtype == torch.float32 and loss.dtype == torch.float32
    loss.backward()
    assert lin.weight.grad.dtype == torch.float32  # gradients in each parameter's own dtype
    torch.testing.assert_close(h.float(), ref_h.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the gloo check runs on CPU tensors")
def test_ddp_two_processes_match_one():
    proc = subprocess.run([sys.executable, os.path.join(HERE, "ddp_check.py")], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=os.path.dirname(HERE)))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ddp ok" in proc.stdout
