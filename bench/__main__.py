"""``python -m bench``: microbenchmarks over the whole registry.

Providers (``bench/providers.py``): ``triton_ops``; ``torch`` = the PyTorch call a user would
write for the op (``F.gelu(x, approximate="tanh")``, ``F.cross_entropy`` ...), named per row in
the ``impl`` column; ``torch.compile`` of that same call; ``liger`` (Liger-Kernel) for the ops it
has, skipped with a note where it cannot run.

On a GPU (``bench/timing.py``): device time per call from CUDA-graph replays (forward, VJP and
both, separately; the profiler's kernel-time sum where a capture fails, named in ``method``),
p20/p50/p80, each sample moving >= 256 MiB over input sets rotated past L2; GB/s from each
OpSpec's minimum bytes; % of a clone moving the same bytes in the same run; TFLOP/s; peak memory.
Host µs are measured on their own (``--host``).

On CPU (Triton's interpreter): bytes counted at the kernels' loads and stores and their ratio to
the minimum for ``triton_ops``; bytes and ATen launches of the torch call counted with a
TorchDispatchMode. Interpreter times are not performance and are not reported.

``--sweep``: rows x hidden, 2^24-2^28 elements, square and LLM GEMMs (``bench/cases.py``), with
line plots per family. ``--host``: host µs per call (``bench/host.py``).

Output: a long-format CSV (``op,family,direction,provider,impl,dtype,shape,metric,value,method``
plus device, torch, triton and git revision in every row), a JSON twin, PNG plots and a summary.
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import triton_ops
from triton_ops import runtime

from . import cases, providers, timing

GPU = runtime.backend() == "cuda"
DIRECTIONS = ("forward", "backward", "full")


def _with_grad(args, positions):
    args = list(args)
    for i in positions:
        args[i] = args[i].detach().requires_grad_(True)
    return args


# ------------------------------------------------------------------------------------------------
# CPU: counted traffic


def cpu_rows(spec, shape, dtype, directions):
    """Bytes and launches: triton_ops counted at the kernels' loads and stores (interpreter),
    the torch call counted per ATen op (TorchDispatchMode)."""
    from triton_ops.counting import count_aten, count_bytes

    rows = []
    # checked as every entry point checks them: forward_saved below is the unchecked launcher
    args = spec.check(*cases.make_args(spec, shape, dtype, "cpu"))
    fwd_min, bwd_min = spec.min_bytes(*args)
    out = spec.forward(*args)
    g = torch.randn(out.shape, dtype=out.dtype) if out.dim() else torch.tensor(0.5, dtype=out.dtype)
    needs = spec.default_needs(args)  # the gradients min_bytes assumes
    saved = list(spec.forward_saved(*args)[1:]) if spec.n_saved else None
    kw = {"saved": saved} if saved is not None else {}
    eager_call = providers.call("torch", spec)
    diff = cases.diff_positions(spec, args)
    for direction in directions:
        if direction == "full":
            continue
        with count_bytes() as t:
            if direction == "forward":
                spec.forward(*args)
            else:
                spec.vjp(*args, g, needs=needs, **kw)
        minimum = fwd_min if direction == "forward" else bwd_min
        eager = _with_grad(args, diff)
        if direction == "forward":
            with count_aten() as e:
                eager_call.fn(*eager)
        else:
            ref_out = eager_call.fn(*eager)
            with count_aten() as e:
                torch.autograd.grad(ref_out, [eager[i] for i in diff], g.to(ref_out.dtype))
        for provider, counted in (("triton_ops", t), ("torch", e)):
            rows += [(direction, provider, "bytes", counted.total), (direction, provider, "launches", counted.launches),
                     (direction, provider, "min_bytes", minimum)]
            if minimum:  # a minimum of 0 (a gradient that is a view of g) has no ratio
                rows.append((direction, provider, "bytes_ratio", counted.total / minimum))
    return rows


# ------------------------------------------------------------------------------------------------
# GPU: timings


class Case:
    """One (op, shape, dtype) on the GPU: rotated input sets, the bytes and flops per call."""

    def __init__(self, spec, shape, dtype, device="cuda"):
        self.spec = spec
        first = cases.make_args(spec, shape, dtype, device)
        self.min = spec.min_bytes(*first)
        self.flops = spec.flops(*first) if spec.flops else None
        l2 = torch.cuda.get_device_properties(device).L2_cache_size if torch.device(device).type == "cuda" else 0
        n = timing.rotation(self.min[0], l2)
        # drawn on the device: on the CPU, a quick case's inputs took seconds
        gens = [torch.Generator(device).manual_seed(k) for k in range(1, n)]
        self.sets = [first] + [cases.make_args(spec, shape, dtype, device, gen) for gen in gens]
        self.diff = cases.diff_positions(spec, first)

    def bytes(self, direction):
        return {"forward": self.min[0], "backward": self.min[1], "full": sum(self.min)}[direction]

    def steps(self, fn, direction):
        """step(i) for ``direction``, on input set i mod n (forward and VJP separately)."""
        sets = self.sets
        if direction == "forward":
            def forward(i):
                with torch.no_grad():
                    fn(*sets[i % len(sets)])
            return forward
        grad_sets = [_with_grad(a, self.diff) for a in sets]
        inputs = [[a[i] for i in self.diff] for a in grad_sets]
        if direction == "backward":
            outs, grads = [], []

            def backward(i):
                if not outs:  # the forwards, made on the stream the timer steps on (their backward's)
                    outs.extend(fn(*a) for a in grad_sets)
                    grads.extend(_drawn_like(o) for o in outs)
                k = i % len(sets)
                torch.autograd.grad(outs[k], inputs[k], grads[k], retain_graph=True)
            return backward
        grads = [_drawn_like(fn(*a)) for a in grad_sets]

        def full(i):
            k = i % len(sets)
            torch.autograd.grad(fn(*grad_sets[k]), inputs[k], grads[k])
        return full


def _drawn_like(t):
    """Normal values shaped like ``t``, from a generator of their own: a capture that failed can
    leave the device's default generator refusing every draw after it (the H200 run of
    2026-11-28: "Offset increment outside graph capture", every case after one failed capture)."""
    gen = torch.Generator(t.device).manual_seed(t.numel())
    return torch.randn(t.shape, generator=gen, device=t.device, dtype=t.dtype)


_clone_ms: dict = {}


def clone_ms(nbytes, calls, timers=None, device="cuda"):
    """A clone moving ``nbytes`` (read + write), timed like the ops, in the same run."""
    key = (nbytes, calls)
    if key not in _clone_ms:
        n = max(1, nbytes // 8)  # float32 elements: 4 bytes read + 4 written each
        l2 = torch.cuda.get_device_properties(device).L2_cache_size if torch.device(device).type == "cuda" else 0
        srcs = [_drawn_like(torch.empty(n, device=device)) for _ in range(timing.rotation(nbytes, l2))]
        samples, method = timing.device_time(lambda i: srcs[i % len(srcs)].clone(), calls, timers)
        _clone_ms[key] = (timing.percentiles(samples)[1], method)
    return _clone_ms[key]


def timed_rows(spec, shape, dtype, directions, provider_names, timers=None, device="cuda"):
    """Rows (direction, provider, impl, metric, value, method) of one case: device time per call
    (p20/p50/p80), GB/s and % of a same-bytes clone from the op's minimum bytes, TFLOP/s, peak memory."""
    rows = []
    # the clone each case is held against is timed with the case, in the same process state: on
    # the H200 of 2026-11-28 one process's pointwise forwards (one template, 7-21 instructions an
    # element) read 96-97% of clone and another's 88-92%, against clones each timed once early
    _clone_ms.clear()
    case = Case(spec, shape, dtype, device)
    on_gpu = torch.device(device).type == "cuda"
    for provider in provider_names:
        c = providers.call(provider, spec)
        if c is None:
            why = providers.liger_missing() or f"{provider} has no {spec.name}"
            if provider in ("liger",) and spec.name in providers.LIGER:
                rows.append(("forward", provider, why, "skipped", float("nan"), ""))
            continue
        for direction in directions:
            try:
                step = case.steps(c.fn, direction)
                nbytes = case.bytes(direction)
                calls = timing.calls_for(nbytes)
                samples, method = timing.device_time(step, calls, timers)
                p20, p50, p80 = timing.percentiles(samples)
                rows += [(direction, provider, c.impl, m, v, method)
                         for m, v in (("time_ms", p50), ("time_p20_ms", p20), ("time_p80_ms", p80))]
                if nbytes:
                    ref_ms, ref_method = clone_ms(nbytes, calls, timers, device)
                    rows += [(direction, provider, c.impl, "gbps", nbytes / (p50 * 1e-3) / 1e9, method),
                             (direction, provider, c.impl, "pct_clone", 100 * ref_ms / p50, ref_method)]
                if case.flops:
                    fl = {"forward": case.flops[0], "backward": case.flops[1], "full": sum(case.flops)}[direction]
                    rows.append((direction, provider, c.impl, "tflops", fl / (p50 * 1e-3) / 1e12, method))
                if on_gpu:  # one more call, eager, alone: its allocations above what is live
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    step(0)
                    torch.cuda.synchronize()
                    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
                    rows.append((direction, provider, c.impl, "peak_mem_mb", peak, "eager"))
            except Exception as exc:  # noqa: BLE001 - a provider that fails is reported, not fatal
                rows.append((direction, provider, c.impl, "error", 1.0, ""))
                print(f"\n{spec.name} {provider} {direction} {tuple(shape)} {dtype}: {type(exc).__name__}: {exc}"[:400],
                      file=sys.stderr)
            if on_gpu:
                reserved = release_device_memory()
                if reserved > 8 << 30:  # what the caching allocator could not give back (the OOM's trail)
                    print(f"\n{spec.name} {provider} {direction}: {reserved / 2**30:.1f} GiB reserved after the case, "
                          f"{torch.cuda.memory_allocated() / 2**30:.2f} GiB allocated", file=sys.stderr)
    return rows


