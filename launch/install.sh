#!/usr/bin/env bash
# Create .venv and install ntkeval with its test extras. Idempotent: a second run only checks.
# torch is pinned first so pip never swaps in a different (multi-GB CUDA) build; set TORCH_SPEC to choose another.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import ntkeval, torch, transformers, peft, trl, hydra, submitit, wandb, gguf, sympy, pytest, pytest_timeout, lm_eval" 2>/dev/null; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
  python -m pip install -q -e ".[test]"
fi
python -c "import ntkeval, torch; print(f'ntkeval {ntkeval.__version__} with torch {torch.__version__} in .venv')"
