"""``python -m bench --host``: host µs per call of every op, triton_ops against the PyTorch call a
user would write (``bench.providers``), forward, backward alone and forward + backward, on small
tensors.

On a GPU the calls launch for real (with the device synchronized around each batch). On CPU the
triton_ops figure runs under the compile-only backend, in a subprocess (the backend is chosen at
import): the whole launch path up to the driver's launch, with kernels compiled for sm_90, and
no kernel run; so it is the host cost minus the driver call. The torch figure is eager PyTorch
on CPU tensors of the same shapes (its tiny kernels run on the CPU, a few µs), measured in the
same subprocess right beside the triton_ops figure of the same op. On CPU both are
timed in the calling thread's CPU time (``time.thread_time``), so the machine's other load does
not count; on a GPU, in wall-clock time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import cases, providers, timing

TARGETS_US = {"forward": 8.0, "full": 15.0}   # triton_ops - torch, per call (issue 10)
# "backward": autograd.grad over one graph kept alive (retain_graph), the backward's host cost
# apart from the forward's (on a GPU, autograd runs it on its device thread)
DIRECTIONS = ("forward", "backward", "full")
HOST_SHAPE = (8, 16)


def host_shape(spec) -> tuple:
    return (16, 16, 16) if spec.family == "matmul" else HOST_SHAPE


def step(fn, spec, args, direction):
    """A no-argument callable: one call of ``fn`` for ``direction`` (forward under no_grad, the
    backward alone over one graph kept alive, or both), as ``host_us`` and ``bench.profile`` run it."""
    if direction == "forward":
        def forward():
            with torch.no_grad():
                fn(*args)
        return forward
    grad_args = list(args)
    positions = cases.diff_positions(spec, args)
    for i in positions:
        grad_args[i] = args[i].detach().requires_grad_(True)
    inputs = [grad_args[i] for i in positions]
    if direction == "backward":  # the backward alone, on one graph kept alive: its host cost apart
        out = fn(*grad_args)
        ones = torch.ones_like(out)

        def backward():
            torch.autograd.grad(out, inputs, ones, retain_graph=True)
        return backward

    def full():
        out = fn(*grad_args)
        torch.autograd.grad(out, inputs, torch.ones_like(out))
    return full


def measure(names, providers_=("triton_ops", "torch"), calls=200, repeats=7) -> list[dict]:
    """Rows (op, provider, impl, direction, shape, value=µs) measured in this process."""
    import triton_ops
    from triton_ops import runtime

    device = "cuda" if runtime.backend() == "cuda" else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else None
    # On CPU both providers only compute on this thread: its CPU time is the host cost, and the
    # machine's other load (a 2-core CI box) does not count. A GPU run times the wall clock, as a
    # training step sees it.
    clock = time.perf_counter if device == "cuda" else time.thread_time
    if device == "cpu":  # tiny CPU kernels: extra intra-op threads only add hand-off and contention
        torch.set_num_threads(1)
    rows = []
    try:
        for name in names:
            spec = triton_ops.registry[name]
            shape = host_shape(spec)
            args = cases.make_args(spec, shape, torch.float32, device)
            for provider in providers_:
                c = providers.call(provider, spec)
                for direction in DIRECTIONS:
                    us = timing.host_us(step(c.fn, spec, args, direction), calls=calls, repeats=repeats, sync=sync,
                                        clock=clock)
                    rows.append(dict(op=name, family=spec.family, provider=provider, impl=c.impl, direction=direction,
                                     dtype="torch.float32", shape=cases.shape_label(shape), metric="host_us",
                                     value=us, method=f"{runtime.backend()} launches"))
    except KeyboardInterrupt:  # a stage limit (gpu_check.sh): keep the ops measured so far
        print(f"interrupted: host rows for {len({r['op'] for r in rows})} of {len(names)} ops", file=sys.stderr)
    return rows


def measure_compile_only(names, calls=200, repeats=7, timeout=1800) -> list[dict]:
    """``measure`` in a subprocess under the compile-only backend: triton_ops and, op by op
    beside it in the same process, the torch call (which no backend changes), so that both
    sides of a row share the process's state and the machine's moment."""
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    env.pop("TRITON_INTERPRET", None)
    cmd = [sys.executable, "-m", "bench.host", "--calls", str(calls), "--repeats", str(repeats), *names]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"bench.host failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(names, calls=200, repeats=7) -> list[dict]:
    """Every host row: in this process on a GPU; on CPU in a compile-only subprocess."""
    from triton_ops import runtime

    if runtime.backend() == "cuda":
        return measure(names, calls=calls, repeats=repeats)
    return measure_compile_only(names, calls, repeats)


def summary(rows, worst=5) -> str:
    by = {(r["op"], r["direction"], r["provider"]): r["value"] for r in rows}
    lines = [f"{'op':<24}{'direction':<10}{'triton_ops µs':>14}{'torch µs':>10}{'extra µs':>10}  target",
             "-" * 78]
    extra = {}
    for (op, direction, provider), v in sorted(by.items()):
        if provider == "triton_ops" and (op, direction, "torch") in by:
            extra[(op, direction)] = v - by[(op, direction, "torch")]
    for (op, direction), d in sorted(extra.items()):
        ok = "" if direction not in TARGETS_US else "ok" if d <= TARGETS_US[direction] \
            else f"over +{TARGETS_US[direction]:.0f}"
        lines.append(f"{op:<24}{direction:<10}{by[(op, direction, 'triton_ops')]:>14.1f}"
                     f"{by[(op, direction, 'torch')]:>10.1f}{d:>+10.1f}  {ok}")
    for direction, target in TARGETS_US.items():
        ds = sorted(((d, op) for (op, dr), d in extra.items() if dr == direction), reverse=True)
        met = sum(d <= target for d, _ in ds)
        lines.append(f"\n{direction}: {met}/{len(ds)} ops within +{target:.0f} µs of torch; worst {worst}: "
                     + ", ".join(f"{op} {d:+.1f}" for d, op in ds[:worst]))
    return "\n".join(lines)


def main(argv=None) -> int:
    """The compile-only child of ``run``: measures triton_ops and torch, prints the rows as JSON."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.host")
    p.add_argument("ops", nargs="+")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args(argv)
    print(json.dumps(measure(a.ops, ("triton_ops", "torch"), a.calls, a.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
