"""The eager route's record/replay of launches (``triton_ops.replay``): a warm call with a seen
layout repeats the first call's allocations and launches, pointed at its own tensors.

Under the interpreter a replay launches the same kernels through ``LaunchPlan`` with every
tensor rebuilt from the recorded offsets, so these tests run replayed kernels for real; the
compiled backend's direct launches are checked argument by argument under the compile-only
backend (``test_direct_replay_passes_the_arguments_of_a_normal_call``).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import triton_ops
from triton_ops import replay, runtime
from triton_ops.launchers.pointwise import pointwise
from triton_ops.scalar import identity

from bench import cases
from helpers import DEVICE, eager_grads as _grads, small_args as _args

ROOT = Path(__file__).resolve().parents[1]
OPS = [n for n in triton_ops.registry if n != "identity"]


def _same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))


def _launched_forward(spec, args):
    """The forward launcher a call that wants gradients runs: ``forward_saved`` where the op
    saves statistics (its kernel variant stores them; the no-grad ``forward`` is another one)."""
    values = spec.check(*args)  # rms_norm's eps=None is the dtype's eps from here on
    return spec.forward_saved(*values)[0] if spec.n_saved else spec.forward(*values)


@pytest.mark.parametrize("name", OPS)
def test_warm_call_replays_and_matches_the_launchers(name):
    """The second call of a layout is a replay (forward and VJP), on new values: its output and
    gradients equal the raw launchers' on those values, bit for bit."""
    spec = triton_ops.registry[name]
    _grads(spec, _args(spec, 0))  # records
    before = replay.replay_count()
    args = _args(spec, 1)
    (out, *grads), g = _grads(spec, args)
    replayed = replay.replay_count() - before
    assert replayed == 2, f"{name}: {replayed} of forward + VJP replayed; reasons: {spec.replays.reasons()}"
    assert _same(out, _launched_forward(spec, args))
    needs = spec.default_needs(args)
    expected = [e for e, n in zip(spec.vjp(*args, g, needs=needs), needs) if n]
    assert len(expected) == len(grads) and all(_same(a, b) for a, b in zip(grads, expected))


@pytest.mark.parametrize("name", ["matmul", "linear", "linear_cross_entropy"])
def test_gemm_descriptors_replay_around_new_tensors(name):
    """At shapes whose rows are 16-byte multiples the GEMMs read through TMA descriptors (the
    interpreter runs them): a replay rebuilds each descriptor around the new call's tensors."""
    spec = triton_ops.registry[name]
    # a GPU runs a GEMM of one output tile through pointers (a descriptor gains nothing there):
    # several tiles on a compiled backend
    shape = (16, 32, 32) if runtime.INTERPRETER else (512, 512, 128)
    _grads(spec, _args(spec, 0, shape))
    before = replay.replay_count()
    args = _args(spec, 1, shape)
    (out, *grads), g = _grads(spec, args)
    assert replay.replay_count() - before == 2
    sources = [r.source for e in spec.replays.values() for r in e.values() if isinstance(r, replay.Replay)]
    assert any("descriptor" in s for s in sources)
    assert _same(out, _launched_forward(spec, args))
    needs = spec.default_needs(args)
    expected = [e for e, n in zip(spec.vjp(*args, g, needs=needs), needs) if n]
    assert all(_same(a, b) for a, b in zip(grads, expected))


def test_replay_of_views_at_other_offsets():
    """Inputs that are views at different offsets (same strides, same 16-byte alignment class)
    share one replay, each read at its own offset."""
    base = torch.randn(8, 64, device=DEVICE)
    first, second = base[1:5, 4:20], base[3:7, 36:52]
    assert first.data_ptr() % 16 == second.data_ptr() % 16
    triton_ops.gelu(first)
    before = replay.replay_count()
    out = triton_ops.gelu(second)
    assert replay.replay_count() == before + 1
    assert _same(out, triton_ops.registry["gelu"].forward(second.clone()))


