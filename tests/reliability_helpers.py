"""Shared pieces of the reliability tests (issue 14): every registered op's sample arguments in
float64, its forward and gradients, and the same through the float64 reference."""
from __future__ import annotations

import torch

import triton_ops
from helpers import DEVICE, assert_close, reference_grads

OPS = sorted(triton_ops.registry)


def sample(name: str, shape=(3, 4), seed: int = 0) -> list:
    spec = triton_ops.registry[name]
    return list(spec.bind(*spec.sample(shape, torch.float64, DEVICE, torch.Generator().manual_seed(seed))))


def float_args(name: str, args) -> list[int]:
    spec = triton_ops.registry[name]
    return [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]


def upstream(out: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """A random upstream gradient (never only ones)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out.shape, generator=g, dtype=torch.float64).to(DEVICE, out.dtype)


def check_against_reference(name: str, args, grad_args=None, what: str = ""):
    """The op's forward and the gradients of ``grad_args`` (positions; default every floating
    tensor argument) equal the float64 reference's on the very same argument tensors."""
    spec = triton_ops.registry[name]
    grad_args = float_args(name, args) if grad_args is None else grad_args
    out = spec.fn(*args)
    g = upstream(out)
    ref, ref_grads = reference_grads(spec.reference, args, g, grad_args)
    assert_close(out, ref, torch.float64, f"{name} {what} forward")
    if grad_args:
        grads = torch.autograd.grad(out, [args[i] for i in grad_args], g, allow_unused=True)
        for i, gr, rg in zip(grad_args, grads, ref_grads):
            gr = torch.zeros_like(args[i]) if gr is None else gr
            assert_close(gr, rg, torch.float64, f"{name} {what} grad of argument {i}")
    return out
