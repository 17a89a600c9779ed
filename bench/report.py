"""``python -m bench.report FILE.csv [MORE.csv ...] [--title T] [--out PAGE.md]``: Markdown
tables of benchmark CSVs (quick or sweep runs, host-cost runs), e.g. the page
``bench/gpu_check.sh`` writes to ``docs/benchmarks/gpu/<card>-<date>.md``."""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict

PROVIDERS = ("triton_ops", "torch", "torch.compile", "liger")


def _f(v, fmt):
    return "" if v is None else format(v, fmt)


def header(rows) -> str:
    h = rows[0]
    return f"Device: {h['device']}; torch {h['torch']}; triton {h['triton']}; revision {h['git_rev']}."


def table(path: str) -> str:
    rows = list(csv.DictReader(open(path)))
    if not rows:
        return f"({path}: no rows)"
    if all(r["metric"] == "host_us" for r in rows):
        return host_table(rows)
    gpu = any(r["metric"] == "time_ms" for r in rows)
    cells = defaultdict(dict)
    impls = {}
    for r in rows:
        key = (r["op"], r["direction"], r["dtype"].replace("torch.", ""), r["shape"])
        cells[key][(r["provider"], r["metric"])] = float(r["value"])
        if r["provider"] == "torch":
            impls[r["op"]] = r.get("impl", "")
    out = [header(rows), ""]
    present = [p for p in PROVIDERS if any(r["provider"] == p and r["metric"] != "skipped" for r in rows)]
    if gpu:
        methods = sorted({r.get("method") or "do_bench around eager calls (the earlier harness)" for r in rows
                          if r["metric"] == "time_ms"})
        out += [f"Device time per call ({', '.join(methods)}), % of a clone moving the same bytes in the same run; "
                "ms = median (p20-p80).", "",
                "| op | dir | dtype | shape | " + " | ".join(f"{p} % clone" for p in present)
                + " | triton_ops ms | torch ms | TFLOP/s (triton_ops / torch) |",
                "|---|---|---|---|" + "---:|" * (len(present) + 3)]
    else:
        out += ["| op | dir | dtype | shape | triton_ops bytes / min | triton_ops launches | torch bytes / min | "
                "torch launches |", "|---|---|---|---|---:|---:|---:|---:|"]
    for key, c in sorted(cells.items()):
        op, direction, dtype, shape = key
        if gpu:
            def ms(p):
                if (p, "time_ms") not in c:
                    return ""
                return f"{c[(p, 'time_ms')]:.4f} ({c[(p, 'time_p20_ms')]:.4f}-{c[(p, 'time_p80_ms')]:.4f})"
            pct = " | ".join(_f(c.get((p, "pct_clone")), ".1f") for p in present)
            tf = "" if ("triton_ops", "tflops") not in c else \
                f"{c[('triton_ops', 'tflops')]:.0f} / {_f(c.get(('torch', 'tflops')), '.0f')}"
            out.append(f"| {op} | {direction} | {dtype} | {shape} | {pct} | {ms('triton_ops')} | {ms('torch')} | {tf} |")
        else:
            out.append(f"| {op} | {direction} | {dtype} | {shape} | {_f(c.get(('triton_ops', 'bytes_ratio')), '.3f')} | "
                       f"{_f(c.get(('triton_ops', 'launches')), '.0f')} | {_f(c.get(('torch', 'bytes_ratio')), '.2f')} | "
                       f"{_f(c.get(('torch', 'launches')), '.0f')} |")
    out += ["", "The `torch` provider per op (the call a PyTorch user would write; `torch.compile` compiles the same "
            "call):", ""]
    out += [f"- `{op}`: `{impl}`" for op, impl in sorted(impls.items())]
    skipped = sorted({(r["provider"], r["impl"]) for r in rows if r["metric"] == "skipped"})
    out += [""] + [f"Skipped: `{p}`: {why}." for p, why in skipped] if skipped else []
    return "\n".join(out)


# The issues' GPU targets, per (op or family, direction): (metric, threshold, what it compares).
# Keys name an op (optionally with a dtype: (op, dtype, direction)), or "family:<family>" for
# every op of that family no op key names.
# "pct": % of a same-run clone >= threshold; "vs": triton_ops time <= threshold x the named
# provider's time; "tflops": triton_ops TFLOP/s >= threshold x torch's; "peak": peak memory <=
# threshold x torch's. Rows of a CSV that no target names are left out of the table.
TARGETS = {
    ("family:unary", "forward"): [("pct", 90, "#13")], ("family:unary", "backward"): [("pct", 90, "#13")],
    ("family:binary", "forward"): [("pct", 90, "#13")], ("family:binary", "backward"): [("pct", 85, "#13")],
    ("family:loss", "forward"): [("pct", 85, "#13")], ("family:loss", "backward"): [("pct", 85, "#13")],
    ("layer_norm", "forward"): [("pct", 90, "#13")], ("layer_norm", "backward"): [("pct", 80, "#13")],
    ("family:shape", "forward"): [("pct", 85, "#13")], ("family:shape", "backward"): [("pct", 85, "#13")],
    ("embedding", "backward"): [("pct", 50, "#13")],
    ("cross_entropy_logits", "forward"): [("vs:torch.compile", 1 / 1.3, "#13"), ("vs:liger", 1.0, "#13")],
    ("cross_entropy_logits", "backward"): [("pct", 85, "#13"), ("vs:torch.compile", 1 / 1.3, "#13")],
    ("rms_norm", "forward"): [("pct", 90, "#16")], ("rms_norm", "backward"): [("pct", 90, "#16")],
    ("softmax", "forward"): [("pct", 90, "#16")], ("softmax", "backward"): [("pct", 90, "#16")],
    ("log_softmax", "forward"): [("pct", 90, "#16")], ("log_softmax", "backward"): [("pct", 90, "#16")],
    ("swiglu", "forward"): [("pct", 90, "#16")], ("swiglu", "backward"): [("pct", 90, "#16")],
    # its forward under autograd forms the gradients (bench/cases.FULL_STEP_OPS): the step is the figure
    ("linear_cross_entropy", "full"): [("vs:liger", 1.0, "#16"), ("vs:torch", 1.2, "#16"), ("peak", 0.25, "#16")],
    ("linear_cross_entropy", "forward"): [("vs:torch", 1.2, "#16"), ("peak", 0.25, "#16")],
    ("matmul", "forward"): [("tflops", 0.90, "#12")], ("matmul", "backward"): [("tflops", 0.90, "#12")],
    # float32 GEMMs: 0.85x, TF32 allowed (the rows of --float32-matmul-precision high, both providers on TF32)
    ("matmul", "float32", "forward"): [("tflops", 0.85, "#12")], ("matmul", "float32", "backward"): [("tflops", 0.85, "#12")],
    ("matmul", "float32-tf32", "forward"): [("tflops", 0.85, "#12")],
    ("matmul", "float32-tf32", "backward"): [("tflops", 0.85, "#12")],
    ("linear", "forward"): [("vs:torch.compile", 1.0, "#12")], ("linear", "backward"): [("vs:torch", 1.1, "#12")],
    ("one_hot_embedding", "forward"): [("vs:torch", 1.1, "#12")],
    ("one_hot_embedding", "backward"): [("vs:torch", 1.1, "#12")],
}