def test_aliased_inputs_are_not_recorded_and_replays_take_any_inputs():
    """``mul(x, x)`` leaves nothing recorded (which input a pointer came from is ambiguous); a
    layout recorded with distinct inputs replays correctly when they alias."""
    x, y = torch.randn(4, 7, device=DEVICE), torch.randn(4, 7, device=DEVICE)
    cache = triton_ops.registry["mul"].replays
    cache.clear()
    triton_ops.mul(x, x)
    (entry,) = cache.values()
    assert "forward" not in entry
    triton_ops.mul(x, y)
    assert isinstance(entry["forward"], replay.Replay)
    assert _same(triton_ops.mul(x, x), x * x)
    assert _same(triton_ops.mul(y, x), y * x)


def test_torch_ops_replay_as_calls_but_not_ones_that_read_values():
    """A torch op on a launcher's path (a sort, arithmetic) replays as the same call on the new
    tensors; one whose output shape depends on values (``nonzero``), or that hands a value to
    Python, keeps the launcher's own path, with the reason."""
    cache = replay.ReplayCache()

    def launcher(x):
        out = pointwise(identity, torch.empty_like(x), x)
        return torch.sort(out + 1, dim=-1, stable=True).values

    for seed in (0, 1):
        x = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed)).to(DEVICE)
        key = replay.layout_key((x,))
        assert _same(cache.run(key, (x,), launcher, x), torch.sort(x + 1, dim=-1).values)
    assert isinstance(cache[key], replay.Replay) and "sort" in str(cache[key].run.__globals__)

    values = replay.ReplayCache()
    for n in (3, 5):
        x = (torch.arange(8.0, device=DEVICE) < n).float()
        key = replay.layout_key((x,))
        assert _same(values.run(key, (x,), torch.nonzero, x), torch.nonzero(x))
    assert isinstance(values[key], str) and "nonzero" in values[key] and values.reasons() == [values[key]]


def test_fills_and_outputs_that_alias_inputs_replay():
    """A new buffer filled with a constant and an output that is an input itself replay as such."""
    cache = replay.ReplayCache()

    def launcher(x, g):
        out = torch.empty_like(x).fill_(2.0)
        return pointwise(identity, out, x, None), g

    for seed in (0, 1):
        x, g = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed)).to(DEVICE), torch.randn(3, 4, device=DEVICE)
        key = replay.layout_key((x, g))
        out, same = cache.run(key, (x, g), launcher, x, g)
        assert same is g and _same(out, x)
    assert isinstance(cache[key], replay.Replay)


def test_layout_key_tells_floats_ints_bools_and_signed_zeros_apart():
    keys = {replay.layout_key((v,)) for v in (0.0, -0.0, 0, False, 1, 1.0, True, None)}
    assert len(keys) == 8
    assert replay.layout_key((torch.randn(2), object())) is None
    # two NaN objects (never equal to each other) are one layout: no new entry per call
    assert replay.layout_key((float("nan"),)) == replay.layout_key((float("nan"),))


def test_arguments_without_a_key_still_replay_once_checked():
    """A Broadcast descriptor has no layout key: its call is checked each time, then replayed on
    the checked arguments (the descriptor is checked away)."""
    a, b = torch.randn(3, 4, device=DEVICE), torch.randn(1, 4, device=DEVICE)
    triton_ops.add(a, b, broadcast=triton_ops.Broadcast(a.shape, b.shape))
    before = replay.replay_count()
    out = triton_ops.add(a, b, broadcast=triton_ops.Broadcast(a.shape, b.shape))
    assert replay.replay_count() == before + 1 and _same(out, a + b)
    with pytest.raises(ValueError):
        triton_ops.add(a, b, broadcast=triton_ops.Broadcast((2, 4), b.shape))


def test_a_layout_that_passed_its_checks_is_checked_again_when_values_matter():
    """Domain checks read values: with them on, a layout that passed before is checked again."""
    x = torch.rand(3, 4, device=DEVICE) + 0.5
    triton_ops.log(x)
    triton_ops.log(x)
    with triton_ops.domain_checks():
        with pytest.raises(triton_ops.DomainError):
            triton_ops.log(-x)


def test_tuned_configs_clear_the_replays():
    x = torch.randn(3, 4, device=DEVICE)
    triton_ops.gelu(x)
    cache = triton_ops.registry["gelu"].replays
    assert len(cache)
    runtime.clear_plan_caches()
    assert len(cache) == 0


