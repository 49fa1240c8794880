#!/usr/bin/env bash
# Stop the test Slurm of ./tests/slurm/start.sh <state-dir>: cancel its jobs, stop slurmd,
# slurmctld and munged, and check that none of them is left running.
set -uo pipefail
state="$(realpath -m "${1:?usage: stop.sh <state-dir>}")"
export SLURM_CONF="$state/slurm.conf"
[ -f "$SLURM_CONF" ] && scancel --full --quiet --user "$(id -un)" 2> /dev/null
for pidfile in "$state/spool/slurmd.pid" "$state/ctld/slurmctld.pid" "$state/munge/munged.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2> /dev/null
done
[ "$(readlink /etc/slurm/slurm.conf 2> /dev/null)" = "$SLURM_CONF" ] && rm -f /etc/slurm/slurm.conf
for _ in $(seq 30); do
    left=$(pgrep -f -- "^(slurmctld|slurmd|slurmstepd|munged) .*$state" || true)
    [ -z "$left" ] && exit 0
    sleep 1
done
echo "stop.sh: still running, killing: $left" >&2
kill -9 $left 2> /dev/null
exit 1
