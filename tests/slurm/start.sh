#!/usr/bin/env bash
# A single-node Slurm for the tests: ./tests/slurm/start.sh <state-dir>
# Installs Debian's slurm-wlm and munge when missing (needs root), writes a minimal slurm.conf
# for this machine (its cores and memory, one partition, no cgroups, accounting from
# slurmctld's own memory, finished jobs also in <state-dir>/jobcomp.log), starts munged,
# slurmctld and slurmd, and waits until the node is idle. ./tests/slurm/stop.sh undoes it.
set -euo pipefail
state="$(realpath -m "${1:?usage: start.sh <state-dir>}")"
mkdir -p "$state"/{spool,ctld,log,munge}

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    [ "$(id -u)" = 0 ] || { echo "start.sh: slurm-wlm and munge are missing; installing them needs root" >&2; exit 3; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge > "$state/log/apt.log" 2>&1 \
        || { echo "start.sh: apt-get install slurm-wlm munge failed (see $state/log/apt.log)" >&2; exit 3; }
fi

host="$(hostname -s)"
cpus="$(nproc)"
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$state/slurm.conf" <<CONF
ClusterName=maml-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
SlurmctldPidFile=$state/ctld/slurmctld.pid
SlurmdPidFile=$state/spool/slurmd.pid
SlurmdSpoolDir=$state/spool
StateSaveLocation=$state/ctld
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$state/slurm.conf"
# Job steps (srun inside a batch job) do not see SLURM_CONF: slurmd drops it from the job's
# environment, so the job's srun looks in /etc/slurm. Link this config there, unless a real
# Slurm configuration is present (then this test Slurm would shadow it: stop).
if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$SLURM_CONF" ]; then
    echo "start.sh: /etc/slurm/slurm.conf exists; not overriding a real Slurm configuration" >&2
    exit 3
fi
mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf
munge_key="$state/munge/munge.key"
[ -f "$munge_key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$munge_key" 2> /dev/null; chmod 400 "$munge_key"; }
munged --key-file="$munge_key" --socket="$state/munge/munge.socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/log/munged.log" \
    --seed-file="$state/munge/munge.seed" --force
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

for _ in $(seq 60); do
    if sinfo -h -o %t 2> /dev/null | grep -qx idle; then
        echo "Slurm up: $SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "start.sh: the node did not become idle; logs in $state/log" >&2
sinfo >&2 || true
exit 1
