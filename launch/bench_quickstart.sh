#!/usr/bin/env bash
# Benchmark the quickstart as a newcomer meets it: a fresh clone, a fresh venv, an empty model cache.
# Prints: wall time of install + model preparation + the 32-cell grid + report, peak resident memory of the grid,
# and, on smollm2, the tune-skill kernel's diagonal mean against its off-diagonal mean.
# Usage: launch/bench_quickstart.sh [workdir]   (default: a new temporary directory; removed afterwards)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
git clone -q "$repo" "$work/ntkeval"
cd "$work/ntkeval"
export NTKEVAL_CACHE="$work/cache"   # empty: the embedded model is downloaded and converted inside the timing
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/peak_kb" launch/quickstart.sh > "$work/quickstart.log" 2>&1 \
  || { tail -30 "$work/quickstart.log"; exit 1; }
end=$(date +%s.%N)
sweep=$(ls -d outputs/sweeps/quickstart_* | tail -1)
.venv/bin/python - "$sweep/report/kernel.csv" "$start" "$end" "$work/peak_kb" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["learner"] == "tune-skill"]
diag = [float(r["delta"]) for r in rows if r["train_skill"] == r["test_skill"]]
off = [float(r["delta"]) for r in rows if r["train_skill"] != r["test_skill"]]
print(f"quickstart wall time (fresh clone: install + model preparation + 32 cells + report): "
      f"{float(sys.argv[3]) - float(sys.argv[2]):.0f} s")
print(f"peak resident memory of the largest process: {int(open(sys.argv[4]).read().split()[-1]) / 1024:.0f} MiB")
print(f"tune-skill kernel on smollm2: diagonal mean {sum(diag) / len(diag):+.3f} (n={len(diag)}), "
      f"off-diagonal mean {sum(off) / len(off):+.3f} (n={len(off)})")
PY
[ -n "${1:-}" ] || rm -rf "$work"
