"""Mutation check: plant realistic one-line bugs, one at a time, and see whether the tests notice.

    PYTHONPATH=. .venv/bin/python scripts/mutation.py                  # every mutant, current tests
    PYTHONPATH=. .venv/bin/python scripts/mutation.py --tests-from 3b75918   # tests of another commit
    PYTHONPATH=. .venv/bin/python scripts/mutation.py -k gemm ln-       # mutants whose id contains a word
    PYTHONPATH=. .venv/bin/python scripts/mutation.py --list            # list the mutants, check none is stale
    PYTHONPATH=. .venv/bin/python scripts/mutation.py --shard 1/2       # half of them (run 2/2 beside it)

Each mutant is (id, file, exact original snippet, replacement, description, tests). The tree is
copied once into a scratch directory (the working tree is never touched); for each mutant the
snippet is replaced there, ``pytest -x -q`` runs the mutant's test files (a short run), and the
file is restored. A mutant is KILLED when the tests fail (TIMEOUT, counted as killed, when they run past the
per-mutant limit: on a loaded machine, rerun it with a larger --timeout), SURVIVED when they pass,
STALE when its snippet no longer occurs exactly once in its file (code moved: update the mutant's
file or snippet; a stale mutant never counts as killed). Not part of CI: it takes minutes.
Run it before and after each kernel rewrite and quote the score.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    old: str
    new: str
    why: str
    tests: tuple


# Test selections, by area (paths relative to the repository root; a missing file is dropped,
# so the same table runs against an older test suite).
T_MM = ("tests/test_loops.py", "tests/test_layers.py")
T_LN = ("tests/test_loops.py", "tests/test_edges.py", "tests/test_layers.py")
T_LLM = ("tests/test_loops.py", "tests/test_llm.py")
T_LOSS = ("tests/test_loops.py", "tests/test_edges.py", "tests/test_losses.py")
T_PW = ("tests/test_loops.py", "tests/test_binary.py", "tests/test_unary.py")
T_UNARY = ("tests/test_edges.py", "tests/test_unary.py")
T_CHECKS = ("tests/test_edges.py", "tests/test_layers.py")
T_INT64 = ("tests/test_edges.py", "tests/test_int64.py")
T_TUNE = ("tests/test_edges.py", "tests/test_tune.py")
T_NN = ("tests/test_edges.py", "tests/test_training.py")
T_EMB = ("tests/test_loops.py", "tests/test_layers.py")
T_LAYOUT = ("tests/test_reliability_layouts.py",)
T_ROUTES = ("tests/test_reliability_tracing.py", "tests/test_routes.py")
T_VALUES = ("tests/test_reliability_values.py", "tests/test_edges.py", "tests/test_unary.py")
T_NARROW = ("tests/test_narrow.py",)

M = Mutant
MUTANTS = [
    # ---- GEMM template and launcher (templates/gemm.py, launchers/matmul.py)
    M("gemm-k-loop-short", "triton_ops/templates/gemm.py", "for k0 in range(0, K, BLOCK_K):",
      "for k0 in range(0, tl.maximum(K - BLOCK_K, 1), BLOCK_K):", "K loop stops one block early", T_MM),
    M("gemm-bias-in-k-loop", "triton_ops/templates/gemm.py",
      "            if DB:  # rows past M are clamped copies: their sums are never stored\n",
      "            if HAS_BIAS:\n"
      "                acc += tl.load(bias_ptr + rn.to(tl.int64) * bias_st, mask=n_mask, other=0.0).to(ACC)[None, :]\n"
      "            if DB:  # rows past M are clamped copies: their sums are never stored\n",
      "bias added inside the K loop too (once per K block)", T_MM),
    M("gemm-db-last-k-block", "triton_ops/templates/gemm.py", "row_sum += tl.sum(a.to(ACC), axis=1)",
      "row_sum = tl.sum(a.to(ACC), axis=1)", "bias-gradient row sum keeps only the last K block", T_MM),
    M("gemm-group-order", "triton_ops/templates/gemm.py", "pid_n = (pid % (GROUP_M * n_n)) // rows_in_group",
      "pid_n = (pid % (GROUP_M * n_n)) % n_n", "GROUP_M tile ordering maps programs to the wrong tiles", T_MM),
    M("gemm-m-tiles-floor", "triton_ops/templates/gemm.py", "n_m = tl.cdiv(M, BLOCK_M)",
      "n_m = tl.maximum(M // BLOCK_M, 1)", "the tile walk drops the last partial row of tiles", T_MM),
    M("gemm-transpose-strides", "triton_ops/launchers/matmul.py", "return (b, c, r) if transpose else (b, r, c)",
      "return (b, r, c)", "transposed operand read with its own strides", T_MM),
    M("gemm-epilogue-dropped", "triton_ops/templates/gemm.py",
      "    if EPILOGUE is not None:\n        acc = call(EPILOGUE, acc, acc, p, 1, HAS_PARAM, False)\n",
      "", "activation epilogue dropped", T_MM),
    # ---- linear's dz pass and one_hot_embedding's gather (bwd/linear.py, fwd/one_hot.py)
    M("linear-dz-db-last-rows", "triton_ops/bwd/linear.py", "acc += tl.where(mask, dz, 0.0)",
      "acc = tl.where(mask, dz, 0.0)", "bias gradient keeps only each chunk's last row block", T_MM),
    M("linear-dz-partials-unsummed", "triton_ops/launchers/linear.py", "part = db if chunks == 1 or db is None",
      "part = db if True or db is None", "bias gradient written by every row chunk (last one wins)", T_MM),
    M("one-hot-nonfinite-ignored", "triton_ops/fwd/one_hot.py", "nf[None, :] - own > 0.0",
      "nf[None, :] - own > 1e30", "gather drops 0 * inf = NaN from the other weight rows", T_MM),
    M("one-hot-own-entry-nan", "triton_ops/fwd/one_hot.py", "nf[None, :] - own > 0.0", "nf[None, :] > 0.0",
      "a row's own non-finite weight turned into NaN", T_MM),
    M("one-hot-no-product-fallback", "triton_ops/fwd/one_hot.py", "if tl.max(count, axis=0) <= 1:",
      "if tl.max(count, axis=0) <= 1000000:", "rows with several nonzero entries gathered", T_MM),
    M("one-hot-own-count-first-block", "triton_ops/fwd/one_hot.py", "for v0 in range(0, V, BLOCK_K):\n                    vs",
      "for v0 in range(BLOCK_K, V, BLOCK_K):\n                    vs",
      "the gather's own non-finite count skips the weight's first rows", T_MM),
    M("linear-dz-chunk-floor", "triton_ops/launchers/reduce.py", "R * C // runtime.min_split_elements()))",
      "R * C // runtime.min_split_elements() + 1))", "column-sum chunks split below min_split_elements (a combine more)",
      T_MM),
    # ---- LayerNorm kernels and launcher (fwd/ bwd/norm.py, launchers/norm.py)
    M("ln-long-unbiased-var", "triton_ops/fwd/norm.py", "rstd = 1.0 / tl.sqrt(m2 / D + eps)",
      "rstd = 1.0 / tl.sqrt(m2 / (D - 1) + eps)", "long-row path uses the unbiased variance", T_LN),
    M("ln-single-unbiased-var", "triton_ops/fwd/norm.py", "div_rounded(tl.sum(xc * xc, axis=1), n, COMPUTE) + eps",
      "div_rounded(tl.sum(xc * xc, axis=1), n - 1.0, COMPUTE) + eps", "one-block path uses the unbiased variance",
      T_LN),
    M("ln-chan-merge", "triton_ops/fwd/norm.py", "m2 = m2 + chunk_m2 + delta * delta * (n_prev * n_chunk / total)",
      "m2 = m2 + chunk_m2", "Chan merge drops the between-chunk term", T_LN),
    M("ln-chunk-mean-block", "triton_ops/fwd/norm.py", "chunk_mean = tl.sum(x, axis=1) / n_chunk",
      "chunk_mean = tl.sum(x, axis=1) / BLOCK_D", "last partial column chunk averaged over BLOCK_D", T_LN),
    M("ln-fwd-grid-short", "triton_ops/launchers/norm.py", "(runtime.cdiv(R, block_r),),  # one row block a program",
      "(max(1, R // block_r),),  # one row block a program",
      "forward grid drops the last, partial row block", T_LN),
    M("ln-dw-last-block", "triton_ops/bwd/norm.py", "dw_acc += tl.sum(g * x_hat, axis=0)",
      "dw_acc = tl.sum(g * x_hat, axis=0)", "dweight keeps only the last row block's partial", T_LN),
    M("ln-db-last-block", "triton_ops/bwd/norm.py", "db_acc += tl.sum(g, axis=0)",
      "db_acc = tl.sum(g, axis=0)", "dbias keeps only the last row block's partial", T_LN),
    M("ln-long-dw-overwrite", "triton_ops/bwd/norm_long.py", "dw_acc += tl.sum(g * x_hat, axis=0)",
      "dw_acc = tl.sum(g * x_hat, axis=0)", "long rows: a share's dweight sum keeps only its last row block", T_LN),
    M("ln-dx-mean-term", "triton_ops/bwd/norm.py", "        c2 = tl.sum(gw, axis=1)[:, None] / D\n",
      "        c2 = tl.sum(gw, axis=1)[:, None] / (D - 1)\n", "dx mean term over D - 1", T_LN),
    M("ln-partials-one-slot", "triton_ops/bwd/norm.py", "tl.store(dw_ptr + pid * part_stride + cols, dw_acc",
      "tl.store(dw_ptr + cols, dw_acc", "every program writes dweight partial row 0", T_LN),
    M("ln-db-partials-over-dw", "triton_ops/launchers/norm.py", "(part[:, parts[1] // 2:] if dw is not None else part) if db is not None else unused",
      "part if db is not None else unused", "dbias partial rows written over the dweight ones", T_LN),
    M("ln-long-shares-unsummed", "triton_ops/launchers/norm.py",
      "parts = (shares, (need_w + need_b) * D) if (need_w or need_b) and shares > 1 else None",
      "parts = None", "long rows in several shares write the gradients directly (each share over the last)",
      ("tests/test_loops.py",)),
    M("ln-row-share-floor", "triton_ops/tiles.py", "tl.minimum(((pid + 1) * steps // programs) * BLOCK_R, R)",
      "tl.minimum(((pid + 1) * (steps // programs)) * BLOCK_R, R)",
      "persistent norm programs drop the row blocks an uneven split leaves over", T_LN),
    M("ln-out-dtype", "triton_ops/ops/layers.py", "    return torch.empty_like(x), x.new_empty((2, R)",
      "    return torch.empty_like(x, dtype=stat_dtype(x)), x.new_empty((2, R)",
      "LayerNorm output in float32 for a float16/bfloat16 input", T_LN),
    M("ln-eps-dropped", "triton_ops/launchers/norm.py",
      'numbers=split_float(eps, launch.fixed["COMPUTE"]))\n    return y, stats',
      'numbers=split_float(1e-5, launch.fixed["COMPUTE"]))\n    return y, stats',
      "LayerNorm ignores eps", T_LN),
    M("rms-partials-one-slot", "triton_ops/bwd/rms_norm.py", "tl.store(dw_ptr + pid * D + cols, dw_acc",
      "tl.store(dw_ptr + cols, dw_acc", "RMSNorm: every program writes dweight partial row 0", T_LLM),
    M("softmax-stats-dropped", "triton_ops/launchers/softmax.py", "x.dtype, x.device, lse is not None)",
      "x.dtype, x.device, False)", "softmax: the training forward stores no log-sum-exp", T_LLM),
    M("softmax-widen-bits", "triton_ops/bwd/softmax.py", "raw.to(tl.uint16, bitcast=True).to(tl.uint32) << 16",
      "raw.to(tl.uint16, bitcast=True).to(tl.uint32) << 15",
      "softmax VJP: the bfloat16 tiles widened again after the row sum with their bits misplaced", T_LLM),
    # ---- deterministic combine of partials (templates/reduce.py)
    M("combine-read-order", "triton_ops/templates/reduce.py", "part_ptr + rows[:, None] * stride + cols[None, :]",
      "part_ptr + rows[:, None] + cols[None, :] * P", "partials read transposed ([K, P] instead of [P, K])",
      ("tests/test_loops.py", "tests/test_binary.py", "tests/test_layers.py")),
    M("combine-p-loop-short", "triton_ops/templates/reduce.py", "for p0 in range(0, P, BLOCK_P):",
      "for p0 in range(0, tl.maximum(P - BLOCK_P, 1), BLOCK_P):", "combine stops one block of partials early",
      ("tests/test_loops.py", "tests/test_binary.py")),
    M("combine-second-offset", "triton_ops/templates/reduce.py", "part_ptr += tl.where(second, offset2, 0)",
      "part_ptr += tl.where(second, offset2 + 1, 0)", "the second reduction of a combine reads its partials one column late",
      T_LN),
    M("combine-count-clamp", "triton_ops/templates/reduce.py", "factor = scale / tl.maximum(tl.sum(tl.where(cols == 1, total, 0.0), axis=0), 1.0)",
      "factor = scale / tl.sum(tl.where(cols == 1, total, 0.0), axis=0)", "mean over zero counted rows divides by 0",
      T_LOSS),
    # ---- pointwise templates, plans and descriptors (templates/pointwise.py, launchers/pointwise.py)
    M("vjp-dx-last-a", "triton_ops/templates/pointwise.py", "acc += g * call(DFX, x, y, p, ARITY, HAS_PARAM, SWAP)",
      "acc = g * call(DFX, x, y, p, ARITY, HAS_PARAM, SWAP)", "dx keeps only the last step of the A loop", T_PW),
    M("vjp-a-rows-step-mask", "triton_ops/templates/pointwise.py", "step = (ra < a_stop)[:, None] & mask_c",
      "step = (ra >= 0)[:, None] & mask_c", "A_ROWS: a step's rows past the chunk's end are counted too", T_PW),
    M("vjp-a-rows-dx-sum", "triton_ops/templates/pointwise.py",
      "acc = tl.sum(acc, axis=0)[None, :] + tl.zeros([BLOCK_B, BLOCK_C], COMPUTE)", "acc = acc",
      "A_ROWS: dx keeps the first row of each step instead of their sum", T_PW),
    M("split-balance-one-residency", "triton_ops/launchers/reduce.py", "for r in residencies(num_warps))",
      "for r in residencies(num_warps)[-1:])", "a split balanced for the most resident programs only (one full wave "
      "of them), not for whatever the kernel's registers allow", ("tests/test_loops.py",)),
    M("vjp-dx-one-slot", "triton_ops/templates/pointwise.py", "tl.store(dx_ptr + chunk * dx_slot + dx_bc",
      "tl.store(dx_ptr + dx_bc", "every A chunk writes dx partial row 0", T_PW),
    M("vjp-dy-one-slot", "triton_ops/templates/pointwise.py", "tl.store(dy_ptr + pid_b * dy_slot +",
      "tl.store(dy_ptr + 0 * dy_slot +", "every B block writes dy partial row 0", T_PW),
    M("vjp-dy-slots", "triton_ops/launchers/pointwise.py", "dx_slots, dy_slots = (chunks if need_dx else 1), (n_b if need_dy else 1)",
      "dx_slots, dy_slots = (chunks if need_dx else 1), 1", "dy of several B blocks not combined", T_PW),
    M("vjp-a-chunks-floor", "triton_ops/launchers/pointwise.py", "    chunks = runtime.cdiv(A, a_per_program)\n",
      "    chunks = max(1, A // a_per_program)\n", "VJP grid drops the last (shorter) A chunk", T_PW),
    M("fwd-a-chunks-floor", "triton_ops/launchers/pointwise.py", "kernel, (tiles * runtime.cdiv(A, a_per_program),),",
      "kernel, (tiles * max(1, A // a_per_program),),", "forward grid drops the last (shorter) A chunk", T_PW),
    M("tiles-group-offsets", "triton_ops/tiles.py",
      "first\n            off += (rem % sizes[len(sizes) - 1 - k]) * strides[len(sizes) - 1 - k]",
      "first\n            off += (rem % sizes[len(sizes) - 1 - k]) * strides[k]", "multi-axis offsets use the wrong stride", T_PW),
    # (No mutant drops split_float's `lo`: float64 math takes the number's bits, and in float32
    # math hi + lo rounds to hi - |lo| is at most half an ulp of hi - so no test can see it.)
    M("broadcast-merge-stride", "triton_ops/broadcast.py",
      "            for k, v in layouts.items():\n                strides[k][-1] = v[d]\n", "",
      "merged axes keep the outer axis's stride", T_PW),
    M("binary-alias-dtype", "triton_ops/ops/binary.py",
      "and v.dtype == grad.dtype and v.is_contiguous() and grad.is_contiguous())",
      "and v.is_contiguous() and grad.is_contiguous())", "add returns g as the gradient of an operand of another dtype",
      ("tests/test_binary.py",)),
    M("binary-alias-layout", "triton_ops/ops/binary.py",
      "and v.dtype == grad.dtype and v.is_contiguous() and grad.is_contiguous())", "and v.dtype == grad.dtype)",
      "add returns g as the gradient of an operand of another layout", ("tests/test_binary.py",)),
    M("broadcast-reduce-axes", "triton_ops/ops/binary.py", "return tuple(sorted(set(range(missing)) | set(self.expanded_axes(i))))",
      "return tuple(sorted(set(self.expanded_axes(i))))", "reduce_axes forgets the missing leading axes",
      ("tests/test_binary.py",)),
    # ---- losses (fwd/loss.py, bwd/loss.py, launchers/loss.py, ops/loss.py)
    M("loss-r-loop-short", "triton_ops/fwd/loss.py", "for r0 in tl.range(r_start, r_whole, BLOCK_R, num_stages=STAGES):",
      "for r0 in tl.range(r_start, r_whole - BLOCK_R, BLOCK_R, num_stages=STAGES):",
      "loss reduction loop stops one whole block early", T_LOSS),
    M("loss-r-tail-dropped", "triton_ops/fwd/loss.py", "    if r_whole < r_stop:\n", "    if r_whole < 0:\n",
      "loss reduction drops its partial last block", T_LOSS),
    M("loss-even-k-always", "triton_ops/launchers/loss.py", "EVEN_K=K % block_k == 0,", "EVEN_K=True,",
      "loss whole blocks load lanes past K (past the tensor's end)", ("tests/test_bytes.py",)),
    M("loss-partial-slot", "triton_ops/fwd/loss.py", "tl.store(out_ptr + chunk * part_slot +",
      "tl.store(out_ptr + 0 * part_slot +", "every R chunk writes loss partial row 0", T_LOSS),
    M("loss-chunks-floor", "triton_ops/launchers/loss.py", "    chunks = runtime.cdiv(R, r_per_program)\n",
      "    chunks = max(1, R // r_per_program)\n", "loss grid drops the last R chunk", T_LOSS),
    M("loss-mean-n-1", "triton_ops/launchers/loss.py",
      '    scale = 1.0 / (mean_rows if mean_rows is not None else N) if reduction == "mean" else 1.0\n    target',
      '    scale = 1.0 / (mean_rows if mean_rows is not None else N - 1) if reduction == "mean" else 1.0\n    target',
      "mean divides by N - 1", T_LOSS),
    M("loss-out-dtype", "triton_ops/launchers/loss.py", "    dtype = torch.result_type(x, t)\n",
      "    dtype = x.dtype\n", "mixed-dtype loss returns x's dtype, not result_type", T_LOSS),
    M("loss-dt-sign", "triton_ops/bwd/loss.py", "dt = -g * call(DFX, x, t, p, 2, HAS_PARAM, False)",
      "dt = g * call(DFX, x, t, p, 2, HAS_PARAM, False)", "d/dt of a loss of x - t has the wrong sign", T_LOSS),
    M("hinge-kink", "triton_ops/ops/loss.py", "return tl.where(m > 0, -t, scalar.nan_else(m, 0.0))",
      "return tl.where(m >= 0, -t, scalar.nan_else(m, 0.0))", "hinge gradient at 1 - t*x = 0 is -t, not 0", T_LOSS),
    M("mae-sign-zero", "triton_ops/scalar.py", "tl.where(x < 0, -1.0, x * 0.0)", "tl.where(x < 0, -1.0, 1.0)",
      "sign(0) = 1 (mae gradient at x = t)", T_LOSS),
    M("huber-sign", "triton_ops/ops/loss.py", "return tl.where(tl.abs(d) < delta, d, delta * scalar.sign(d))",
      "return tl.where(tl.abs(d) < delta, d, delta)", "huber gradient loses its sign past delta", T_LOSS),
    M("huber-linear-offset", "triton_ops/ops/loss.py", "return tl.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))",
      "return tl.where(d < delta, 0.5 * d * d, delta * (d - 0.5))", "huber linear branch offset wrong for delta != 1",
      T_LOSS),
    M("ce-lse-rescale", "triton_ops/fwd/loss.py", "s = tl.where(d > 0, s * e + 1.0, s + e)",
      "s = tl.where(d > 0, s + 1.0, s + e)", "online log-sum-exp not rescaled when a lane's max grows", T_LOSS),
    M("ce-max-starts-at-minus-inf", "triton_ops/fwd/loss.py",
      "m = tl.full([BLOCK_R, BLOCK_C], lowest(COMPUTE), COMPUTE)", "m = tl.full([BLOCK_R, BLOCK_C], float(\"-inf\"), COMPUTE)",
      "the online log-sum-exp's running max starts at -inf (a -inf logit then gives -inf - -inf = NaN)",
      ("tests/test_reliability_values.py",)),
    M("ce-smoothing-sum-skipped", "triton_ops/launchers/loss.py", "SMOOTH=smooth,", "SMOOTH=False,",
      "cross_entropy_logits never sums the row's logits for label smoothing", T_LOSS),
    M("ce-partial-slot", "triton_ops/fwd/loss.py", "part = tl.program_id(0) * 2", "part = 0",
      "every cross-entropy program writes partial 0", T_LOSS),
    M("ce-final-undivided", "triton_ops/fwd/loss.py", "tl.store(loss_ptr, (total * factor).to(",
      "tl.store(loss_ptr, (total + 0 * factor).to(", "a one-program cross-entropy mean not divided by its count",
      T_LOSS),
    M("ce-saved-mass-dropped", "triton_ops/fwd/loss.py", "        if PROBS:  # class indices",
      "        if False:  # class indices", "the target mass of probability targets not saved for the VJP", T_LOSS),
    M("cosine-one-program-unscaled", "triton_ops/launchers/loss.py",
      "launch(loss_ptr=out, stats_ptr=target, x_ptr=x, t_ptr=t, numbers=(*split_float(eps, c), *split_float(scale, c)))",
      "launch(loss_ptr=out, stats_ptr=target, x_ptr=x, t_ptr=t, numbers=(*split_float(eps, c), *split_float(1.0, c)))",
      "a one-program cosine mean not divided by its slices", T_LOSS),
    M("cosine-c-loop-last", "triton_ops/fwd/loss.py", "        dot += tl.sum(tl.reshape(x * t,",
      "        dot = tl.sum(tl.reshape(x * t,",
      "cosine dot product keeps only the last column block", T_LOSS),
    M("cosine-eps-add", "triton_ops/fwd/loss.py", "tl.maximum(tl.sqrt(xx), eps, propagate_nan=tl.PropagateNan.ALL)",
      "(tl.sqrt(xx) + eps)",
      "eps added to the norm instead of clamping it", T_LOSS),
    M("cosine-finish-last-chunk", "triton_ops/fwd/loss.py", "mask = (ps < P)[:, None] & row_mask[None, :]",
      "mask = (ps < P - 1)[:, None] & row_mask[None, :]", "dim=None cosine drops its last column chunk's partials",
      T_LOSS),
    # ---- unary kinks
    M("leaky-relu-kink", "triton_ops/ops/unary.py", "return tl.where(x > 0, 1.0, slope)",
      "return tl.where(x >= 0, 1.0, slope)", "leaky_relu'(0) = 1 instead of the slope", T_UNARY),
    M("elu-kink", "triton_ops/ops/unary.py", "return tl.where(x > 0, 1.0, alpha * tl.exp(x))",
      "return tl.where(x >= 0, 1.0, alpha * tl.exp(x))", "elu'(0) = 1 instead of alpha", T_UNARY),
    M("sqrt-kink", "triton_ops/ops/unary.py", "return tl.where(x > 0, 0.5 / tl.sqrt(tl.where(x > 0, x, 1.0)), scalar.nan",
      "return tl.where(x >= 0, 0.5 / tl.sqrt(tl.where(x > 0, x, 1.0)), scalar.nan", "sqrt'(0) = 0.5 instead of 0",
      T_UNARY),
    # ---- argument checks of optional tensors
    M("linear-bias-device", "triton_ops/ops/layers.py",
      '    runtime.check_devices(op, {"x": x, "weight": weight, "bias": bias})\n    same_dtype',
      '    runtime.check_devices(op, {"x": x, "weight": weight})\n    same_dtype',
      "linear: bias device not checked", T_CHECKS),
    M("linear-bias-dtype", "triton_ops/ops/layers.py", 'same_dtype(op, {"x": x, "weight": weight, "bias": bias})',
      'same_dtype(op, {"x": x, "weight": weight})', "linear: bias dtype not checked", T_CHECKS),
    M("ln-weight-device", "triton_ops/ops/layers.py",
      '    runtime.check_devices(op, {"x": x, "weight": weight, "bias": bias})\n    shape =',
      '    runtime.check_devices(op, {"x": x})\n    shape =', "layer_norm: weight/bias device not checked", T_CHECKS),
    M("ln-weight-float", "triton_ops/ops/layers.py",
      "        if t is not None:\n            runtime.check_float(op, name, t)\n    runtime.check_devices(op, {\"x\": x, \"weight\"",
      "        pass\n    runtime.check_devices(op, {\"x\": x, \"weight\"", "layer_norm: integer weight/bias accepted",
      T_CHECKS),
    M("interp-bf16-f64-cast", "triton_ops/runtime.py", "if pair == {tl.float64, tl.bfloat16}:", "if False:",
      "interpreter casts float64 <-> bfloat16 by reinterpreting raw integers", ("tests/test_edges.py",) + T_PW),
    # ---- int64 offsets planner
    M("int64-threshold-ge", "triton_ops/runtime.py", "return any(e > INT32_MAX for e in extents)",
      "return any(e >= INT32_MAX for e in extents)", "int64 switch moved to 2^31 - 1 (an offset int32 still holds)",
      T_INT64),
    M("int64-threshold-moved", "triton_ops/runtime.py", "INT32_MAX = 2**31 - 1", "INT32_MAX = 2**31",
      "int64 threshold moved past int32's range", T_INT64),
    M("int64-max-offset", "triton_ops/runtime.py", "return sum((s - 1) * abs(st) for s, st in zip(shape, strides) if s > 0)",
      "return sum(s * abs(st) for s, st in zip(shape, strides) if s > 0)", "largest offset counted one step too far",
      T_INT64),
    # ---- plan memos: a memo key that forgets what the plan depends on reuses another call's plan
    M("memo-pw-out-strides", "triton_ops/launchers/pointwise.py", "param is None, out.shape, out.stride(), out.dtype,",
      "param is None, out.shape, out.dtype,", "pointwise memo key forgets the output's strides", ("tests/test_edges.py",) + T_PW),
    M("memo-loss-reduction", "triton_ops/launchers/loss.py", "x.dtype, t.dtype, param is None, reduction,\n",
      "x.dtype, t.dtype, param is None,\n", "loss memo key forgets the reduction ('none' reuses 'mean')", T_LOSS),
    M("memo-gemm-bias", "triton_ops/launchers/matmul.py", "out_dtype, _key(bias), id(epilogue)",
      "out_dtype, bias is None, id(epilogue)", "GEMM memo key forgets the bias layout", T_LAYOUT + T_MM),
    M("memo-combine-shape", "triton_ops/launchers/reduce.py",
      "key = (id(kernel), partials.shape, partials.stride(0), partials.dtype, divide, desc, partials.device)",
      "key = (id(kernel), partials.stride(0), partials.dtype, divide, desc, partials.device)", "combine memo key forgets the partials' shape", T_PW),
    # ---- LaunchPlan: the compiled-kernel key (checked under the compile-only backend)
    M("launchplan-key-bits", "triton_ops/runtime.py", "key.append(tuple(_int_class(x) for x in v if type(x) is int))",
      "key.append(len(v))", "a compiled kernel reused for another class of float64 bits (1, /16, int64)",
      ("tests/test_reliability_compile.py",)),
    # ---- replay: a warm call repeats the recorded launches, pointed at its own tensors
    M("replay-offset-dropped", "triton_ops/replay.py",
      'return ref if not offset else f"({ref}.data_ptr() + {offset})"', "return ref",
      "a launch argument at an offset into its input replays at the input's start", ("tests/test_replay.py",)),
    M("replay-key-alignment", "triton_ops/replay.py",
      'TENSOR_KEY = "({0}.shape, {0}.stride(), {0}.dtype, {0}.get_device(), {0}.data_ptr() & 15)"',
      'TENSOR_KEY = "({0}.shape, {0}.stride(), {0}.dtype, {0}.get_device())"',
      "a replay compiled for 16-byte aligned pointers reused for misaligned ones", ("tests/test_replay.py",)),
    M("replay-value-shaped-op", "triton_ops/replay.py",
      "if func in _HOST_VALUES or any(tag in func.tags for tag in _VALUE_SHAPED):", "if False:",
      "an op whose output shape depends on values (nonzero) is replayed at the recorded shape",
      ("tests/test_replay.py",)),
    M("replay-op-dropped", "triton_ops/replay.py",
      "self.steps.append((\"op\", (func, spec_args, spec_kwargs, targets, type(out) in (tuple, list))))",
      "self.fail('op')", "a launcher's torch ops (the embedding gradient's sort) leave it unreplayed",
      ("tests/test_replay.py",)),
    M("replay-fill-dropped", "triton_ops/replay.py", "self.steps.append((\"fill\", (src.index, value)))", "pass",
      "a new buffer's constant fill is not replayed", ("tests/test_replay.py",)),
    M("launch-device-guard", "triton_ops/runtime.py",
      "if device != current:  # Triton launches on the current device", "if False:  #",
      "a call on another device's tensors launches on the current device", ("tests/test_replay.py",)),
    M("replay-device-guard", "triton_ops/replay.py", 'f"    if device != {device}:",', '"    if False:",',
      "a replay of a call on another device's tensors launches on the current device", ("tests/test_replay.py",)),
    M("eager-bwd-compiled-autograd", "triton_ops/eager.py", '"    if _grad_enabled() or _is_compiling():",',
      '"    if _grad_enabled():",', "compiled autograd traces the replays and launchers of an eager-built backward",
      ("tests/test_reliability_tracing.py",)),
    M("eager-shape-only-kept", "triton_ops/eager.py",
      "if n in shape_only:  # not the tensor: its memory is the caller's to free", "if False:",
      "sum's autograd node keeps its input alive until the backward (eager torch keeps its shape)",
      ("tests/test_eager.py",)),
    M("kernel-negative-zero-literal", "triton_ops/templates/pointwise.py",
      "out = out + tl.zeros([BLOCK_B, BLOCK_C], COMPUTE) * -1.0", "out = out + tl.full([BLOCK_B, BLOCK_C], -0.0, COMPUTE)",
      "a -0.0 literal in a kernel (Triton 3.6 compiles it as +0.0: the sign of zero lost on the GPU)",
      ("tests/test_reliability_values.py",)),
    M("gemm-subtile-right-half", "triton_ops/templates/gemm.py",
      "_epilogue(right, rm, half + BLOCK_N // 2, M, N,", "_epilogue(right, rm, half, M, N,",
      "the fused epilogue's right half stored over the left half's columns", ("tests/test_layers.py",)),
    M("gelu-sigmoid-derivative", "triton_ops/ops/unary.py",
      "(1.5957691216057308 + 0.21406444881780073 * x * x)", "(1.5957691216057308 + 0.07135481627260025 * x * x)",
      "gelu's VJP with the forward's cubic coefficient instead of its derivative's", ("tests/test_unary.py",)),
    M("ce-vjp-reads-ignored-rows", "triton_ops/bwd/loss.py", "mask=mask & read[:, None], other=0.0",
      "mask=mask, other=0.0", "the cross-entropy VJP reads the logits of ignored rows (bytes for nothing)",
      ("tests/test_bytes.py",)),
    M("ce-vjp-split-last-chunk", "triton_ops/bwd/loss.py",
      "c_end = tl.minimum(c_start + c_per_program, C)", "c_end = c_start + c_per_program",
      "the cross-entropy VJP's last class chunk of a split row runs past the row", ("tests/test_losses.py",)),
    M("norm-long-second-row-sum", "triton_ops/bwd/norm_long.py",
      "dx = (gw - x_hat * c1 - c2) * rstd", "dx = (gw - x_hat * c1) * rstd",
      "the long-row LayerNorm VJP without the mean(g w) term", ("tests/test_layers.py", "tests/test_loops.py")),
    M("norm-long-share-rows", "triton_ops/bwd/norm_long.py",
      "tl.store(dw_ptr + share * part_stride + cc,", "tl.store(dw_ptr + cc,",
      "every share of long rows writes its dweight partial over the first share's",
      ("tests/test_loops.py",)),
    M("ln-mean-folded-into-fma", "triton_ops/fwd/norm.py",
      "mean = div_rounded(tl.sum(x, axis=1), n, COMPUTE)", "mean = tl.sum(x, axis=1) / D",
      "layer_norm's mean divided plainly: the no-grad and statistics-saving variants round apart on sm_90",
      ("tests/test_compile_sm90.py",)),
    M("replay-aliased-inputs", "triton_ops/replay.py", "self.aliased |= key in self.by_storage", "pass",
      "a call with aliased inputs is kept as the layout's replay", ("tests/test_replay.py",)),
    M("replay-check-value-reads", "triton_ops/spec.py", "if runtime.value_reads() == reads and all(",
      "if all(", "a check that read values (domain, index ranges) is skipped on later calls",
      ("tests/test_replay.py", "tests/test_reliability_values.py")),
    M("replay-precision-context", "triton_ops/spec.py",
      'LAUNCH_CONTEXT = {"matmul": torch.get_float32_matmul_precision}', "LAUNCH_CONTEXT = {}",
      "a float32 GEMM recorded under one matmul precision replays under another",
      ("tests/test_loops.py",)),
    M("replay-vjp-key-grad-layout", "triton_ops/eager.py",
      'f"(_grad.shape, _grad.stride(), _grad.dtype, _grad.data_ptr() & 15, _needs{context_key}{consume_key})"',
      'f"(_needs{context_key}{consume_key})"',
      "the VJP replay ignores the upstream gradient's layout (an expanded grad reuses a dense one's)",
      ("tests/test_replay.py",)),
    # ---- routes: the eager route only for plain eager tensors
    M("route-meta-eager", "triton_ops/spec.py", "(type(v) not in _PLAIN or v.is_meta)", "(type(v) not in _PLAIN)",
      "meta tensors take the eager route (launchers on meta)", T_ROUTES),
    M("route-dispatch-mode", "triton_ops/spec.py", "torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() or",
      "torch.compiler.is_compiling() or", "under a TorchDispatchMode (FakeTensorMode) the eager route runs", T_ROUTES),
    M("route-no-autograd", "triton_ops/spec.py", "                            return path.apply_values(entry, values)\n",
      "                            return run(entry, \"forward\", values, forward, *values)\n", "eager route drops autograd for inputs that need grad",
      T_ROUTES + ("tests/test_unary.py",)),
    # ---- the generated warm path: what it admits and what it keys
    M("eager-warm-no-autograd", "triton_ops/eager.py",
      """f"            if _grad_enabled() and ({' or '.join(wants_grad)}):",""", """f"            if False:",""",
      "a warm call that needs a gradient runs the forward replay without autograd", ("tests/test_eager.py",)),
    M("eager-warm-meta", "triton_ops/eager.py", 'return f"({name}.__class__ in _PLAIN_TENSORS and not {name}.is_meta)"',
      'return f"({name}.__class__ in _PLAIN_TENSORS)"', "meta tensors of a warm layout replay the CPU launches",
      ("tests/test_eager.py",)),
    M("eager-warm-dispatch-mode", "triton_ops/eager.py", '"_is_compiling() or _dispatch_modes() or _tracing()',
      '"_is_compiling() or _tracing()', "under a TorchDispatchMode a warm call replays instead of taking the custom op",
      T_ROUTES + ("tests/test_eager.py",)),
    M("eager-warm-domain-checks", "triton_ops/eager.py", '"        if _checked and not _domain_checks():",',
      '"        if _checked:",', "a warm call skips the domain checks turned on after its layout was checked",
      ("tests/test_eager.py", "tests/test_replay.py")),
    M("eager-float-key-zero", "triton_ops/replay.py", 'FLOAT_KEY = "({0} if {0} and {0} == {0} else {0}.hex())"',
      'FLOAT_KEY = "({0} if {0} == {0} else {0}.hex())"', "0.0 and -0.0 share a layout (and a replay's constants)",
      ("tests/test_replay.py",)),
    M("eager-consume-kept-graph", "triton_ops/eager.py", '"        _consume = not _keep_graph()"',
      '"        _consume = True"', "a retained graph's saved gradients are scaled in place (a second backward reuses them)",
      ("tests/test_eager.py",)),
    M("lce-scale-never-in-place", "triton_ops/launchers/llm.py", "pointwise(product, f if in_place else torch.empty_like(f),",
      "pointwise(product, torch.empty_like(f),", "linear_cross_entropy's backward copies the formed gradients (peak + |dX| + |dW|)",
      ("tests/test_eager.py",)),
    # ---- float64 numbers as their bits; float32 numbers as hi + lo
    M("split-f64-value", "triton_ops/tiles.py", 'return struct.unpack("<q", bits)[0], 0',
      'return int(struct.unpack("<d", bits)[0]), 0', "float64 numbers passed as their value, not their bits", T_VALUES),
    M("split-neg-zero", "triton_ops/tiles.py", "return hi, (lo if lo != 0.0 else -0.0)", "return hi, lo",
      "a float32 -0.0 number arrives as +0.0 (hi + lo with lo = +0.0)", T_VALUES),
    M("split-neg-zero-f64", "triton_ops/tiles.py", 'return _split(struct.pack("<d", float(v)), compute == tl.float64)',
      'return _split(struct.pack("<d", float(v) + 0.0), compute == tl.float64)',
      "a -0.0 number loses its sign before the split", T_VALUES),
    # ---- parameters read through their own strides (strided, stride-0)
    M("ln-param-inner-stride", "triton_ops/launchers/norm.py", "    return st, st[-1]\n", "    return st, 1\n",
      "LayerNorm weight/bias innermost stride assumed 1", T_LAYOUT + T_LN),
    M("ln-bias-weight-strides", "triton_ops/launchers/norm.py",
      '(w_c, w_c1), (b_c, b_c1) = _param_strides(cols, "w"), _param_strides(cols, "b")',
      '(w_c, w_c1), (b_c, b_c1) = _param_strides(cols, "w"), _param_strides(cols, "w")',
      "LayerNorm bias read with the weight's strides", T_LAYOUT + T_LN),
    M("gemm-bias-stride", "triton_ops/launchers/matmul.py", "bias_st=bias[1][0] if bias is not None else 0",
      "bias_st=1 if bias is not None else 0", "linear bias read as contiguous", T_LAYOUT + T_MM),
    # ---- int64 decisions count every tensor a kernel addresses
    M("int64-loss-vjp-buffers", "triton_ops/launchers/loss.py", "INDEX_64=runtime.needs_int64(*_extents(x, t, g, dx, dt)))\n\n\ndef loss_vjp",
      "INDEX_64=runtime.needs_int64(*_extents(x, t)))\n\n\ndef loss_vjp",
      "loss VJP's int64 decision ignores the gradient buffers", T_LAYOUT + T_INT64),
    M("int64-ln-extents-x-only", "triton_ops/launchers/norm.py", "[runtime.max_offset(shape, st) for st in layouts.values()]",
      '[runtime.max_offset(shape, layouts["x"])]', "LayerNorm's int64 decision counts x only (not y, g, dx)",
      T_LAYOUT + T_INT64),
    M("int64-pw-vjp-last-offset", "triton_ops/launchers/pointwise.py",
      "extents += [dx_slots * runtime.numel(x_shape) - 1, dy_slots * runtime.numel(y_shape) - 1]",
      "extents += [dx_slots * runtime.numel(x_shape), dy_slots * runtime.numel(y_shape)]",
      "pointwise VJP counts one past the gradient's last offset (int64 kernels at 2^31 elements)", T_INT64),
    # ---- tuning store
    M("tune-accepts-zero", "triton_ops/tune.py", "not lo <= value <= hi", "not value <= hi",
      "tuning store accepts BLOCK_M = 0 (below the schema's range)", T_TUNE),
    M("tune-accepts-non-pow2", "triton_ops/tune.py", "or (pow2 and value & (value - 1)):", "or False:",
      "tuning store accepts BLOCK_M = 48 (tl.arange needs a power of two)", T_TUNE),
    M("tune-bucket-exact", "triton_ops/tune.py", 'return "x".join(str(runtime.next_pow2(int(s))) for s in shape)',
      'return "x".join(str(int(s)) for s in shape)', "store keys not bucketed to powers of two", T_TUNE),
    M("tune-save-stale-cache", "triton_ops/tune.py", "    tmp.replace(path)\n    _cache.clear()\n",
      "    tmp.replace(path)\n", "save leaves the in-process store cache stale", T_TUNE),
    # ---- nn drop-ins
    M("nn-ln-eps", "triton_ops/nn.py", "self.weight, self.bias, self.eps)", "self.weight, self.bias, 1e-5)",
      "nn.LayerNorm ignores its eps", T_NN),
    M("nn-elu-alpha", "triton_ops/nn.py", "return _ops.elu(x, self.alpha)", "return _ops.elu(x)",
      "nn.ELU ignores alpha", T_NN),
    M("nn-huber-delta", "triton_ops/nn.py", "delta=self.delta, reduction", "delta=1.0, reduction",
      "nn.HuberLoss ignores delta", T_NN),
    M("nn-ce-class-dim", "triton_ops/nn.py", "dim=1 if input.dim() > 1 else 0,", "dim=-1,",
      "nn.CrossEntropyLoss reads classes on the last axis", T_NN),
    M("nn-mse-reduction", "triton_ops/nn.py", "return _ops.mse_loss(input, target, reduction=self.reduction)",
      "return _ops.mse_loss(input, target)", "nn.MSELoss ignores reduction", T_NN),
    M("nn-fuse-any-param", "triton_ops/nn.py", "if isinstance(act, ELU) and act.alpha == 1.0:",
      "if isinstance(act, ELU):", "fuse_activations folds an ELU/LeakyReLU with a non-default parameter", T_NN),
    # ---- embedding
    M("emb-bwd-no-chunk-end", "triton_ops/bwd/shape.py",
      "long_tail = last_out & ~overhang & (kl >= 0) & (start + head < stop)", "long_tail = last_out & (kl < -2)",
      "a long run crossing its chunk's end leaves no partial (the fix-up adds an unwritten row)", T_EMB),
    M("emb-bwd-skip-any-run", "triton_ops/bwd/shape.py", "skipped = first_in & (before != k0) & (into != k0)",
      "skipped = first_in & (into != k0)",
      "a chunk skips the end of a long run as if the chunk before had finished it", T_EMB),
    M("emb-bwd-no-overhang", "triton_ops/bwd/shape.py", "overhang = last_out & starts_here & (past != kl)",
      "overhang = last_out & starts_here & (past != kl) & (kl < -2)",
      "runs ending in the overhang are left to nobody", T_EMB),
    M("emb-bwd-run-by-row", "triton_ops/bwd/shape.py", "acc = tl.where(to_dw, 0.0, acc)",
      "acc = tl.where(True, 0.0, acc)", "embedding dweight keeps only each run's last row", T_EMB),
    M("emb-bwd-head-walked", "triton_ops/bwd/shape.py", "head = tl.where(first_in | (k0 < 0), ",
      "head = tl.where(k0 < 0, ", "a chunk walks its first run again where another chunk sums it", T_EMB),
    M("emb-bwd-head-no-partial", "triton_ops/bwd/shape.py", "            if long_head:",
      "            if long_head & (k0 < -2):", "a long run's rows in a chunk after its first leave no partial", T_EMB),
    M("emb-fix-slot", "triton_ops/bwd/shape.py", "(j * 2 + whole.to(tl.int64))", "(j * 2 + 1)",
      "the fix-up reads the end chunk's slot 1 instead of slot 0", T_EMB),
    M("emb-fix-one-step", "triton_ops/bwd/shape.py", "more = tl.sum(whole.to(tl.int32), axis=0) == BLOCK_P",
      "more = False", "the fix-up stops after BLOCK_P chunks of a long run", T_EMB),
    M("narrow-log-no-series", "triton_ops/scalar.py",
      "r = tl.where(_in_series_range(u, NARROW), _log1p_series(u, NARROW), _log2_sfu(x, NARROW) * 0.6931471805599453)",
      "r = _log2_sfu(x, NARROW) * 0.6931471805599453",
      "NARROW (and SUMMED) log without its series near 1 (the SFU's absolute error)",
      T_NARROW),
    M("narrow-expm1-no-series", "triton_ops/scalar.py", "tl.abs(x) < 0.0625", "tl.abs(x) < 0.0",
      "NARROW expm1 as exp(x) - 1 near 0 (cancellation)", T_NARROW),
    M("narrow-erfc-coefficient", "triton_ops/scalar.py", "p = p * t + 0.10658559115874625", "p = p * t + 0.1066",
      "NARROW erfc with one fit coefficient rounded to 3 digits (~1e-4 relative)", T_NARROW),
    M("narrow-log-cosh-no-series", "triton_ops/ops/loss.py", "r = tl.where(d < 0.25,", "r = tl.where(d < 0.0,",
      "NARROW log cosh without its series near 0", T_NARROW),
    M("summed-flushed-subnormal-log", "triton_ops/ops/parity.py", "scalar.log2_pair_summed(p, True)",
      "scalar.log2_pair_summed(p)", "SUMMED bce_log_clamp flushes a subnormal p (log 1e-39 read as -100)", T_NARROW),
    M("summed-any-eps", "triton_ops/ops/loss.py", "and (param is None or param >= SUMMED_PARAM_MIN)", "",
      "SUMMED form for an eps below 2^-100 (a subnormal log argument flushed to -inf)", T_NARROW),
    M("summed-for-none", "triton_ops/ops/loss.py", 'summed is not None and reduction != "none" and',
      "summed is not None and", "SUMMED form for reduction 'none' (elements stored with an absolute error)",
      T_NARROW),
    M("summed-weighted-b", "triton_ops/scalar.py", "return y * a + (b - y * b)", "return y * a + b",
      "SUMMED BCE weights log(1 - q) by 1 instead of 1 - y", T_NARROW),
    M("summed-pair-no-series-near-1", "triton_ops/scalar.py", "a = tl.where(q > 0.984375, near,",
      "a = tl.where(q > 2.0, near,", "SUMMED BCE without its series where q is near 1 (a confident y = 1)", T_NARROW),
    M("summed-pair-no-series-near-0", "triton_ops/scalar.py", "b = tl.where(q < 0.015625, near,",
      "b = tl.where(q < 0.0, near,", "SUMMED BCE without its series where q is near 0 (a confident y = 0)", T_NARROW),
    M("summed-series-one-term", "triton_ops/scalar.py", "r = u * (UNIT + u * (UNIT * -0.5))", "r = u * UNIT",
      "SUMMED log1p series without its second term (0.8% at the 1/64 seam)", T_NARROW),
    M("summed-log-cosh-no-series", "triton_ops/ops/loss.py", "    if NARROW:  # below d = 1/4",
      "    if NARROW == 1:  # below d = 1/4", "SUMMED log cosh without its series near 0 (the SFU's absolute error)",
      T_NARROW),
    M("summed-stirling-half", "triton_ops/ops/parity.py", "+ 1.4189385332046727", "+ 0.9189385332046727",
      "SUMMED Stirling term loses its 1/2", T_NARROW),
    M("gelu-erf-density-unshifted", "triton_ops/ops/parity.py",
      "phi, k24 = gauss_narrow(x, 24)\n" + "\n".join(["    # x phi(x) = x (2^-24 / sqrt(2 pi)) 2^k24: the SFU's 2^k24 stays normal where phi(x) itself",
                                                   "    # would flush to 0 (|x| 13.2-14.1) and x phi(x) is still a normal float32 (a 16-bit gradient",
                                                   "    # of ~1e-37 there, which the float32 path gives)",
                                                   "    return phi + x * 2.3778812909211677e-08 *"]),
      "phi, k24 = gauss_narrow(x, 0)\n    return phi + x * 0.3989422804014327 *",
      "gelu_erf's narrow gradient takes its density unshifted: x phi(x) flushed to 0 near x = -13.5", T_NARROW),
    M("gemm-ieee-b-k-major", "triton_ops/launchers/matmul.py", 'b_axis = -2 if precision == "tf32" else -1',
      "b_axis = -2", "IEEE float32's B made K-major as TF32's (the 216-register kernel)", ("tests/test_layers.py",)),
    M("a-rows-sum-unpipelined", "triton_ops/launchers/pointwise.py",
      "stages = runtime.pipeline_stages(A_ROWS_STAGES, step_bytes, A_ROWS_PIPELINE_SMEM, a_per_program // block_b)",
      "stages = 1",
      "a column sum's A_ROWS steps left to ptxas (a thread's loads one after another)",
      ("tests/test_static.py::test_column_sums_are_pipelined_without_losing_programs",)),
    M("ce-class-loop-unpipelined", "triton_ops/launchers/loss.py",
      "STAGES=stream_stages(runtime.cdiv(C, block_c), step_bytes),", "STAGES=1,",
      "cross_entropy_logits' class loop left to ptxas (16 bytes of logits in flight a thread)",
      ("tests/test_loops.py::test_class_loop_pipelined_on_a_gpu_plan",
       "tests/test_static.py::test_class_loop_of_cross_entropy_is_pipelined_without_losing_programs")),
    M("inflight-one-walk", "bench/static.py", "for walk in range(2 if looped else 1):", "for walk in range(1):",
      "inflight_bytes walks a loop once: a load pending across the back branch is missed",
      ("tests/test_static.py::test_inflight_bytes_widths_uses_and_prefetch",)),
    M("inflight-copies-one-step", "bench/static.py",
      "return most + copies * (waiting + max(1, commits)) // max(1, commits)", "return most + copies",
      "inflight_bytes counts a pipelined loop's copies of one iteration, not the iterations in flight",
      ("tests/test_static.py::test_inflight_bytes_of_a_pipelined_loop",)),
    M("tf32-narrow-tile", "triton_ops/launchers/matmul.py", "BLOCK_N=256 if wide else 128 if N > 64 else 64",
      "BLOCK_N=128 if N > 64 else 64", "TF32 GEMMs back on the 128 x 128 tile (8 warps an SM)",
      ("tests/test_compile_sm90.py::test_every_op_compiles_for_sm90",)),
]


def _test_args(tests, root):
    out = []
    for t in tests:
        path = t.split("::")[0]
        if os.path.exists(os.path.join(root, path)):
            out.append(t)
    return out


def make_scratch(tests_from: str | None) -> str:
    scratch = tempfile.mkdtemp(prefix="triton_ops_mutation_")
    for name in ("triton_ops", "tests", "bench", "pyproject.toml"):  # bench: tests/test_static.py, test_bench.py
        src = os.path.join(ROOT, name)
        dst = os.path.join(scratch, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    if tests_from:
        shutil.rmtree(os.path.join(scratch, "tests"))
        listing = subprocess.run(["git", "-C", ROOT, "ls-tree", "-r", "--name-only", tests_from, "tests"],
                                 capture_output=True, text=True, check=True).stdout.split()
        for path in listing:
            blob = subprocess.run(["git", "-C", ROOT, "show", f"{tests_from}:{path}"], capture_output=True,
                                  check=True).stdout
            os.makedirs(os.path.dirname(os.path.join(scratch, path)), exist_ok=True)
            with open(os.path.join(scratch, path), "wb") as f:
                f.write(blob)
    return scratch


def stale_reason(m: Mutant, root: str) -> str | None:
    path = os.path.join(root, m.file)
    if not os.path.exists(path):
        return f"{m.file} does not exist"
    n = open(path).read().count(m.old)
    if n == 1:
        return None
    if n > 1:
        return f"snippet occurs {n} times in {m.file}"
    elsewhere = [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(os.path.join(root, "triton_ops"))
                 for f in fs if f.endswith(".py") and m.old in open(os.path.join(d, f)).read()]
    return f"snippet not in {m.file}" + (f" (found in {', '.join(elsewhere)})" if elsewhere else "")


def run_mutant(m: Mutant, scratch: str, timeout: float, python: str) -> tuple[str, float, str]:
    reason = stale_reason(m, scratch)
    if reason:
        return "STALE", 0.0, reason
    tests = _test_args(m.tests, scratch)
    if not tests:
        return "SURVIVED", 0.0, "no test file of its selection exists"
    path = os.path.join(scratch, m.file)
    original = open(path).read()
    with open(path, "w") as f:
        f.write(original.replace(m.old, m.new))
    start = time.time()
    try:
        env = dict(os.environ, PYTHONPATH=scratch, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                               *tests], cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()
        detail = next((line for line in tail if line.startswith("FAILED") or "Error" in line), tail[-1] if tail else "")
        status = "SURVIVED" if rc == 0 else "KILLED"
    except subprocess.TimeoutExpired:  # counted as killed, but shown: under load it may be a slow survivor
        status, detail = "TIMEOUT", f"timeout after {timeout:.0f}s"
    finally:
        with open(path, "w") as f:
            f.write(original)
    return status, time.time() - start, detail[:160]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", nargs="*", default=[], help="run only mutants whose id contains one of these words")
    p.add_argument("--tests-from", default=None, help="git revision whose tests/ to run (e.g. a baseline)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant (a timeout counts as killed)")
    p.add_argument("--list", action="store_true", help="list the mutants and their staleness, run nothing")
    p.add_argument("--shard", default="1/1", help="I/N: run every N-th chosen mutant from the I-th (parallel runs)")
    args = p.parse_args(argv)
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)), "duplicate mutant ids"
    chosen = [m for m in MUTANTS if not args.k or any(w in m.id for w in args.k)]
    shard, shards = (int(v) for v in args.shard.split("/"))
    chosen = chosen[shard - 1::shards]
    if args.list:
        for m in chosen:
            print(f"{m.id:<24} {stale_reason(m, ROOT) or 'ok':<10} {m.file}: {m.why}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up the scratch copy and the test run
    scratch = make_scratch(args.tests_from)
    results = []
    try:
        for i, m in enumerate(chosen, 1):
            status, secs, detail = run_mutant(m, scratch, args.timeout, sys.executable)
            results.append((m, status, detail))
            print(f"[{i:>2}/{len(chosen)}] {status:<8} {secs:6.1f}s {m.id:<24} {m.why}"
                  + (f"  -- {detail}" if status != "KILLED" else ""), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counted = [r for r in results if r[1] != "STALE"]
    killed = sum(r[1] in ("KILLED", "TIMEOUT") for r in counted)
    print(f"\nmutation score: {killed}/{len(counted)} killed = {100.0 * killed / max(len(counted), 1):.1f}%"
          f"  ({sum(r[1] == 'TIMEOUT' for r in results)} by timeout; {sum(r[1] == 'STALE' for r in results)} stale, "
          "not counted)")
    for m, status, detail in results:
        if status != "KILLED":
            print(f"  {status:<8} {m.id:<24} {m.file}: {m.why}  [{detail}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
