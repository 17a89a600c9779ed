"""The generated warm path of the eager route (``triton_ops.eager``): a warm call answers from
its layout's entry without the general code in ``spec``, and every call the warm path does not
cover reaches that general code."""
import inspect

import pytest
import torch

import triton_ops
from triton_ops import replay, runtime

from helpers import DEVICE, Allocations, eager_grads, small_args

OPS = [n for n in triton_ops.registry if n != "identity"]


def _path(name):
    return triton_ops.registry[name].fn.__globals__


class _Refused(Exception):
    pass


def _refuse(*a, **kw):
    raise _Refused


@pytest.mark.parametrize("name", OPS)
def test_warm_calls_never_reach_the_general_code(name, monkeypatch):
    """Once a layout is recorded, a call with and without gradient and its backward run the
    generated code alone: the general route and the recording paths are never entered."""
    spec = triton_ops.registry[name]
    spec.replays.clear()  # this test's layouts alone (an earlier probability-target call reads no index)
    args = small_args(spec, 0)
    expected, _ = eager_grads(spec, args)
    with torch.no_grad():
        expected_no_grad = spec.fn(*args)
    names = _path(name)
    # Under the interpreter the index range checks (cross-entropy targets, embedding indices)
    # read values, so those calls pass through the general code to be checked each time (CUDA
    # does not check them: a host sync).
    reads_values = all(e.checked is None for e in spec.replays.values() if isinstance(e, replay.Entry))
    assert reads_values == (runtime.INTERPRETER
                            and name in ("cross_entropy_logits", "embedding", "linear_cross_entropy"))
    if not reads_values:
        monkeypatch.setitem(names, "_general", _refuse)
    monkeypatch.setitem(names, "_vjp", _refuse)
    monkeypatch.setitem(names, "_run", _refuse)
    before = replay.replay_count()
    got, _ = eager_grads(spec, args)
    with torch.no_grad():
        got_no_grad = spec.fn(*args)
    assert replay.replay_count() - before == 3
    assert all(torch.equal(a.nan_to_num(), b.nan_to_num()) for a, b in zip(got, expected))
    assert torch.equal(got_no_grad.nan_to_num(), expected_no_grad.nan_to_num())


class _Counting:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *a):
        self.calls += 1
        return self.fn(*a)


class _Sub(torch.Tensor):
    pass


@pytest.mark.parametrize("case", ["subclass", "meta", "autocast", "domain_checks", "descriptor", "saved_hooks"])
def test_calls_outside_the_warm_path_take_the_general_code(case, monkeypatch):
    """Each case the warm path leaves out reaches ``spec``'s general code (and is right)."""
    name = {"autocast": "layer_norm", "descriptor": "mul"}.get(case, "log")
    spec = triton_ops.registry[name]
    args = list(small_args(spec, 1))
    if name == "log":
        args[0] = args[0].abs() + 0.5
    spec.fn(*args)
    spec.fn(*args)  # recorded, checked: warm from here on
    general = _Counting(_path(name)["_general"])
    monkeypatch.setitem(_path(name), "_general", general)
    if case == "subclass":
        out = spec.fn(args[0].as_subclass(_Sub))
        assert torch.allclose(out.as_subclass(torch.Tensor), torch.log(args[0]))
    elif case == "meta":
        out = spec.fn(args[0].to("meta"))
        assert out.is_meta and out.shape == args[0].shape
    elif case == "autocast":
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            out = spec.fn(*args)
        assert out.dtype == torch.float32  # norms run in float32 under autocast, as PyTorch's
    elif case == "domain_checks":
        with triton_ops.domain_checks(), pytest.raises(triton_ops.DomainError):
            spec.fn(-args[0])
    elif case == "descriptor":
        a, b = args[0], args[1]
        out = spec.fn(a, b, triton_ops.Broadcast(a.shape, b.shape))
        assert torch.equal(out, a * b)
    elif case == "saved_hooks":  # the backward keys its replay on every layout
        x = args[0].clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t * 1, lambda t: t):
            out = spec.fn(x)
        (g,) = torch.autograd.grad(out, x, torch.ones_like(out))
        assert torch.allclose(g, 1 / x.detach())
        return
    assert general.calls == 1


