"""Backend choice, argument checks and launch helpers shared by every launcher.

The backend is decided once, before any module holding a ``@triton.jit`` kernel is imported:
Triton reads ``TRITON_INTERPRET`` when a kernel is *decorated*, so ``triton_ops/__init__.py``
imports this module first.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import threading
from typing import Sequence

import torch

# --------------------------------------------------------------------------------------------
# backend


def _decide_backend() -> str:
    if os.environ.get("TRITON_OPS_COMPILE_ONLY", "0") == "1":
        _install_compile_only_driver()
        return "compile-only"
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        _patch_interpreter()
        return "interpreter"
    if torch.cuda.is_available():
        return "cuda"
    os.environ["TRITON_INTERPRET"] = "1"
    _patch_interpreter()
    return "interpreter"


def _patch_interpreter() -> None:
    _interpret_triton_stdlib()
    _interpret_bf16_float64_casts()
    _interpret_float_arguments_as_fp32()


def _install_compile_only_driver() -> None:
    """``TRITON_OPS_COMPILE_ONLY=1``: kernels are compiled for sm_90 (PTX and cubin through the
    bundled ptxas) but never launched, on a machine with no GPU. Used by
    ``tests/test_compile_sm90.py`` to catch what only the compiler rejects."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver

    class CompileOnlyDriver:
        device = 0  # CPU tensors stand for this device's (``launch_device``); ``on_device`` moves it

        def get_current_device(self):
            return self.device

        def get_current_stream(self, device=None):
            return 0

        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def get_active_torch_device(self):
            return torch.device("cpu")

        def __getattr__(self, name):
            raise RuntimeError(f"triton_ops compile-only mode: the driver has no {name!r}")

    driver.set_active(CompileOnlyDriver())


def _interpret_triton_stdlib() -> None:
    """Make ``tl.cdiv``, ``tl.sum``, ``tl.max`` ... interpretable when triton was imported before
    the interpreter was chosen (its standard library is itself ``@jit`` code, decorated once at
    import): re-run ``triton.language.standard`` and rebind its functions in ``triton.language``.
    Nothing changes when triton is imported after ``triton_ops``."""
    import sys

    if "triton.language.standard" not in sys.modules:
        return
    import importlib

    import triton
    import triton.language as tl

    std = sys.modules["triton.language.standard"]
    if not isinstance(std.cdiv, triton.JITFunction):
        return  # already interpretable
    std = importlib.reload(std)
    for name, value in vars(std).items():
        if isinstance(getattr(tl, name, None), triton.JITFunction):
            setattr(tl, name, value)


def _interpret_bf16_float64_casts() -> None:
    """The interpreter holds bfloat16 as raw 16-bit integers and converts only float32 <->
    bfloat16 as floats: float64 <-> bfloat16 casts (a float64 gradient stored into a bfloat16
    operand's, a bfloat16 operand read into float64 math) reinterpret the integers. Route them
    through float32, as the compiled backend's rounding would land within the interpreter's
    1-ulp truncation."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpreterBuilder

    cast = InterpreterBuilder.cast_impl
    if getattr(cast, "_triton_ops", False):
        return

    def cast_impl(self, src, dst_type):
        pair = {src.dtype.scalar, dst_type.scalar}
        if pair == {tl.float64, tl.bfloat16}:
            src = cast(self, src, tl.float32)
        return cast(self, src, dst_type)

    cast_impl._triton_ops = True
    InterpreterBuilder.cast_impl = cast_impl


def _interpret_float_arguments_as_fp32() -> None:
    """A compiled kernel gets a Python float argument as an fp32 value. Triton 3.6's interpreter
    makes it a scalar constant instead, and a constant equal to 0 becomes the null value: -0.0
    arrives as +0.0 (``add(x, -0.0)`` loses signs a GPU keeps). Where that happens, float
    arguments enter as fp32 values, as on the GPU; Triton 3.9's interpreter keeps the sign and
    is left alone."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    if np.signbit(interpreter.interpreter_semantic.to_tensor(-0.0).handle.data).all():
        return
    convert = interpreter._implicit_cvt

    def implicit_cvt(arg):
        if type(arg) is float:
            return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
        return convert(arg)

    interpreter._implicit_cvt = implicit_cvt


