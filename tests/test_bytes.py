"""Bytes moved, counted by the interpreter (triton_ops.counting), against each op's minimum."""
from __future__ import annotations

import pytest
import torch

import triton_ops
from triton_ops.counting import count_bytes

pytestmark = pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="counts need the interpreter")

UNARY = sorted(n for n, s in triton_ops.registry.items() if s.family == "unary")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", UNARY)
def test_unary_bytes_are_minimal(name, dtype):
    spec = triton_ops.registry[name]
    (x,) = spec.sample((96, 300), dtype, "cpu", torch.Generator().manual_seed(0))
    g = torch.randn(96, 300).to(dtype)
    fwd_min, bwd_min = spec.min_bytes(x)
    with count_bytes() as fwd:
        spec.forward(x)
    with count_bytes() as bwd:
        spec.vjp(x, g)
    assert fwd.launches == 1 and bwd.launches == 1
    assert fwd_min <= fwd.total <= 1.02 * fwd_min, (fwd, fwd_min)
    assert bwd_min <= bwd.total <= 1.02 * bwd_min, (bwd, bwd_min)
