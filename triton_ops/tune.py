"""Autotune sweeps over kernel configs, and the persistent store of their winners.

``python -m triton_ops tune --ops matmul linear --dtypes bfloat16 --shapes 4096x4096`` sweeps the
config space of each op's kernel family, checks every config against the op's reference, times
it (on a GPU; the interpreter cannot time and says so) and writes the winner to the store. The
launchers consult the store (``lookup``) before their own heuristics; nothing is tuned inside a
hot call.

Store: JSON at ``$TRITON_OPS_TUNE_STORE`` (default ``~/.cache/triton_ops/tuned-configs.json``):
``{"version": 1, "configs": {device name: {key: config}}}`` with key
``family|direction|dtype|shape bucket`` (each size rounded up to a power of two). A store that
cannot be read, has another version or holds a malformed entry is ignored with a warning.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
import warnings
from pathlib import Path

import torch

from . import runtime

STORE_VERSION = 1
_FAMILY_KEYS = {
    "gemm": ("BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_warps", "num_stages"),
    "pointwise": ("TILE", "num_warps"),
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
    """The family's keys, positive ints each; tile sizes and num_warps powers of two (tl.arange
    and the launcher accept nothing else)."""
    keys = _FAMILY_KEYS.get(family)
    return (isinstance(cfg, dict) and keys is not None and set(cfg) == set(keys)
            and all(type(v) is int and v > 0 for v in cfg.values())
            and all(v & (v - 1) == 0 for k, v in cfg.items() if k.startswith(("BLOCK_", "TILE", "num_warps"))))


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
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
            raise ValueError(f"version {data.get('version') if isinstance(data, dict) else None!r}, "
                             f"expected {STORE_VERSION}")
        for key, cfg in data.get("configs", {}).get(device_name(), {}).items():
            if _valid(key.split("|")[0], cfg):
                configs[key] = cfg
            else:
                warnings.warn(f"triton_ops.tune: ignoring malformed entry {key!r} in {path}", stacklevel=2)
    except (OSError, ValueError, AttributeError) as exc:
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
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(path.read_text())
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


# --------------------------------------------------------------------------------------------
# config spaces and sweeps

OP_FAMILY = {"matmul": "gemm", "linear": "gemm", "one_hot_embedding": "gemm"}


def family_of(op: str) -> str:
    from .spec import registry

    spec = registry[op]
    return OP_FAMILY.get(op, "pointwise" if spec.family in ("unary", "binary") else "")


def space(family: str) -> list[dict]:
    if family == "gemm":
        blocks = [16, 32, 64] if runtime.INTERPRETER else [64, 128, 256]
        out = []
        for bm, bn, bk, w, s in itertools.product(blocks, blocks, [32, 64], [4, 8], [3, 4] if not runtime.INTERPRETER
                                                  else [1]):
            if runtime.INTERPRETER and (bm > 32 or bn > 32) and (bm, bn) != (64, 64):
                continue
            out.append(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=w, num_stages=s))
        return out
    if family == "pointwise":
        tiles = [1 << 12, 1 << 14] if runtime.INTERPRETER else [1024, 2048, 4096, 8192]
        return [dict(TILE=t, num_warps=w) for t in tiles for w in (4, 8)]
    return []


def _gpu_time_ms(fn) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median"))


def sweep(ops, shapes, dtypes, *, timer=None, dry_run=False, progress=True, write=True):
    """Sweep each op's kernel-family space; returns result rows and stores the winners.

    ``timer(fn) -> ms`` defaults to ``triton.testing.do_bench`` on a GPU; under the interpreter
    configs are only checked for correctness (no timer: nothing is stored) unless one is given.
    """
    from .spec import registry

    if timer is None and runtime.backend() == "cuda":
        timer = _gpu_time_ms
    rows, winners = [], {}
    jobs = [(op, shape, dtype) for op in ops for shape in shapes for dtype in dtypes]
    bar = _progress(sum(len(space(family_of(op))) for op, _, _ in jobs), progress)
    for op, shape, dtype in jobs:
        family = family_of(op)
        spec = registry[op]
        if not family:
            rows.append(dict(op=op, shape=shape, dtype=str(dtype), config="-", ok=None, ms=None,
                             note="no tunable kernel family"))
            continue
        args = spec.bind(*spec.sample(shape, dtype, runtime.default_device(), torch.Generator().manual_seed(0)))
        out_shape = tuple(spec.alloc(*spec.check(*args)).shape) if not spec.n_saved else None
        best = None
        for cfg in space(family):
            bar.update(1)
            if dry_run:
                rows.append(dict(op=op, shape=shape, dtype=str(dtype), config=cfg, ok=None, ms=None, note="dry run"))
                continue
            with forced(family, cfg):
                try:
                    out = spec.forward(*args)
                    ref = spec.reference(*[a.double() if isinstance(a, torch.Tensor) and a.is_floating_point()
                                           else a for a in args])
                    ok = bool(torch.allclose(out.double().cpu(), ref.double().cpu(), rtol=5e-2, atol=5e-2))
                    ms = timer(lambda: spec.forward(*args)) if (timer and ok) else None
                except Exception as exc:  # a config the compiler or the device refuses
                    ok, ms = False, None
                    cfg = {**cfg, "error": type(exc).__name__}
            rows.append(dict(op=op, shape=shape, dtype=str(dtype), config=cfg, ok=ok, ms=ms,
                             note="" if timer else "interpreter: checked, not timed"))
            if ok and ms is not None and (best is None or ms < best[0]):
                best = (ms, cfg)
        if best is not None:
            winners[store_key(family, "forward", dtype, _family_shape(family, op, args, out_shape))] = best[1]
    bar.close()
    if winners and write and not dry_run:
        save(winners)
    return rows, winners


def _family_shape(family, op, args, out_shape):
    """The shape a family's launcher looks itself up by (gemm: M, N, K; pointwise: numel)."""
    if family == "gemm":
        a, b = args[0], args[1]
        if op == "linear":
            return (a.numel() // a.shape[-1], b.shape[0], a.shape[-1])
        return (a.numel() // a.shape[-1], b.shape[-1], a.shape[-1])
    return (args[0].numel(),)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total, enabled):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="tune", unit="config")


