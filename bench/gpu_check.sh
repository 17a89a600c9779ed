#!/usr/bin/env bash
# One script for a lent GPU machine (H100/H200), all of it inside one deadline (DEADLINE seconds,
# default 480): every op's public function checked (replays; a fallback launch mode if they fail);
# then, one at a time: the quick bench (every op, providers triton_ops / torch / liger), a kernel
# by kernel profile of ten ops (bench/profile.py), the test suite on CUDA, a sweep subset, host
# µs with real launches, torch.compile rows, fp16/fp32 GEMMs.
# Every stage's limit is cut to what the deadline leaves; a bench stopped at its limit (SIGINT)
# writes the rows it has.
#
# Writes at most 8 files under $OUT (what the device tool returns), named <card>-<date>*:
#   gpu-env.txt  gpu-tests.log  <tag>-quick.csv  <tag>-host.csv  <tag>-sweep.csv  <tag>.md
#   <tag>-plots.tar (PNGs + JSON twins)  bench.log
# and the page to docs/benchmarks/gpu/<tag>.md (copy $OUT/<tag>.md there from the device run).
# Liger-Kernel: put its wheel in .whl/ (pip download --no-deps liger-kernel) and carry .whl.
# Usage there: PYTHONPATH=. bash bench/gpu_check.sh; where the tree travels without .git, pass the
# revision: TRITON_OPS_GIT_REV=<git rev-parse HEAD here, -dirty if the tree differs> bash bench/gpu_check.sh
set -uo pipefail
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1
# Free memory a live block would pin a whole segment of goes back page by page (the 2026-11-28 run
# left 1-3 GiB reserved per op with plain segments); where torch keeps a capture's private pool on
# plain segments this changes nothing there
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
OUT=${OUT:-out/gpu}
DEADLINE=${DEADLINE:-480}
mkdir -p "$OUT" docs/benchmarks/gpu
work=$(mktemp -d)
export TRITON_OPS_TUNE_STORE="$work/tune.json"   # never read a stale store from elsewhere
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:$work/site"
fi
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
tag=$(echo "$card" | grep -oiE 'h100|h200|a100|b200|l40s?' | head -1 | tr 'A-Z' 'a-z')
tag="${tag:-gpu}-$(date -u +%Y-%m-%d)"
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c "import liger_kernel, importlib.metadata as m; print('liger-kernel', m.version('liger-kernel'))" 2>&1 | tail -1
  python3 -c "from bench.__main__ import git_revision; print('git', git_revision())"
} > "$OUT/gpu-env.txt" 2>&1
cat "$OUT/gpu-env.txt"

# STAGES: the stages to run (a re-run of what a lease left unmeasured, e.g. STAGES="quick tests host"
# QUICK_OPS="div elu" TEST_ARGS="-k embedding"); the default runs all of them, variants last.
STAGES=" ${STAGES:-check quick profile tests sweep host compile tf32 gemm variants} "
stage() {  # stage NAME SECONDS COMMAND...: run with a limit (SIGINT first: the bench writes its rows)
  local name=$1 limit=$2 start=$SECONDS status left
  shift 2
  [[ "$STAGES" == *" $name "* ]] || return 0
  left=$((DEADLINE - SECONDS - 25))   # 25 s kept for the report
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "$name: skipped (deadline)" | tee -a "$OUT/gpu-env.txt"
    return 124
  fi
  timeout -s INT -k 15 "$limit" "$@" >> "$work/$name.log" 2>&1
  status=$?
  echo "$name: exit $status in $((SECONDS - start))s (limit ${limit}s, at ${SECONDS}s)" | tee -a "$OUT/gpu-env.txt"
  return $status
}

