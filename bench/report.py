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


def host_table(rows) -> str:
    from .host import TARGETS_US

    by = {(r["op"], r["direction"], r["provider"]): float(r["value"]) for r in rows}
    ops = sorted({r["op"] for r in rows})
    out = [header(rows), "", f"Host µs per call ({rows[0].get('method', '')}; shape {rows[0]['shape']}); targets: "
           f"triton_ops - torch <= +{TARGETS_US['forward']:.0f} µs forward, <= +{TARGETS_US['full']:.0f} µs "
           "forward + backward.", "",
           "| op | triton_ops fwd | torch fwd | extra fwd | triton_ops fwd+bwd | torch fwd+bwd | extra fwd+bwd |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for op in ops:
        cells = []
        for d in ("forward", "full"):
            t, e = by.get((op, d, "triton_ops")), by.get((op, d, "torch"))
            cells += [_f(t, ".1f"), _f(e, ".1f"), "" if t is None or e is None else f"{t - e:+.1f}"]
        out.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report")
    p.add_argument("csvs", nargs="+")
    p.add_argument("--title")
    p.add_argument("--out", help="write the page here (default: stdout)")
    a = p.parse_args(argv)
    parts = [f"# {a.title}", ""] if a.title else []
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
