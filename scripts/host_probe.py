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
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)


def _loss(f):
    return lambda x, t, *r: f(x, t)


def _safe_div(a, b, eps=1e-6):
    return a / torch.where(b >= 0, b + eps, b - eps)


# The call a PyTorch user would write for the same op, on the same arguments.
TORCH = {
    "elu": lambda x, alpha=1.0: F.elu(x, alpha),
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "leaky_relu": lambda x, s=0.01: F.leaky_relu(x, s),
    "smooth_abs": lambda x, eps=1e-6: torch.sqrt(x * x + eps),
    "log": torch.log,
    "safe_log": lambda x, eps=1e-6: torch.log(x + eps),
    "sqrt": torch.sqrt,
    "reciprocal": torch.reciprocal,
    "safe_reciprocal": lambda x, eps=1e-6: _safe_div(1.0, x, eps),
    "identity": lambda x: x.clone(),
    "add": lambda a, b, broadcast=None: a + b,
    "sub": lambda a, b, broadcast=None: a - b,
    "mul": lambda a, b, broadcast=None: a * b,
    "div": lambda a, b, broadcast=None: a / b,
    "safe_div": lambda a, b, eps=1e-6, broadcast=None: _safe_div(a, b, eps),
    "mse_loss": _loss(F.mse_loss),
    "mae_loss": _loss(F.l1_loss),
    "huber_loss": lambda x, t, delta=1.0, *r: F.huber_loss(x, t, delta=delta),
    "hinge_loss": lambda x, t, *r: torch.clamp(1 - x * t, min=0).mean(),
    "poisson_loss": lambda x, t, *r: F.poisson_nll_loss(x, t, log_input=True, full=False),
    "log_cosh_loss": lambda x, t, *r: torch.log(torch.cosh(x - t)).mean(),
    "binary_cross_entropy": _loss(F.binary_cross_entropy),
    "cross_entropy": lambda q, p, dim=-1, eps=1e-6, *r: -(p * torch.log(q + eps)).sum(dim).mean(),
    "cross_entropy_logits": lambda z, t, *r: F.cross_entropy(z, t),
    "cosine_similarity_loss": lambda x, t, dim=-1, eps=1e-6, *r: (1 - F.cosine_similarity(x, t, dim, eps)).mean(),
    "matmul": lambda a, b, *r: a @ b,
    "linear": lambda x, w, b, act=None, *r: F.gelu(F.linear(x, w, b), approximate="tanh"),
    "one_hot_embedding": lambda o, w: o @ w,
    "layer_norm": lambda x, shape, w=None, b=None, eps=1e-5: F.layer_norm(x, shape, w, b, eps),
    "transpose": lambda x: x.t().contiguous(),
    "embedding": F.embedding,
    "replicate": lambda s, shape: s.expand(shape).contiguous(),
    "sum_to": lambda x, shape: x.sum(0, keepdim=True),
    "sum": lambda x, dim, keepdim: x.sum(dim, keepdim),
}


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
    ref = TORCH[name]
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
