#!/usr/bin/env bash
# Runs the test suite on CPU under the GPU machine's versions (torch 2.11, Triton 3.6), the oldest
# this project supports (pyproject's lower bounds), in a venv of its own (default /tmp/venv-gpu-versions).
# Not part of CI: PyPI's torch 2.11 for x86_64 is a CUDA build, about 3 GB with its NVIDIA
# libraries (it runs on CPU). numpy < 2.4: Triton 3.6's interpreter converts one-element arrays
# to Python scalars, which numpy 2.4 refuses. Usage: bash scripts/versions_check.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-/tmp/venv-gpu-versions}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "torch==2.11.0" "triton==3.6.0" "numpy<2.4" pytest pytest-xdist hypothesis expecttest matplotlib tqdm scikit-learn
"$VENV/bin/python" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
PYTHONPATH=. exec "$VENV/bin/python" -m pytest -n 2 -q -p no:cacheprovider "$@"
