"""Autotune sweeps over kernel configs (the tool that fills ``tune``'s store).

``python -m triton_ops tune --ops matmul linear --dtypes bfloat16 --shapes 8192x4096x4096`` sweeps the
config space of each op's kernel family, checks every config against the op's reference, times
it (on a GPU; the interpreter cannot time and says so) and writes the winner to the store.
"""
from __future__ import annotations

import itertools
import time

import torch

from . import runtime
from .spec import registry
from .launchers.matmul import SMEM_PER_SM
from .tune import forced, save, store_key, store_path


OP_FAMILY = {"matmul": "gemm", "linear": "gemm", "one_hot_embedding": "gemm"}


def family_of(op: str) -> str:

    spec = registry[op]
    return OP_FAMILY.get(op, "pointwise" if spec.family in ("unary", "binary") else "")


def space(family: str, dtype=None) -> list[dict]:
    """The configs a sweep tries. GEMMs on a GPU: tensor-core tiles (16-bit, TF32), or, for an
    IEEE float32 / float64 GEMM (FMA units, ``precision='ieee'``), shallow K steps (16, 32: tl.dot's
    least K is 16) with 4 or 8 warps and 2-3 stages, whose accumulator and operand slices live in
    registers (sm_90, Triton 3.6: 64 x 64 x 32 at 75-96 registers, 128 x 128 x 32 at 178, no
    spills); their speed is set by shared-memory reads per FMA, which a sweep measures."""
    if family == "gemm":
        if not runtime.INTERPRETER and dtype in (torch.float32, torch.float64) and _fma(dtype):
            return [dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=w, num_stages=s)
                    for (bm, bn), bk, w, s in itertools.product(((64, 64), (128, 64), (64, 128), (128, 128)),
                                                               (16, 32), (4, 8), (2, 3))]
        blocks = [16, 32, 64] if runtime.INTERPRETER else [64, 128, 256]
        out = []
        for bm, bn, bk, w, s in itertools.product(blocks, blocks, [32, 64], [4, 8], [3, 4] if not runtime.INTERPRETER
                                                  else [1]):
            if runtime.INTERPRETER and (bm > 32 or bn > 32) and (bm, bn) != (64, 64):
                continue
            if s * (bm + bn) * bk * 2 > SMEM_PER_SM:  # a 16-bit pipeline that cannot fit one SM
                continue
            out.append(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, num_warps=w, num_stages=s))
        return out
    if family == "pointwise":
        tiles = [1 << 12, 1 << 14] if runtime.INTERPRETER else [1024, 2048, 4096, 8192]
        return [dict(TILE=t, num_warps=w) for t in tiles for w in (4, 8)]
    return []


def _fma(dtype) -> bool:
    """Whether this dtype's GEMM runs on the FMA units (no tensor-core path for its precision)."""
    from .launchers.matmul import default_precision

    return dtype == torch.float64 or default_precision() == "ieee"


def _gpu_time_ms(fn) -> float:
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median"))


def sweep(ops, shapes, dtypes, *, timer=None, dry_run=False, progress=True, write=True):
    """Sweep each op's kernel-family space; returns result rows and stores the winners.

    ``timer(fn) -> ms`` defaults to ``triton.testing.do_bench`` on a GPU; under the interpreter
    configs are only checked for correctness (no timer: nothing is stored) unless one is given.
    """

    if timer is None and runtime.backend() == "cuda":
        timer = _gpu_time_ms
    rows, winners = [], {}
    jobs = [(op, shape, dtype) for op in ops for shape in shapes for dtype in dtypes]
    bar = _progress(sum(len(space(family_of(op), dtype)) for op, _, dtype in jobs), progress)
    for op, shape, dtype in jobs:
        family = family_of(op)
        if not family:
            rows.append(dict(op=op, shape=shape, dtype=str(dtype), config="-", ok=None, ms=None,
                             note="no tunable kernel family"))
            continue
        if dry_run:
            rows += [dict(op=op, shape=shape, dtype=str(dtype), config=cfg, ok=None, ms=None, note="dry run")
                     for cfg in space(family, dtype)]
            bar.update(len(space(family, dtype)))
            continue
        spec = registry[op]
        args = sample_args(op, shape, dtype, runtime.default_device())
        out_shape = tuple(spec.alloc(*spec.check(*args)).shape) if not spec.n_saved else None
        ref = spec.reference(*[a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                               for a in args]).double().cpu()
        best = None
        for cfg in space(family, dtype):
            bar.update(1)
            with forced(family, cfg):
                try:
                    out = spec.forward(*args)
                    ok = bool(torch.allclose(out.double().cpu(), ref, rtol=5e-2, atol=5e-2))
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


def sample_args(op: str, shape, dtype, device) -> tuple:
    """The op's bound arguments for a sweep at ``shape``: a GEMM op's M x N x K (its launches
    look their config up by that triple) as a, b of a @ b (linear: x and nn.Linear's [N, K]
    weight, no bias; one_hot_embedding: one-hot rows of K classes and a [K, N] table), else the
    op's own sample at that input shape."""
    spec = registry[op]
    gen = torch.Generator().manual_seed(0)
    if family_of(op) == "gemm" and len(shape) == 3:
        M, N, K = shape

        def randn(*size, scale=1.0):
            return (torch.randn(size, generator=gen, dtype=torch.float64) * scale).to(device, dtype)
        if op == "linear":
            return spec.bind(randn(M, K), randn(N, K, scale=K ** -0.5))
        if op == "one_hot_embedding":
            onehot = torch.nn.functional.one_hot(torch.randint(0, K, (M,), generator=gen), K)
            return spec.bind(onehot.to(device, dtype), randn(K, N))
        return spec.bind(randn(M, K), randn(K, N, scale=K ** -0.5))
    return spec.bind(*spec.sample(shape, dtype, device, gen))


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
    p.add_argument("--shapes", nargs="+", default=["512x512"],
                   help="input shapes, e.g. 4096x4096; a GEMM op's also M x N x K, e.g. 8192x4096x4096")
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
