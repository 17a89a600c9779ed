#!/usr/bin/env bash
# One script for the GPU machine: the test suite on CUDA, the demo for a few epochs, then
# `python -m bench --quick`. Results (at most 8 files, as the device tool returns) go under
# $OUT (default out/gpu).
# Usage there: PYTHONPATH=. bash bench/gpu_check.sh
set -uo pipefail
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
work=$(mktemp -d)
export TRITON_OPS_TUNE_STORE="$work/tune.json"   # never read a stale store from elsewhere
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  git rev-parse --short HEAD 2>/dev/null || true
} > "$OUT/gpu-env.txt" 2>&1
cat "$OUT/gpu-env.txt"

start=$SECONDS
timeout "${TEST_TIMEOUT:-240}" python3 -m pytest -q -n 8 -p no:cacheprovider tests/ ${TEST_ARGS:-} \
  > "$work/tests.log" 2>&1
echo "tests: exit $? in $((SECONDS - start))s" | tee -a "$OUT/gpu-env.txt"
grep -E "^(FAILED|ERROR)|passed|failed" "$work/tests.log" | tail -60 > "$OUT/gpu-tests.txt"
tail -c 40000 "$work/tests.log" > "$OUT/gpu-tests-tail.log"
tail -25 "$OUT/gpu-tests.txt"

start=$SECONDS
timeout "${DEMO_TIMEOUT:-60}" python3 -m triton_ops demo --epochs 4 2>&1 | tail -8 > "$OUT/gpu-demo.txt"
echo "demo: exit $? in $((SECONDS - start))s" | tee -a "$OUT/gpu-env.txt"
cat "$OUT/gpu-demo.txt"

start=$SECONDS
timeout "${BENCH_TIMEOUT:-240}" python3 -m bench --quick --no-progress --out "$work/bench/bench-gpu.csv" ${BENCH_ARGS:-} \
  > "$work/bench.log" 2>&1
echo "bench: exit $? in $((SECONDS - start))s" | tee -a "$OUT/gpu-env.txt"
cp "$work/bench/bench-gpu.csv" "$work/bench/bench-gpu.json" "$OUT/" 2>/dev/null
{ tail -c 60000 "$work/bench.log"; echo; cat "$OUT/gpu-demo.txt"; } > "$OUT/bench-gpu.log"
rm -f "$OUT/gpu-demo.txt"
(cd "$work/bench" && tar cf "$OUT/bench-gpu-plots.tar" ./*.png 2>/dev/null)
tail -60 "$OUT/bench-gpu.log"
