#!/usr/bin/env bash
# Benchmark a 16-cell tiny sweep (4 learners x 4 train skills x 4 test skills) through the local Slurm cluster
# against the default in-process launcher, and count the tunings actually run against the number of train skills.
# Usage: launch/bench_slurm.sh   (starts the cluster with launch/slurm/up.sh; stops it again if it started it)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
work=$(mktemp -d)
started=0
if ! sinfo -h >/dev/null 2>&1; then launch/slurm/up.sh >/dev/null; started=1; fi
grid=(model=tiny logger=none "learner=icl-standard,icl-skill,tune-base,tune-skill"
      "pair.train=add/question,mul/question,add/symbol,mul/symbol" "pair.test=[add/question,mul/question,add/symbol,mul/symbol]"
      dataset.n_test=8 tuning.steps=200)
echo "planned work for an empty cache:"
ntkeval -m "${grid[@]}" cache_dir="$work/plan-cache" dry_run=true | tail -3
run() {  # name, extra overrides...
  local name=$1; shift
  local t0=$(date +%s.%N)
  ntkeval -m "${grid[@]}" cache_dir="$work/$name-cache" hydra.sweep.dir="$work/$name" "$@" > "$work/$name.log" 2>&1
  local t1=$(date +%s.%N)
  local tunings=$(cat "$work/$name"/*/*.log | grep -c "tuning .*: started" || true)
  printf "%-11s wall %6.1f s, tunings run: %s (train skills: 4, learners that tune: 2)\n" "$name" "$(python -c "print($t1 - $t0)")" "$tunings"
}
run in-process
run slurm hydra/launcher=slurm hydra.launcher.partition=debug hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2 hydra.launcher.timeout_min=20
[ "$started" = 1 ] && launch/slurm/down.sh >/dev/null
rm -rf "$work"