def test_the_public_function_binds_as_its_signature_says():
    spec = triton_ops.registry["leaky_relu"]
    x = torch.randn(3, 5, device=DEVICE)
    assert str(inspect.signature(spec.fn)) == "(x, negative_slope=0.01)"
    assert torch.equal(spec.fn(x, negative_slope=0.2), spec.fn(x, 0.2))
    assert torch.equal(spec.fn(x=x), spec.fn(x, 0.01))
    with pytest.raises(TypeError):
        spec.fn(x, 0.2, 0.3)
    with pytest.raises(TypeError):
        spec.fn(x, slope=0.2)


def test_a_number_operand_is_warm_too():
    """Binary ops take a Python number for either operand; such calls replay like tensor ones."""
    x = torch.randn(3, 5, device=DEVICE)
    triton_ops.mul(x, 2.0)
    triton_ops.mul(x, 2.0)
    before = replay.replay_count()
    assert torch.equal(triton_ops.mul(x, 2.0), x * 2.0)
    assert torch.equal(triton_ops.mul(3, x), 3 * x)  # another layout: recorded
    assert torch.equal(triton_ops.mul(x, 2.0), x * 2.0)
    assert replay.replay_count() - before == 2


LAYOUT_ONLY = [(n, a) for n, s in triton_ops.registry.items() for a in s.vjp_layout_only]


@pytest.mark.parametrize("name,arg", LAYOUT_ONLY)
def test_a_layout_only_argument_is_never_read_by_the_vjp(name, arg):
    """``vjp_layout_only`` is a promise: the VJP's gradients do not change when that argument's
    values do (NaN here, or an index out of range: anything read would show). The eager route
    then keeps it unsaved, so changing it in place before the backward is harmless."""
    spec = triton_ops.registry[name]
    args = list(small_args(spec, 2))
    i = [a.name for a in spec.args].index(arg)
    # the forward's statistics (linear's pre-activation) come from the true arguments
    out, *saved = spec.launchers.forward_saved(*args) if spec.n_saved else (spec.forward(*args),)
    kw = {"saved": saved} if spec.n_saved else {}
    g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    needs = [True if isinstance(args[j], torch.Tensor) and args[j].is_floating_point() else False
             for j in spec.tensor_args]
    expected = spec.vjp(*args, g, needs=needs, **kw)
    poisoned = list(args)
    poisoned[i] = torch.full_like(args[i], float("nan") if args[i].is_floating_point() else -7)
    got = spec.vjp(*poisoned, g, needs=needs, **kw)
    assert all((e is None and r is None) or torch.equal(e, r) for e, r in zip(expected, got))
    # eager: the argument changed in place between forward and backward
    grad_args = [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) and n else a
                 for a, n in zip(args, [j in spec.tensor_args and needs[spec.tensor_args.index(j)]
                                        for j in range(len(args))])]
    out = spec.fn(*grad_args)
    with torch.no_grad():
        grad_args[i].fill_(float("nan") if grad_args[i].is_floating_point() else -7)
    wanted = [grad_args[j] for j in spec.tensor_args if needs[spec.tensor_args.index(j)]]
    got = torch.autograd.grad(out, wanted, g)
    assert all(torch.equal(e, r) for e, r in zip([e for e in expected if e is not None], got))


