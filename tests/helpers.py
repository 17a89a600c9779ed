"""Shared test helpers: layouts, tolerances and float64 reference comparisons."""
from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import triton_ops
from triton_ops import counting

DEVICE = triton_ops.runtime.default_device()
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]

# (rtol, atol) per dtype. float16/bfloat16: the output itself is rounded to 11/8 bits (and the
# interpreter truncates float32 -> bfloat16 instead of rounding: 1 ulp = 2^-7 ~ 7.8e-3).
TOL = {
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float32: (2e-5, 2e-6),
    torch.float64: (1e-10, 1e-12),
}

LAYOUTS = ["contiguous", "transposed", "strided", "expanded", "scalar", "empty"]


def layout(base_shape, kind: str, make):
    """A tensor of a given memory layout whose values come from ``make(shape)`` (a CPU float64
    tensor); returns a float64 tensor of that layout (cast later, keeping the layout)."""
    if kind == "contiguous":
        return make(base_shape)
    if kind == "transposed":
        return make(tuple(reversed(base_shape))).mT if len(base_shape) == 2 else make(base_shape[::-1]).permute(
            *reversed(range(len(base_shape))))
    if kind == "strided":
        big = make(tuple(2 * s + 1 for s in base_shape))
        return big[tuple(slice(1, None, 2) for _ in base_shape)]
    if kind == "expanded":
        one = make((1,) + tuple(base_shape[1:]))
        return one.expand(*base_shape)
    if kind == "scalar":
        return make(())
    if kind == "empty":
        return make((0,) + tuple(base_shape[1:]))
    raise ValueError(kind)


def cast_keep_layout(t: torch.Tensor, dtype) -> torch.Tensor:
    """``t`` in ``dtype`` and on DEVICE with the same strides (expanded stays expanded)."""
    if any(st == 0 and n > 1 for n, st in zip(t.shape, t.stride())):
        base = t[tuple(slice(0, 1) if st == 0 else slice(None) for st in t.stride())]
        return cast_keep_layout(base, dtype).expand(t.shape)
    storage = torch.empty_strided(t.shape, t.stride(), dtype=dtype, device=DEVICE)
    storage.copy_(t)
    return storage


def counted_bytes():
    """``counting.count_bytes()`` where it can count (the interpreter); on a compiled backend a
    context that counts nothing (``as`` gives None): a test checks its values on both and its
    byte and launch counts under ``INTERPRETER`` alone."""
    if triton_ops.runtime.INTERPRETER:
        return counting.count_bytes()
    return contextlib.nullcontext()


def assert_close(actual, expected, dtype, what="", scale=1.0):
    rtol, atol = TOL[dtype]
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), rtol=rtol, atol=atol * scale,
                               equal_nan=True, msg=lambda m: f"{what}: {m}")


def reference_grads(ref, args, grad, tensor_idx):
    """Values and gradients of ``ref`` in float64 (from the same rounded inputs)."""
    args64 = [a.cpu() if isinstance(a, torch.Tensor) else a for a in args]
    leaves = []
    for i in tensor_idx:
        a = args[i]
        if isinstance(a, torch.Tensor):
            leaf = a.detach().double().cpu().requires_grad_(True)
            args64[i] = leaf
            leaves.append(leaf)
    out = ref(*args64)
    grads = torch.autograd.grad(out, leaves, grad.double().cpu(), allow_unused=True)
    grads = [torch.zeros_like(l) if g is None else g for l, g in zip(leaves, grads)]
    return out.detach(), grads


def small_args(spec, seed, shape=None):
    """The bench's sample arguments of ``spec`` at a small shape (a few interpreter programs)."""
    from bench import cases
    shape = shape or ((4, 6, 5) if spec.family == "matmul" else (3, 5))
    return cases.make_args(spec, shape, torch.float32, DEVICE, torch.Generator().manual_seed(seed))


def eager_grads(spec, args):
    """Output and gradients of the public function (eager route) with a fixed upstream gradient,
    and that gradient."""
    from bench import cases
    positions = cases.diff_positions(spec, args)
    args = list(args)
    for i in positions:
        args[i] = args[i].detach().clone().requires_grad_(True)
    out = spec.fn(*args)
    g = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device).reshape(out.shape)
    return [out, *torch.autograd.grad(out, [args[i] for i in positions], g)], g


class Allocations(TorchDispatchMode):
    """Every tensor any aten op returns (allocations included): (numel, shape, op name)."""

    def __init__(self):
        super().__init__()
        self.numels = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numels.append((t.numel(), tuple(t.shape), str(func)))
        return out
