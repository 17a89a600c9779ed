"""``python -m bench.profile [OPS...]`` (a GPU): where each op's device time goes, kernel by
kernel, at its quick bench shape — the breakdown a total time cannot give (is embedding's backward
its sort or its gather? LayerNorm's backward its row kernel or its combine?).

For each op and direction (forward under ``no_grad``; backward: the VJP after a forward made
outside the profile), a few calls run under ``torch.profiler``; the kernels' device time is
summed by kernel name and printed per call, largest first, with its share of the call's kernel
time. Inputs as ``python -m bench --quick`` makes them (drawn on the device).
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import torch

import triton_ops

from . import cases, host

DEFAULT_OPS = ("embedding", "layer_norm", "rms_norm", "cross_entropy_logits", "linear", "gelu", "add", "sum",
               "binary_cross_entropy", "linear_cross_entropy")


def kernel_times(step, calls: int = 5) -> dict[str, float]:
    """µs per call by kernel name, from ``calls`` calls of ``step`` (after two warm-up calls)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
    times = defaultdict(float)
    for e in prof.events():
        if e.device_type == DeviceType.CUDA:
            times[e.name] += e.time_range.elapsed_us() / calls
    return dict(times)


def steps(spec, args):
    """{"forward": step, "backward": step} for one op's bound arguments (``bench.host.step``)."""
    return {d: host.step(spec.fn, spec, args, d) for d in ("forward", "backward")}


def report(name: str, direction: str, times: dict[str, float], width: int = 70) -> str:
    total = sum(times.values())
    lines = [f"{name} {direction}: {total:.1f} µs of kernels a call"]
    for kernel, us in sorted(times.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {us:9.1f} µs {100 * us / total:5.1f}%  {kernel[:width]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("ops", nargs="*", default=list(DEFAULT_OPS))
    p.add_argument("--dtype", default="bfloat16")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench.profile needs a CUDA device", file=sys.stderr)
        return 1
    dtype = getattr(torch, a.dtype)
    for name in a.ops:
        spec = triton_ops.registry[name]
        shape = cases.quick_shape(spec, gpu=True)
        try:
            args = cases.make_args(spec, shape, dtype, "cuda")
            for direction, step in steps(spec, args).items():
                print(report(f"{name} {cases.shape_label(shape)}", direction, kernel_times(step)), flush=True)
        except Exception as exc:  # noqa: BLE001 - one op's failure is reported, the others run
            print(f"{name}: {type(exc).__name__}: {exc}"[:300], flush=True)
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
