#!/usr/bin/env bash
# Stop the development Slurm cluster that launch/slurm/up.sh started: cancel its jobs, then stop each daemon by its
# recorded PID (SIGTERM, SIGKILL after $NTKEVAL_SLURM_STOP_WAIT s). Idempotent. --purge also deletes the state dir
# (MariaDB datadir, job state, logs), so the next up.sh starts from nothing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
START=$(date +%s.%N)
STOP_WAIT=${NTKEVAL_SLURM_STOP_WAIT:-10}

[ -d "$STATE" ] || { echo "down.sh: nothing to stop ($STATE does not exist)"; exit 0; }
exec 9>"$STATE/lock"
flock -w 300 9 || { echo "down.sh: another up.sh/down.sh holds $STATE/lock" >&2; exit 1; }

# Jobs first: slurmstepd and the job's processes outlive slurmd, so cancel them while the controller still runs.
if [ -n "$(pid_of slurmctld)" ] && [ -n "$(pid_of slurmd)" ]; then
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    timeout 10 scancel $jobs 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

# Daemons in reverse start order, each waited for, so slurmctld hands its last records to slurmdbd before it stops.
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
  name=${DAEMONS[i]}
  pid=$(pid_of "$name")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((STOP_WAIT * 10))); do [ -n "$(pid_of "$name")" ] || break; sleep 0.1; done
    if [ -n "$(pid_of "$name")" ]; then
      echo "down.sh: $name (pid $pid) ignored SIGTERM for ${STOP_WAIT}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$STATE/pid/$name.pid"
done

if [ "${1:-}" = --purge ]; then
  rm -rf "$STATE"
  if grep -qs ntkeval-dev-cluster "$SYSTEM_CONF"; then rm -f "$SYSTEM_CONF"; fi
fi
printf 'down.sh: stopped in %.1f s\n' "$(awk "BEGIN {print $(date +%s.%N) - $START}")"
