"""The two routes into autograd run the same launchers and kernels: the eager route
(``autograd.Function`` or the bare launcher) and the ``torch.library`` custom op (torch.compile,
export, FakeTensorMode, opcheck) give bitwise-identical values and gradients for every op."""
import pytest
import torch
import torch.autograd.forward_ad as fwAD

import triton_ops
from triton_ops.spec import eager_route
from helpers import DEVICE

OPS = sorted(triton_ops.registry)


def _inputs(spec, dtype):
    args = spec.sample((6, 10), dtype, DEVICE, torch.Generator().manual_seed(0))
    return [a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args]


def _run(fn, args):
    out = fn(*args)
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(out)
    return out, torch.autograd.grad(out, leaves, g)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_routes_bitwise_identical(name, dtype):
    spec = triton_ops.registry[name]
    eager_out, eager_grads = _run(spec.fn, _inputs(spec, dtype))
    custom_out, custom_grads = _run(spec.via_custom_op, _inputs(spec, dtype))
    # the routes really differ: the eager call's node is the op's autograd.Function
    assert type(eager_out.grad_fn).__name__ == f"{name}_eagerBackward"
    assert type(custom_out.grad_fn).__name__ != type(eager_out.grad_fn).__name__
    assert eager_out.dtype == custom_out.dtype and eager_out.shape == custom_out.shape
    assert torch.equal(eager_out, custom_out), name
    assert len(eager_grads) == len(custom_grads) >= 1
    for e, c in zip(eager_grads, custom_grads):
        assert e.dtype == c.dtype and e.shape == c.shape and torch.equal(e, c), name


@pytest.mark.parametrize("name", OPS)
def test_no_grad_call_launches_directly(name):
    spec = triton_ops.registry[name]
    args = spec.sample((6, 10), torch.float32, DEVICE, torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = spec.fn(*args)
    assert out.grad_fn is None and torch.equal(out, spec.via_custom_op(*args))


def test_tracing_modes_take_the_custom_op():
    x = torch.randn(3, device=DEVICE)
    assert eager_route((x,), (0,))
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake = mode.from_tensor(x)
        assert not eager_route((fake,), (0,))
        assert triton_ops.gelu(fake).shape == (3,)
    assert not eager_route((x.to("meta"),), (0,))
    with fwAD.dual_level():
        assert not eager_route((x,), (0,))
    from torch.utils._python_dispatch import TorchDispatchMode

    class Seen(TorchDispatchMode):
        ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Seen.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    # a warm call (its layout recorded just before) and a cold one (a layout not seen yet) both
    # take the custom op under the mode: the mode must see the op, not its replayed launches
    triton_ops.gelu(x)
    cold = torch.randn(5, 7, device=DEVICE)
    for call in (x, cold):
        Seen.ops.clear()
        with Seen():
            triton_ops.gelu(call)
        assert any("triton_ops.gelu" in op for op in Seen.ops), (call.shape, Seen.ops)
