"""``python -m bench.variants FAMILY ...``: launch configurations side by side on a GPU, to choose
defaults from measurements.

Each family names its cases (op, direction, shape) and its variants; a variant overrides the
planner's knobs for the length of its measurement, with the plan caches cleared around it. Times
are device times of CUDA-graph replays (``bench.timing``), bf16, against a same-run clone of the
op's minimum bytes (GEMM-bound steps: the time alone). Families:

- ``norm``: LayerNorm / RMSNorm row kernels (``launchers/norm.row_config``: the backward's
  programs per SM, step elements and warps; the forward's tile and warps), 16384 rows x hidden
  1024-8192 (issue 13; chose ``norm.ROW_CONFIGS`` on the H200 of 2026-11-27).
- ``reduce``: the column-sum tiles (A_ROWS: ``sum``, ``sum_to``, ``add`` / ``div`` backward):
  ``tile_elements()``, at least ``A_ROWS_TILES``' rows of it, its warps, and a sum alone's
  pipeline stages (``A_ROWS_STAGES``: ``4x1024w4plain`` is the loop before pipelining, which
  read 78.6% in sum and 93.6% in add's backward on the H200 of 2026-11-28).
- ``embedding``: the embedding backward's chunk walk (``launchers/shape.SCATTER_CHUNK``, tile
  bytes, warps, rows in flight ``SCATTER_STAGES``) at 65536 indices into 32768 x 1024 (issue 13:
  24% of clone with the matrix-product kernel; the running-row walk predicted 52-59%).
- ``loss``: the reduced loss forwards' pipelining (``launchers/loss.PIPELINE_STAGES``): plain loads
  against 2-4 stages, BCE-like and mse (issue 13: 80% of clone before the pipelining), and
  cross_entropy_logits' class loop under the same constants (67.6% before).
- ``lce``: ``linear_cross_entropy``'s rows per chunk (``launchers/llm.chunk_rows``), the whole
  training step at Llama-3's vocabulary (issue 16).
- ``tf32``: float32 GEMM tiles on TF32 (``torch.set_float32_matmul_precision("high")``), forward and
  VJP at 8192^3 (issue 12: 0.85x of cuBLAS asked; the K-major operands of 2026-11-28 untested).
- ``gemm32``: IEEE float32 GEMM tiles (``tune.forced``: the FMA-unit configs the static report
  compiles spill-free), forward and VJP at 4096^3 (issue 12: 0.20-0.44x of cuBLAS SGEMM).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import sys

import torch

import triton_ops
from triton_ops import runtime, tune
from triton_ops.launchers import llm, loss, norm, pointwise, shape

from . import cases, host, timing
from .__main__ import clone_ms


@contextlib.contextmanager
def patched(module, **values):
    """``module``'s attributes set to ``values`` (None: left alone), the plan caches cleared on
    the way in and out."""
    saved = {k: getattr(module, k) for k, v in values.items() if v is not None}
    for k in saved:
        setattr(module, k, values[k])
    runtime.clear_plan_caches()
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)
        runtime.clear_plan_caches()


def norm_knobs(*, programs_per_sm=None, tile=None, warps=None, backward: bool, stages=None):
    """The row planner's knobs: the backward's programs per SM, step elements, warps and row-loop
    stages (``norm.row_config``, ``RMS_BWD_STAGES`` / ``LN_BWD_STAGES``), or the forward's tile
    elements (``runtime.tile_elements``) and warps."""
    default = norm.row_config

    def row_config(D):
        per_sm, step, bwd_warps, fwd_warps = default(D)
        if backward:
            return (programs_per_sm or per_sm, tile or step, warps or bwd_warps, fwd_warps)
        return (per_sm, step, bwd_warps, warps or fwd_warps)

    stack = contextlib.ExitStack()
    stack.enter_context(patched(norm, row_config=row_config, RMS_BWD_STAGES=stages, LN_BWD_STAGES=stages))
    if not backward:
        stack.enter_context(patched(runtime, tile_elements=(lambda: tile) if tile else None))
    return stack


def reduce_knobs(tile=None, min_rows=None, warps=None, stages=None):
    """The column sums' tile elements, least rows and warps of an A_ROWS tile (``A_ROWS_TILES``)
    and the pipeline stages of a sum alone (``A_ROWS_STAGES``)."""
    stack = contextlib.ExitStack()
    stack.enter_context(patched(runtime, tile_elements=(lambda: tile) if tile else None,
                                num_warps_for=(lambda elements: warps) if warps else None))
    stack.enter_context(patched(pointwise, A_ROWS_STAGES=stages))
    if min_rows:
        stack.enter_context(patched(pointwise, A_ROWS_TILES={False: (min_rows, warps), True: (min_rows, warps)}))
    return stack


def lce_knobs(rows=None):
    chunk = (lambda N, V, H, dtype=None, device=None: max(1, min(runtime.next_pow2(N), rows))) if rows else None
    return patched(llm, chunk_rows=chunk)


NORM_BWD = [("default", {}), ("1x8192w16", dict(programs_per_sm=1, tile=8192, warps=16)),
            ("2x4096w8", dict(programs_per_sm=2, tile=4096, warps=8)),
            ("2x8192w8", dict(programs_per_sm=2, tile=8192, warps=8)),
            ("4x2048w4", dict(programs_per_sm=4, tile=2048, warps=4)),
            ("1x16384w16", dict(programs_per_sm=1, tile=16384, warps=16)),
            # the row loop's pipeline (launchers/norm.RMS_BWD_STAGES / LN_BWD_STAGES, one for both here):
            # plain against 3 stages, and 3 stages at 8192-element steps (LayerNorm's spill-free pipelined step)
            ("plain", dict(stages=1)), ("3stages", dict(stages=3)),
            ("1x8192w16s3", dict(programs_per_sm=1, tile=8192, warps=16, stages=3))]
NORM_FWD = [("default", {}), ("tile4096w8", dict(tile=4096, warps=8)), ("tile4096w4", dict(tile=4096, warps=4)),
            ("tile2048w4", dict(tile=2048, warps=4)), ("tile8192w8", dict(tile=8192, warps=8))]
REDUCE = [("default", {}), ("4x1024w4plain", dict(tile=4096, min_rows=4, warps=4, stages=1)),
          ("4x1024w4s2", dict(tile=4096, min_rows=4, warps=4, stages=2)),
          ("4x1024w4s4", dict(tile=4096, min_rows=4, warps=4, stages=4)), ("64x64w8", dict(tile=4096, min_rows=64, warps=8)),
          ("32x128w8", dict(tile=4096, min_rows=32, warps=8)), ("16x256w8", dict(tile=4096, min_rows=16, warps=8)),
          ("8x512w8", dict(tile=4096, min_rows=8, warps=8)), ("4x1024w4", dict(tile=4096, min_rows=4, warps=4)),
          ("32x256w8", dict(tile=8192, min_rows=32, warps=8)), ("16x512w8", dict(tile=8192, min_rows=16, warps=8)),
          ("64x64w4", dict(tile=4096, min_rows=64, warps=4)), ("16x256w4", dict(tile=4096, min_rows=16, warps=4))]
def gemm_knobs(precision="highest", **cfg):
    """A forced GEMM config (none: the planner's default) under float32 matmul ``precision``."""
    stack = contextlib.ExitStack()
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    stack.callback(torch.set_float32_matmul_precision, before)
    if cfg:
        stack.enter_context(tune.forced("gemm", dict(GROUP_M=8, **cfg)))
    return stack


GEMM32 = [("default", {})] + [(f"{m}x{n}x{k}w{w}s{s}", dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s))
                              for m, n, k, w, s in ((64, 64, 32, 4, 2), (64, 64, 16, 4, 3), (128, 64, 16, 4, 2),
                                                    (64, 128, 16, 8, 2), (128, 128, 16, 8, 2), (128, 128, 32, 8, 2))]
