"""Warm host cost per call (µs) of every registry op under the compile-only backend (kernels
compiled for sm_90 once, the driver launch a no-op), next to the PyTorch call a user would write.
Ours and torch are timed interleaved, round after round, so that load on a shared machine hits
both alike; the minimum over rounds is the cost (the median is printed beside it). The clock is
the calling thread's CPU time by default (``--clock cpu``): on a loaded machine a process that
waits for a core, or is throttled, is not charged for the wait; ``--clock wall`` times the wall
clock. A working probe for the launch layer; ``python -m bench --host`` is the full measurement.

    TRITON_OPS_COMPILE_ONLY=1 PYTHONPATH=. python scripts/host_probe.py [--rounds N] [--clock cpu|wall] [op ...]
"""
import argparse
import math
import os
import statistics
import time

os.environ.setdefault("TRITON_OPS_COMPILE_ONLY", "1")
import triton_ops  # noqa: E402
import torch  # noqa: E402
from bench import providers  # noqa: E402  (the torch call a user would write, per op)

torch.set_num_threads(1)


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


def interleaved(fns, calls, rounds):
    """Per-call µs of each function: ``rounds`` rounds of ``calls`` calls, the functions taking
    turns in every round. Returns [(min, median)] per function."""
    for fn in fns:
        for _ in range(20):
            fn()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times):
            t0 = clock()
            for _ in range(calls):
                fn()
            ts.append((clock() - t0) / calls * 1e6)
    return [(min(ts), statistics.median(ts)) for ts in times]


def measure(name, rounds):
    spec = triton_ops.registry[name]
    args = spec.sample((4, 8), torch.float32, "cpu", torch.Generator().manual_seed(0))
    ref = providers.call("torch", spec).fn
    targs = [a.detach().clone().requires_grad_(a.is_floating_point()) if isinstance(a, torch.Tensor) else a
             for a in args]
    g = torch.ones_like(spec.fn(*targs))

    def ours_full():
        spec.fn(*targs).backward(g)

    def torch_full():
        ref(*targs).backward(g)

    with torch.no_grad():
        fwd = interleaved([lambda: spec.fn(*args), lambda: ref(*args)], 100, rounds)
    full = interleaved([ours_full, torch_full], 30, rounds)
    return fwd, full


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ops", nargs="*")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    a = p.parse_args()
    global clock
    clock = CLOCKS[a.clock]
    names = a.ops or list(triton_ops.registry)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; min (median) µs of {a.clock} time over {a.rounds} rounds")
    print(f"{'op':24s} {'fwd':>12s} {'torch':>12s} {'Δfwd':>6s} {'full':>12s} {'torch':>12s} {'Δfull':>6s}")
    worst = []
    for name in names:
        (f, tf), (b, tb) = measure(name, a.rounds)
        worst.append((max(f[0] - tf[0] - 8, b[0] - tb[0] - 15), name))
        cell = lambda m: f"{m[0]:5.1f} ({m[1]:4.0f})"  # noqa: E731
        print(f"{name:24s} {cell(f):>12s} {cell(tf):>12s} {f[0] - tf[0]:6.1f} {cell(b):>12s} {cell(tb):>12s} "
              f"{b[0] - tb[0]:6.1f}", flush=True)
    worst.sort(reverse=True)
    print("worst five (µs over target):", ", ".join(f"{n} {w:+.1f}" for w, n in worst[:5]))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
