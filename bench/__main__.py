"""``python -m bench``: microbenchmarks over the whole registry.

On a GPU: time (median, p20, p80 of ``triton.testing.do_bench``; CUDA graphs under 20 us), GB/s
from each OpSpec's minimum bytes, % of a clone's bandwidth measured in the same run, TFLOP/s for
the matmul family, peak memory and per-call host overhead, for providers ``triton_ops``,
``torch`` (eager, the op's reference math) and ``torch.compile`` (of that reference).

On CPU (Triton's interpreter): bytes counted at the kernels' loads and stores and their ratio to
the minimum for ``triton_ops``; bytes and ATen launches counted with a TorchDispatchMode for
eager ``torch``. Interpreter times are not performance and are not reported.

Output: a long-format CSV (``op,direction,provider,dtype,shape,metric,value`` plus device, torch,
triton, git revision), a JSON twin, PNG plots per op family and a summary table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import triton_ops
from triton_ops import runtime

GPU = runtime.backend() == "cuda"
DIRECTIONS = ("forward", "backward", "full")
# --quick compiles the reference with torch.compile for these ops only (each compile costs
# seconds to minutes; the full run compiles every op)
QUICK_COMPILE = ("gelu", "mul", "mse_loss", "log_cosh_loss", "cross_entropy_logits", "layer_norm", "linear", "sum")


# ------------------------------------------------------------------------------------------------
# inputs per op family and size


QUICK = False


def sizes_for(spec, quick: bool):
    """Shapes swept for one op (the matmul family and rows get their own)."""
    if not GPU:
        return [(64, 1000)] if spec.family != "matmul" else [(64, 96)]
    if spec.family == "matmul":
        return [(4096, 4096)] if quick else [(1024, 1024), (4096, 4096), (8192, 8192)]
    if spec.name in ("cross_entropy_logits",):
        return [(4096, 32768)] if quick else [(4096, 8192), (4096, 32768), (1024, 131072)]
    return [(8192, 4096)] if quick else [(1024, 1024), (4096, 4096), (8192, 8192), (16384, 8192)]


def make_args(spec, shape, dtype, device):
    gen = torch.Generator().manual_seed(0)
    if spec.name == "linear":
        x = torch.randn(shape, generator=gen).to(device, dtype)
        w = (torch.randn(shape[-1], shape[-1], generator=gen) * shape[-1] ** -0.5).to(device, dtype)
        return spec.bind(x, w, torch.randn(shape[-1], generator=gen).to(device, dtype), "gelu")
    if spec.name == "embedding" and GPU:
        idx = torch.randint(0, 32768, (shape[0] * 4,), generator=gen).to(device)
        return spec.bind(idx, torch.randn(32768, 1024, generator=gen).to(device, dtype))
    if spec.name == "one_hot_embedding" and GPU:
        idx = torch.randint(0, 4096, (shape[0],), generator=gen)
        return spec.bind(torch.nn.functional.one_hot(idx, 4096).to(device, dtype),
                         torch.randn(4096, 1024, generator=gen).to(device, dtype))
    return spec.bind(*spec.sample(shape, dtype, device, gen))


def _diff_inputs(spec, args):
    return [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]


def _with_grad(spec, args):
    args = list(args)
    for i in _diff_inputs(spec, args):
        args[i] = args[i].detach().requires_grad_(True)
    return args


def _fwd_fn(provider, spec):
    if provider == "triton_ops":
        return spec.fn
    if provider == "torch":
        return spec.reference
    return torch.compile(spec.reference)


# ------------------------------------------------------------------------------------------------
# CPU: counted traffic


def cpu_rows(spec, shape, dtype, directions):
    from triton_ops.counting import count_aten, count_bytes

    rows = []
    args = make_args(spec, shape, dtype, "cpu")
    fwd_min, bwd_min = spec.min_bytes(*args)
    out = spec.forward(*args)
    g = torch.randn(out.shape, dtype=out.dtype) if out.dim() else torch.tensor(0.5, dtype=out.dtype)
    needs = spec.default_needs(args)  # the gradients min_bytes assumes
    saved = list(spec.forward_saved(*args)[1:]) if spec.n_saved else None
    kw = {"saved": saved} if saved is not None else {}
    for direction in directions:
        if direction == "full":
            continue
        with count_bytes() as t:
            if direction == "forward":
                spec.forward(*args)
            else:
                spec.vjp(*args, g, needs=needs, **kw)
        minimum = fwd_min if direction == "forward" else bwd_min
        rows += [(direction, "triton_ops", "bytes", t.total), (direction, "triton_ops", "bytes_ratio", t.total / minimum),
                 (direction, "triton_ops", "launches", t.launches), (direction, "triton_ops", "min_bytes", minimum)]
        eager = _with_grad(spec, args)
        diff = [i for i, n in zip(spec.tensor_args, needs) if n]
        if direction == "forward":
            with count_aten() as e:
                spec.reference(*eager)
        else:
            ref_out = spec.reference(*eager)
            with count_aten() as e:
                torch.autograd.grad(ref_out, [eager[i] for i in diff], g.to(ref_out.dtype))
        rows += [(direction, "torch", "bytes", e.total), (direction, "torch", "launches", e.launches),
                 (direction, "torch", "bytes_ratio", e.total / minimum)]
    return rows


# ------------------------------------------------------------------------------------------------
# GPU: timings


def _time(fn, graphable=False):
    import triton.testing

    ms, p20, p80 = triton.testing.do_bench(fn, warmup=5, rep=40, quantiles=[0.5, 0.2, 0.8])
    # tiny kernels: launch overhead dominates do_bench; replay a CUDA graph instead. Forward
    # calls only: capturing autograd's backward can fail and leave the CUDA RNG unusable.
    if ms < 0.02 and graphable:
        try:
            ms = triton.testing.do_bench_cudagraph(fn, rep=40)
            p20 = p80 = ms
        except Exception:  # noqa: BLE001 - a provider that cannot be captured keeps its do_bench figure
            pass
    return ms, p20, p80


def clone_gbps(device) -> float:
    source = torch.empty(1 << 28, dtype=torch.float32, device=device)  # 1 GiB
    ms, _, _ = _time(source.clone)
    return 2 * (1 << 28) * 4 / (ms * 1e-3) / 1e9


def host_overhead_us(fn, args, calls=200) -> float:
    for _ in range(3):  # compile and plan this input's specialization first: not host overhead
        fn(*args)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def gpu_rows(spec, shape, dtype, directions, providers, clone_bw):
    rows = []
    device = torch.device("cuda")
    args = make_args(spec, shape, dtype, device)
    fwd_min, bwd_min = spec.min_bytes(*args)
    flops = spec.flops(*args) if spec.flops else None
    tiny = make_args(spec, (8, 16) if spec.family != "matmul" else (16, 16), dtype, device)
    for provider in providers:
        if provider == "torch.compile" and QUICK and spec.name not in QUICK_COMPILE:
            continue
        try:
            fn = _fwd_fn(provider, spec)
            gargs = _with_grad(spec, args)
            diff = [gargs[i] for i in _diff_inputs(spec, gargs)]
            out = fn(*gargs)
            g = torch.randn_like(out)
            fn(*args)  # warm-up/compile of the no-grad path
            for direction in directions:
                if direction == "forward":
                    def run():
                        with torch.no_grad():
                            fn(*args)
                    minimum, fl = fwd_min, flops[0] if flops else None
                elif direction == "backward":
                    def run():
                        torch.autograd.grad(out, diff, g, retain_graph=True)
                    minimum, fl = bwd_min, flops[1] if flops else None
                else:
                    def run():
                        torch.autograd.grad(fn(*gargs), diff, g)
                    minimum, fl = fwd_min + bwd_min, sum(flops) if flops else None
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                ms, p20, p80 = _time(run, graphable=direction == "forward")
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
                gbps = minimum / (ms * 1e-3) / 1e9
                rows += [(direction, provider, "time_ms", ms), (direction, provider, "time_p20_ms", p20),
                         (direction, provider, "time_p80_ms", p80), (direction, provider, "gbps", gbps),
                         (direction, provider, "pct_clone", 100 * gbps / clone_bw),
                         (direction, provider, "peak_mem_mb", peak)]
                if fl:
                    rows.append((direction, provider, "tflops", fl / (ms * 1e-3) / 1e12))
            with torch.no_grad():
                rows.append(("forward", provider, "host_us", host_overhead_us(fn, tiny)))
        except Exception as exc:  # noqa: BLE001 - a provider that fails is reported, not fatal
            rows.append(("forward", provider, "error", 1.0))
            print(f"\n{spec.name} {provider} {tuple(shape)} {dtype}: {type(exc).__name__}: {exc}"[:400], file=sys.stderr)
        torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------------------
# output


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__), timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_outputs(records, out_csv: Path):
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    fields = ["op", "family", "direction", "provider", "dtype", "shape", "metric", "value", "device", "torch",
              "triton", "git_rev"]
    with out_csv.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(records)
    out_csv.with_suffix(".json").write_text(json.dumps(records, indent=1))
    plots = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return plots
    metric = "pct_clone" if GPU else "bytes_ratio"
    for family in sorted({r["family"] for r in records}):
        rs = [r for r in records if r["family"] == family and r["metric"] == metric]
        if not rs:
            continue
        labels = sorted({(r["op"], r["direction"]) for r in rs})
        providers = sorted({r["provider"] for r in rs})
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(labels) + 2), 4))
        width = 0.8 / len(providers)
        for k, provider in enumerate(providers):
            vals = []
            for op, direction in labels:
                v = [r["value"] for r in rs if (r["op"], r["direction"], r["provider"]) == (op, direction, provider)]
                vals.append(max(v) if v else 0)
            ax.bar([i + k * width for i in range(len(labels))], vals, width, label=provider)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels([f"{o}\n{d}" for o, d in labels], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("% of clone bandwidth" if GPU else "counted bytes / minimum bytes")
        if not GPU:
            ax.axhline(1.0, color="k", lw=0.5)
        ax.set_title(f"{family} ({records[0]['device']})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_csv.with_name(f"{out_csv.stem}-{family}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        plots.append(path)
    return plots


def summary(records):
    metric = "pct_clone" if GPU else "bytes_ratio"
    extra = "time_ms" if GPU else "launches"
    table = {}
    for r in records:
        if r["metric"] in (metric, extra):
            key = (r["op"], r["direction"], r["dtype"], r["shape"])
            table.setdefault(key, {})[(r["provider"], r["metric"])] = r["value"]
    providers = ["triton_ops", "torch", "torch.compile"] if GPU else ["triton_ops", "torch"]
    head = f"{'op':<24}{'dir':<9}{'dtype':<10}{'shape':<14}" + "".join(f"{p + ' ' + metric:>26}" for p in providers) \
        + "".join(f"{p + ' ' + extra:>24}" for p in providers)
    lines = [head, "-" * len(head)]
    for (op, direction, dtype, shape), vals in sorted(table.items()):
        cells = "".join(f"{vals.get((p, metric), float('nan')):>26.3f}" for p in providers)
        cells += "".join(f"{vals.get((p, extra), float('nan')):>24.4g}" for p in providers)
        lines.append(f"{op:<24}{direction:<9}{dtype.replace('torch.', ''):<10}{shape:<14}{cells}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one size per op, forward and backward")
    p.add_argument("--ops", nargs="+", help="ops to run (default: every registered op but identity)")
    p.add_argument("--dtypes", nargs="+", help="default: bfloat16 float32 on a GPU, float32 on CPU")
    p.add_argument("--modes", nargs="+", choices=DIRECTIONS, help="default: forward backward (+ full without --quick)")
    p.add_argument("--providers", nargs="+", choices=["triton_ops", "torch", "torch.compile"])
    p.add_argument("--out", default="out/bench.csv", help="CSV path; the JSON and PNGs go beside it")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    global QUICK
    QUICK = args.quick
    ops = args.ops or [n for n in sorted(triton_ops.registry) if n != "identity"]
    default_dtypes = (["bfloat16"] if args.quick else ["bfloat16", "float32"]) if GPU else ["float32"]
    dtypes = [getattr(torch, d) for d in (args.dtypes or default_dtypes)]
    directions = args.modes or (["forward", "backward"] if args.quick or not GPU else list(DIRECTIONS))
    providers = args.providers or (["triton_ops", "torch", "torch.compile"] if GPU else ["triton_ops", "torch"])
    device = torch.cuda.get_device_name() if GPU else "cpu (triton interpreter)"
    meta = dict(device=device, torch=torch.__version__, triton=__import__("triton").__version__, git_rev=git_revision())
    jobs = [(n, s, d) for n in ops for d in dtypes for s in sizes_for(triton_ops.registry[n], args.quick)]
    try:
        from tqdm import tqdm
        bar = tqdm(jobs, desc="bench", unit="case", disable=args.no_progress)
    except ImportError:
        bar = jobs
    records = []
    start = time.time()
    if GPU:  # warm the card up (clocks, allocator) before the first measured op
        warm = torch.empty(1 << 26, device="cuda")
        for _ in range(200):
            warm.mul_(1.0)
        torch.cuda.synchronize()
        del warm
    clone_bw = clone_gbps("cuda") if GPU else None
    if GPU:
        records.append(dict(op="clone", family="copy", direction="forward", provider="torch", dtype="torch.float32",
                            shape="268435456", metric="gbps", value=clone_bw, **meta))
    for name, shape, dtype in bar:
        spec = triton_ops.registry[name]
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{name} {dtype}".replace("torch.", ""))
        try:
            rows = gpu_rows(spec, shape, dtype, directions, providers, clone_bw) if GPU else \
                cpu_rows(spec, shape, dtype, directions)
        except Exception as exc:  # noqa: BLE001
            print(f"\n{name} {shape} {dtype}: {type(exc).__name__}: {exc}"[:400], file=sys.stderr)
            rows = [("forward", "triton_ops", "error", 1.0)]
        records += [dict(op=name, family=spec.family, direction=d, provider=pv, dtype=str(dtype),
                         shape="x".join(map(str, shape)), metric=m, value=float(v), **meta) for d, pv, m, v in rows]
    out_csv = Path(args.out)
    plots = write_outputs(records, out_csv)
    print()
    print(summary(records))
    print(f"\n{len(records)} rows -> {out_csv} (+ .json, {len(plots)} plots) in {time.time() - start:.0f}s "
          f"on {device}, torch {meta['torch']}, triton {meta['triton']}, rev {meta['git_rev']}")
    errors = [r for r in records if r["metric"] == "error"]
    return 1 if errors and not GPU else 0


if __name__ == "__main__":
    sys.exit(main())
