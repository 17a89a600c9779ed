"""The persistent store of tuned kernel configs, which the launchers consult (``lookup``) before
their own heuristics; nothing is tuned inside a hot call. The sweeps that fill it are
``triton_ops/autotune.py`` (``python -m triton_ops tune``).

Store: JSON at ``$TRITON_OPS_TUNE_STORE`` (default ``~/.cache/triton_ops/tuned-configs.json``):
``{"version": 1, "configs": {device name: {key: config}}}`` with key
``family|direction|dtype|shape bucket`` (each size rounded up to a power of two). A store that
cannot be read (not a regular file, not JSON, nested too deep), has another version or holds an
entry outside the schema (``_SCHEMA``: exact keys, ints - not bools - in range, block sizes
powers of two) is ignored with a warning: a bad store never makes an op raise.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import torch

from . import runtime

STORE_VERSION = 1
# family -> {key: (lowest, highest, power of two)}: what a launcher can run on every backend.
_SCHEMA = {
    "gemm": {"BLOCK_M": (16, 256, True), "BLOCK_N": (16, 256, True), "BLOCK_K": (16, 256, True),
             "GROUP_M": (1, 64, False), "num_warps": (1, 16, True), "num_stages": (1, 8, False)},
    "pointwise": {"TILE": (32, 1 << 15, True), "num_warps": (1, 16, True)},
}
_forced: dict = {}
_cache: dict = {}


def store_path() -> Path:
    return Path(os.environ.get("TRITON_OPS_TUNE_STORE", Path.home() / ".cache" / "triton_ops" / "tuned-configs.json"))


def device_name() -> str:
    if runtime.backend() == "cuda":
        return torch.cuda.get_device_name()
    return runtime.backend()


def shape_bucket(shape) -> str:
    return "x".join(str(runtime.next_pow2(int(s))) for s in shape) or "scalar"


def store_key(family: str, direction: str, dtype, shape) -> str:
    return f"{family}|{direction}|{str(dtype).replace('torch.', '')}|{shape_bucket(shape)}"


def _valid(family: str, cfg) -> bool:
    schema = _SCHEMA.get(family)
    if schema is None or not isinstance(cfg, dict) or set(cfg) != set(schema):
        return False
    for key, value in cfg.items():
        lo, hi, pow2 = schema[key]
        if type(value) is not int or not lo <= value <= hi or (pow2 and value & (value - 1)):
            return False  # bools, floats, out of range, or not a power of two
    return True


def _read_regular(path: Path) -> str:
    """The text of ``path`` if it is a regular file (opened without blocking: a FIFO or a device
    is refused, never waited on); OSError otherwise."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read().decode("utf-8")
    finally:
        os.close(fd)


def load_store() -> dict:
    """The configs of this device (``{key: config}``), or {} with a warning when unusable."""
    path = store_path()
    if str(path) in _cache:  # read once per process (and again after ``save``)
        return _cache[str(path)]
    try:
        path.stat()
    except OSError:
        _cache[str(path)] = {}
        return {}
    configs: dict = {}
    try:
        data = json.loads(_read_regular(path))
        if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
            raise ValueError(f"version {data.get('version') if isinstance(data, dict) else None!r}, "
                             f"expected {STORE_VERSION}")
        configs_by_device = data.get("configs", {})
        mine = configs_by_device.get(device_name(), {}) if isinstance(configs_by_device, dict) else None
        if not isinstance(mine, dict):
            raise ValueError("'configs' must map device names to {key: config} objects")
        for key, cfg in mine.items():
            if _valid(key.split("|")[0], cfg):
                configs[key] = cfg
            else:
                warnings.warn(f"triton_ops.tune: ignoring malformed entry {key!r} in {path}", stacklevel=2)
    except (OSError, ValueError, AttributeError, RecursionError) as exc:
        warnings.warn(f"triton_ops.tune: ignoring the tuning store {path}: {exc}", stacklevel=2)
        configs = {}
    _cache[str(path)] = configs
    return configs


def lookup(family: str, dtype, shape, direction: str = "forward") -> dict | None:
    """The tuned config for this launch, if a sweep stored one (or a sweep is trying one)."""
    if family in _forced:
        return dict(_forced[family])
    cfg = load_store().get(store_key(family, direction, dtype, shape))
    return dict(cfg) if cfg else None


def save(entries: dict) -> Path:
    """Merge ``{key: config}`` into the store for this device."""
    path = store_path()
    data = {"version": STORE_VERSION, "configs": {}}
    with contextlib.suppress(OSError, ValueError, RecursionError):
        old = json.loads(_read_regular(path))
        if isinstance(old, dict) and old.get("version") == STORE_VERSION:
            data = old
    data.setdefault("configs", {}).setdefault(device_name(), {}).update(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)
    _cache.clear()
    runtime.clear_plan_caches()
    return path


@contextlib.contextmanager
def forced(family: str, cfg: dict):
    _forced[family] = cfg
    runtime.clear_plan_caches()
    try:
        yield
    finally:
        _forced.pop(family, None)
        runtime.clear_plan_caches()
