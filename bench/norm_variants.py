"""``python -m bench.norm_variants``: LayerNorm / RMSNorm launch configurations side by side on a
GPU, to choose the row kernels' defaults from measurements (issue 13: LayerNorm backward at
17-69% of clone, forward 64-74% on the H200 of 2026-11-27).

Each variant overrides the row planner's knobs (``launchers/norm``: the backward's programs per
SM and step size, the warps of a program; the forward's rows per program) for the length of its
measurement, with the plan caches cleared around it. Times are device times of CUDA-graph
replays (``bench.timing``), bf16, against a same-run clone of the op's minimum bytes. Prints one
table; ``--out`` writes the rows as CSV.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import sys

import torch

import triton_ops
from triton_ops import runtime
from triton_ops.launchers import norm

from . import timing

# (name, backward programs per SM, backward step elements, backward warps); None: the default
BWD_VARIANTS = [("default", None, None, None), ("1x8192w16", 1, 8192, 16), ("2x4096w8", 2, 4096, 8),
                ("2x8192w8", 2, 8192, 8), ("4x2048w4", 4, 2048, 4), ("1x16384w16", 1, 16384, 16)]
# (name, forward tile elements, forward warps); None: the default
FWD_VARIANTS = [("default", None, None), ("tile4096w8", 4096, 8), ("tile4096w4", 4096, 4), ("tile2048w4", 2048, 4),
                ("tile8192w8", 8192, 8)]


@contextlib.contextmanager
def knobs(*, programs_per_sm=None, tile=None, warps=None, backward: bool):
    """The planner's knobs set for one variant (None: the default): the backward's programs per
    SM, step elements and warps (``norm.row_config``), or the forward's tile elements
    (``runtime.tile_elements``) and warps."""
    saved = (norm.row_config, runtime.tile_elements)
    default = norm.row_config

    def row_config(D):
        per_sm, step, bwd_warps, fwd_warps = default(D)
        if backward:
            return (programs_per_sm or per_sm, tile or step, warps or bwd_warps, fwd_warps)
        return (per_sm, step, bwd_warps, warps or fwd_warps)

    norm.row_config = row_config
    if tile is not None and not backward:
        runtime.tile_elements = lambda: tile
    runtime.clear_plan_caches()
    try:
        yield
    finally:
        norm.row_config, runtime.tile_elements = saved
        runtime.clear_plan_caches()


def clone_ms(nbytes: int) -> float:
    src = torch.empty(nbytes // 4, dtype=torch.bfloat16, device="cuda").normal_()  # read + written: nbytes
    samples, _ = timing.device_time(lambda *_: src.clone(), timing.calls_for(nbytes))
    return timing.percentiles(samples)[1]


def measure(op: str, rows: int, hidden: int, direction: str) -> float:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(rows, hidden, device="cuda", generator=gen).to(torch.bfloat16).requires_grad_(True)
    w = (1 + 0.1 * torch.randn(hidden, device="cuda", generator=gen)).to(torch.bfloat16).requires_grad_(True)
    b = (0.1 * torch.randn(hidden, device="cuda", generator=gen)).to(torch.bfloat16).requires_grad_(True)
    g = torch.randn(rows, hidden, device="cuda", generator=gen).to(torch.bfloat16)
    if op == "layer_norm":
        fn, params = (lambda: triton_ops.layer_norm(x, (hidden,), w, b, 1e-5)), (x, w, b)
    else:
        fn, params = (lambda: triton_ops.rms_norm(x, (hidden,), w, 1e-5)), (x, w)
    if direction == "forward":
        def step(*_):
            with torch.no_grad():
                fn()
    else:
        y = fn()

        def step(*_):
            torch.autograd.grad(y, params, g, retain_graph=True)
    step()
    torch.cuda.synchronize()
    samples, _ = timing.device_time(step, timing.calls_for(4 * rows * hidden))
    return timing.percentiles(samples)[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.norm_variants")
    p.add_argument("--ops", nargs="+", default=["layer_norm", "rms_norm"])
    p.add_argument("--hidden", nargs="+", type=int, default=[1024, 2048, 4096, 8192])
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--directions", nargs="+", default=["backward", "forward"])
    p.add_argument("--out")
    a = p.parse_args(argv)
    assert runtime.backend() == "cuda", "a GPU run"
    out = []
    for direction in a.directions:
        variants = BWD_VARIANTS if direction == "backward" else FWD_VARIANTS
        for op in a.ops:
            for hidden in a.hidden:
                n = a.rows * hidden
                # minimum bytes: x (+ g) read, y (dx) written, bf16; parameters and stats ignored
                nbytes = (3 if direction == "backward" else 2) * 2 * n
                base = clone_ms(nbytes)
                for v in variants:
                    if direction == "backward":
                        name, per_sm, tile, warps = v
                        ctx = knobs(programs_per_sm=per_sm, tile=tile, warps=warps, backward=True)
                    else:
                        name, tile, warps = v
                        ctx = knobs(tile=tile, warps=warps, backward=False)
                    try:
                        with ctx:
                            ms = measure(op, a.rows, hidden, direction)
                        row = dict(op=op, direction=direction, hidden=hidden, variant=name, ms=ms,
                                   pct_clone=100 * base / ms)
                    except Exception as exc:  # noqa: BLE001 - a variant the compiler refuses
                        row = dict(op=op, direction=direction, hidden=hidden, variant=name, ms=float("nan"),
                                   pct_clone=float("nan"), error=f"{type(exc).__name__}: {exc}"[:200])
                    out.append(row)
                    print(f"{op:<11}{direction:<9}{hidden:>6}  {name:<22}{row['ms']:>9.4f} ms {row['pct_clone']:>6.1f}%"
                          + (f"  {row.get('error')}" if row.get("error") else ""), flush=True)
    if a.out:
        with open(a.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["op", "direction", "hidden", "variant", "ms", "pct_clone", "error"])
            w.writeheader()
            w.writerows(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
