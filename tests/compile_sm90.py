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
        if spec.forward_needs:  # the training forward: gradients formed in it, the VJP scaling them
            values = spec.check(*spec.bind(*args))
            saved = spec.launchers.forward_saved(*values, needs=[True] * len(spec.tensor_args))[1:]
            spec.vjp(*args, g, saved=list(saved))
    print("compiled", name, flush=True)

# dim=None cosine of 64000 elements: column chunks and the program that adds their partials.
cosine = triton_ops.registry["cosine_similarity_loss"]
cos_args = (torch.randn(64, 1000), torch.randn(64, 1000), None, 1e-6, "mean")
cosine.vjp(*cos_args, cosine.forward(*cos_args))



def ce_pipelined():
    """cross_entropy_logits' pipelined class loop (4 steps of 2048 classes or more: STAGES = 3),
    with index and 16-bit probability targets, label smoothing, reduced and per row."""
    z = torch.randn(4, 8192).to(torch.bfloat16)
    for t in (torch.randint(0, 8192, (4,)), torch.softmax(torch.randn(4, 8192), 1).to(torch.bfloat16)):
        for smoothing in (0.0, 0.1):
            for reduction in ("mean", "none"):
                triton_ops.cross_entropy_logits(z, t, label_smoothing=smoothing, reduction=reduction)


ce_pipelined()
print("pipelined variants ok", flush=True)

# The int64-offset variants (chosen on the host for tensors past 2^31 elements), forced.
triton_ops.runtime.needs_int64 = lambda *extents: True
triton_ops.runtime.clear_plan_caches()
cosine.vjp(*cos_args, cosine.forward(*cos_args))
ce_pipelined()
for name in ("gelu", "mul", "sum", "mse_loss", "cross_entropy_logits", "cosine_similarity_loss", "layer_norm",
             "softmax", "rms_norm", "linear_cross_entropy"):
    spec = triton_ops.registry[name]
    args = spec.sample((16, 40), torch.float32, "cpu", torch.Generator().manual_seed(0))
    out = spec.forward(*args)
    spec.vjp(*args, torch.randn(out.shape))
print("compiled int64 variants", flush=True)

# The GEMM's other specializations: batched tensor descriptors, operands stored transposed,
# float32 as TF32 (torch's 'high') and IEEE, the pointer path (a base off the 16-byte grid).
for precision in ("high", "highest"):
    torch.set_float32_matmul_precision(precision)
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(3, 64, 48).to(dtype), torch.randn(3, 32, 48).to(dtype).transpose(1, 2)
        spec = triton_ops.registry["matmul"]
        spec.vjp(a, b, None, spec.forward(a, b, None))
        spec.forward(torch.randn(64 * 48 + 1).to(dtype)[1:].view(64, 48), b[0], None)
torch.set_float32_matmul_precision("highest")
# One output tile takes the pointer path (no descriptor to build per call), two tiles TMA: the
# 2-D TMA variants compile at a two-tile shape, forward and both gradients.
from triton_ops.launchers import matmul as gemm_launcher  # noqa: E402


def plans_tma(a, b):
    return gemm_launcher._gemm_plan(gemm_launcher.gemm_fwd_kernel, gemm_launcher._layout(a), gemm_launcher._layout(b),
                                    False, False, a.dtype, None, None, False, False, False, "ieee", None, False,
                                    a.device)[2] is not None


assert not plans_tma(torch.randn(16, 16), torch.randn(16, 16))
assert plans_tma(torch.randn(256, 48), torch.randn(48, 64))
for dtype in (torch.float32, torch.bfloat16):
    a, b = torch.randn(256, 48).to(dtype), torch.randn(48, 64).to(dtype)
    spec.vjp(a, b, None, spec.forward(a, b, None))
# TF32's wide tile (128 x 256, the default past 128 columns on the TMA path), forward and both gradients
torch.set_float32_matmul_precision("high")
a, b = torch.randn(256, 64), torch.randn(64, 512)
assert gemm_launcher.gemm_config(256, 512, 64, torch.float32)["BLOCK_N"] == 256
spec.vjp(a, b, None, spec.forward(a, b, None))
torch.set_float32_matmul_precision("highest")
print("gemm variants ok", flush=True)

# Rows longer than one block take the looped path of the row kernels.
for name in ("softmax", "log_softmax", "rms_norm"):
    spec = triton_ops.registry[name]
    args = spec.sample((4, 20000), torch.bfloat16, "cpu", torch.Generator().manual_seed(0))
    spec.vjp(*args, spec.forward(*args))
print("long rows ok", flush=True)
