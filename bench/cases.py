"""What is measured: the shapes per op (quick bench, sweeps, CPU counts) and their arguments.

One case = (op, shape, dtype). ``shape`` is the first tensor's shape, except for the matmul
family, where it is (M, N, K). Shared by ``python -m bench``, its sweeps and ``bench.static``
(which compiles the kernels at exactly these shapes).
"""
from __future__ import annotations

import torch

# Ops whose kernels own whole rows (one program = one or a few rows): swept over rows x hidden.
ROW_OPS = ("layer_norm", "cross_entropy_logits", "cosine_similarity_loss", "cross_entropy", "rms_norm", "softmax",
           "log_softmax")
GEMM_OPS = ("matmul", "linear", "linear_cross_entropy")
# the identity op exists for tests; embedding's sweep axis (vocabulary x rows) is its own
NOT_SWEPT = ("identity", "embedding", "one_hot_embedding")

# Ops whose forward, when a gradient will be asked for, forms the gradients itself (chunk by
# chunk, while the logits are live): their "forward" (no_grad) and "backward" (the VJP after a
# forward made outside the timing) leave that work out, so the quick bench times the whole
# training step ("full") for them too, the only figure to set beside eager's or Liger's step.
FULL_STEP_OPS = ("linear_cross_entropy",)
HIDDEN = (1024, 2048, 4096, 8192, 16384, 32768)
SWEEP_ROWS = (4096, 16384)
POINTWISE_ELEMENTS = tuple(1 << p for p in (24, 25, 26, 27, 28))
GEMM_SHAPES = ((4096, 4096, 4096), (8192, 8192, 8192)) + tuple(
    (8192, n, k) for n in (4096, 11008, 14336) for k in (4096, 11008, 14336))


def quick_shape(spec, gpu: bool) -> tuple:
    """The one shape of ``python -m bench --quick``. On a GPU each forward moves at least 256 MiB
    in bfloat16 (inputs far past L2, every bandwidth figure over that many bytes); on CPU (the
    interpreter, one program ~1 ms) a few programs."""
    if not gpu:
        if spec.name == "embedding":  # 1024 indices into a 512 x 256 table (make_args)
            return (1024,)
        return (64, 96, 96) if spec.family == "matmul" else (64, 1000)
    if spec.name == "linear_cross_entropy":  # tokens x vocabulary x hidden: Llama-3's vocabulary (issue 16)
        return (8192, 128256, 4096)
    if spec.family == "matmul":
        return (8192, 8192, 8192) if spec.name in GEMM_OPS else (8192, 4096, 4096)
    if spec.name == "cross_entropy_logits":
        return (8192, 32768)
    if spec.name == "embedding":
        return (65536,)
    return (16384, 8192)


def sweep_shapes(spec) -> list[tuple]:
    """``python -m bench --sweep``: rows x hidden for row ops, 2^24-2^28 elements for pointwise
    and elementwise losses, square and LLM GEMMs."""
    if spec.name in NOT_SWEPT:
        return []
    if spec.name in GEMM_OPS:
        return list(GEMM_SHAPES)
    if spec.name in ROW_OPS:
        return [(r, h) for r in SWEEP_ROWS for h in HIDDEN]
    return [(n // 4096, 4096) for n in POINTWISE_ELEMENTS]


def sweep_family(spec) -> str:
    return "gemm" if spec.name in GEMM_OPS else "rows" if spec.name in ROW_OPS else "pointwise"


def shape_label(shape) -> str:
    return "x".join(map(str, shape))


def make_args(spec, shape, dtype, device, gen=None) -> tuple:
    """The op's bound positional arguments for one case (values in each op's own domain)."""
    gen = gen or torch.Generator(device).manual_seed(0)
    if spec.family == "matmul":
        m, n, k = shape
        if spec.name == "linear":
            x = torch.randn(m, k, generator=gen, device=gen.device).to(device, dtype)
            w = (torch.randn(n, k, generator=gen, device=gen.device) * k ** -0.5).to(device, dtype)
            return spec.bind(x, w, torch.randn(n, generator=gen, device=gen.device).to(device, dtype), "gelu")
        if spec.name == "linear_cross_entropy":
            x = torch.randn(m, k, generator=gen, device=gen.device).to(device, dtype)
            w = (torch.randn(n, k, generator=gen, device=gen.device) * k ** -0.5).to(device, dtype)
            return spec.bind(x, w, torch.randint(0, n, (m,), generator=gen, device=gen.device).to(device))
        if spec.name == "matmul":
            return spec.bind(torch.randn(m, k, generator=gen, device=gen.device).to(device, dtype),
                             (torch.randn(k, n, generator=gen, device=gen.device) * k ** -0.5).to(device, dtype))
        idx = torch.randint(0, k, (m,), generator=gen, device=gen.device)
        return spec.bind(torch.nn.functional.one_hot(idx, k).to(device, dtype),
                         torch.randn(k, n, generator=gen, device=gen.device).to(device, dtype))
    if spec.name == "embedding" and len(shape) == 1:
        # rows as wide as a model's: an LLM-sized table (32768 x 1024) on a GPU, 512 x 256 on CPU. The
        # op's own sample (24-wide rows) makes an index 1/12 of its row's bytes, and the VJP's sort
        # moves ~15 bytes an index: 1.18x the minimum there, 1.01x at these widths
        V, E = (32768, 1024) if shape[0] > 4096 else (512, 256)
        idx = torch.randint(0, V, shape, generator=gen, device=gen.device).to(device)
        return spec.bind(idx, torch.randn(V, E, generator=gen, device=gen.device).to(device, dtype))
    if spec.name == "swiglu":
        # gate and up as a model has them, one shape (the op's sample broadcasts up over rows, which
        # Liger's kernel does not take: it read past up's row, an illegal address on the H200)
        gate, up = (torch.randn(shape, generator=gen, device=gen.device).to(device, dtype) for _ in range(2))
        return spec.bind(gate, up)
    return spec.bind(*spec.sample(shape, dtype, device, gen))


def diff_positions(spec, args) -> list[int]:
    """Positions of the arguments whose gradients the benchmark asks for (as ``min_bytes`` assumes)."""
    needs = spec.default_needs(args)
    return [i for i, n in zip(spec.tensor_args, needs) if n]
