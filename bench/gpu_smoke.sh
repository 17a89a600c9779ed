#!/usr/bin/env bash
# Early GPU smoke check: do the templates compile and pass on triton 3.6 / torch 2.11?
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import torch, triton; print(torch.__version__, triton.__version__)"
timeout 240 python3 -m pytest -x -q -p no:cacheprovider tests/test_unary.py tests/test_binary.py -n 4 2>&1 | tail -40 | tee $OUT/smoke.log
