"""How ``python -m bench`` times: device time from CUDA-graph replays (the profiler's kernel-time
sum where a capture fails), host time on its own, and the statistics both report.

Device time: ``calls`` consecutive calls of a step are captured in one CUDA graph, so that the
host's launch cost never shows up between kernels; each replay is timed with CUDA events and
gives one sample, in ms per call. ``calls`` is chosen so that one replay moves at least 256 MiB
(``calls_for``); steps rotate over input sets that together exceed the L2 cache twice
(``rotation``), so no call reads what the previous one left in L2. p20/p50/p80 over the replays.

Everything that does not touch CUDA (statistics, call counts, the timer fallback) runs on CPU
with an injected timer (tests/test_bench.py).
"""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time
import traceback
from typing import Callable, Sequence

MIN_BYTES_PER_SAMPLE = 256 << 20
MAX_CALLS = 1000
REPLAYS = 15
MAX_SETS = 8


def percentiles(samples: Sequence[float], qs=(0.2, 0.5, 0.8)) -> list[float]:
    """Linear-interpolation quantiles (numpy's default) of the samples."""
    xs = sorted(samples)
    if not xs:
        raise ValueError("no samples")
    out = []
    for q in qs:
        pos = q * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        out.append(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))
    return out


def calls_for(bytes_per_call: int, target: int = MIN_BYTES_PER_SAMPLE, cap: int = MAX_CALLS) -> int:
    """Calls per timed sample so that one sample moves at least ``target`` bytes."""
    if bytes_per_call <= 0:
        return 10
    return max(1, min(cap, math.ceil(target / bytes_per_call)))


def rotation(bytes_per_set: int, l2_bytes: int, cap: int = MAX_SETS) -> int:
    """Input sets to rotate over so that consecutive calls never hit in L2 (2x its size)."""
    if bytes_per_set <= 0:
        return 1
    return max(1, min(cap, math.ceil(2 * l2_bytes / bytes_per_set)))


_graph_pool = None


def graph_pool():
    """The one memory pool every capture of this process allocates from. A graph's private pool
    outlives the graph while any block of it is still allocated, and a live block pins its whole
    segment (a small buffer carved out of a freed 256 MiB block pins 256 MiB). With a pool per
    capture, the H200 runs of 2026-11-27 ran out of memory after 40 ops with ~1.4 GiB allocated
    and the rest of 138 GiB reserved; one shared pool lets each capture reuse what earlier ones
    left free in their pinned segments."""
    global _graph_pool
    if _graph_pool is None:
        import torch

        _graph_pool = torch.cuda.graph_pool_handle()
    return _graph_pool


_side_stream = None


def side_stream():
    """The one stream every capture of this process warms up and captures on. The caching
    allocator keeps freed blocks per stream and cuBLAS a workspace per stream: a new stream per
    measurement left each one's blocks and workspace to no later case (one suspect of the 1-3 GiB
    left reserved per op on the H200 of 2026-11-28)."""
    global _side_stream
    if _side_stream is None:
        import torch

        _side_stream = torch.cuda.Stream()
    return _side_stream


class GraphTimer:
    """Replays a CUDA graph of ``calls`` steps; each replay is one sample (ms per call)."""
    method = "cuda_graph"

    def __init__(self, replays: int = REPLAYS, warmup: int = 3):
        self.replays, self.warmup = replays, warmup

    def __call__(self, step: Callable[[int], object], calls: int) -> list[float]:
        import torch

        # Warm-up (compiles, allocator, a step's own lazy set-up) and capture on one side stream: a
        # backward runs on its forward's stream, so a forward a step makes in its warm-up and the
        # backward captured later must share the capture's stream.
        side = side_stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(self.warmup):
                step(i)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=graph_pool(), stream=side):
            for i in range(calls):
                step(i)
        graph.replay()
        torch.cuda.synchronize()
        samples = []
        for _ in range(self.replays):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / calls)
        del graph
        return samples


class ProfilerTimer:
    """The kernels' own device time, from the profiler: the sum over each sample's kernels (the
    gaps between launches left out). For steps a CUDA graph cannot capture."""
    method = "profiler"

    def __init__(self, replays: int = REPLAYS, warmup: int = 3):
        self.replays, self.warmup = replays, warmup

    def __call__(self, step, calls):
        import torch
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        for i in range(self.warmup):
            step(i)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for r in range(self.replays):
                for i in range(calls):
                    step(i)
            torch.cuda.synchronize()
        kernels = sorted((e for e in prof.events() if e.device_type == DeviceType.CUDA),
                         key=lambda e: e.time_range.start)
        return kernel_samples([e.time_range.elapsed_us() for e in kernels], self.replays, calls)


def kernel_samples(kernel_us: Sequence[float], replays: int, calls: int) -> list[float]:
    """Kernel durations (µs, in launch order) of ``replays`` x ``calls`` steps -> ms per call per
    replay. A step launches the same kernels every time, so the list splits evenly."""
    if not kernel_us or len(kernel_us) % replays:
        raise RuntimeError(f"{len(kernel_us)} kernels do not split into {replays} samples")
    per = len(kernel_us) // replays
    return [sum(kernel_us[r * per:(r + 1) * per]) / 1e3 / calls for r in range(replays)]


_traced: set = set()  # timer methods whose first failure was printed in full


def device_time(step, calls, timers=None) -> tuple[list[float], str]:
    """(samples in ms per call, method): the first timer that works."""
    timers = timers or (GraphTimer(), ProfilerTimer())
    errors = []
    for timer in timers:
        try:
            return timer(step, calls), timer.method
        except Exception as exc:  # noqa: BLE001 - try the next method, report all if none works
            errors.append(f"{timer.method}: {type(exc).__name__}: {exc}"[:300])
            if timer.method not in _traced:  # a method's first failure in full: where it broke
                _traced.add(timer.method)
                traceback.print_exc(file=sys.stderr)
            _reset_after_failed_capture()
    raise RuntimeError("; ".join(errors))


def _reset_after_failed_capture():
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
            gc.collect()  # the failed capture's graph, held by its traceback's frames (a cycle)
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - a broken context shows in the next measurement
        pass


def host_us(fn: Callable[[], object], calls: int = 200, repeats: int = 7, warmup: int = 20,
            clock=time.perf_counter, sync: Callable[[], None] | None = None) -> float:
    """Host time per call in µs: the median over ``repeats`` batches of ``calls`` back-to-back
    calls (after ``warmup`` calls, so that compilation and planning stay out). ``sync`` (a GPU's
    synchronize) runs before each batch's clock starts and after it stops, so the device's
    queue never throttles the host inside a batch."""
    for _ in range(warmup):
        fn()
    per_call = []
    collecting = gc.isenabled()
    gc.disable()  # a cyclic collection inside a batch is the interpreter's cost, not the call's (as timeit)
    try:
        for _ in range(repeats):
            if sync:
                sync()
            start = clock()
            for _ in range(calls):
                fn()
            per_call.append((clock() - start) / calls * 1e6)
            if sync:
                sync()
    finally:
        if collecting:
            gc.enable()
    return statistics.median(per_call)
