#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, in a temporary directory (sourced by test_slurm.sh).
#   slurm_up DIR     writes DIR/slurm.conf, starts munged, slurmctld and slurmd (as root), waits
#                    until the node is idle, exports SLURM_CONF; returns non-zero with a reason
#                    (and the daemons' last log lines) within about 90 s
#   slurm_down       stops the daemons it started (by pid) and waits for them
# Debian 12 packages: slurm-wlm (slurmctld, slurmd, client), munge. Ports are picked per run, free
# and below the kernel's ephemeral range, so that neither a system SLURM on the default ports nor
# an outgoing connection holds them. Every client command runs under `timeout`: a client that
# cannot reach slurmctld retries for about 10 s per call.
set -u

slurm_pids=()

slurm_down() {
  local i p
  # Jobs first, so that no step outlives its slurmd.
  if [ -n "${SLURM_CONF:-}" ] && [ ${#slurm_pids[@]} -gt 0 ]; then
    timeout 10 scancel --full --quiet --user=root 2>/dev/null
    local until=$((SECONDS + 10))
    while [ $SECONDS -lt $until ]; do
      [ -z "$(timeout 5 squeue -h 2>/dev/null || echo unreachable)" ] && break; sleep 0.1
    done
  fi
  # Last started first: slurmd, slurmctld, munged.
  for (( i=${#slurm_pids[@]}-1; i>=0; i-- )); do
    p=${slurm_pids[$i]}
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 100); do
      kill -0 "$p" 2>/dev/null && [ "$(awk '{print $3}' /proc/$p/stat 2>/dev/null)" != Z ] || break
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
  done
  # Step daemons of this cluster (they carry its SLURM_CONF in their environment), by pid.
  if [ -n "${SLURM_CONF:-}" ]; then
    for p in $(pgrep slurmstepd); do
      { tr '\0' '\n' </proc/$p/environ; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && kill -KILL "$p" 2>/dev/null
    done
  fi
  slurm_pids=()
}

slurm_up() {
  local dir=$1 node cpus mem line port
  mkdir -p "$dir"/{state,spool,log,munge}
  chmod 700 "$dir/munge"
  for t in munged slurmctld slurmd sbatch sinfo srun; do
    command -v $t >/dev/null || { echo "slurm_up: $t not installed (Debian packages slurm-wlm munge)"; return 1; }
  done
  [ "$(id -u)" -eq 0 ] || { echo "slurm_up: needs root (slurmd runs jobs as their user)"; return 1; }
  # munge: a fresh key and a private socket.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" \
    || { echo "slurm_up: munged failed: $(tail -3 "$dir/log/munged.log")"; return 1; }
  for _ in $(seq 50); do [ -s "$dir/munge/munged.pid" ] && break; sleep 0.1; done
  slurm_pids+=("$(cat "$dir/munge/munged.pid")")
  # The node as slurmd sees it (CPUs, sockets, cores, memory).
  node=$(hostname -s)
  line=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]*//')
  port=$(slurm_free_port) || { echo "slurm_up: no free pair of ports in 20000-32000"; return 1; }
  cat >"$dir/slurm.conf" <<CONF
ClusterName=wmtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
LaunchParameters=use_interactive_step
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 $line State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -D -i -f "$dir/slurm.conf" >"$dir/log/slurmctld.out" 2>&1 &
  slurm_pids+=($!)
  slurmd -D -f "$dir/slurm.conf" -N "$node" >"$dir/log/slurmd.out" 2>&1 &
  slurm_pids+=($!)
  local state="" ctld=${slurm_pids[-2]} sd=${slurm_pids[-1]} until=$((SECONDS + 60))
  while [ $SECONDS -lt $until ]; do
    kill -0 "$ctld" 2>/dev/null || { echo "slurm_up: slurmctld exited: $(slurm_logs "$dir")"; return 1; }
    kill -0 "$sd" 2>/dev/null || { echo "slurm_up: slurmd exited: $(slurm_logs "$dir")"; return 1; }
    state=$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -1)
    [ "$state" = idle ] && return 0
    sleep 0.2
  done
  echo "slurm_up: node not idle after 60 s (state '$state', port $port): $(slurm_logs "$dir")"
  return 1
}

# A port P with P and P+1 free for listening, in 20000-32000 (below the ephemeral range).
slurm_free_port() {
  local p used
  used=$(ss -Htan 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}')
  for _ in $(seq 100); do
    p=$(( 20000 + RANDOM % 12000 ))
    grep -qx -e "$p" -e "$((p + 1))" <<<"$used" || { echo "$p"; return 0; }
  done
  return 1
}

# The last lines the daemons wrote, on one line each.
slurm_logs() {
  local f
  for f in "$1"/log/slurmctld.out "$1"/log/slurmctld.log "$1"/log/slurmd.out "$1"/log/slurmd.log; do
    [ -s "$f" ] && printf ' [%s] %s' "$(basename "$f")" "$(tail -3 "$f" | tr '\n' ' ')"
  done
}