_DIRECT = r"""
import json, torch
import triton_ops
from triton_ops import runtime, replay
from bench import cases

calls = []

def flat(a):
    if isinstance(a, torch.Tensor):
        return a.data_ptr()
    if hasattr(a, "base") and hasattr(a, "block_shape"):  # a TMA descriptor: its base and boxes
        return ("desc", a.base.data_ptr(), tuple(a.shape), tuple(a.strides), tuple(a.block_shape))
    return a

def spy(gx, gy, gz, stream, function, packed, metadata, enter, exit, *args):
    calls.append([flat(a) for a in args])

runtime._no_launch = spy  # the compile-only backend's driver call, captured when kernels compile

def normalized(inputs, launches):
    # each pointer as (input, offset) or (n-th new pointer): buffers differ between calls
    spans = [(t.data_ptr(), t.data_ptr() + t.untyped_storage().nbytes(), i) for i, t in enumerate(inputs)]
    fresh, out = {}, []

    def pointer(a):
        hit = [("in", i, a - lo) for lo, hi, i in spans if lo <= a < hi]
        return hit[0] if hit else ("new", fresh.setdefault(a, len(fresh)))

    for args in launches:
        row = []
        for a in args:
            if type(a) is int and a > 1 << 32:
                row.append(pointer(a))
            elif type(a) is tuple and a and a[0] == "desc":
                row.append(("desc", pointer(a[1]), *a[2:]))
            else:
                row.append(repr(a))
        out.append(row)
    return out

descriptors = 0

bad = []
for name in triton_ops.registry:
    if name == "identity":
        continue
    spec = triton_ops.registry[name]
    # GEMMs at a shape whose rows are 16-byte multiples, of more than one output tile: TMA
    # descriptors (on sm_90 and here)
    shape = (128, 32, 32) if spec.family == "matmul" else (3, 5)
    seen = []
    for seed in (0, 1):
        args = cases.make_args(spec, shape, torch.float32, "cpu", torch.Generator().manual_seed(seed))
        positions = cases.diff_positions(spec, args)
        args = list(args)
        for i in positions:
            args[i] = args[i].detach().clone().requires_grad_(True)
        # forward and backward apart: the allocator may reuse a freed forward buffer's address
        del calls[:]
        out = spec.fn(*args)
        forward = list(calls)
        g = torch.ones_like(out)
        del calls[:]
        torch.autograd.grad(out, [args[i] for i in positions], g)
        inputs = [a for a in args if isinstance(a, torch.Tensor)] + [g]
        seen.append((normalized(inputs, forward), normalized(inputs, calls)))
        descriptors += sum(type(a) is tuple and a[0] == "desc" for part in seen[-1] for row in part for a in row)
    if seen[0] != seen[1] or not seen[0][0]:
        bad.append(name)
print(json.dumps({"bad": bad, "replays": replay.replay_count(), "descriptors": descriptors}))
"""


_COMPILE_ONLY_HARNESS = pytest.mark.skipif(
    triton_ops.backend() != "interpreter",
    reason="the compile-only backend stands in for a GPU on a machine without one; on a GPU the "
           "replays launch for real (test_warm_call_replays_and_matches_the_launchers)")


@_COMPILE_ONLY_HARNESS
def test_direct_replay_passes_the_arguments_of_a_normal_call():
    """Compile-only backend (kernels compiled for sm_90, the driver call captured): for every op,
    the replayed second call hands the driver the same arguments as the recorded first call,
    pointers included once read as (input, offset) or (new buffer)."""
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1", PYTHONPATH=str(ROOT))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", _DIRECT], env=env, capture_output=True, text=True, timeout=1200,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert result["replays"] >= 2 * (len(OPS) - 1)
    assert result["descriptors"] > 0  # the GEMMs' TMA descriptors were rebuilt around new bases