def release_device_memory():
    """Give back what a case left in the caching allocator. ``gc.collect`` first: a CUDA graph
    (or a failed capture's traceback) caught in a reference cycle keeps its private memory pool
    until the cyclic collector runs, and ``empty_cache`` cannot release a live pool. The H200 run
    of 2026-11-27 (second) ran out of memory after 40 ops with 138 GiB reserved but unallocated (and
the third, with this collection, after 44: see ``timing.graph_pool``). Returns the bytes still reserved."""
    gc.collect()
    torch.cuda.empty_cache()
    return torch.cuda.memory_reserved()


# ------------------------------------------------------------------------------------------------
# output

FIELDS = ["op", "family", "direction", "provider", "impl", "dtype", "shape", "metric", "value", "method", "device",
          "torch", "triton", "git_rev"]


def git_revision() -> str:
    """``TRITON_OPS_GIT_REV`` where the caller gives it (a copied tree: the GPU machine's copy once
    carried a stale ``.git`` whose HEAD was an older commit); else ``git rev-parse HEAD``, with
    ``-dirty`` when the working tree differs from it."""
    if os.environ.get("TRITON_OPS_GIT_REV"):
        return os.environ["TRITON_OPS_GIT_REV"]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = dirty = ""
    if len(rev) == 40:
        return rev + ("-dirty" if dirty else "")
    return "unknown"


