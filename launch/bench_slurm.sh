#!/usr/bin/env bash
# Benchmark a 16-cell tiny sweep (4 learners x 4 train skills x 4 test skills) in-process (the default launcher),
# through the local Slurm cluster with one job per cell (pack=none) and with packed jobs (pack=row), each on an
# empty cache: wall time and its ratio to in-process, tunings actually run, model loads, jobs, lock-wait seconds.
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
slurm=(hydra/launcher=slurm hydra.launcher.partition=debug hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=2
       hydra.launcher.timeout_min=20)
echo "planned work for an empty cache:"
ntkeval -m "${grid[@]}" cache_dir="$work/plan-cache" dry_run=true | grep -A2 "after de-duplication"
base=""
run() {  # name, extra overrides...
  local name=$1; shift
  local t0=$(date +%s.%N)
  ntkeval -m "${grid[@]}" cache_dir="$work/$name-cache" hydra.sweep.dir="$work/$name" "$@" > "$work/$name.log" 2>&1
  local t1=$(date +%s.%N)
  local wall=$(python -c "print(f'{$t1 - $t0:.1f}')")
  [ -z "$base" ] && base=$wall
  local tunings=$(cat "$work/$name"/*/*.log | grep -c "tuning .*: started" || true)
  local loads=$(cat "$work/$name"/*/*.log | grep -c "loading model" || true)
  local jobs=$(grep -oE "submitted [0-9]+ cells( in [0-9]+ packed jobs)?" "$work/$name.log" |
               awk '{n += ($5 == "" ? $2 : $5)} END {print n + 0}')
  local wait=$(grep -ho "waiting on other jobs' locks: [0-9.]* s" "$work/$name.log" | grep -oE "[0-9.]+ s" || echo "?")
  printf "%-13s wall %6.1f s (%4.1fx in-process), tunings run %s, model loads %s, jobs %s, lock wait %s\n" \
    "$name" "$wall" "$(python -c "print($wall / $base)")" "$tunings" "$loads" "${jobs/#0/in-process}" "$wait"
}
run in-process
run slurm-none "${slurm[@]}" hydra.launcher.pack=none
run slurm-packed "${slurm[@]}" hydra.launcher.pack=row
[ "$started" = 1 ] && launch/slurm/down.sh >/dev/null
rm -rf "$work"