_OTHER_DEVICE = r"""
import json, torch
import triton_ops
from triton_ops import runtime, replay
from triton.runtime.driver import driver
from bench import cases

launches = []
driver.active.get_current_stream = lambda device=None: 1000 + device if type(device) is int else None  # names its device

def spy(gx, gy, gz, stream, *rest):
    launches.append((stream, driver.active.device))

runtime._no_launch = spy  # the compile-only backend's driver call, captured when kernels compile
driver.active.device = 1  # the caller's current device; the (CPU) tensors stand for device 0's
bad, replays = [], replay.replay_count()
for name in ("gelu", "mul", "layer_norm", "matmul", "cross_entropy_logits", "embedding"):
    spec = triton_ops.registry[name]
    shape = (128, 32, 32) if spec.family == "matmul" else (8, 16)  # GEMMs through TMA descriptors
    for seed in (0, 1):  # recorded, then replayed
        args = list(cases.make_args(spec, shape, torch.float32, "cpu", torch.Generator().manual_seed(seed)))
        positions = cases.diff_positions(spec, args)
        for i in positions:
            args[i] = args[i].detach().clone().requires_grad_(True)
        del launches[:]
        out = spec.fn(*args)
        torch.autograd.grad(out, [args[i] for i in positions], torch.ones_like(out))
        if not launches or any(seen != (1000, 0) for seen in launches) or driver.active.device != 1:
            bad.append((name, seed, sorted(set(launches)), driver.active.device))
print(json.dumps({"bad": bad, "replays": replay.replay_count() - replays}))
"""


@_COMPILE_ONLY_HARNESS
def test_a_call_from_another_current_device_launches_on_its_tensors_device():
    """Triton launches on the current device; a call whose tensors sit on another one (cuda:1
    tensors while cuda:0 is current) must run there. Compile-only backend: the fake driver's
    current device is 1, the CPU tensors stand for device 0's; every launch, recorded or replayed,
    forward and backward, runs while device 0 is current, on device 0's stream, and device 1 is
    current again afterwards."""
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1", PYTHONPATH=str(ROOT))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", _OTHER_DEVICE], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert result["replays"] >= 6 * 2  # the second call of each op: forward and VJP replayed


def test_layout_key_tells_alignment_apart():
    """A compiled kernel is specialized on 16-byte aligned pointers: a misaligned view of the same
    shape and strides is another layout."""
    buf = torch.randn(65)
    aligned, misaligned = buf[:64].view(4, 16), buf[1:].view(4, 16)
    assert aligned.data_ptr() % 16 == 0 and misaligned.data_ptr() % 16 == 4
    assert replay.layout_key((aligned,)) != replay.layout_key((misaligned,))


def test_vjp_replays_by_upstream_gradient_layout():
    """The VJP's replay is keyed on the upstream gradient's layout: after a dense gradient, an
    expanded one (``out.sum().backward()``) is a call of its own, and both are right."""
    spec = triton_ops.registry["gelu"]
    x = torch.randn(3, 5, device=DEVICE, requires_grad=True)
    ones = torch.ones(3, 5, device=DEVICE)
    for _ in range(2):
        (dense,) = torch.autograd.grad(spec.fn(x), [x], ones)
        spec.fn(x).sum().backward()
    expected = spec.vjp(x.detach(), ones)[0]
    assert _same(dense, expected) and _same(x.grad, 2 * expected)


@pytest.mark.skipif(not runtime.INTERPRETER, reason="class indices are checked on their values under the "
                    "interpreter only (on CUDA that would be a host sync)")
def test_a_check_that_read_values_runs_on_every_call():
    """The interpreter checks class indices on their values: a layout that passed once is
    checked again with an index out of range."""
    z = torch.randn(4, 6, device=DEVICE)
    triton_ops.cross_entropy_logits(z, torch.tensor([0, 1, 2, 3], device=DEVICE))
    triton_ops.cross_entropy_logits(z, torch.tensor([0, 1, 2, 3], device=DEVICE))
    with pytest.raises(IndexError):
        triton_ops.cross_entropy_logits(z, torch.tensor([0, 1, 2, 6], device=DEVICE))


def test_replay_can_be_switched_off(monkeypatch):
    """``TRITON_OPS_REPLAY=0`` (``replay.ENABLED``): every call runs its launcher."""
    monkeypatch.setattr(replay, "ENABLED", False)
    x = torch.randn(3, 7, device=DEVICE)
    before = replay.replay_count()
    for _ in range(3):
        assert _same(triton_ops.gelu(x), triton_ops.registry["gelu"].forward(x))
    assert replay.replay_count() == before