_BACKEND = _decide_backend()
INTERPRETER = _BACKEND == "interpreter"
COMPILE_ONLY = _BACKEND == "compile-only"


def backend() -> str:
    """``"cuda"`` (compiled Triton kernels) or ``"interpreter"`` (Triton's CPU interpreter);
    ``"compile-only"`` in the sm_90 compile check (kernels compiled, never run)."""
    return _BACKEND


def default_device() -> torch.device:
    return torch.device("cuda" if _BACKEND == "cuda" else "cpu")


# --------------------------------------------------------------------------------------------
# errors and domain checks


class DomainError(ValueError):
    """An input outside an op's mathematical domain (raised only while domain checks are on)."""


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _env_flag(name: str) -> bool:
    """A boolean environment setting; anything but the usual spellings is an error, not off."""
    value = os.environ.get(name, "0").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"triton_ops: {name}={os.environ[name]!r} is not a boolean "
                     f"(expected one of {', '.join(_TRUE + _FALSE[:-1])})")


# Local to the thread or asyncio context that sets it (SPEC: mode switches are not global); a
# new thread starts from the environment's setting.
_domain_checks = contextvars.ContextVar("triton_ops_domain_checks", default=_env_flag("TRITON_OPS_DOMAIN_CHECKS"))


def set_domain_checks(enabled: bool) -> None:
    """Domain checks on or off in the calling thread (or context)."""
    _domain_checks.set(bool(enabled))


def domain_checks_enabled() -> bool:
    return _domain_checks.get()


@contextlib.contextmanager
def domain_checks(enabled: bool = True):
    """Turn domain checks on (or off) inside a ``with`` block, in this thread (or context) only."""
    token = _domain_checks.set(bool(enabled))
    try:
        yield
    finally:
        _domain_checks.reset(token)


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_float(op: str, arg: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"triton_ops.{op}: {arg} must be a tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"triton_ops.{op}: {arg} must be a floating tensor (float16, bfloat16, float32, float64), "
            f"got {t.dtype}")


def check_number(op: str, arg: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"triton_ops.{op}: {arg} must be a tensor or a Python number, got {type(v).__name__}")


def check_devices(op: str, named: dict) -> torch.device | None:
    """All tensors on one device, and one that the active backend can run."""
    device = None
    first = None
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            continue
        if device is None:
            device, first = t.device, name
        elif t.device != device:
            raise ValueError(
                f"triton_ops.{op}: {name} is on {t.device} but {first} is on {device}; "
                "all tensors must be on one device")
    if device is not None and device.type != "meta" and not COMPILE_ONLY:  # meta: shapes only
        if _BACKEND == "cuda" and device.type != "cuda":
            raise ValueError(f"triton_ops.{op}: tensors are on {device}; the compiled backend needs CUDA tensors")
        if _BACKEND == "interpreter" and device.type != "cpu":
            raise ValueError(f"triton_ops.{op}: tensors are on {device}; the interpreter backend needs CPU tensors")
    return device


def has_values(t: torch.Tensor) -> bool:
    """False for a tensor whose values cannot be read: meta and fake tensors (FakeTensorMode,
    torch.export), and any tensor while torch.compile traces. Data-dependent checks skip them."""
    global _value_reads
    if t.device.type == "meta" or torch.compiler.is_compiling():
        return False
    _value_reads += 1
    from torch._subclasses.fake_tensor import is_fake

    return not is_fake(t)


_value_reads = 0  # checks that asked to read values (``has_values``): their result depends on them


