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

from . import cases, host, timing
from .__main__ import clone_ms

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


def measure(spec, args, direction: str, nbytes: int) -> float:
    """Device ms per call of one direction (``host.step``: the forward under no_grad, or the VJP
    alone over one graph kept alive), timed like the quick bench."""
    step = host.step(spec.fn, spec, args, direction)
    step()
    torch.cuda.synchronize()
    samples, _ = timing.device_time(lambda i: step(), timing.calls_for(nbytes))
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
            spec = triton_ops.registry[op]
            for hidden in a.hidden:
                args = cases.make_args(spec, (a.rows, hidden), torch.bfloat16, "cuda")  # as the quick bench draws them
                nbytes = dict(zip(("forward", "backward"), spec.min_bytes(*args)))[direction]
                base, _ = clone_ms(nbytes, timing.calls_for(nbytes))
                for v in variants:
                    if direction == "backward":
                        name, per_sm, tile, warps = v
                        ctx = knobs(programs_per_sm=per_sm, tile=tile, warps=warps, backward=True)
                    else:
                        name, tile, warps = v
                        ctx = knobs(tile=tile, warps=warps, backward=False)
                    try:
                        with ctx:
                            ms = measure(spec, args, direction, nbytes)
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
