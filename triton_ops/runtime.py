"""Backend choice, argument checks and launch helpers shared by every launcher.

The backend is decided once, before any module holding a ``@triton.jit`` kernel is imported:
Triton reads ``TRITON_INTERPRET`` when a kernel is *decorated*, so ``triton_ops/__init__.py``
imports this module first.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Sequence

import torch

# --------------------------------------------------------------------------------------------
# backend


def _decide_backend() -> str:
    if os.environ.get("TRITON_OPS_COMPILE_ONLY", "0") == "1":
        _install_compile_only_driver()
        return "compile-only"
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        _interpret_triton_stdlib()
        _interpret_bf16_float64_casts()
        return "interpreter"
    if torch.cuda.is_available():
        return "cuda"
    os.environ["TRITON_INTERPRET"] = "1"
    _interpret_triton_stdlib()
    _interpret_bf16_float64_casts()
    return "interpreter"


def _install_compile_only_driver() -> None:
    """``TRITON_OPS_COMPILE_ONLY=1``: kernels are compiled for sm_90 (PTX and cubin through the
    bundled ptxas) but never launched, on a machine with no GPU. Used by
    ``tests/test_compile_sm90.py`` to catch what only the compiler rejects."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver

    class CompileOnlyDriver:
        def get_current_device(self):
            return 0

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


_domain_checks = os.environ.get("TRITON_OPS_DOMAIN_CHECKS", "0") == "1"


def set_domain_checks(enabled: bool) -> None:
    global _domain_checks
    _domain_checks = bool(enabled)


def domain_checks_enabled() -> bool:
    return _domain_checks


@contextlib.contextmanager
def domain_checks(enabled: bool = True):
    """Turn domain checks on (or off) inside a ``with`` block."""
    global _domain_checks
    previous = _domain_checks
    _domain_checks = bool(enabled)
    try:
        yield
    finally:
        _domain_checks = previous


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
    if device is not None and not COMPILE_ONLY:
        if _BACKEND == "cuda" and device.type != "cuda":
            raise ValueError(f"triton_ops.{op}: tensors are on {device}; the compiled backend needs CUDA tensors")
        if _BACKEND == "interpreter" and device.type != "cpu":
            raise ValueError(f"triton_ops.{op}: tensors are on {device}; the interpreter backend needs CPU tensors")
    return device


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


def tile_elements() -> int:
    """Elements one program holds at a time (registers on a GPU; numpy arrays in the interpreter)."""
    return 1 << 15 if INTERPRETER else 4096


def num_warps_for(elements: int) -> int:
    if elements >= 4096:
        return 8
    if elements >= 1024:
        return 4
    return 2



# --------------------------------------------------------------------------------------------
# launches: every kernel launch goes through here, so tests and benchmarks can count them

_launch_count = 0


def launch(kernel, grid, *args, **kwargs):
    global _launch_count
    _launch_count += 1
    if INTERPRETER:
        import numpy as np

        # Masked-off lanes of a tile evaluate the scalar math on padding (log(0), 1/0) and are
        # never stored; numpy, which runs the interpreter, would warn about them.
        with np.errstate(all="ignore"):
            return kernel[grid](*args, **kwargs)
    # FMA contraction stated, not left to Triton's default (which 3.10 flips).
    kwargs.setdefault("enable_fp_fusion", True)
    if COMPILE_ONLY:
        return kernel.warmup(*args, grid=grid, **kwargs)
    return kernel[grid](*args, **kwargs)


def launch_count() -> int:
    return _launch_count


# --------------------------------------------------------------------------------------------
# launch-plan caches: Python decides a launch's shapes once per (shapes, strides, dtypes)

_plan_caches: list = []


def plan_cache(fn):
    """``functools.lru_cache`` for launch planners, cleared together when tuned configs change."""
    import functools

    cached = functools.lru_cache(maxsize=4096)(fn)
    _plan_caches.append(cached)
    return cached


def clear_plan_caches() -> None:
    for cache in _plan_caches:
        cache.cache_clear()
