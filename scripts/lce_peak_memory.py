"""Peak extra memory of a linear + cross-entropy training step (issue 16's target: ours <= 1/4
of the unfused ``F.linear`` + ``F.cross_entropy``), measured on CPU.

A ``TorchDispatchMode`` sees every ATen op of the step (forward and backward, our launchers'
allocations included) and keeps the bytes of every storage that an op's outputs hold alive: a storage counts from the op that
first returns it until the last tensor seen holding it is freed. The peak of that sum is the
step's peak extra memory (the inputs and the weight, made before, are not counted; the
gradients the step returns are). The shape keeps the ratios of the issue's bf16 target (N = 8192
tokens, H = 4096, V = 128,256), scaled down by ``--scale`` in each dimension.

A dispatch mode sends our call down the custom-op route (``spec.eager_route``: torch.compile's
and export's route); ``--route eager`` lets it take the eager ``autograd.Function`` (what a
plain training step runs) by admitting the call to the eager route while the mode watches.

    PYTHONPATH=. .venv/bin/python scripts/lce_peak_memory.py [--scale 32] [--dtype bfloat16] [--route eager]
"""
from __future__ import annotations

import argparse
import weakref

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Live and peak bytes of the storages created by the ops run under the mode."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.largest = (0, None)
        self._holders: dict = {}  # storage address -> [bytes, tensors seen holding it]

    def _release(self, key):
        entry = self._holders[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._holders[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or id(t) in before or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0:  # an empty storage
                continue
            entry = self._holders.get(key)
            if entry is None:
                entry = self._holders[key] = [storage.nbytes(), 0]
                self.live += entry[0]
                if self.live > self.peak:
                    self.peak = self.live
                if entry[0] > self.largest[0]:
                    self.largest = (entry[0], f"{func} -> {tuple(t.shape)}")
            entry[1] += 1
            weakref.finalize(t, self._release, key)
        return out


def step(fn, x, w, target):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    with LiveBytes() as mode:
        loss = fn(x, w, target)
        dx, dw = torch.autograd.grad(loss, (x, w))
        del loss
    return mode, (dx, dw)


def main(argv=None):
    import triton_ops

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=32)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--route", choices=("custom-op", "eager"), default="custom-op")
    a = parser.parse_args(argv)
    if a.route == "eager":
        import triton_ops.spec

        triton_ops.spec.eager_route = lambda values, tensor_args: True  # the mode is only watching
    dtype = getattr(torch, a.dtype)
    N, H, V = 8192 // a.scale, 4096 // a.scale, 128256 // a.scale
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, H, generator=gen).to(dtype)
    w = (torch.randn(V, H, generator=gen) * H ** -0.5).to(dtype)
    target = torch.randint(0, V, (N,), generator=gen)
    ours, (dx, dw) = step(triton_ops.linear_cross_entropy, x, w, target)
    unfused, (rdx, rdw) = step(lambda x, w, t: F.cross_entropy(F.linear(x, w), t), x, w, target)
    torch.testing.assert_close(dx.float(), rdx.float(), rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(dw.float(), rdw.float(), rtol=2e-2, atol=2e-3)
    es = torch.empty((), dtype=dtype).element_size()
    chunk = triton_ops.launchers.llm.chunk_rows(N, V, H, dtype, x.device)
    grads = (N * H + V * H) * es
    print(f"N={N} H={H} V={V} {a.dtype}, {a.route} route; chunk {chunk} rows; N x V = {N * V * es:,} B; dX + dW = {grads:,} B")
    for name, m in (("triton_ops", ours), ("unfused", unfused)):
        print(f"{name:10s} peak extra {m.peak:>12,} B  (without dX + dW: {m.peak - grads:>12,} B)  "
              f"largest {m.largest[0]:,} B ({m.largest[1]})")
    print(f"ratio triton_ops / unfused: {ours.peak / unfused.peak:.3f} "
          f"(without dX + dW: {(ours.peak - grads) / (unfused.peak - grads):.3f})")


if __name__ == "__main__":
    main()
