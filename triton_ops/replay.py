"""Record once, replay after: a launcher call reduced to its allocations and launches.

Every launcher decides its launches from the layout of its arguments (shapes, strides, dtypes,
devices, 16-byte alignment) and their Python values, never from tensor values: so two calls with
the same layout allocate the same buffers and make the same launches with the same arguments,
except for the pointers. ``ReplayCache.run`` runs a launcher's first call per layout while
watching it - a ``TorchDispatchMode`` sees every allocation and every other torch op, and
``runtime.LaunchPlan`` reports every launch - and keeps a ``Replay`` when the call did nothing
but allocate, take views, fill new buffers with constants and launch through ``LaunchPlan``s.
Each pointer is then an offset into an input or a buffer of the call. A warm call with that
layout does the allocations and the driver calls, with one pointer addition per tensor
argument and no Python planning at all.

A launcher that runs any other torch op (a ``copy_``, an ``argsort``, arithmetic) is not
replayed: its calls keep the launcher's own path. So is a call under a launch hook (a
profiler), which must see each launch's metadata. Under the interpreter the replay rebuilds
each launch's tensors as views of the same memory and launches through the ``LaunchPlan``, so
the test suite runs the replayed calls' kernels for real.
"""
from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from . import runtime

aten = torch.ops.aten

# ops that make a new buffer (their output's storage is new); zeros* also fill it
_ALLOCATIONS = {aten.empty.memory_format, aten.empty_strided.default, aten.empty_like.default,
                aten.new_empty.default, aten.new_empty_strided.default}
_ZERO_ALLOCATIONS = {aten.zeros.default, aten.zeros_like.default, aten.new_zeros.default}
_FILLS = {aten.fill_.Scalar: lambda args: args[1], aten.zero_.default: lambda args: 0}
# metadata ops that return a view of (or modify only the metadata of) an existing tensor
_VIEW_LIKE = {aten.set_.source_Storage_storage_offset, aten.set_.source_Storage}

def _tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _tensors(v)


class Unreplayable(Exception):
    """The recorded call did something a replay cannot repeat (the reason is the message)."""


class _Source:
    """Where a tensor's memory comes from: input ``index`` or new buffer ``index`` (numbered
    after the inputs), at ``offset`` bytes from that source's first element."""
    __slots__ = ("index", "offset")

    def __init__(self, index, offset):
        self.index, self.offset = index, offset


