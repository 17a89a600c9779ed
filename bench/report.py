"""``python -m bench.report FILE.csv``: a Markdown summary table of a benchmark CSV."""
from __future__ import annotations

import csv
import sys
from collections import defaultdict


def table(path: str) -> str:
    rows = list(csv.DictReader(open(path)))
    gpu = any(r["metric"] == "pct_clone" for r in rows)
    cells = defaultdict(dict)
    for r in rows:
        cells[(r["op"], r["direction"], r["dtype"].replace("torch.", ""), r["shape"])][(r["provider"], r["metric"])] = \
            float(r["value"])
    head = rows[0]
    out = [f"Device: {head['device']}; torch {head['torch']}; triton {head['triton']}; revision {head['git_rev']}.", ""]
    if gpu:
        clone = [float(r["value"]) for r in rows if r["op"] == "clone"]
        if clone:
            out += [f"Clone bandwidth measured in the same run: {clone[0]:.0f} GB/s.", ""]
        out += ["| op | dir | dtype | shape | triton_ops % clone | torch % clone | torch.compile % clone | "
                "triton_ops ms | torch ms | triton_ops TFLOP/s | triton_ops host µs |",
                "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        out += ["| op | dir | dtype | shape | triton_ops bytes / min | triton_ops launches | torch (eager) bytes / min | "
                "torch launches |", "|---|---|---|---|---:|---:|---:|---:|"]

    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    for key, c in sorted(cells.items()):
        if key[0] == "clone":
            continue
        op, direction, dtype, shape = key
        if gpu:
            host = cells.get((op, "forward", dtype, shape), {}).get(("triton_ops", "host_us")) if direction == "forward" \
                else None
            out.append(f"| {op} | {direction} | {dtype} | {shape} | {f(c.get(('triton_ops', 'pct_clone')), '.1f')} | "
                       f"{f(c.get(('torch', 'pct_clone')), '.1f')} | {f(c.get(('torch.compile', 'pct_clone')), '.1f')} | "
                       f"{f(c.get(('triton_ops', 'time_ms')), '.4f')} | {f(c.get(('torch', 'time_ms')), '.4f')} | "
                       f"{f(c.get(('triton_ops', 'tflops')), '.0f')} | {f(host, '.0f')} |")
        else:
            out.append(f"| {op} | {direction} | {dtype} | {shape} | {f(c.get(('triton_ops', 'bytes_ratio')), '.3f')} | "
                       f"{f(c.get(('triton_ops', 'launches')), '.0f')} | {f(c.get(('torch', 'bytes_ratio')), '.2f')} | "
                       f"{f(c.get(('torch', 'launches')), '.0f')} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(sys.argv[1]))
