"""Opt-in pytest plugin: on a CPU machine, flags what a CUDA machine would reject for device
placement (``PYTHONPATH=. pytest -p device_audit tests/...``). The library runs unchanged;
the plugin only watches.

On CPU, ``DEVICE`` (tests/helpers.py) is ``cpu`` and a tensor a test forgot to move there works;
on a GPU it is refused. The plugin tracks where each tensor *would* live: a tensor made without
a ``device=`` is on the host; one made with ``device=DEVICE`` (that very object) or moved with
``.to(DEVICE)`` is on the device; ``.cpu()`` goes back to the host; any other op's result lives
where its inputs do. Flagged (raised as ``DeviceAudit`` and listed at the end):
  - an op that mixes host tensors (not 0-d) with device ones (``torch.equal``, arithmetic, a
    gradient on the host for a device output...), as CUDA refuses;
  - a kernel launch, or ``runtime.check_devices``, that gets a host tensor;
  - ``count_bytes`` (the interpreter alone counts);
  - a CPU generator used to draw a device tensor.
Tests a skipif marker skips off the interpreter are not audited (they never run on a GPU).
Read the audit's section of the report, not the failures alone: under a TorchFunctionMode
torch.compile refuses to trace (``torch._dynamo.exc.Unsupported``) and torch 2.13's
``F.l1_loss(..., weight=)`` computes another value; those tests fail here for that alone.
A tensor whose place cannot be told (made before this plugin, by autograd's engine, or moved
by a ``torch.device`` that is not DEVICE) matches either place: the audit misses, it does not
invent."""
from __future__ import annotations

import os
import sys
import weakref

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

HOST, DEV, ANY = "host", "device", "any"


class DeviceAudit(AssertionError):
    pass


_state: dict[int, tuple] = {}
_flags: list[str] = []
_test = ["(collection)"]


def _get(t) -> str:
    hit = _state.get(id(t))
    return hit[1] if hit and hit[0]() is t else ANY


def _set(t, where) -> None:
    key = id(t)
    _state[key] = (weakref.ref(t, lambda _, key=key: _state.pop(key, None)), where)


def _flag(what: str):
    if _interpreter_only[0]:  # never runs on a GPU
        return
    _flags.append(f"{_test[0]}: {what}")
    raise DeviceAudit(f"device audit: {what}")


def _device_place(device):
    """Where a ``device=`` argument puts a tensor: DEVICE itself, the host, or unknown."""
    from helpers import DEVICE

    if device is DEVICE:
        return DEV
    if isinstance(device, str):
        return HOST if device.startswith("cpu") else DEV
    if isinstance(device, torch.device):
        return DEV if device.type == "cuda" else ANY
    return ANY


_MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda}
_FREE = {torch.Tensor.copy_, torch.Tensor.__setitem__, torch.Tensor.__getitem__}  # CUDA mixes these


def _tensors(*trees):
    return [t for t in tree_flatten(list(trees))[0] if isinstance(t, torch.Tensor)]


class _Mode(TorchFunctionMode):
    inside_kernel = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.inside_kernel:
            return func(*args, **kwargs)
        inputs = _tensors(args, kwargs)
        where = self._where(func, args, kwargs, inputs)
        out = func(*args, **kwargs)
        if where is not None:
            if func in _MOVES and out is args[0] and where != _get(out):
                # a move that CPU answers with the tensor itself: an alias when that is harmless
                if out.requires_grad or isinstance(out, torch.nn.Parameter):
                    where = ANY
                else:
                    out = out.detach()
            for t in _tensors(out):
                _set(t, where)
        return out

    def _where(self, func, args, kwargs, inputs):
        if func is torch.Tensor.cpu:
            return HOST
        if func is torch.Tensor.cuda:
            return DEV
        if func is torch.Tensor.to:
            rest = list(args[1:]) + [kwargs.get("device")]
            for a in rest:
                if isinstance(a, torch.Tensor):
                    return _get(a)
                if isinstance(a, (str, torch.device)):
                    return _device_place(a)
            return _get(args[0])
        if "device" in kwargs and kwargs["device"] is not None:
            where = _device_place(kwargs["device"])
            if where == DEV and isinstance(kwargs.get("generator"), torch.Generator):
                _flag(f"{_name(func)} draws a device tensor from a CPU generator")
            return where
        if func in _FREE:
            return _get(args[0])
        if not inputs:
            return HOST
        places = {_get(t) for t in inputs if not (_get(t) == HOST and t.dim() == 0)}
        if HOST in places and DEV in places:
            _flag(f"{_name(func)} mixes host and device tensors "
                  f"{[(tuple(t.shape), _get(t)) for t in inputs]}")
        if HOST in places or (not places and inputs):
            return HOST
        return DEV if DEV in places else ANY


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


_mode = _Mode()


def _check_tensors(where, values):
    for v in values:
        base = getattr(v, "base", None)
        for t in (v, base):
            if isinstance(t, torch.Tensor) and _get(t) == HOST:
                _flag(f"{where} gets a host tensor {tuple(t.shape)} {t.dtype}")


def pytest_configure(config):
    from triton.runtime import interpreter

    import triton_ops
    from triton_ops import counting, runtime

    launch = interpreter.GridExecutor.__call__

    def audited_launch(self, *args, **kwargs):
        _check_tensors(f"kernel {self.fn.__name__}", list(args) + list(kwargs.values()))
        _Mode.inside_kernel = True
        try:
            return launch(self, *args, **kwargs)
        finally:
            _Mode.inside_kernel = False

    interpreter.GridExecutor.__call__ = audited_launch
    check = runtime.check_devices

    def audited_check(op, named):
        _check_tensors(f"triton_ops.{op}", named.values())
        return check(op, named)

    runtime.check_devices = audited_check
    count = counting.count_bytes

    def audited_count():
        if sys._getframe(1).f_code.co_name != "counted_bytes":  # helpers' counts nothing on a GPU
            _flag("count_bytes (the interpreter alone counts) in a test that runs on a GPU")
        return count()

    counting.count_bytes = audited_count
    assert triton_ops.backend() == "interpreter"
    _mode.__enter__()


_interpreter_only = [False]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # a test that a skipif marker lets run here is taken for one skipped on a GPU (the suite's
    # skipif conditions are "not the interpreter"; "GPU only" ones are true here and skip)
    _test[0] = item.nodeid
    _interpreter_only[0] = any(m.args and m.args[0] is False for m in item.iter_markers("skipif"))


def pytest_unconfigure(config):
    out = os.environ.get("DEVICE_AUDIT_OUT")
    if out and _flags:
        with open(out, "a") as f:
            f.write("\n".join(_flags) + "\n")


def pytest_terminal_summary(terminalreporter):
    if _flags:
        terminalreporter.section("device audit")
        for line in _flags:
            terminalreporter.write_line(line)
