"""The int64-offset variants of the kernels (chosen on the host when a reachable offset exceeds
2^31 - 1). Tensors that large do not fit the interpreter's budget, so the switch is forced on
small inputs: the int64 code paths must compute the same values."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from helpers import DEVICE, assert_close, reference_grads

CASES = {
    "gelu": lambda g: (torch.randn(33, 17, generator=g, dtype=torch.float64).mT,),
    "mul": lambda g: (torch.randn(6, 1, 9, generator=g, dtype=torch.float64),
                      torch.randn(1, 5, 9, generator=g, dtype=torch.float64)),
    "sum": lambda g: (torch.randn(7, 12, generator=g, dtype=torch.float64), [0], False),
    "mse_loss": lambda g: (torch.randn(9, 11, generator=g, dtype=torch.float64),
                           torch.randn(9, 11, generator=g, dtype=torch.float64)),
    "cross_entropy_logits": lambda g: (torch.randn(5, 13, generator=g, dtype=torch.float64),
                                       torch.randint(0, 13, (5,), generator=g)),
    "cosine_similarity_loss": lambda g: (torch.randn(4, 10, generator=g, dtype=torch.float64),
                                         torch.randn(4, 10, generator=g, dtype=torch.float64), 1),
    "softmax": lambda g: (torch.randn(9, 6, 5, generator=g, dtype=torch.float64), 1),
    "log_softmax": lambda g: (torch.randn(7, 11, generator=g, dtype=torch.float64).mT, 0),
    # 100 rows: several row chunks in the dz pass (bias sums combined from partial rows)
    "linear": lambda g: (torch.randn(100, 12, generator=g, dtype=torch.float64),
                         torch.randn(7, 12, generator=g, dtype=torch.float64) * 0.3,
                         torch.randn(7, generator=g, dtype=torch.float64), "gelu", "ieee"),
    # 70 rows: two row blocks, the second with a row of two nonzero entries (the product path)
    "one_hot_embedding": lambda g: (torch.cat([F.one_hot(torch.randint(0, 9, (69,), generator=g), 9).double(),
                                               torch.full((1, 9), 0.5, dtype=torch.float64)]),
                                    torch.randn(9, 5, generator=g, dtype=torch.float64)),
    "rms_norm": lambda g: (torch.randn(5, 3, 8, generator=g, dtype=torch.float64), [3, 8],
                           torch.randn(3, 8, generator=g, dtype=torch.float64)),
}


@pytest.fixture
def force_int64(monkeypatch):
    monkeypatch.setattr(triton_ops.runtime, "needs_int64", lambda *extents: True)
    triton_ops.runtime.clear_plan_caches()
    yield
    triton_ops.runtime.clear_plan_caches()


@pytest.mark.parametrize("name", sorted(CASES))
def test_int64_offsets_give_the_same_results(name, force_int64):
    spec = triton_ops.registry[name]
    args = [a.to(DEVICE) if isinstance(a, torch.Tensor) else a for a in CASES[name](torch.Generator().manual_seed(0))]
    idx = [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]
    for i in idx:
        args[i] = args[i].requires_grad_()
    out = spec.fn(*args)
    g = torch.randn(out.shape, dtype=out.dtype, device=DEVICE) if out.dim() else torch.tensor(0.7, dtype=out.dtype,
                                                                                              device=DEVICE)
    ref, ref_grads = reference_grads(spec.reference, args, g, idx)
    assert_close(out, ref, torch.float64, f"{name} int64 forward")
    for i, gr, rg in zip(idx, torch.autograd.grad(out, [args[i] for i in idx], g), ref_grads):
        assert_close(gr, rg, torch.float64, f"{name} int64 grad {i}")
