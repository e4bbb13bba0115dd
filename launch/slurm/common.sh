# Shared by up.sh and down.sh (sourced, not run): where the development cluster keeps its state, and its daemons.
# Every setting can be overridden from the environment; none is exported to the caller.
STATE=${NTKEVAL_SLURM_DIR:-/tmp/ntkeval-slurm}      # configs, logs, PIDs, spool, MariaDB datadir
CLUSTER=${NTKEVAL_SLURM_CLUSTER:-ntkeval}
PARTITION=${NTKEVAL_SLURM_PARTITION:-debug}
DB_PORT=${NTKEVAL_SLURM_DB_PORT:-3316}               # MariaDB on 127.0.0.1 only; not 3306, to leave a system one alone
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd) # start order; down.sh stops them in reverse
SYSTEM_CONF=/etc/slurm/slurm.conf                   # where sbatch/sacct/scancel look, so submitit needs no SLURM_CONF

# pid_of NAME: the recorded PID of daemon NAME if that process is alive and still NAME (not a reused PID), else "".
# A zombie counts as stopped: the daemons are orphans, and a container's PID 1 may reap them only seconds later.
pid_of() {
  local file="$STATE/pid/$1.pid" pid comm state
  [ -s "$file" ] || return 0
  pid=$(<"$file")
  read -r _ comm state _ 2>/dev/null <"/proc/$pid/stat" || return 0
  if [ "$comm" = "($1)" ] && [ "$state" != Z ]; then echo "$pid"; fi
}