EMBEDDING = [("default", {})] + [
    (name, dict(SCATTER_CHUNK=c, SCATTER_TILE_BYTES=b, SCATTER_WARPS=w, SCATTER_STAGES=s))
    for name, (c, b, w, s) in (("2048Bw4s4", (32, 2048, 4, 4)), ("2048Bw4s8", (32, 2048, 4, 8)),
                               ("2048Bw2s6", (32, 2048, 2, 6)), ("1024Bw4s6", (32, 1024, 4, 6)),
                               ("4096Bw8s6", (32, 4096, 8, 6)), ("chunk16", (16, 2048, 4, 6)),
                               ("chunk64", (64, 2048, 4, 6)))]
# TF32 tensor-core tiles (sm_90 wgmma m64nNk8), all spill-free under Triton 3.6: the default, bf16's wide tile
# in TF32 (128 x 256 x 32, 192 registers, 1 program an SM), and the 128 x 128 x 32 it replaced (114 registers)
TF32 = [("default", {})] + [(f"{m}x{n}x{k}w{w}s{s}", dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, num_warps=w, num_stages=s))
                            for m, n, k, w, s in ((128, 128, 32, 8, 3), (256, 128, 32, 8, 3), (128, 256, 32, 8, 4),
                                                  (128, 128, 64, 8, 3), (128, 128, 32, 4, 4))]