def value_reads() -> int:
    """How many checks asked to read tensor values so far: a check that asked none depends only
    on layouts and Python values, and ``spec`` may skip it for a layout it has passed."""
    return _value_reads


def domain_checks_apply(*tensors) -> bool:
    """Domain checks are on in this thread and every tensor's values can be read. The flag is
    read only outside torch.compile, which cannot trace its ContextVar."""
    if torch.compiler.is_compiling() or not _domain_checks.get():
        return False
    return all(has_values(t) for t in tensors)


def check_param(op: str, name: str, value, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"triton_ops.{op}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"triton_ops.{op}: {name} must not be NaN")
    if positive and not value > 0:
        raise ValueError(f"triton_ops.{op}: {name} must be > 0, got {value}")
    if nonneg and value < 0:
        raise ValueError(f"triton_ops.{op}: {name} must be >= 0, got {value}")
    return value


# --------------------------------------------------------------------------------------------
# launch helpers

INT32_MAX = 2**31 - 1


def max_offset(shape: Sequence[int], strides: Sequence[int]) -> int:
    """The largest element offset a kernel can reach in a tensor of this shape and strides."""
    return sum((s - 1) * abs(st) for s, st in zip(shape, strides) if s > 0)


def needs_int64(*extents: int) -> bool:
    """True when any reachable offset (given as the largest ones) exceeds int32."""
    return any(e > INT32_MAX for e in extents)


def tensors_need_int64(*tensors, extra: tuple = ()) -> bool:
    """``needs_int64`` over the largest offsets reachable in these tensors (None skipped)."""
    return needs_int64(*(max_offset(t.shape, t.stride()) for t in tensors if isinstance(t, torch.Tensor)), *extra)


def numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def dtype_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def nbytes(t) -> int:
    """Bytes of a tensor's elements (0 for a Python number or None)."""
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def normalize_dims(op: str, dim, rank: int) -> tuple[int, ...]:
    """``dim`` (an int or a tuple of ints, negative allowed) as sorted non-negative axes."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int):
            raise TypeError(f"triton_ops.{op}: dim must be an int or a tuple of ints, got {dim!r}")
        lo, hi = (-1, 0) if rank == 0 else (-rank, rank - 1)
        if not lo <= d <= hi:
            raise IndexError(f"triton_ops.{op}: dim {d} is out of range for a tensor of rank {rank} "
                             f"(expected in [{lo}, {hi}])")
        out.append(d % max(rank, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"triton_ops.{op}: dim {dim!r} repeats an axis")
    return tuple(sorted(out))


def compute_dtype(*dtypes: torch.dtype):
    """Triton arithmetic dtype: float64 when any operand is float64, else float32."""
    import triton.language as tl

    return tl.float64 if torch.float64 in dtypes else tl.float32


def narrow(*dtypes: torch.dtype) -> bool:
    """Every tensor is 16-bit (float16 / bfloat16): float32 math whose results are stored with
    11 significant bits at most, which ``scalar``'s NARROW forms serve."""
    return all(d in (torch.float16, torch.bfloat16) for d in dtypes)


def narrowed(fn, fn_narrow, *dtypes: torch.dtype):
    """``fn_narrow`` (a scalar function's NARROW form) where it exists and every dtype is 16-bit,
    else ``fn``."""
    return fn_narrow if fn_narrow is not None and narrow(*dtypes) else fn


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def device_programs(device: torch.device | None) -> int:
    """How many programs a launch should aim for to fill the device."""
    if COMPILE_ONLY:
        return 4 * 132
    if INTERPRETER or device is None or device.type != "cuda":
        return 8  # the interpreter runs programs one after another: few and large
    return 4 * _multiprocessors(device.index if device.index is not None else torch.cuda.current_device())


def _multiprocessors(index: int) -> int:
    return _sm_count.setdefault(index, torch.cuda.get_device_properties(index).multi_processor_count)


_sm_count: dict = {}


def min_split_elements() -> int:
    """The fewest elements worth a program of its own in a reduction split across programs: a
    split pays a second launch (the fixed-order combine, a few µs on a GPU) and a partials
    round trip, while one program streams 16K elements in well under that. Small reductions
    stay in one pass."""
    return 1 << 14


def tile_elements() -> int:
    """Elements one program holds at a time (registers on a GPU; numpy arrays in the interpreter)."""
    return 1 << 15 if INTERPRETER else 4096


def num_warps_for(elements: int) -> int:
    if elements >= 4096:
        return 8
    if elements >= 1024:
        return 4
    return 2


# a pipelined loop's prologue fills STAGES - 1 buffers before the first step: too few steps and
# it costs more than the overlap gains
PIPELINE_MIN_STEPS = 4


def pipeline_stages(stages: int, stage_bytes: int, budget: int, steps: int | None = None) -> int:
    """A loop's software-pipeline stages (``tl.range(num_stages=)``): ``stages`` where the
    ``stages - 1`` buffered steps of ``stage_bytes`` fit in ``budget`` bytes of shared memory and
    the loop walks ``PIPELINE_MIN_STEPS`` steps at least (``steps`` None: a loop whose length the
    plan does not know), else 1 (the plain loop)."""
    if steps is not None and steps < PIPELINE_MIN_STEPS:
        return 1
    return stages if (stages - 1) * stage_bytes <= budget else 1



# --------------------------------------------------------------------------------------------
# launches: every kernel launch goes through a LaunchPlan, so tests and benchmarks can count them

_launch_count = 0
_compile_count = 0  # LaunchPlan compilations (compiled backends): a warm call adds none
# Triton's interpreter patches ``triton.language`` while a kernel runs: two Python threads
# launching at once break each other. Interpreter launches take turns; compiled ones do not.
_interpreter_lock = threading.RLock()


# ``TRITON_OPS_DIRECT_LAUNCH=0``: launch through ``JITFunction.run`` on every call (Triton's own
# binding and specialization), should a Triton release change its launcher's calling convention.
DIRECT_LAUNCH = os.environ.get("TRITON_OPS_DIRECT_LAUNCH", "1") != "0" or COMPILE_ONLY


def _no_launch(*args) -> None:
    """The compile-only backend's driver launch: everything up to it runs, the launch does not."""


class LaunchPlan:
    """One kernel launch decided once per launch plan (shapes, strides, dtypes, device): the
    kernel, its grid, every argument that depends only on the plan (``fixed``: sizes, strides,
    constexprs) and the launch options. A call passes only what changes between calls with the
    same plan (tensors, Python numbers) by name: ``plan(out=y, x=x, numbers=...)``.

    On the compiled backends the first call per (tensor dtypes, 16-byte alignment, integer
    values) compiles
    through ``JITFunction.warmup`` and keeps the ``CompiledKernel`` with a template of its flat
    argument list; a warm call fills in the per-call values and calls the compiled kernel's
    launcher directly, as ``JITFunction.run`` does after its (per-call) binding and
    specialization. Under ``TRITON_OPS_COMPILE_ONLY=1`` that last driver call is a no-op, so the
    host cost measured there is the real one minus the driver launch. The interpreter has no
    compiled kernel: it launches ``kernel[grid](...)``.
    """

    __slots__ = ("kernel", "grid", "fixed", "options", "_template", "_slots", "_compiled")

    def __init__(self, kernel, grid, options: dict | None = None, **fixed):
        self.kernel = kernel
        self.grid = tuple(grid) + (1,) * (3 - len(grid))
        self.fixed = fixed
        options = dict(options or {})
        if not INTERPRETER:
            options.setdefault("enable_fp_fusion", True)  # stated, not left to Triton's default (3.10 flips it)
        self.options = options
        names = kernel.arg_names
        self._template = [fixed.get(n) for n in names]
        self._slots = tuple((i, n) for i, n in enumerate(names) if n not in fixed)
        self._compiled: dict = {}

    def __call__(self, **values):
        global _launch_count
        _launch_count += 1
        recorder = getattr(_recording, "recorder", None)
        if recorder is not None:  # replay.ReplayCache is recording this call's launches
            with recorder.launching(self, values):
                return self._launch(values)
        return self._launch(values)

    def _launch(self, values):
        if INTERPRETER:
            return self._interpret(values)
        current = _driver.active.get_current_device()
        device = launch_device(values, current)
        if device != current:  # Triton launches on the current device: make the tensors' current
            with on_device(device):
                return self._launch(values)
        if not DIRECT_LAUNCH:
            return self.kernel[self.grid](**self.fixed, **values, **self.options)
        args = self.argument_list(values)
        launch_compiled(self.compiled_for(values), self.grid, _driver.active.get_current_stream(current), args)

    def argument_list(self, values: dict) -> list:
        """The kernel's flat argument list: the plan's fixed values and this call's."""
        args = self._template.copy()
        for i, name in self._slots:
            args[i] = values[name]
        return args

    def compiled_for(self, values: dict):
        """The compiled kernel for these call values (compiled on first use): a compiled
        kernel's function handle belongs to the device it was loaded on, and Triton specializes
        tensors on dtype and 16-byte alignment and integers on their value class."""
        key = [_driver.active.get_current_device()]
        for _, name in self._slots:
            v = values[name]
            if type(v) is int:  # Triton specializes integers (1, multiples of 16, int64)
                key.append(v)
            elif isinstance(v, torch.Tensor):
                key.append(v.dtype)
                key.append(not v.data_ptr() & 15)
            elif type(v) is tuple:  # float64 numbers travel as their bits (tiles.split_float): ints
                key.append(tuple(_int_class(x) for x in v if type(x) is int))
        key = tuple(key)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(values)
        return compiled

    def _compile(self, values):
        global _compile_count
        _compile_count += 1
        kernel = self.kernel.warmup(grid=self.grid, **self.fixed, **values, **self.options)
        if COMPILE_ONLY:
            return kernel, _no_launch, None, kernel.packed_metadata
        kernel._init_handles()
        return kernel, kernel.run, kernel.function, kernel.packed_metadata

    def _interpret(self, values):
        import numpy as np

        # Masked-off lanes of a tile evaluate the scalar math on padding (log(0), 1/0) and are
        # never stored; numpy, which runs the interpreter, would warn about them.
        with _interpreter_lock, np.errstate(all="ignore"):
            self.kernel[self.grid](**self.fixed, **values, **self.options)


def launch_compiled(compiled, grid, stream, args) -> None:
    """The driver launch of a compiled kernel (``LaunchPlan.compiled_for``), as
    ``JITFunction.run`` makes it once it has bound and specialized the arguments; a launch hook
    (a profiler's) gets the launch metadata."""
    kernel, run, function, packed = compiled
    hook = _knobs.runtime.launch_enter_hook
    metadata = kernel.launch_metadata(grid, stream, *args) if _hooked(hook) else None
    run(grid[0], grid[1], grid[2], stream, function, packed, metadata, hook, _knobs.runtime.launch_exit_hook, *args)


def launch_device(values: dict, current: int) -> int:
    """The CUDA device index a launch must run on: its first tensor's (a TMA descriptor's base
    counts), ``current`` when it has none. A kernel runs on the current device with a function
    loaded there, and a tensor on another device is not the current one's memory (a call from
    ``cuda:0`` code on ``cuda:1`` tensors). Under the compile-only backend CPU tensors stand for
    the fake driver's device 0."""
    for v in values.values():
        t = v if isinstance(v, torch.Tensor) else getattr(v, "base", None)
        if isinstance(t, torch.Tensor):
            index = t.get_device()
            return index if index >= 0 else 0 if COMPILE_ONLY else current
    return current


def on_device(index: int):
    """A context in which CUDA device ``index`` is current (torch's device guard; under the
    compile-only backend, the fake driver's device)."""
    if not COMPILE_ONLY:
        return torch.cuda.device(index)
    return _compile_only_device(index)


@contextlib.contextmanager
def _compile_only_device(index: int):
    active = _driver.active
    before, active.device = active.device, index
    try:
        yield
    finally:
        active.device = before


def stream_getters():
    """The active driver's (current device, current stream) functions themselves, for callers
    that query them on every launch (a replay binds them once)."""
    return _driver.active.get_current_device, _driver.active.get_current_stream


def launch_hooked() -> bool:
    """Whether a launch hook is installed (a replayed call must then launch as a normal one)."""
    return not INTERPRETER and _hooked(_knobs.runtime.launch_enter_hook)


# ``replay.Recorder`` of the call this thread is recording (``LaunchPlan`` reports launches to it)
_recording = threading.local()


def _int_class(v: int) -> tuple:
    """What Triton specializes an integer inside a tuple argument on: the value 1 (a constant),
    a multiple of 16, int32 or int64. Keyed by class, not value: a float64 number's bits vary."""
    return v == 1, v % 16 == 0, -INT32_MAX - 1 <= v <= INT32_MAX


def _hooked(hook) -> bool:
    """Whether a launch hook (a profiler's) is installed: Triton 3.9 keeps a HookChain, 3.6 None."""
    return hook is not None and bool(getattr(hook, "calls", True))


if not INTERPRETER:
    from triton import knobs as _knobs
    from triton.runtime.driver import driver as _driver


def launch(kernel, grid, *args, **kwargs):
    """An uncached launch, ``kernel[grid](*args, **kwargs)`` (counted): Triton binds and
    specializes every argument on every call. The library's launchers use a cached
    ``LaunchPlan``; this stays for code not yet converted."""
    global _launch_count
    _launch_count += 1
    if INTERPRETER:
        import numpy as np

        with _interpreter_lock, np.errstate(all="ignore"):
            return kernel[grid](*args, **kwargs)
    kwargs.setdefault("enable_fp_fusion", True)
    if COMPILE_ONLY:
        return kernel.warmup(*args, grid=grid, **kwargs)
    return kernel[grid](*args, **kwargs)


def launch_count() -> int:
    return _launch_count


def compile_count() -> int:
    return _compile_count


# --------------------------------------------------------------------------------------------
# launch-plan caches: Python decides a launch's shapes once per (shapes, strides, dtypes)

_plan_caches: list = []


def plan_cache(fn):
    """``functools.lru_cache`` for launch planners, cleared together when tuned configs change."""
    import functools

    cached = functools.lru_cache(maxsize=4096)(fn)
    _plan_caches.append(cached)
    return cached


class PlanMemo(dict):
    """A dictionary in front of a ``plan_cache``d planner, for a launcher's warm path: keyed on
    what the call already holds (``id`` of kernels and scalar functions, whose ``JITFunction``
    hash is Python code; torch.Size, strides, dtypes), so that a warm call hashes no kernel and
    builds no descriptor. A value holds the planner's result, which keeps those objects alive:
    an id in a live key is never reused. Cleared with the plan caches, and when full (the
    planners' own caches still hold the recent plans)."""

    maxsize = 4096
    cache_clear = dict.clear

    def __setitem__(self, key, value):
        if len(self) >= self.maxsize:
            self.clear()
        dict.__setitem__(self, key, value)


def plan_memo() -> PlanMemo:
    return register_plan_cache(PlanMemo())


def register_plan_cache(cache):
    """Clear ``cache`` (anything with ``cache_clear``) with the plan caches."""
    _plan_caches.append(cache)
    return cache


def clear_plan_caches() -> None:
    for cache in _plan_caches:
        cache.cache_clear()
