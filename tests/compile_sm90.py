"""Compile every registered op's forward and VJP kernels for sm_90 (no GPU needed; nothing runs).

Run with TRITON_OPS_COMPILE_ONLY=1 (tests/test_compile_sm90.py does). Catches what the Triton
compiler rejects but the interpreter accepts.
"""
import sys

import torch

import triton_ops

assert triton_ops.backend() == "compile-only", triton_ops.backend()
names = sys.argv[1:] or sorted(triton_ops.registry)
for name in names:
    spec = triton_ops.registry[name]
    for dtype in (torch.float32, torch.bfloat16):
        args = spec.sample((16, 40), dtype, "cpu", torch.Generator().manual_seed(0))
        out = spec.forward(*args)
        g = torch.randn(out.shape).to(dtype)
        spec.vjp(*args, g)
        # a warm call is the cached launch path: nothing compiles again (the launch is a no-op)
        before = triton_ops.runtime.compile_count()
        spec.forward(*args)
        spec.vjp(*args, g)
        assert triton_ops.runtime.compile_count() == before, (name, dtype, "a warm call compiled")
    print("compiled", name, flush=True)

# dim=None cosine of 64000 elements: column chunks and the program that adds their partials.
cosine = triton_ops.registry["cosine_similarity_loss"]
cos_args = (torch.randn(64, 1000), torch.randn(64, 1000), None, 1e-6, "mean")
cosine.vjp(*cos_args, cosine.forward(*cos_args))

# The int64-offset variants (chosen on the host for tensors past 2^31 elements), forced.
triton_ops.runtime.needs_int64 = lambda *extents: True
triton_ops.runtime.clear_plan_caches()
cosine.vjp(*cos_args, cosine.forward(*cos_args))
for name in ("gelu", "mul", "sum", "mse_loss", "cross_entropy_logits", "cosine_similarity_loss", "layer_norm",
             "softmax", "rms_norm", "linear_cross_entropy"):
    spec = triton_ops.registry[name]
    args = spec.sample((16, 40), torch.float32, "cpu", torch.Generator().manual_seed(0))
    out = spec.forward(*args)
    spec.vjp(*args, torch.randn(out.shape))
print("compiled int64 variants", flush=True)

# Rows longer than one block take the looped path of the row kernels.
for name in ("softmax", "log_softmax", "rms_norm"):
    spec = triton_ops.registry[name]
    args = spec.sample((4, 20000), torch.bfloat16, "cpu", torch.Generator().manual_seed(0))
    spec.vjp(*args, spec.forward(*args))
print("long rows ok", flush=True)