class Recorder(TorchDispatchMode):
    """Watches one launcher call: inputs, new buffers, fills and launches, in call order."""

    def __init__(self, inputs):
        super().__init__()
        self.inputs = list(inputs)
        self.buffers: list[torch.Tensor] = []   # kept alive while recording: no storage is reused
        self.by_storage: dict = {}
        self.steps: list = []
        self.failure: str | None = None
        self.aliased = False  # two inputs share memory: record another call of this layout
        for i, t in enumerate(self.inputs):
            if isinstance(t, torch.Tensor):
                key = self._storage_key(t)
                # two inputs on one storage: which one a pointer came from is ambiguous
                self.aliased |= key in self.by_storage
                self.by_storage[key] = None if key in self.by_storage else i

    @staticmethod
    def _storage_key(t):
        return (t.device, t.untyped_storage().data_ptr())

    def fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = why

    def source(self, t: torch.Tensor) -> _Source:
        if t.untyped_storage().nbytes() == 0:
            raise Unreplayable("a launch argument with no memory")
        index = self.by_storage.get(self._storage_key(t), -1)
        if index is None:
            raise Unreplayable("two inputs share the memory a launch argument comes from")
        if index < 0:
            raise Unreplayable("a tensor that is neither an input nor allocated by the call")
        base = self.inputs[index] if index < len(self.inputs) else self.buffers[index - len(self.inputs)]
        return _Source(index, t.data_ptr() - base.data_ptr())

    def describe(self, t: torch.Tensor):
        """(source, shape, strides, dtype) of a tensor the call hands on."""
        return self.source(t), tuple(t.shape), tuple(t.stride()), t.dtype

    # -- events -----------------------------------------------------------------------------

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outs = list(_tensors(out))
        if outs and all(t.device.type == "meta" for t in outs):
            return out  # shape logic on meta tensors (planners): no memory, nothing to repeat
        if func in _ALLOCATIONS or func in _ZERO_ALLOCATIONS:
            self._new_buffer(out)
            if func in _ZERO_ALLOCATIONS:
                self._fill(out, 0)
        elif func in _FILLS:
            self._fill(args[0], _FILLS[func](args))
        elif not (func.is_view or func in _VIEW_LIKE):
            self.fail(f"runs {func}")
        return out

    def _new_buffer(self, t: torch.Tensor) -> None:
        index = len(self.inputs) + len(self.buffers)
        self.buffers.append(t)
        self.by_storage[self._storage_key(t)] = index
        self.steps.append(("alloc", (tuple(t.shape), tuple(t.stride()), t.dtype, t.device)))

    def _fill(self, t: torch.Tensor, value) -> None:
        try:
            src = self.source(t)
        except Unreplayable as e:
            return self.fail(f"fills a tensor: {e}")
        base = self.buffers[src.index - len(self.inputs)] if src.index >= len(self.inputs) else None
        if base is None or src.offset or t.shape != base.shape or t.stride() != base.stride():
            return self.fail("fills something other than a whole new buffer")
        self.steps.append(("fill", (src.index, value)))

    @contextlib.contextmanager
    def launching(self, plan, values: dict):
        """Around a ``LaunchPlan`` launch: notes it, then lets it run unwatched (the interpreter
        copies tensors in and out of a kernel with torch ops that are not the launcher's)."""
        self._launch(plan, values)
        with _disable_current_modes():
            yield

    def _launch(self, plan, values: dict) -> None:
        tensors, constants = {}, {}
        try:
            for name, v in values.items():
                if isinstance(v, torch.Tensor):
                    tensors[name] = self.describe(v)
                elif type(v) is tuple and any(isinstance(x, torch.Tensor) for x in v):
                    raise Unreplayable("tensors inside a tuple")
                else:
                    constants[name] = v
        except Unreplayable as e:
            return self.fail(f"launches {plan.kernel.__name__} with {e}")
        self.steps.append(("launch", (plan, values, tensors, constants)))

    # -- the replay ---------------------------------------------------------------------------

    def replay(self, result) -> "Replay":
        if self.failure:
            raise Unreplayable(self.failure)
        result = self._result_recipe(result)
        launch = _ViewLaunch if runtime.INTERPRETER or not runtime.DIRECT_LAUNCH else _DirectLaunch
        used = {i for i in _indices(result)}
        for kind, data in self.steps:
            if kind == "fill":
                used.add(data[0])
            elif kind == "launch":
                used.update(src.index for src, *_ in data[2].values())
        steps, n = [], len(self.inputs)
        for kind, data in self.steps:
            if kind == "alloc":  # a buffer only the planning of a first call needed: not made again
                steps.append((_ALLOC, data) if n in used else (_UNUSED, None))
                n += 1
            else:
                steps.append((_LAUNCH, launch(*data)) if kind == "launch" else (_FILL, data))
        return Replay(steps, result)

    def _result_recipe(self, result):
        if result is None:
            return None
        if isinstance(result, torch.Tensor):
            return self._output(result)
        if isinstance(result, (tuple, list)):
            return (type(result), [self._result_recipe(r) for r in result])
        raise Unreplayable(f"a launcher result of type {type(result).__name__}")

    def _output(self, t):
        src = self.source(t)
        base = self.inputs[src.index] if src.index < len(self.inputs) else self.buffers[src.index - len(self.inputs)]
        if t.dtype != base.dtype:
            raise Unreplayable("an output of another dtype than its memory's")
        if not src.offset and t.shape == base.shape and t.stride() == base.stride():
            return ("same", src.index)
        if src.offset % t.element_size():
            raise Unreplayable("an output at an offset that is not a whole element")
        return ("view", src.index, tuple(t.shape), tuple(t.stride()), src.offset // t.element_size())


class _DirectLaunch:
    """A launch on a compiled backend: the compiled kernel's driver call with every constant
    argument in place, and for each tensor argument its slot and source."""
    __slots__ = ("plan", "call", "template", "slots")

    def __init__(self, plan, values, tensors, constants):
        self.plan = plan
        kernel, run, function, packed = plan.compiled_for(values)
        # (run, grid x, y, z, stream, function, metadata, enter and exit hooks, *arguments):
        # ``ReplayCache.run`` replays only while no launch hook is installed
        self.call = (run, *plan.grid, function, packed)
        args = plan.argument_list(values)
        index = {name: i for i, name in enumerate(plan.kernel.arg_names)}
        self.slots = tuple((index[name], src.index, src.offset) for name, (src, *_rest) in tensors.items())
        for i, _, _ in self.slots:
            args[i] = None
        self.template = args


class _ViewLaunch:
    """A launch through ``LaunchPlan`` (interpreter; ``TRITON_OPS_DIRECT_LAUNCH=0``): each tensor
    argument rebuilt as a view of its source's memory, with the recorded dtype and layout."""
    __slots__ = ("plan", "constants", "tensors")

    def __init__(self, plan, values, tensors, constants):
        self.plan, self.constants, self.tensors = plan, constants, tensors


class Replay:
    """What one recorded call does, in order: ``("alloc", (shape, strides, dtype, device))``,
    ``("fill", (buffer, value))``, ``("launch", _DirectLaunch | _ViewLaunch)``; and how to build
    its result from the inputs and buffers."""
    __slots__ = ("steps", "result")

    def __init__(self, steps, result):
        self.steps, self.result = steps, result

    def __call__(self, inputs):
        sources = list(inputs)
        stream = None
        for kind, data in self.steps:
            if kind is _LAUNCH:
                if type(data) is _DirectLaunch:
                    if stream is None:
                        stream = runtime.current_stream(runtime.current_device())
                    args = data.template.copy()
                    for slot, index, offset in data.slots:
                        t = sources[index]
                        args[slot] = t if not offset else t.data_ptr() + offset
                    run, x, y, z, function, packed = data.call
                    run(x, y, z, stream, function, packed, None, None, None, *args)
                else:
                    values = dict(data.constants)
                    for name, (src, shape, strides, dtype) in data.tensors.items():
                        values[name] = _view(sources[src.index], src.offset, shape, strides, dtype)
                    data.plan(**values)
            elif kind is _ALLOC:
                shape, strides, dtype, device = data
                sources.append(torch.empty_strided(shape, strides, dtype=dtype, device=device))
            elif kind is _UNUSED:
                sources.append(None)
            else:
                sources[data[0]].fill_(data[1])
        return _build(self.result, sources)


_LAUNCH, _ALLOC, _UNUSED, _FILL = "launch", "alloc", "unused", "fill"


def _view(base: torch.Tensor, offset: int, shape, strides, dtype) -> torch.Tensor:
    es = torch.empty((), dtype=dtype).element_size()
    start = base.storage_offset() * base.element_size() + offset
    return base.new_empty(0, dtype=dtype).set_(base.untyped_storage(), start // es, shape, strides)


def _indices(recipe):
    if recipe is None:
        return
    if recipe[0] in ("same", "view"):
        yield recipe[1]
    else:
        for r in recipe[1]:
            yield from _indices(r)


def _build(recipe, sources):
    if recipe is None:
        return None
    if type(recipe) is tuple and recipe[0] == "same":
        return sources[recipe[1]]
    if type(recipe) is tuple and recipe[0] == "view":
        _, index, shape, strides, offset = recipe
        base = sources[index]
        return base.as_strided(shape, strides, base.storage_offset() + offset)
    kind, items = recipe
    return kind(_build(r, sources) for r in items)


# --------------------------------------------------------------------------------------------
# the cache: one replay per call layout


def _float_key(v: float):
    return v.hex()  # 0.0 and -0.0 (equal, one hash) differ in a kernel's bits; NaN equals itself


def layout_key(items) -> tuple:
    """What a launcher's call depends on: each tensor's shape, strides, dtype, device and 16-byte
    alignment; each other value itself (floats by their bits, with their type: 1, 1.0 and True
    are one dictionary key)."""
    key = []
    for v in items:
        if isinstance(v, torch.Tensor):
            key.append((v.shape, v.stride(), v.dtype, v.device, v.data_ptr() & 15))
        elif type(v) is float:
            key.append(v.hex())
        elif type(v) is list:
            key.append(("list", *layout_key(v)))
        else:
            key.append((type(v), v))
    return tuple(key)


_MISSING = object()


class ReplayCache(runtime.PlanMemo):
    """Replays by call layout; ``None`` for a layout whose call cannot be replayed (``reasons``
    says why). Cleared with the plan caches (a tuned config changes the launches)."""

    def __init__(self):
        super().__init__()
        self.reasons: dict = {}
        runtime.register_plan_cache(self)

    def cache_clear(self) -> None:
        self.clear()
        self.reasons.clear()

    def run(self, key, inputs, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, replayed when its layout ``key`` was seen; ``inputs``: every
        tensor (or None) the call may read or return, in an order fixed by the key."""
        replay = self.get(key, _MISSING)
        if replay is None or runtime.launch_hooked():
            return fn(*args, **kwargs)
        if replay is not _MISSING:
            global _replay_count
            _replay_count += 1
            return replay(inputs)
        if getattr(runtime._recording, "recorder", None) is not None:  # inside a recorded call
            return fn(*args, **kwargs)
        rec = Recorder(inputs)
        runtime._recording.recorder = rec
        try:
            with rec:
                result = fn(*args, **kwargs)
        finally:
            runtime._recording.recorder = None
        try:
            self[key] = rec.replay(result)
        except Unreplayable as e:
            if not rec.aliased:  # aliased inputs: the next call of this layout may record
                self[key] = None
                self.reasons[key] = str(e)
        return result


_replay_count = 0


def replay_count() -> int:
    """Calls answered by a replay so far (tests check that warm calls take this path)."""
    return _replay_count
