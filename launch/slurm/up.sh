#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine for development and the slurm tests (root, Debian/Ubuntu):
# installs slurm + munge + MariaDB if missing, writes the configs from the *.in templates beside this script, and
# starts munged, MariaDB, slurmdbd, slurmctld and slurmd as background processes (state under $NTKEVAL_SLURM_DIR,
# default /tmp/ntkeval-slurm). Idempotent: daemons already running are kept. Stop it with launch/slurm/down.sh.
#   launch/slurm/up.sh && sbatch --wrap hostname && sacct
# Exit status: 0 up, 3 Slurm cannot be installed or run here (not root, no apt-get, apt failed), 1 anything else.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
START=$(date +%s.%N)
TIMEOUT=${NTKEVAL_SLURM_TIMEOUT:-60}              # s to wait for each daemon to answer
CPUS=${NTKEVAL_SLURM_CPUS:-$(nproc)}
MEM_MB=${NTKEVAL_SLURM_MEM_MB:-$(awk '/MemTotal/ {m = int($2 / 1024 * 2 / 3); print (m < 16384 ? m : 16384)}' /proc/meminfo)}
DEF_MEM_PER_CPU=${NTKEVAL_SLURM_DEF_MEM_PER_CPU:-1024}   # MiB a job gets per CPU unless it asks (--mem)
GPUS=${NTKEVAL_SLURM_GPUS:-2}                     # fake GPUs on the node: two 1-GPU cells run at once
PACKAGES=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
BINARIES=(slurmctld slurmd slurmdbd sbatch sacct sacctmgr munged mariadbd mariadb-install-db mariadb)
DB_SOCK=$STATE/mysql.sock