def environment() -> dict:
    device = torch.cuda.get_device_name() if GPU else "cpu (triton interpreter)"
    return dict(device=device, torch=torch.__version__, triton=__import__("triton").__version__, git_rev=git_revision())


def write_outputs(records, out_csv: Path, sweep=False):
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(records)
    out_csv.with_suffix(".json").write_text(json.dumps(records, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    return (sweep_plots if sweep else bar_plots)(records, out_csv, plt)


def bar_plots(records, out_csv, plt):
    plots = []
    metric = "pct_clone" if GPU else "bytes_ratio"
    for family in sorted({r["family"] for r in records}):
        rs = [r for r in records if r["family"] == family and r["metric"] == metric]
        if not rs:
            continue
        labels = sorted({(r["op"], r["direction"]) for r in rs})
        provider_names = sorted({r["provider"] for r in rs})
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(labels) + 2), 4))
        width = 0.8 / len(provider_names)
        for k, provider in enumerate(provider_names):
            vals = []
            for op, direction in labels:
                v = [r["value"] for r in rs if (r["op"], r["direction"], r["provider"]) == (op, direction, provider)]
                vals.append(max(v) if v else 0)
            ax.bar([i + k * width for i in range(len(labels))], vals, width, label=provider)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels([f"{o}\n{d}" for o, d in labels], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("% of a clone moving the same bytes" if GPU else "counted bytes / minimum bytes")
        if not GPU:
            ax.axhline(1.0, color="k", lw=0.5)
        plots.append(_save(plt, fig, ax, f"{family} ({records[0]['device']})", out_csv, family))
    return plots


def _save(plt, fig, ax, title, out_csv, suffix, legend_size=7):
    ax.set_title(title)
    ax.legend(fontsize=legend_size, ncol=1 if legend_size >= 7 else 2)
    fig.tight_layout()
    path = out_csv.with_name(f"{out_csv.stem}-{suffix}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_plots(records, out_csv, plt):
    """One figure per sweep family and direction: % of clone (TFLOP/s for GEMMs, where the
    torch provider is cuBLAS) against the bytes moved, one line per op and provider."""
    plots = []
    for family in sorted({cases.sweep_family(triton_ops.registry[r["op"]]) for r in records}):
        metric = "tflops" if family == "gemm" else "pct_clone"
        for direction in DIRECTIONS:
            rs = [r for r in records if r["metric"] == metric and r["direction"] == direction
                  and cases.sweep_family(triton_ops.registry[r["op"]]) == family]
            if not rs:
                continue
            fig, ax = plt.subplots(figsize=(8, 5))
            for key in sorted({(r["op"], r["provider"], r["dtype"]) for r in rs}):
                pts = sorted((_size(r), r["value"]) for r in rs if (r["op"], r["provider"], r["dtype"]) == key)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", lw=1,
                        label=f"{key[0]} {key[1]} {key[2].replace('torch.', '')}")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("elements of the first input (M*N*K for GEMMs)")
            ax.set_ylabel("TFLOP/s" if metric == "tflops" else "% of a clone moving the same bytes")
            plots.append(_save(plt, fig, ax, f"{family} {direction} ({records[0]['device']})", out_csv,
                               f"{family}-{direction}", legend_size=6))
    return plots


def _size(record) -> int:
    n = 1
    for d in record["shape"].split("x"):
        n *= int(d)
    return n


def summary(records):
    metric = "pct_clone" if GPU else "bytes_ratio"
    extra = "time_ms" if GPU else "launches"
    table = {}
    for r in records:
        if r["metric"] in (metric, extra):
            key = (r["op"], r["direction"], r["dtype"], r["shape"])
            table.setdefault(key, {})[(r["provider"], r["metric"])] = r["value"]
    names = [p for p in providers.PROVIDERS if any(r["provider"] == p and r["metric"] in (metric, extra) for r in records)]
    head = f"{'op':<24}{'dir':<9}{'dtype':<10}{'shape':<16}" + "".join(f"{p + ' ' + metric:>24}" for p in names) \
        + "".join(f"{p + ' ' + extra:>22}" for p in names)
    lines = [head, "-" * len(head)]
    for (op, direction, dtype, shape), vals in sorted(table.items()):
        cells = "".join(f"{vals.get((p, metric), float('nan')):>24.3f}" for p in names)
        cells += "".join(f"{vals.get((p, extra), float('nan')):>22.4g}" for p in names)
        lines.append(f"{op:<24}{direction:<9}{dtype.replace('torch.', ''):<10}{shape:<16}{cells}")
    skipped = sorted({(r["provider"], r["impl"]) for r in records if r["metric"] == "skipped"})
    lines += [f"skipped: {p}: {why}" for p, why in skipped]
    return "\n".join(lines)


def dtype_label(spec, dtype) -> str:
    """The CSV's dtype: float32 GEMMs run on TF32 tensor cores (both providers) are told apart."""
    tf32 = dtype == torch.float32 and spec.family == "matmul" and torch.get_float32_matmul_precision() != "highest"
    return str(dtype) + ("-tf32" if tf32 else "")


def sweep_jobs(ops, dtypes):
    return [(n, s, d) for n in ops for d in dtypes for s in cases.sweep_shapes(triton_ops.registry[n])]


def case_rows(spec, shape, dtype, directions, provider_names):
    """(direction, provider, impl, metric, value, method) rows of one case, on this backend."""
    try:
        if GPU:
            return timed_rows(spec, shape, dtype, directions, provider_names)
        rows = cpu_rows(spec, shape, dtype, directions)
        impl = {"triton_ops": providers.call("triton_ops", spec).impl, "torch": providers.TORCH[spec.name].impl}
        rows = [(d, pv, impl[pv], m, v, "counted") for d, pv, m, v in rows]
        if "liger" in provider_names and spec.name in providers.LIGER:
            rows.append(("forward", "liger", providers.liger_missing() or "not counted on CPU", "skipped",
                         float("nan"), ""))
        return rows
    except Exception as exc:  # noqa: BLE001 - one failing case is reported, the run goes on
        print(f"\n{spec.name} {shape} {dtype}: {type(exc).__name__}: {exc}"[:400], file=sys.stderr)
        return [("forward", "triton_ops", "", "error", 1.0, "")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="one size per op (>= 256 MiB per call on a GPU)")
    mode.add_argument("--sweep", action="store_true", help="rows x hidden, 2^24-2^28 elements, GEMM shapes")
    mode.add_argument("--host", action="store_true", help="host µs per call, triton_ops vs torch (small tensors)")
    p.add_argument("--dry-run", action="store_true", help="list the cases and exit")
    p.add_argument("--ops", nargs="+", help="ops to run (default: every registered op but identity)")
    p.add_argument("--dtypes", nargs="+", help="default: bfloat16 (quick) or bfloat16 float32 on a GPU, float32 on CPU")
    p.add_argument("--modes", nargs="+", choices=DIRECTIONS, help="default: forward backward (+ full on a GPU)")
    p.add_argument("--providers", nargs="+", choices=providers.PROVIDERS)
    p.add_argument("--out", default="out/bench.csv", help="CSV path; the JSON and PNGs go beside it")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--float32-matmul-precision", choices=("highest", "high"),
                   help="torch.set_float32_matmul_precision for every provider (triton_ops follows it: 'high' "
                        "is TF32 on both sides); float32 GEMM rows under 'high' are labelled float32-tf32")
    args = p.parse_args(argv)
    if args.float32_matmul_precision:
        torch.set_float32_matmul_precision(args.float32_matmul_precision)
    ops = args.ops or [n for n in sorted(triton_ops.registry) if n != "identity"]
    meta = environment()
    start = time.time()
    if args.host:
        return host_main(ops, Path(args.out), meta, args.dry_run)
    default_dtypes = (["bfloat16"] if args.quick else ["bfloat16", "float32"]) if GPU else ["float32"]
    dtypes = [getattr(torch, d) for d in (args.dtypes or default_dtypes)]
    directions = args.modes or (list(DIRECTIONS) if GPU and not args.quick else ["forward", "backward"])
    chosen = args.providers or (providers.PROVIDERS if GPU else ("triton_ops", "torch", "liger"))
    provider_names = [p for p in providers.PROVIDERS if p in chosen]  # in PROVIDERS' order
    if args.sweep:
        jobs = sweep_jobs(ops, dtypes)
    else:
        jobs = [(n, cases.quick_shape(triton_ops.registry[n], GPU), d) for n in ops for d in dtypes]
    if args.dry_run or (args.sweep and not GPU):
        for name, shape, dtype in jobs:
            print(f"{name:<24}{cases.shape_label(shape):<20}{str(dtype).replace('torch.', ''):<10}{' '.join(directions)}")
        note = "" if args.dry_run else " (a sweep needs a GPU: listed, not run)"
        print(f"{len(jobs)} cases x {len(directions)} directions x {len(provider_names)} providers{note}")
        return 0
    try:
        from tqdm import tqdm
        bar = tqdm(jobs, desc="bench", unit="case", disable=args.no_progress)
    except ImportError:
        bar = jobs
    records = []
    if GPU:  # warm the card up (clocks, allocator) before the first measured op
        warm = torch.empty(1 << 26, device="cuda")
        for _ in range(200):
            warm.mul_(1.0)
        torch.cuda.synchronize()
        del warm
    try:
        for name, shape, dtype in bar:
            spec = triton_ops.registry[name]
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{name} {dtype}".replace("torch.", ""))
            dirs = directions + ["full"] if GPU and name in cases.FULL_STEP_OPS and "full" not in directions \
                else directions
            rows = case_rows(spec, shape, dtype, dirs, provider_names)
            records += [dict(op=name, family=spec.family, direction=d, provider=pv, impl=impl, dtype=dtype_label(spec, dtype),
                             shape=cases.shape_label(shape), metric=m, value=float(v), method=method, **meta)
                        for d, pv, impl, m, v, method in rows]
    except KeyboardInterrupt:  # a stage limit (gpu_check.sh sends SIGINT): keep what was measured
        print(f"\ninterrupted after {len({(r['op'], r['shape'], r['dtype']) for r in records})} of {len(jobs)} "
              "cases: writing those", file=sys.stderr)
    out_csv = Path(args.out)
    plots = write_outputs(records, out_csv, sweep=args.sweep)
    print()
    print(summary(records))
    print(f"\n{len(records)} rows -> {out_csv} (+ .json, {len(plots)} plots) in {time.time() - start:.0f}s "
          f"on {meta['device']}, torch {meta['torch']}, triton {meta['triton']}, rev {meta['git_rev']}")
    errors = [r for r in records if r["metric"] == "error"]
    return 1 if errors and not GPU else 0


def host_main(ops, out_csv: Path, meta, dry_run=False) -> int:
    from . import host

    if dry_run:
        print(f"{len(ops)} ops x (forward, full) x (triton_ops, torch): " + " ".join(ops))
        return 0
    records = [dict(r, **meta) for r in host.run(ops)]
    write_outputs(records, out_csv)
    print(host.summary(records))
    print(f"\n{len(records)} rows -> {out_csv} on {meta['device']}, rev {meta['git_rev']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
