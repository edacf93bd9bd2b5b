#!/usr/bin/env bash
# A two-node Slurm cluster on this one machine, for the tests, CI and trying `invoke bench
# --slurm` without a real cluster. It installs nothing (scripts/system-deps.sh installs
# slurm-wlm and munge); it writes a configuration into one directory and starts munged,
# slurmctld and two slurmd (`slurmd -N n1`, `-N n2`) that all read it.
#
#   scripts/slurm-cluster.sh start [DIR]   configure and start (idempotent); prints the
#                                          `export SLURM_CONF=...` line clients need
#   scripts/slurm-cluster.sh stop [DIR]    stop the daemons started from DIR
#   scripts/slurm-cluster.sh status [DIR]  sinfo of the cluster in DIR
#
# DIR defaults to $BENCH_SLURM_DIR or /tmp/accel-testbed-slurm. Ports: $BENCH_SLURM_CTLD_PORT
# (default 6817) for slurmctld, $BENCH_SLURM_NODE_PORT and the next one (default 17001, 17002)
# for the two slurmd, so several clusters can live on one machine. Everything (munge socket,
# key, state, logs, pid files) stays in DIR; nothing under /etc is touched. Runs as root (both
# daemons' users are root: SlurmUser=root), as on the CI machine.
#
# Settings known to work with Debian's slurm-wlm 22.05 on one host: proctrack/linuxproc,
# task/none, no cgroup.conf (22.05 rejects CgroupPlugin=disabled), no slurmdbd (follow jobs
# with squeue/scontrol; there is no sacct).
set -euo pipefail

cmd=${1:-start}
dir=${2:-${BENCH_SLURM_DIR:-/tmp/accel-testbed-slurm}}
ctld_port=${BENCH_SLURM_CTLD_PORT:-6817}
node_port=${BENCH_SLURM_NODE_PORT:-17001}
nodes=(n1 n2)

die() { echo "slurm-cluster: $*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$file"
}

write_config() {
  local host cpus mem i
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  mkdir -p "$dir/state" "$dir/log"
  {
    echo "# Written by scripts/slurm-cluster.sh: two nodes on one host ($host)."
    echo "ClusterName=accel-testbed"
    echo "SlurmctldHost=$host(127.0.0.1)"
    echo "SlurmctldPort=$ctld_port"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$dir/munge.socket"
    echo "StateSaveLocation=$dir/state"
    echo "SlurmctldPidFile=$dir/slurmctld.pid"
    echo "SlurmctldLogFile=$dir/log/slurmctld.log"
    echo "SlurmdSpoolDir=$dir/spool.%n"
    echo "SlurmdPidFile=$dir/slurmd.%n.pid"
    echo "SlurmdLogFile=$dir/log/slurmd.%n.log"
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "MpiDefault=none"
    echo "SwitchType=switch/none"
    echo "SchedulerType=sched/backfill"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "AccountingStorageType=accounting_storage/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "JobCompType=jobcomp/none"
    echo "ReturnToService=2"
    # Finished jobs stay known to slurmctld for this long: the launcher reads the final
    # record with `scontrol show job` (there is no slurmdbd here).
    echo "MinJobAge=600"
    echo "SlurmctldTimeout=30"
    echo "SlurmdTimeout=30"
    echo "KillWait=10"
    echo "InactiveLimit=0"
    i=0
    for n in "${nodes[@]}"; do
      echo "NodeName=$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((node_port + i)) CPUs=$cpus RealMemory=$mem State=UNKNOWN"
      i=$((i + 1))
    done
    echo "PartitionName=debug Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
  } > "$dir/slurm.conf.new"
  mv "$dir/slurm.conf.new" "$dir/slurm.conf"
}

start_munge() {
  pid_alive "$dir/munged.pid" && return 0
  if [ ! -f "$dir/munge.key" ]; then
    (umask 077; head -c 1024 /dev/urandom > "$dir/munge.key")
  fi
  chmod 0700 "$dir"
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munged.seed" || die "munged did not start (log: $dir/log/munged.log)"
}

wait_nodes_idle() {
  local state
  for _ in $(seq 100); do
    state=$(sinfo -h -N -o '%N %t' 2>/dev/null || true)
    if [ "$(grep -cE ' (idle|mix|alloc)$' <<<"$state")" = "${#nodes[@]}" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "$state" >&2
  die "the nodes did not come up (logs: $dir/log/)"
}

start() {
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || die "$tool is not installed: run scripts/system-deps.sh as root (apt-get install slurm-wlm munge)"
  done
  [ "$(id -u)" = 0 ] || die "run as root (SlurmUser=root; the daemons start jobs as the submitting user)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  write_config
  export SLURM_CONF="$dir/slurm.conf"
  start_munge
  if ! pid_alive "$dir/slurmctld.pid"; then
    slurmctld -i -f "$SLURM_CONF" || die "slurmctld did not start (log: $dir/log/slurmctld.log)"
  fi
  for _ in $(seq 50); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
  scontrol ping >/dev/null 2>&1 || die "slurmctld does not answer (log: $dir/log/slurmctld.log)"
  for n in "${nodes[@]}"; do
    if ! pid_alive "$dir/slurmd.$n.pid"; then
      slurmd -N "$n" -f "$SLURM_CONF" || die "slurmd -N $n did not start (log: $dir/log/slurmd.$n.log)"
    fi
  done
  wait_nodes_idle
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  [ -d "$dir" ] || return 0
  for n in "${nodes[@]}"; do stop_pidfile "$dir/slurmd.$n.pid"; done
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF="$dir/slurm.conf" sinfo -N ;;
  *) echo "usage: scripts/slurm-cluster.sh start|stop|status [DIR]" >&2; exit 2 ;;
esac
