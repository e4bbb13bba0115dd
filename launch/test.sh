#!/usr/bin/env bash
# Install (if needed) and run the offline test suite on tiny in-process models. Extra args go to pytest,
# e.g. launch/test.sh -m slow   (the real-model tests on the embedded SmolLM2).
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install.sh
. .venv/bin/activate
export WANDB_MODE=offline WANDB_SILENT=true HF_HUB_OFFLINE=1
python -m pytest "$@"