# the reduced loss forwards' and cross_entropy_logits' class loop's software pipelining
# (launchers/loss.stream_stages): plain loads, or 2-4 stages of global -> shared copies
# (docs/benchmarks/issue13-loss-forwards.md, issue13-inflight.md)
LOSS = [("default", {}), ("plain", dict(PIPELINE_STAGES=1)), ("2stages", dict(PIPELINE_STAGES=2)),
        ("4stages48K", dict(PIPELINE_STAGES=4, PIPELINE_SMEM=48 << 10))]
LCE = [("default", {}), ("chunk512", dict(rows=512)), ("chunk1024", dict(rows=1024)),
       ("chunk2048", dict(rows=2048)), ("chunk4096", dict(rows=4096))]


def family_cases(family: str, hidden=(1024, 2048, 4096, 8192), rows=16384):
    """(op, direction, shape, [(variant name, knobs context factory)]) of one family (bf16, but
    gemm32's and tf32's float32)."""
    if family == "norm":
        for direction, variants, backward in (("backward", NORM_BWD, True), ("forward", NORM_FWD, False)):
            for op in ("layer_norm", "rms_norm"):
                for h in hidden:
                    yield op, direction, (rows, h), [(n, lambda kw=kw, b=backward: norm_knobs(backward=b, **kw))
                                                     for n, kw in variants]
    elif family == "reduce":
        for op, direction in (("sum", "forward"), ("sum_to", "forward"), ("add", "backward"), ("div", "backward")):
            yield op, direction, (rows, 8192), [(n, lambda kw=kw: reduce_knobs(**kw)) for n, kw in REDUCE]
    elif family == "embedding":
        spec = triton_ops.registry["embedding"]
        yield "embedding", "backward", cases.quick_shape(spec, gpu=True), \
            [(n, lambda kw=kw: patched(shape, **kw)) for n, kw in EMBEDDING]
    elif family == "loss":
        for op in ("binary_cross_entropy", "bce_log_clamp", "poisson_nll_rate_full", "cross_entropy", "mse_loss"):
            yield op, "forward", (rows, 8192), [(n, lambda kw=kw: patched(loss, **kw)) for n, kw in LOSS]
        # the class loop of cross_entropy_logits follows the same stages (launchers/loss.stream_stages)
        yield "cross_entropy_logits", "forward", (8192, 32768), [(n, lambda kw=kw: patched(loss, **kw)) for n, kw in LOSS]
    elif family == "lce":
        spec = triton_ops.registry["linear_cross_entropy"]
        yield "linear_cross_entropy", "full", cases.quick_shape(spec, gpu=True), \
            [(n, lambda kw=kw: lce_knobs(**kw)) for n, kw in LCE]
    elif family == "tf32":
        for direction in ("forward", "backward"):
            yield "matmul", direction, (8192, 8192, 8192), [(n, lambda kw=kw: gemm_knobs("high", **kw)) for n, kw in TF32]
    elif family == "gemm32":
        for direction in ("forward", "backward"):
            yield "matmul", direction, (4096, 4096, 4096), [(n, lambda kw=kw: gemm_knobs(**kw)) for n, kw in GEMM32]
    else:
        raise ValueError(f"unknown family {family!r}")


