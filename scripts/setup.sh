#!/usr/bin/env bash
# Creates .venv and installs triton_ops with its test, bench and demo extras (idempotent).
# With no NVIDIA GPU, torch is installed first as the CPU build 2.13.0 (the wheel this project's
# machines keep on disk), so that pip never pulls a multi-GB CUDA build; with a GPU, torch >= 2.11.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.triton_ops-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip_install "torch>=2.11"
  else
    pip_install "torch==2.13.0"
  fi
fi
pip_install -e ".[dev]"
touch "$stamp"
