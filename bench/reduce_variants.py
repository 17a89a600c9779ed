"""``python -m bench.reduce_variants``: the column-sum tiles (A_ROWS: ``sum``, ``sum_to`` and the
reduce-back VJPs of ``add`` / ``sub`` / ``div``) side by side on a GPU, to choose their shape
from measurements (issue 13: 70-79% of clone on the H200 of 2026-11-27, torch's own ``sum``
85%).

An A_ROWS tile is ``tile_elements()`` elements, at least ``A_ROWS_MIN`` rows of it (so its
columns are ``tile / A_ROWS_MIN`` wide, 128 bytes of bf16 by default) and ``num_warps_for`` its
size. Each variant sets those three knobs for the length of its measurement, with the plan
caches cleared around it; timing as ``bench.norm_variants`` (CUDA-graph replays against a
same-run clone of the op's minimum bytes, bf16).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import sys

import torch

import triton_ops
from triton_ops import runtime
from triton_ops.launchers import pointwise

from . import cases, timing
from .__main__ import clone_ms
from .norm_variants import measure

# (name, tile elements, A_ROWS_MIN, warps); None: the default
VARIANTS = [("default", None, None, None), ("64x64w8", 4096, 64, 8), ("32x128w8", 4096, 32, 8),
            ("16x256w8", 4096, 16, 8), ("8x512w8", 4096, 8, 8), ("4x1024w4", 4096, 4, 4),
            ("32x256w8", 8192, 32, 8), ("16x512w8", 8192, 16, 8), ("64x64w4", 4096, 64, 4),
            ("16x256w4", 4096, 16, 4)]
# (op, direction): the forward column sums and the VJPs that reduce g back to a broadcast operand
CASES = [("sum", "forward"), ("sum_to", "forward"), ("add", "backward"), ("div", "backward")]


@contextlib.contextmanager
def knobs(tile=None, min_rows=None, warps=None):
    saved = (runtime.tile_elements, runtime.num_warps_for, pointwise.A_ROWS_MIN)
    if tile is not None:
        runtime.tile_elements = lambda: tile
    if warps is not None:
        runtime.num_warps_for = lambda elements: warps
    if min_rows is not None:
        pointwise.A_ROWS_MIN = min_rows
    runtime.clear_plan_caches()
    try:
        yield
    finally:
        runtime.tile_elements, runtime.num_warps_for, pointwise.A_ROWS_MIN = saved
        runtime.clear_plan_caches()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reduce_variants")
    p.add_argument("--shape", nargs=2, type=int, default=[16384, 8192])
    p.add_argument("--out")
    a = p.parse_args(argv)
    assert runtime.backend() == "cuda", "a GPU run"
    out = []
    for op, direction in CASES:
        spec = triton_ops.registry[op]
        args = cases.make_args(spec, tuple(a.shape), torch.bfloat16, "cuda")  # as the quick bench draws them
        nbytes = dict(zip(("forward", "backward"), spec.min_bytes(*args)))[direction]
        base, _ = clone_ms(nbytes, timing.calls_for(nbytes))
        for name, tile, min_rows, warps in VARIANTS:
            try:
                with knobs(tile, min_rows, warps):
                    ms = measure(spec, args, direction, nbytes)
                row = dict(op=op, direction=direction, variant=name, ms=ms, pct_clone=100 * base / ms)
            except Exception as exc:  # noqa: BLE001 - a variant the compiler refuses
                row = dict(op=op, direction=direction, variant=name, ms=float("nan"), pct_clone=float("nan"),
                           error=f"{type(exc).__name__}: {exc}"[:200])
            out.append(row)
            print(f"{op:<8}{direction:<9}{name:<12}{row['ms']:>9.4f} ms {row['pct_clone']:>6.1f}%"
                  + (f"  {row.get('error')}" if row.get("error") else ""), flush=True)
    if a.out:
        with open(a.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["op", "direction", "variant", "ms", "pct_clone", "error"])
            w.writeheader()
            w.writerows(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