def measure(spec, args, direction: str, nbytes: int) -> tuple[float, str]:
    """(device ms per call, timing method) of one direction (``host.step``: the forward under
    no_grad, the VJP alone over one graph kept alive, or the whole step), timed like the quick
    bench. The step is made by its first call, inside the timer's warm-up: a backward runs on its
    forward's stream, so the graph it walks must be built on the stream the timer captures (one
    built before it sent the VJP's kernels outside the capture on the H200 of 2026-11-28)."""
    made = []

    def timed(i):
        if not made:
            made.append(host.step(spec.fn, spec, args, direction))
        made[0]()
    samples, method = timing.device_time(timed, timing.calls_for(nbytes))
    return timing.percentiles(samples)[1], method


FIELDS = ["family", "op", "direction", "shape", "variant", "ms", "pct_clone", "tflops", "method", "error"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.variants")
    p.add_argument("families", nargs="+", choices=("norm", "reduce", "embedding", "loss", "lce", "gemm32", "tf32"))
    p.add_argument("--ops", nargs="+", help="only these ops")
    p.add_argument("--directions", nargs="+", help="only these directions")
    p.add_argument("--hidden", nargs="+", type=int, default=[1024, 2048, 4096, 8192], help="norm's hidden sizes")
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--out")
    a = p.parse_args(argv)
    assert runtime.backend() == "cuda", "a GPU run"
    # each row written as it is measured: a run stopped at its time limit keeps what it measured
    fh = open(a.out, "w", newline="") if a.out else None
    writer = csv.DictWriter(fh, fieldnames=FIELDS) if fh else None
    if writer:
        writer.writeheader()
    for family in a.families:
        for op, direction, shape, variants in family_cases(family, tuple(a.hidden), a.rows):
            if (a.ops and op not in a.ops) or (a.directions and direction not in a.directions):
                continue
            spec = triton_ops.registry[op]
            dtype = torch.float32 if family in ("gemm32", "tf32") else torch.bfloat16
            args = cases.make_args(spec, shape, dtype, "cuda")  # as the quick bench draws them
            flops = spec.flops(*args) if spec.flops else None
            min_bytes = spec.min_bytes(*args)
            nbytes = {"forward": min_bytes[0], "backward": min_bytes[1], "full": sum(min_bytes)}[direction]
            base = clone_ms(nbytes, timing.calls_for(nbytes))[0] if spec.family != "matmul" else None
            for name, knobs in variants:
                row = dict(family=family, op=op, direction=direction, shape=cases.shape_label(shape), variant=name)
                try:
                    with knobs():
                        ms, method = measure(spec, args, direction, nbytes)
                    row.update(ms=ms, method=method, pct_clone=100 * base / ms if base else float("nan"),
                               tflops=(flops[0] if direction == "forward" else flops[1]) / ms / 1e9 if flops and
                               direction != "full" else float("nan"))
                except Exception as exc:  # noqa: BLE001 - a variant the compiler refuses
                    row.update(ms=float("nan"), pct_clone=float("nan"), tflops=float("nan"), error=f"{type(exc).__name__}: {exc}"[:200])
                if writer:
                    writer.writerow(row)
                    fh.flush()
                print(f"{op:<21}{direction:<9}{row['shape']:<18}{name:<12}{row['ms']:>9.4f} ms "
                      f"{row['pct_clone']:>6.1f}% {row['tflops']:>7.1f} TFLOP/s {row.get('method', '')}"
                      + (f"  {row.get('error')}" if row.get("error") else ""), flush=True)
    if fh:
        fh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
