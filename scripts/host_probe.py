"""Warm host cost per call (µs) of a few ops under the compile-only backend (kernels compiled for
sm_90 once, the driver launch a no-op), next to the PyTorch call. A working probe for the launch
layer; ``python -m bench --host`` is the full measurement.

    TRITON_OPS_COMPILE_ONLY=1 PYTHONPATH=. python scripts/host_probe.py [op ...]
"""
import os
import sys
import time

os.environ.setdefault("TRITON_OPS_COMPILE_ONLY", "1")
import triton_ops  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)

TORCH = {
    "gelu": lambda x: F.gelu(x, approximate="tanh"),
    "mul": lambda a, b, broadcast=None: a * b,
    "cross_entropy_logits": lambda z, t, *r: F.cross_entropy(z, t),
    "layer_norm": lambda x, shape, w=None, b=None, eps=1e-5: F.layer_norm(x, shape, w, b, eps),
    "linear": lambda x, w, b, act=None: F.gelu(F.linear(x, w, b), approximate="tanh"),
    "mse_loss": lambda x, t, *r: F.mse_loss(x, t),
    "sum": lambda x, dim, keepdim: x.sum(dim, keepdim),
}


def per_call(fn, n=3000, repeats=30):
    """The fastest of ``repeats`` rounds (the machine is shared: the minimum is the cost)."""
    for _ in range(50):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n // repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / (n // repeats))
    return best * 1e6


def main(names):
    print(f"{'op':24s} {'fwd':>7s} {'torch':>7s} {'full':>7s} {'torch':>7s}")
    for name in names:
        spec = triton_ops.registry[name]
        args = spec.sample((4, 8), torch.float32, "cpu", torch.Generator().manual_seed(0))
        nograd = lambda: spec.fn(*args)  # noqa: E731
        targs = [a.detach().clone().requires_grad_(a.is_floating_point()) if isinstance(a, torch.Tensor) else a
                 for a in args]
        out = spec.fn(*targs)
        g = torch.ones_like(out)
        ref = TORCH[name]

        def full(f=spec.fn):
            f(*targs).backward(g)

        def tfull():
            ref(*targs).backward(g)

        with torch.no_grad():
            fwd = per_call(nograd)
            tfwd = per_call(lambda: ref(*args))
        print(f"{name:24s} {fwd:7.1f} {tfwd:7.1f} {per_call(full, 1000):7.1f} {per_call(tfull, 1000):7.1f}", flush=True)


main(sys.argv[1:] or list(TORCH))
