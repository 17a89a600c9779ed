"""Record once, replay after: a launcher call reduced to its allocations and launches.

Every launcher decides its launches from the layout of its arguments (shapes, strides, dtypes,
devices, 16-byte alignment) and their Python values, never from tensor values: so two calls with
the same layout allocate the same buffers and make the same launches with the same arguments,
except for the pointers. ``ReplayCache.run`` runs a launcher's first call per layout while
watching it - a ``TorchDispatchMode`` sees every allocation and every other torch op, and
``runtime.LaunchPlan`` reports every launch - and keeps a ``Replay``: its allocations, constant
fills, other torch ops (a sort) and ``LaunchPlan`` launches, each tensor an offset into an input
or a buffer of the call. A warm call with that layout does the allocations, the torch ops and
the driver calls, with no Python planning at all.

A launcher that runs a torch op whose output shape depends on values (``nonzero``), or that
hands a value to Python (``.item()``), is not replayed: its calls keep the launcher's own path.
So is a call under a launch hook (a profiler), which must see each launch's metadata. Under the interpreter the replay rebuilds
each launch's tensors as views of the same memory and launches through the ``LaunchPlan``, so
the test suite runs the replayed calls' kernels for real.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os

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
# ops that hand a value to Python, or whose outputs' shapes depend on values: never replayed
_HOST_VALUES = {aten._local_scalar_dense.default, aten.equal.default, aten.is_nonzero.default}
_VALUE_SHAPED = (torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output)

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
        self.alloc_steps: dict = {}  # a new buffer's source index -> its "alloc" step
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
        if t.untyped_storage().nbytes() == 0:  # a placeholder no kernel reads (an empty tensor)
            return _Source(None, 0)
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
            self._op(func, args, kwargs, out)
        return out

    def _op(self, func, args, kwargs, out) -> None:
        """Another torch op (a sort, a copy): replayed as the same call on the new call's tensors,
        when its outputs' shapes do not depend on values and Python never sees a value."""
        if func in _HOST_VALUES or any(tag in func.tags for tag in _VALUE_SHAPED):
            return self.fail(f"runs {func}, whose result depends on values on the host")
        try:
            spec_args = [self._argument(a) for a in args]
            spec_kwargs = {k: self._argument(v) for k, v in kwargs.items()}
        except Unreplayable as e:
            return self.fail(f"runs {func} on {e}")
        outs = out if type(out) in (tuple, list) else (out,)
        if not all(isinstance(t, torch.Tensor) for t in outs):
            return self.fail(f"runs {func}, which returns {type(out).__name__}")
        targets = []
        for t in outs:
            if self.by_storage.get(self._storage_key(t), -1) >= 0 or t.untyped_storage().nbytes() == 0:
                targets.append(None)  # in place on (or a view of) an input or a buffer
            else:
                targets.append(len(self.inputs) + len(self.buffers))
                self.buffers.append(t)
                self.by_storage[self._storage_key(t)] = targets[-1]
        self.steps.append(("op", (func, spec_args, spec_kwargs, targets, type(out) in (tuple, list))))

    def _argument(self, v):
        if isinstance(v, torch.Tensor):
            src, shape, strides, dtype = self.describe(v)
            if src.index is None:
                raise Unreplayable("a tensor with no memory")
            base = self.inputs[src.index] if src.index < len(self.inputs) else self.buffers[src.index - len(self.inputs)]
            exact = not src.offset and (base.shape, base.stride(), base.dtype) == (v.shape, v.stride(), v.dtype)
            if not exact and (dtype != base.dtype or src.offset % v.element_size()):
                raise Unreplayable("a reinterpreted view")
            return ("tensor", src.index, exact, shape, strides, src.offset // v.element_size())
        if type(v) in (list, tuple):
            return (type(v), [self._argument(x) for x in v])
        if v is None or type(v) in (int, float, bool, str, torch.dtype, torch.device, torch.layout,
                                    torch.memory_format):
            return ("constant", v)
        raise Unreplayable(f"an argument of type {type(v).__name__}")

    def _new_buffer(self, t: torch.Tensor) -> None:
        index = len(self.inputs) + len(self.buffers)
        self.buffers.append(t)
        self.by_storage[self._storage_key(t)] = index
        self.alloc_steps[index] = len(self.steps)
        self.steps.append(("alloc", (tuple(t.shape), tuple(t.stride()), t.dtype, t.device)))

    def _fill(self, t: torch.Tensor, value) -> None:
        try:
            src = self.source(t)
        except Unreplayable as e:
            return self.fail(f"fills a tensor: {e}")
        if src.index is None:
            return  # nothing to fill
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
        tensors, constants, descriptors = {}, {}, {}
        try:
            for name, v in values.items():
                if isinstance(v, torch.Tensor):
                    tensors[name] = self.describe(v)
                elif _is_descriptor(v):
                    descriptors[name] = self._descriptor(v)
                elif type(v) is tuple and any(isinstance(x, torch.Tensor) for x in v):
                    raise Unreplayable("tensors inside a tuple")
                else:
                    constants[name] = v
        except Unreplayable as e:
            return self.fail(f"launches {plan.kernel.__name__} with {e}")
        self.steps.append(("launch", (plan, values, tensors, constants, descriptors)))

    def _descriptor(self, d):
        """A TMA tensor descriptor (a dataclass whose first field is its base tensor): rebuilt per
        replay around the new base, the other fields as recorded."""
        fields = dataclasses.fields(d)
        if fields[0].name != "base":
            raise Unreplayable(f"a {type(d).__name__} whose first field is not its base")
        base = self.describe(d.base)
        if base[0].index is None or (base[0].offset and not runtime.INTERPRETER):
            raise Unreplayable("a descriptor over an offset or empty base")
        return base, type(d), tuple(getattr(d, f.name) for f in fields[1:])

    # -- the replay ---------------------------------------------------------------------------

    def replay(self, result) -> "Replay":
        if self.failure:
            raise Unreplayable(self.failure)
        result = self._result_recipe(result)
        as_tensor = set()  # sources a fill or a torch op takes as tensors (their shapes matter)
        pointers = set()   # sources a launch takes as pointers
        for kind, data in self.steps:
            if kind == "fill":
                as_tensor.add(data[0])
            elif kind == "op":
                as_tensor.update(_argument_indices(data[1]))
                as_tensor.update(_argument_indices(list(data[2].values())))
            elif kind == "launch":
                pointers.update(src.index for src, *_ in data[2].values() if src.index is not None)
                pointers.update(base[0].index for base, *_ in data[4].values())
        used = set(_indices(result)) | as_tensor | pointers
        result = self._allocate_as_returned(result, as_tensor)
        kinds = [(t.dtype, t.device) if isinstance(t, torch.Tensor) else None for t in self.inputs]
        return Replay(self.steps, result, len(self.inputs), used, kinds)

    def _allocate_as_returned(self, result, as_tensor: set):
        """A new buffer the call returns as a view of all of its memory (a reduction's output
        allocated with its kept axes, returned without them) is allocated in the returned shape:
        a launch sees only its pointer, and the caller gets a tensor that is not a view (which
        ``spec`` would otherwise rebuild, 2 µs). Not for a buffer a fill or torch op uses as a
        tensor, nor one returned twice. Returns the result's recipe with those views as "same"."""
        allocs = self.alloc_steps
        returned = list(_indices(result))

        def rewrite(recipe):
            if recipe is None or recipe[0] in ("same", "empty"):
                return recipe
            if recipe[0] != "view":
                return (recipe[0], [rewrite(r) for r in recipe[1]])
            _, index, shape, strides, offset = recipe
            if offset or index not in allocs or index in as_tensor or returned.count(index) != 1:
                return recipe
            old_shape, old_strides, dtype, device = self.steps[allocs[index]][1]
            if _extent(shape, strides) != _extent(old_shape, old_strides):
                return recipe
            self.steps[allocs[index]] = ("alloc", (shape, strides, dtype, device))
            return ("same", index)
        return rewrite(result)

    def _result_recipe(self, result):
        if result is None:
            return None
        if isinstance(result, torch.Tensor):
            return self._output(result)
        if type(result) in (tuple, list):
            return (type(result), [self._result_recipe(r) for r in result])
        raise Unreplayable(f"a launcher result of type {type(result).__name__}")

    def _output(self, t):
        src = self.source(t)
        if src.index is None:
            return ("empty", tuple(t.shape), tuple(t.stride()), t.dtype, t.device)
        base = self.inputs[src.index] if src.index < len(self.inputs) else self.buffers[src.index - len(self.inputs)]
        if t.dtype != base.dtype:
            raise Unreplayable("an output of another dtype than its memory's")
        if not src.offset and t.shape == base.shape and t.stride() == base.stride():
            return ("same", src.index)
        if src.offset % t.element_size():
            raise Unreplayable("an output at an offset that is not a whole element")
        return ("view", src.index, tuple(t.shape), tuple(t.stride()), src.offset // t.element_size())


# calls answered by a replay (a list: the generated replays add to it in place)
_replay_count = [0]


class Replay:
    """One recorded call as a straight-line Python function of the call's inputs (``source``):
    the allocations, constant fills and launches of the recording, in order, then its result
    built from the inputs and new buffers. Generated once per call layout: a warm call runs no
    loop over steps or arguments, only the statements a hand-written launcher would.

    On a compiled backend each launch is the compiled kernel's driver call with the recorded
    arguments, pointers as inputs or buffers (plus a byte offset); ``ReplayCache.run`` replays
    only while no launch hook is installed, so the hooks passed are None. Under the interpreter
    (and ``TRITON_OPS_DIRECT_LAUNCH=0``) each launch goes through its ``LaunchPlan`` with every
    tensor rebuilt as a view of the recorded memory."""
    __slots__ = ("source", "run")

    def __init__(self, steps, result, n_inputs: int, used: set, input_kinds=()):
        direct = not runtime.INTERPRETER and runtime.DIRECT_LAUNCH
        names = {"empty_strided": torch.empty_strided, "empty": torch.empty, "view": _view, "count": _replay_count}
        launches = [data for kind, data in steps if kind == "launch"]
        if direct and launches:
            names["current_device"], names["current_stream"] = runtime.stream_getters()
            names["on_device"] = runtime.on_device
            current = names["current_device"]()
            # the device the recorded launches ran on (their tensors'), their functions loaded there
            device = runtime.launch_device(launches[0][1], current)
            guard = (lambda: runtime.on_device(device)) if device != current else contextlib.nullcontext

        def constant(value, hint):
            name = f"{hint}{len(names)}"
            names[name] = value
            return name

        def source(index, offset=0):
            if index is None:  # a placeholder without memory: a null pointer / a new empty tensor
                return "0" if direct else "empty(0)"
            ref = f"i{index}" if index < n_inputs else f"b{index - n_inputs}"
            return ref if not offset else f"({ref}.data_ptr() + {offset})"

        lines = ["def replay(inputs):"]
        if direct and launches:  # a call made while another device is current runs under a guard
            lines += ["    device = current_device()", f"    if device != {device}:",
                      f"        with on_device({device}):", "            return replay(inputs)",
                      "    stream = current_stream(device)"]
        lines.append("    count[0] += 1")
        lines += [f"    {''.join(f'i{i}, ' for i in range(n_inputs))}= inputs"] * (n_inputs > 0)
        buffer = n_inputs
        for kind, data in steps:
            if kind == "alloc":  # a buffer only the planning of the first call needed is not made again
                if buffer in used:
                    shape, strides, dtype, device = data
                    like = next((i for i, k in enumerate(input_kinds) if k == (dtype, device)), None)
                    if like is not None:  # an input of the same dtype and device (the layout key
                        # fixes them): its new_empty_strided parses no keywords (~0.15 µs less)
                        lines.append(f"    {source(buffer)} = i{like}.new_empty_strided("
                                     f"{constant(shape, 'shape')}, {constant(strides, 'strides')})")
                    else:
                        lines.append(f"    {source(buffer)} = empty_strided({constant(shape, 'shape')}, "
                                     f"{constant(strides, 'strides')}, dtype={constant(dtype, 'dtype')}, "
                                     f"device={constant(device, 'device')})")
                buffer += 1
            elif kind == "fill":
                lines.append(f"    {source(data[0])}.fill_({constant(data[1], 'value')})")
            elif kind == "op":
                func, op_args, op_kwargs, targets, several = data

                def arg(a):
                    if a[0] == "tensor":
                        _, index, exact, shape, strides, offset = a
                        ref = source(index)
                        return ref if exact else (f"{ref}.as_strided({constant(shape, 'shape')}, "
                                                  f"{constant(strides, 'strides')}, {ref}.storage_offset() + {offset})")
                    if a[0] == "constant":
                        return constant(a[1], "value")
                    inner = "".join(f"{arg(x)}, " for x in a[1])
                    return f"({inner})" if a[0] is tuple else f"[{inner}]"

                call = ", ".join([arg(a) for a in op_args] + [f"{k}={arg(a)}" for k, a in op_kwargs.items()])
                names_out = [source(t) if t is not None else "_" for t in targets]
                buffer += sum(t is not None for t in targets)
                lhs = "".join(f"{n}, " for n in names_out) if several else names_out[0]
                lines.append(f"    {lhs} = {constant(func, 'op')}({call})")
            elif direct:
                plan, values, tensors, _, descriptors = data
                with guard():
                    _, run, function, packed = plan.compiled_for(values)

                def argument(n, v):
                    if n in tensors:
                        return source(tensors[n][0].index, tensors[n][0].offset)
                    if n in descriptors:
                        (src, *_), cls, fields = descriptors[n]
                        return f"{constant(cls, 'descriptor')}({source(src.index)}, *{constant(fields, 'fields')})"
                    return constant(v, "arg")

                args = [argument(n, v) for n, v in zip(plan.kernel.arg_names, plan.argument_list(values))]
                lines.append(f"    {constant(run, 'run')}({', '.join(constant(g, 'grid') for g in plan.grid)}, "
                             f"stream, {constant(function, 'function')}, {constant(packed, 'packed')}, None, None, "
                             f"None, {', '.join(args)})")
            else:
                plan, _, tensors, constants, descriptors = data

                def view(src, shape, strides, dtype):
                    return (f"view({source(src.index)}, {src.offset}, {constant(shape, 'shape')}, "
                            f"{constant(strides, 'strides')}, {constant(dtype, 'dtype')})")

                args = [f"{n}={constant(v, 'arg')}" for n, v in constants.items()]
                args += [f"{n}={view(*t)}" for n, t in tensors.items()]
                args += [f"{n}={constant(cls, 'descriptor')}({view(*base)}, *{constant(fields, 'fields')})"
                         for n, (base, cls, fields) in descriptors.items()]
                lines.append(f"    {constant(plan, 'plan')}({', '.join(args)})")
        lines.append(f"    return {_expression(result, source, constant)}")
        self.source = "\n".join(lines)
        exec(compile(self.source, "<triton_ops replay>", "exec"), names)
        self.run = names["replay"]


def _argument_indices(args):
    for a in args:
        if a[0] == "tensor":
            yield a[1]
        elif a[0] in (list, tuple):
            yield from _argument_indices(a[1])


def _extent(shape, strides) -> int:
    """Elements from a tensor's first to one past its last (0 when it has none)."""
    if any(n == 0 for n in shape):
        return 0
    return 1 + sum((n - 1) * st for n, st in zip(shape, strides))


def _is_descriptor(v) -> bool:
    return dataclasses.is_dataclass(v) and isinstance(getattr(v, "base", None), torch.Tensor)


def _view(base: torch.Tensor, offset: int, shape, strides, dtype) -> torch.Tensor:
    es = dtype.itemsize
    start = base.storage_offset() * base.element_size() + offset
    return base.new_empty(0, dtype=dtype).set_(base.untyped_storage(), start // es, shape, strides)


def _indices(recipe):
    if recipe is None:
        return
    if recipe[0] == "empty":
        return
    if recipe[0] in ("same", "view"):
        yield recipe[1]
    else:
        for r in recipe[1]:
            yield from _indices(r)


def _expression(recipe, source, constant) -> str:
    """Python source of a launcher's result (``Recorder._result_recipe``)."""
    if recipe is None:
        return "None"
    if recipe[0] == "same":
        return source(recipe[1])
    if recipe[0] == "empty":
        _, shape, strides, dtype, device = recipe
        return (f"empty_strided({constant(shape, 'shape')}, {constant(strides, 'strides')}, "
                f"dtype={constant(dtype, 'dtype')}, device={constant(device, 'device')})")
    if recipe[0] == "view":
        _, index, shape, strides, offset = recipe
        ref = source(index)
        return (f"{ref}.as_strided({constant(shape, 'shape')}, {constant(strides, 'strides')}, "
                f"{ref}.storage_offset() + {offset})")
    kind, items = recipe
    inner = "".join(f"{_expression(r, source, constant)}, " for r in items)
    return f"({inner})" if kind is tuple else f"[{inner}]"


# --------------------------------------------------------------------------------------------
# the cache: one replay per call layout


_PLAIN = (int, bool, str, type(None), torch.dtype)
# items whose value and type say everything a kernel sees (not floats: 0.0 == -0.0)
_HASHABLE_BY_VALUE = frozenset(_PLAIN)


# A tensor's and a float's part of a layout key as Python expressions of the value ``{0}``: one
# source for ``value_key`` and for the warm paths ``eager`` generates (which inline them).
# get_device(): the CUDA index (-1 on CPU), cheaper to make and hash than a torch.device; the
# 16-byte alignment decides vector widths and TMA. A float by value, by its bits where value
# and bits part: 0.0 and -0.0 (equal) differ in a kernel, NaN never equals itself.
TENSOR_KEY = "({0}.shape, {0}.stride(), {0}.dtype, {0}.get_device(), {0}.data_ptr() & 15)"
FLOAT_KEY = "({0} if {0} and {0} == {0} else {0}.hex())"
_tensor_key = eval(f"lambda v: {TENSOR_KEY.format('v')}")
_float_key = eval(f"lambda v: {FLOAT_KEY.format('v')}")


def value_key(v):
    """What a launcher's call depends on in one value: a tensor's layout (``TENSOR_KEY``); any
    other value itself (floats by ``FLOAT_KEY``, others with their type: 1, 1.0 and True are
    three keys). None when the value is none of these (an object: no key)."""
    if isinstance(v, torch.Tensor):
        return _tensor_key(v)
    if type(v) is float:
        return _float_key(v)
    if type(v) in _PLAIN:
        return (type(v), v)
    if type(v) in (list, tuple):
        return sequence_key(v)
    return None


def sequence_key(v):
    """``value_key`` of a list or tuple: of ints (a shape, dims), the items and their types."""
    types = tuple(map(type, v))
    if _HASHABLE_BY_VALUE.issuperset(types):
        return (type(v), tuple(v), types)
    inner = layout_key(v)
    return None if inner is None else (type(v), inner)


def layout_key(items) -> tuple | None:
    """``value_key`` of every item; None when one has no key."""
    key = tuple(value_key(v) for v in items)
    return None if None in key else key


class Entry(dict):
    """One call layout of one op: its replays by slot (forward, forward with statistics, VJP by
    gradient layout) and, once ``check`` passed without reading a value, the checked non-tensor
    arguments (``checked``: one per argument, None for a tensor; ``python_values``: those alone)."""
    __slots__ = ("checked", "python_values")

    def __init__(self):
        super().__init__()
        self.checked = None
        self.python_values = None


# ``TRITON_OPS_REPLAY=0``: every call runs its launcher (a switch to compare against, should a
# replay ever be suspected on a new Triton or GPU)
ENABLED = os.environ.get("TRITON_OPS_REPLAY", "1") != "0"


def run(table, slot, inputs, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, replayed from ``table[slot]`` when that call was recorded.
    ``inputs``: every tensor (or None) the call may read or return, in an order the slot fixes.
    The first call records; a call that cannot be replayed leaves the reason in its slot (a
    string) and keeps the launcher's path. ``table`` None: no layout key, no replay."""
    if table is None or not ENABLED:
        return fn(*args, **kwargs)
    replay = table.get(slot)
    if type(replay) is Replay:
        if runtime.launch_hooked():
            return fn(*args, **kwargs)
        return replay.run(inputs)
    if replay is not None or getattr(runtime._recording, "recorder", None) is not None:
        return fn(*args, **kwargs)  # not replayable, or a launcher inside a recorded call
    rec = Recorder(inputs)
    runtime._recording.recorder = rec
    try:
        with rec:
            result = fn(*args, **kwargs)
    finally:
        runtime._recording.recorder = None
    try:
        table[slot] = rec.replay(result)
    except Unreplayable as e:
        if not rec.aliased:  # aliased inputs: the next call of this layout may record
            table[slot] = str(e)
    return result


class ReplayCache(runtime.PlanMemo):
    """An op's ``Entry`` per call layout, cleared with the plan caches (a tuned config changes
    the launches). ``run`` uses the cache itself as one flat table of slots."""

    def __init__(self):
        super().__init__()
        runtime.register_plan_cache(self)

    def entry(self, key) -> Entry:
        entry = self.get(key)
        if entry is None:
            entry = self[key] = Entry()
        return entry

    def run(self, slot, inputs, fn, *args, **kwargs):
        return run(self, slot, inputs, fn, *args, **kwargs)

    def reasons(self) -> list[str]:
        """Why the calls that are not replayed are not (one line per slot)."""
        tables = [self] + [e for e in self.values() if isinstance(e, Entry)]
        return [v for t in tables for v in t.values() if isinstance(v, str)]


def replay_count() -> int:
    """Calls answered by a replay so far (tests check that warm calls take this path)."""
    return _replay_count[0]