# First, public functions on CUDA, recorded then replayed, against their references
# (`python -m triton_ops check --warm`; one op per kernel template, each kernel compiles in ~1 s).
# Should the replays or the direct driver launch fail on this Triton, the benches fall back to
# the launchers (TRITON_OPS_REPLAY=0), then to Triton's own launch (TRITON_OPS_DIRECT_LAUNCH=0),
# so the lease still yields numbers; the tests run as shipped.
check_ops=${CHECK_OPS:-gelu mul sum mse_loss layer_norm rms_norm softmax cross_entropy_logits embedding matmul linear linear_cross_entropy}
bench_env=""
limit=${CHECK_TIMEOUT:-75}
for fallback in "" "TRITON_OPS_REPLAY=0" "TRITON_OPS_REPLAY=0 TRITON_OPS_DIRECT_LAUNCH=0"; do  # (no check stage: as shipped)
  echo "== check --warm ${fallback:-(as shipped)}" >> "$work/check.log"
  if stage check "$limit" env $fallback python3 -m triton_ops check --warm $check_ops; then
    bench_env=$fallback; break
  fi
  bench_env="$fallback"
  limit=45   # the kernels are compiled by now
done
echo "benches run with: ${bench_env:-(as shipped)}" | tee -a "$OUT/gpu-env.txt"
grep -E "^BAD|ops match" "$work/check.log" | tail -60 >> "$OUT/gpu-env.txt"

quick_args=(--quick --no-progress --providers triton_ops torch liger ${BENCH_ARGS:-})
sweep_rows=(--sweep --no-progress --dtypes bfloat16 --modes forward backward --providers triton_ops torch
            --ops ${SWEEP_OPS:-layer_norm cross_entropy_logits matmul})
sweep_gemm=(--sweep --no-progress --dtypes float16 float32 --modes forward backward --providers triton_ops torch
            --ops matmul)
compile_args=(--quick --no-progress --providers torch.compile  # Dynamo + Inductor take seconds per case even cached
              --ops ${COMPILE_OPS:-linear cross_entropy_logits layer_norm rms_norm softmax gelu swiglu mse_loss})

# One stage at a time, most wanted first (a stage the deadline cuts writes the rows it has). The
# 2026-11-27 run taught the order: warm-up passes beside the tests (to fill the compile caches)
# took their whole window on a shared card and left the timed passes no time; and the quick bench
# then spent seconds per case drawing its inputs on the CPU (now drawn on the device).
mkdir -p "$work/b"
# The quick bench in QUICK_GROUPS processes (ops split alphabetically), each its own CUDA context,
# and each op of QUICK_ALONE in a process of its own: what a process's captures leave reserved
# stays until it exits (the H200 runs of 2026-11-28: ~1-3 GiB an op, and linear_cross_entropy's
# nine cases 104 GiB, out of memory at its Liger rows after 14 other ops; bench.timing.graph_pool).
read -r -a all_ops <<< "${QUICK_OPS:-$(python3 -c 'import triton_ops; print(" ".join(sorted(n for n in triton_ops.registry.keys() if n != "identity")))')}"
alone=" ${QUICK_ALONE-linear_cross_entropy} "
grouped=() solo=()
for op in "${all_ops[@]}"; do
  if [[ "$alone" == *" $op "* ]]; then solo+=("$op"); else grouped+=("$op"); fi