def targets_table(paths) -> str:
    """Every measured row that an issue's target names: the value, the target, met or not."""
    cells = defaultdict(dict)
    family = {}
    for path in paths:
        for r in csv.DictReader(open(path)):
            if r["metric"] == "host_us":
                continue
            key = (r["op"], r["direction"], r["dtype"].replace("torch.", ""), r["shape"])
            cells[key][(r["provider"], r["metric"])] = float(r["value"])
            family[r["op"]] = r["family"]
    out = ["| issue | op | dir | dtype | shape | measure | triton_ops | target | met |", "|---|---|---|---|---|---|---:|---:|---|"]
    met = total = 0
    for (op, direction, dtype, shape), c in sorted(cells.items()):
        named = TARGETS.get((op, dtype, direction)) or TARGETS.get((op, direction)) \
            or TARGETS.get((f"family:{family[op]}", direction), [])
        for kind, threshold, issue in named:
            if kind == "pct":
                value = c.get(("triton_ops", "pct_clone"))
                ok, want = value is not None and value >= threshold, f">= {threshold}%"
                text = f"{value:.1f}% of clone" if value is not None else ""
            else:  # a ratio to another provider's figure: (metric, provider, higher is better, unit, format)
                metric, other, higher, unit, fmt = {
                    "tflops": ("tflops", "torch", True, "TFLOP/s", ".0f"),
                    "peak": ("peak_mem_mb", "torch", False, "MB", ".0f")}.get(
                    kind, ("time_ms", kind.split(":")[-1], False, "ms", ".4f"))
                ours, theirs = c.get(("triton_ops", metric)), c.get((other, metric))
                value = None if ours is None or not theirs else ours / theirs
                ok = value is not None and (value >= threshold if higher else value <= threshold)
                want = f"{'>=' if higher else '<='} {threshold:.2f}x {other}" + ("" if higher else f"'s {metric[:4]}")
                text = "" if value is None else f"{ours:{fmt}} / {theirs:{fmt}} {unit} = {value:.2f}x"
            if value is None:
                continue  # the provider or metric was not measured in these files
            total += 1
            met += ok
            out.append(f"| {issue} | {op} | {direction} | {dtype} | {shape} | {kind} | {text} | {want} | "
                       f"{'yes' if ok else '**no**'} |")
    return "\n".join([f"{met} of {total} measured targets met.", ""] + out)


def host_table(rows) -> str:
    from .host import TARGETS_US

    by = {(r["op"], r["direction"], r["provider"]): float(r["value"]) for r in rows}
    ops = sorted({r["op"] for r in rows})
    backward = any(r["direction"] == "backward" for r in rows)  # (runs before it measured two directions)
    out = [header(rows), "", f"Host µs per call ({rows[0].get('method', '')}; shape {rows[0]['shape']}); targets: "
           f"triton_ops - torch <= +{TARGETS_US['forward']:.0f} µs forward, <= +{TARGETS_US['full']:.0f} µs "
           "forward + backward.", "",
           "| op | triton_ops fwd | torch fwd | extra fwd | triton_ops fwd+bwd | torch fwd+bwd | extra fwd+bwd |"
           + (" triton_ops bwd | torch bwd | extra bwd |" if backward else ""),
           "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if backward else "")]
    for op in ops:
        cells = []
        for d in ("forward", "full") + (("backward",) if backward else ()):
            t, e = by.get((op, d, "triton_ops")), by.get((op, d, "torch"))
            cells += [_f(t, ".1f"), _f(e, ".1f"), "" if t is None or e is None else f"{t - e:+.1f}"]
        out.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("csvs", nargs="+")
    p.add_argument("--title")
    p.add_argument("--out", help="write the page here (default: stdout)")
    p.add_argument("--targets", action="store_true", help="first, the issues' GPU targets met or not")
    a = p.parse_args(argv)
    parts = [f"# {a.title}", ""] if a.title else []
    if a.targets:
        parts += ["## Targets", "", targets_table(a.csvs), ""]
    for path in a.csvs:
        parts += [f"## `{path.split('/')[-1]}`", "", table(path), ""]
    text = "\n".join(parts)
    if a.out:
        open(a.out, "w").write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