# --------------------------------------------------------------------------------------------
# command line: python -m triton_ops tune ...


def add_arguments(p):
    p.add_argument("--ops", nargs="+", default=["matmul", "linear"], help="ops to tune")
    p.add_argument("--shapes", nargs="+", default=["512x512"], help="input shapes, e.g. 4096x4096")
    p.add_argument("--dtypes", nargs="+", default=["float16", "float32"])
    p.add_argument("--dry-run", action="store_true", help="list the config space, run nothing")
    p.add_argument("--no-write", action="store_true", help="do not update the store")


def main(args) -> int:
    shapes = [tuple(int(s) for s in sh.split("x")) for sh in args.shapes]
    dtypes = [getattr(torch, d) for d in args.dtypes]
    if runtime.backend() != "cuda" and not args.dry_run:
        print("triton_ops.tune: no GPU here - every config is checked against the reference, none can be "
              "timed, and the store is left as it is.")
    start = time.time()
    rows, winners = sweep(args.ops, shapes, dtypes, dry_run=args.dry_run, write=not args.no_write)
    print(f"{'op':<12} {'shape':<12} {'dtype':<15} {'ok':<5} {'ms':>9}  config")
    for r in rows:
        ms = f"{r['ms']:.4f}" if r["ms"] is not None else "-"
        print(f"{r['op']:<12} {'x'.join(map(str, r['shape'])):<12} {r['dtype']:<15} {str(r['ok']):<5} {ms:>9}  "
              f"{r['config']} {r['note']}")
    if winners:
        print(f"stored {len(winners)} winner(s) in {store_path()}")
    print(f"{len(rows)} configs in {time.time() - start:.1f}s")
    return 0 if all(r["ok"] is not False for r in rows if "error" not in str(r["config"])) else 1