done
groups=${QUICK_GROUPS:-2}
per=$(( (${#grouped[@]} + groups - 1) / groups ))
runs=$(( groups + ${#solo[@]} ))
quick_limit=$(( ${QUICK_TIMEOUT:-240} / runs ))  # one process took 163 s for all 46 ops (2026-11-27c)
part=0
for ((g = 0; g < groups; g++)); do
  ops=("${grouped[@]:$((g * per)):$per}")
  [ ${#ops[@]} -eq 0 ] && continue
  stage quick "$quick_limit" env $bench_env python3 -m bench "${quick_args[@]}" --ops "${ops[@]}" --out "$work/b/$tag-quick$part.csv"
  part=$((part + 1))
done
for op in "${solo[@]}"; do
  stage quick "$quick_limit" env $bench_env python3 -m bench "${quick_args[@]}" --ops "$op" --out "$work/b/$tag-quick$part.csv"
  part=$((part + 1))
done
python3 - "$work/b" "$tag" <<'PY'  # one quick CSV (the header once)
import glob, sys
folder, tag = sys.argv[1:]
lines = []
for part in sorted(glob.glob(f"{folder}/{tag}-quick[0-9]*.csv")):
    rows = open(part).read().splitlines()
    lines += rows if not lines else rows[1:]
if lines:
    open(f"{folder}/{tag}-quick.csv", "w").write("\n".join(lines) + "\n")
PY
stage profile "${PROFILE_TIMEOUT:-40}" env $bench_env python3 -m bench.profile   # kernel by kernel, the ops the last run left short
stage tests "${TEST_TIMEOUT:-150}" python3 -m pytest -q -n 14 -p no:cacheprovider ${TEST_PATHS:-tests/} ${TEST_ARGS:-}
grep -E "^(FAILED|ERROR)|passed|failed" "$work/tests.log" | tail -60 >> "$OUT/gpu-env.txt"
tail -c 400000 "$work/tests.log" > "$OUT/gpu-tests.log"
stage sweep "${SWEEP_TIMEOUT:-60}" env $bench_env python3 -m bench "${sweep_rows[@]}" --out "$work/b/$tag-sweep.csv"
stage host "${HOST_TIMEOUT:-40}" env $bench_env python3 -m bench --host --out "$work/b/$tag-host.csv"
stage compile "${COMPILE_TIMEOUT:-45}" env $bench_env python3 -m bench "${compile_args[@]}" --out "$work/b/$tag-compile.csv"
stage tf32 "${TF32_TIMEOUT:-25}" env $bench_env python3 -m bench --quick --no-progress --providers triton_ops torch \
  --ops matmul linear --dtypes float32 --float32-matmul-precision high --out "$work/b/$tag-tf32.csv"
stage gemm "${GEMM_TIMEOUT:-40}" env $bench_env python3 -m bench "${sweep_gemm[@]}" --out "$work/b/$tag-gemm.csv"
# launch configurations side by side (bench.variants), to choose defaults from
stage variants "${VARIANTS_TIMEOUT:-150}" env $bench_env python3 -m bench.variants \
  ${VARIANT_FAMILIES:-embedding tf32 loss norm reduce gemm32 lce} ${VARIANT_ARGS:---hidden 8192} --out "$OUT/$tag-variants.csv"

# the quick CSV carries the torch.compile rows, the sweep CSV the fp16/fp32 GEMM rows (same columns)
for extra in compile tf32; do  # more quick rows
  [ -f "$work/b/$tag-$extra.csv" ] && tail -n +2 "$work/b/$tag-$extra.csv" >> "$work/b/$tag-quick.csv"
done
[ -f "$work/b/$tag-gemm.csv" ] && tail -n +2 "$work/b/$tag-gemm.csv" >> "$work/b/$tag-sweep.csv"
for f in quick host sweep; do cp "$work/b/$tag-$f.csv" "$OUT/" 2>/dev/null; done
csvs=$(ls "$OUT/$tag"-{quick,host,sweep}.csv 2>/dev/null)
[ -n "$csvs" ] && python3 -m bench.report --targets $csvs --title "GPU check: $card, $(date -u +%Y-%m-%d)" --out "$OUT/$tag.md" \
  && cp "$OUT/$tag.md" "docs/benchmarks/gpu/$tag.md"
(cd "$work/b" && tar cf "$OUT/$tag-plots.tar" ./*.png ./*.json 2>/dev/null)
nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader >> "$OUT/gpu-env.txt"
for s in check quick profile sweep host compile tf32 gemm variants; do
  echo "== $s"; tail -c 20000 "$work/$s.log" 2>/dev/null
done > "$OUT/bench.log"
echo "== done at ${SECONDS}s"
cat "$OUT/gpu-env.txt"
tail -25 "$work/quick.log" 2>/dev/null
