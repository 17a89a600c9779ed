"""Issue 14, class 8: FakeTensorMode, meta tensors, torch.export and CUDA graphs - no op reads
tensor values on the host outside domain-check mode, and an out-of-range index never reads out
of bounds."""
from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import triton_ops
from helpers import DEVICE
from reliability_helpers import OPS, float_args, sample


def _forward_backward(name, args):
    spec = triton_ops.registry[name]
    for i in float_args(name, args):
        args[i] = args[i].requires_grad_()
    out = spec.fn(*args)
    grads = torch.autograd.grad(out, [args[i] for i in float_args(name, args)], torch.ones_like(out),
                                allow_unused=True)
    return out, grads


def _eager(name):
    out, grads = _forward_backward(name, sample(name))
    return (out.shape, out.dtype), [(g.shape, g.dtype) if g is not None else None for g in grads]


@pytest.mark.parametrize("name", OPS)
def test_every_op_under_fake_tensor_mode(name):
    expected = _eager(name)
    with FakeTensorMode() as mode:
        args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in sample(name)]
        out, grads = _forward_backward(name, args)
        got = (out.shape, out.dtype), [(g.shape, g.dtype) if g is not None else None for g in grads]
    assert got == expected


@pytest.mark.parametrize("name", OPS)
def test_every_op_on_meta_tensors(name):
    expected = _eager(name)
    args = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in sample(name)]
    out, grads = _forward_backward(name, args)
    assert out.device.type == "meta"
    assert ((out.shape, out.dtype), [(g.shape, g.dtype) if g is not None else None for g in grads]) == expected


def test_out_of_range_indices_need_no_values_when_traced():
    z = torch.randn(3, 5, device=DEVICE)
    bad_target = torch.tensor([0, 7, -3], device=DEVICE)
    w = torch.randn(4, 2, device=DEVICE)
    bad_idx = torch.tensor([1, 9], device=DEVICE)
    with FakeTensorMode() as mode:  # no .item(): data-dependent checks are skipped, shapes come out
        assert triton_ops.cross_entropy_logits(mode.from_tensor(z), mode.from_tensor(bad_target)).shape == ()
        assert triton_ops.embedding(mode.from_tensor(bad_idx), mode.from_tensor(w)).shape == (2, 2)
    with pytest.raises(IndexError):  # eager on CPU: checked before launch
        if DEVICE.type != "cpu":
            raise IndexError("only CPU tensors are checked before launch")
        triton_ops.cross_entropy_logits(z, bad_target)


def test_unchecked_out_of_range_indices_give_nan_not_reads():
    """What CUDA gets (no pre-launch check there): the declared launchers themselves, past the checks."""
    cel = triton_ops.registry["cross_entropy_logits"].launchers
    z = torch.randn(3, 5, dtype=torch.float64, device=DEVICE)
    target = torch.tensor([0, 7, -3], device=DEVICE)
    out, stats = cel.forward_saved(z, target, 1, -100, 0.0, "none")
    assert out[0].isfinite() and out[1:].isnan().all()
    dz, _ = cel.vjp(z, target, 1, -100, 0.0, "none", torch.ones(3, dtype=torch.float64, device=DEVICE),
                    saved=[stats])
    assert dz[0].isfinite().all() and dz[1:].isnan().all()
    w = torch.randn(4, 2, dtype=torch.float64, device=DEVICE)
    rows = triton_ops.registry["embedding"].launchers.forward(torch.tensor([1, 9, -1], device=DEVICE), w)
    assert torch.equal(rows[0], w[1]) and rows[1:].isnan().all()


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 8)
        self.ln = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, idx, target):
        h = triton_ops.embedding(idx, self.emb.weight)
        h = triton_ops.layer_norm(h, [8], self.ln.weight, self.ln.bias)
        z = triton_ops.linear(h, self.fc.weight, self.fc.bias, "gelu")
        return triton_ops.cross_entropy_logits(z, target)


def test_torch_export_of_a_small_model():
    model = _Model().to(DEVICE).double()
    idx = torch.tensor([[1, 2, 3], [4, 5, 9]], device=DEVICE)
    target = torch.tensor([[0, 1, 4], [2, 3, -100]], device=DEVICE)
    exported = torch.export.export(model, (idx, target))
    torch.testing.assert_close(exported.module()(idx, target), model(idx, target))


def test_ops_with_a_domain_trace_under_torch_compile_fullgraph():
    # the domain-check flag is a ContextVar dynamo cannot read: the checks must not reach it while tracing
    torch._dynamo.reset()
    a = torch.rand(5, dtype=torch.float64, device=DEVICE) + 0.5
    b = torch.rand(5, dtype=torch.float64, device=DEVICE) + 0.5
    compiled = torch.compile(lambda a, b: triton_ops.div(triton_ops.log(a), b), fullgraph=True)
    torch.testing.assert_close(compiled(a, b), torch.log(a) / b)
    torch._dynamo.reset()


def test_compiled_autograd_over_an_eager_graph():
    """Compiled autograd (``torch._dynamo.compiled_autograd``) traces the backward of a graph the
    eager route built: our Functions' backward hands the tracer the VJP custom ops (opaque to it),
    not the launchers, and the gradients equal the eager backward's."""
    from torch._dynamo import compiled_autograd

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Model().to(DEVICE).double()
    idx = torch.tensor([[1, 2, 3], [4, 5, 9]], device=DEVICE)
    target = torch.tensor([[0, 1, 4], [2, 3, -100]], device=DEVICE)
    params = list(model.parameters())
    expected = torch.autograd.grad(model(idx, target), params)
    traced = []

    def backend(gm, example_inputs):
        traced.append({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
        return gm.forward

    loss = model(idx, target)  # built eagerly, outside the compiled-autograd region
    with compiled_autograd._enable(torch.compile(backend=backend, fullgraph=True)):
        loss.backward()
    assert traced and any(t.startswith("triton_ops.") and t.endswith("_vjp.default") for t in traced[0])
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-12)
    torch._dynamo.reset()


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a GPU")
def test_cuda_graph_capture_of_mlp_forward_and_backward():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(approximate="tanh"), torch.nn.LayerNorm(64),
                              torch.nn.Linear(64, 10)).cuda()
    import triton_ops.nn as tnn

    tnn.replace(mlp, verbose=False)
    x = torch.randn(16, 32, device="cuda")
    target = torch.randint(0, 10, (16,), device="cuda")

    def step():
        for p in mlp.parameters():
            p.grad = None
        loss = triton_ops.cross_entropy_logits(mlp(x), target)
        loss.backward()
        return loss

    eager_loss = step().detach().clone()
    eager_grads = [p.grad.detach().clone() for p in mlp.parameters()]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm up (compile every kernel) outside the capture
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    for p in mlp.parameters():
        p.grad = None
    with torch.cuda.graph(graph):
        static_loss = triton_ops.cross_entropy_logits(mlp(x), target)
        static_loss.backward()
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(static_loss, eager_loss)
    for p, g in zip(mlp.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g)