cannot() { echo "up.sh: cannot run Slurm here: $*" >&2; exit 3; }
die() {
  echo "up.sh: error: $*" >&2
  for log in "$STATE"/log/*.log "$STATE"/log/*.out /var/log/munge/munged.log; do
    [ -s "$log" ] && { echo "--- tail of $log" >&2; tail -n 15 "$log" >&2; }
  done
  exit 1
}
# wait_for DESCRIPTION CMD...: poll CMD until it succeeds, or die after $TIMEOUT s.
wait_for() {
  local what=$1 deadline=$((SECONDS + TIMEOUT)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not answer within ${TIMEOUT}s"
    sleep 0.2
  done
}
# launch NAME CMD...: start CMD (a daemon in the foreground) detached, logging to log/NAME.out, PID to pid/NAME.pid.
launch() {
  local name=$1; shift
  if [ -n "$(pid_of "$name")" ]; then return 0; fi
  # 9>&-: the daemon must not inherit the lock on $STATE/lock, or it would hold it for its whole life
  SLURM_CONF=$STATE/etc/slurm.conf setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 9>&- &
  echo $! >"$STATE/pid/$name.pid"
}
render() {  # render TEMPLATE > FILE: fill in the @VAR@ placeholders
  local var args=()
  for var in STATE CLUSTER PARTITION CPUS MEM_MB DEF_MEM_PER_CPU GPUS GPU_FILES DB_PORT DB_PASS; do
    args+=(-e "s|@$var@|${!var}|g")
  done
  sed "${args[@]}" "$1"
}

[ "$(id -u)" = 0 ] || cannot "the daemons and the package install need root (running as $(id -un))"
mkdir -p "$STATE"/{etc,log,pid,run,ctld,slurmd}
exec 9>"$STATE/lock"
flock -w 300 9 || die "another up.sh/down.sh holds $STATE/lock"

# 1. packages
missing=$(for b in "${BINARIES[@]}"; do command -v "$b" >/dev/null || echo "$b"; done)
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null || cannot "missing $(echo $missing) and no apt-get to install them"
  echo "up.sh: installing ${PACKAGES[*]} ..."
  added_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # keep the packages' init scripts from starting system daemons
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
  fi
  status=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } \
    >"$STATE/log/apt.out" 2>&1 || status=$?
  [ -z "$added_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$status" = 0 ] || { tail -n 20 "$STATE/log/apt.out" >&2; cannot "apt-get install failed (exit $status)"; }
fi

# 2. configs: daemons read $STATE/etc (SLURM_CONF); client tools (sbatch, sacct: submitit) read /etc/slurm/slurm.conf
# fake GPU device files: char devices 1:3 (= /dev/null); one GPU on /dev/null itself where mknod is not allowed
mkdir -p "$STATE/dev"
GPU_FILES="$STATE/dev/gpu[0-$((GPUS - 1))]"
for ((i = 0; i < GPUS; i++)); do
  [ -c "$STATE/dev/gpu$i" ] || mknod -m 666 "$STATE/dev/gpu$i" c 1 3 2>/dev/null || { GPUS=1 GPU_FILES=/dev/null; break; }
done
[ -s "$STATE/etc/db.pass" ] || (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/etc/db.pass")
DB_PASS=$(<"$STATE/etc/db.pass")
old_conf=$(cat "$STATE/etc/slurm.conf" 2>/dev/null || true)
render "$HERE/slurm.conf.in" >"$STATE/etc/slurm.conf"
render "$HERE/gres.conf.in" >"$STATE/etc/gres.conf"
(umask 077; render "$HERE/slurmdbd.conf.in" >"$STATE/etc/slurmdbd.conf")
chmod 600 "$STATE/etc/slurmdbd.conf"
if [ -n "$old_conf" ] && [ "$old_conf" != "$(<"$STATE/etc/slurm.conf")" ] && [ -n "$(pid_of slurmctld)" ]; then
  echo "up.sh: warning: slurm.conf changed while the cluster runs; apply it with down.sh && up.sh" >&2
fi
if [ -e "$SYSTEM_CONF" ] && ! grep -q ntkeval-dev-cluster "$SYSTEM_CONF" && [ -z "${NTKEVAL_SLURM_FORCE:-}" ]; then
  die "$SYSTEM_CONF exists and is not ours; not overwriting it (NTKEVAL_SLURM_FORCE=1 to overwrite)"
fi
mkdir -p "$(dirname "$SYSTEM_CONF")"
cp "$STATE/etc/slurm.conf" "$SYSTEM_CONF.tmp" && mv "$SYSTEM_CONF.tmp" "$SYSTEM_CONF"

# 3. munged (the package's key; a munged already answering on the default socket is used as it is)
munge_ok() { munge -n </dev/null | unmunge; }
if [ -z "$(pid_of munged)" ] && ! munge_ok >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge
  launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
fi
wait_for munged munge_ok

# 4. MariaDB with its own datadir, on 127.0.0.1:$DB_PORT, for slurmdbd
if [ ! -d "$STATE/mysql/mysql" ]; then
  rm -rf "$STATE/mysql"
  mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
    --skip-test-db --innodb-log-file-size=64M >"$STATE/log/mariadb-install.out" 2>&1 || die "mariadb-install-db failed"
fi
launch mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --socket="$DB_SOCK" \
  --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve --log-error="$STATE/log/mariadb.log" \
  --pid-file="$STATE/run/mariadbd.pid" --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
  --innodb-lock-wait-timeout=900
sql() { mariadb --no-defaults --socket="$DB_SOCK" -uroot -e "$1"; }
wait_for MariaDB sql 'SELECT 1'
sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
     CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
     ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create the slurm database user"

# 5. slurmdbd, then the cluster and an account in it, then the controller and the node
launch slurmdbd slurmdbd -D
wait_for slurmdbd sacct -n -X -S now
if [ ! -e "$STATE/mysql/registered-$CLUSTER" ]; then   # once per database: each sacctmgr call costs ~0.2 s
  sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null
  sacctmgr -n -P show account ntkeval format=account | grep -qx ntkeval ||
    sacctmgr -i -Q add account ntkeval Cluster="$CLUSTER" Description=ntkeval Organization=ntkeval >/dev/null
  sacctmgr -n -P show assoc user=root account=ntkeval format=user | grep -qx root ||
    sacctmgr -i -Q add user root Account=ntkeval Cluster="$CLUSTER" >/dev/null
  touch "$STATE/mysql/registered-$CLUSTER"
fi
launch slurmctld slurmctld -D
launch slurmd slurmd -D -N localhost
node_ready() { sinfo -h -N -n localhost -o %T | grep -Eqx 'idle|mixed|allocated'; }
wait_for "the node (sinfo)" node_ready
wait_for "accounting (sacct)" sacct -n -X -S now

printf 'up.sh: Slurm cluster %s up in %.1f s: partition %s, %s CPUs, %s MiB, %s fake GPUs; state in %s\n' \
  "$CLUSTER" "$(awk "BEGIN {print $(date +%s.%N) - $START}")" \
  "$PARTITION" "$CPUS" "$MEM_MB" "$GPUS" "$STATE"