def test_a_vjp_that_consumes_its_saved_statistics_does_so_only_when_the_graph_is_not_kept():
    """linear_cross_entropy's eager backward scales the gradients its forward formed in place
    (``vjp_consumes_saved``) when no later backward reads them; with ``retain_graph`` it writes
    new tensors, and every backward is right."""
    spec = triton_ops.registry["linear_cross_entropy"]
    x, w, t, b = (a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point()
                  else a for a in small_args(spec, 3)[:4])
    wanted = [v for v in (x, w, b) if isinstance(v, torch.Tensor)]
    expected = torch.autograd.grad(spec.reference(x, w, t, b), wanted)
    for _ in range(2):  # recorded, then replayed
        loss = spec.fn(x, w, t, b)
        for keep in (True, True, False):
            grads = torch.autograd.grad(loss, wanted, retain_graph=keep)
            assert all(torch.allclose(g, e, rtol=1e-5, atol=1e-6) for g, e in zip(grads, expected))


def test_the_consumed_gradients_are_not_allocated_again():
    """Without retain_graph the backward writes the scaled gradients over the formed ones: it
    allocates nothing of the weight's shape (with it: a new dW)."""
    spec = triton_ops.registry["linear_cross_entropy"]
    x, w, t = (a.detach().clone().requires_grad_(True) if a.is_floating_point() else a
               for a in small_args(spec, 4)[:3])
    for keep in (True, False):
        loss = spec.fn(x, w, t)
        with Allocations() as seen:
            torch.autograd.grad(loss, (x, w), retain_graph=keep)
        allocated = [shape for _, shape, op in seen.numels if "empty" in op or "zeros" in op]
        assert (tuple(w.shape) in allocated) == keep


def test_check_warm_runs_every_public_function_three_times_against_its_reference(monkeypatch, capsys):
    """``python -m triton_ops check --warm`` (the GPU check's first step): every op's public
    function and gradients, recorded then replayed, against the float64 reference; a wrong
    result is reported, with the other ops still checked."""
    from triton_ops.__main__ import main

    assert main(["check", "--warm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len([ln for ln in lines if ln.startswith("ok ")]) == len(triton_ops.registry)
    assert all(ln.endswith("replayed calls 4") for ln in lines if ln.startswith("ok  gelu "))
    spec = triton_ops.registry["gelu"]
    monkeypatch.setattr(spec, "reference", lambda x: torch.nn.functional.gelu(x, approximate="tanh") * 1.01)
    assert main(["check", "--warm", "gelu", "relu"]) == 1
    out = capsys.readouterr().out
    assert "BAD gelu" in out and "ok  relu" in out


SHAPE_ONLY = [(n, a) for n, s in triton_ops.registry.items() for a in s.vjp_shape_only]


@pytest.mark.parametrize("name,arg", SHAPE_ONLY)
def test_an_argument_whose_shape_alone_the_vjp_reads_is_not_kept_alive(name, arg):
    """``OpSpec.vjp_shape_only`` (sum's input): the eager Function keeps its shape, not the
    tensor, so the caller's dropping it frees it as eager torch does; the gradients (plain, and
    under create_graph through the VJP custom op) are the raw VJP's."""
    import gc
    import weakref

    spec = triton_ops.registry[name]
    position = [a.name for a in spec.args].index(arg)
    args = list(small_args(spec, 0))
    if spec.args[position].kind == "tensor" and args[position].dim() == 0:  # replicate's 0-d s
        args[position] = torch.tensor(1.5, device=DEVICE)
    leaf = args[position].detach().clone().requires_grad_(True)
    expected = None
    for create_graph in (False, False, True):  # recorded, replayed, the custom op's route
        x = leaf * 1.0  # a non-leaf only this frame holds
        alive = weakref.ref(x)
        call = list(args)
        call[position] = x
        out = spec.fn(*call)
        del x, call
        gc.collect()
        assert alive() is None, f"{name}'s autograd node keeps {arg} alive"
        g = torch.linspace(-1, 1, out.numel(), device=out.device).reshape(out.shape)
        (grad,) = torch.autograd.grad(out, [leaf], g, create_graph=create_graph)
        if expected is None:
            values = list(args)
            values[position] = leaf.detach()
            (expected,) = [v for v in spec.vjp(*values, g) if v is not None]
        torch.testing.assert_close(grad.detach(), expected, rtol=0, atol=0)
