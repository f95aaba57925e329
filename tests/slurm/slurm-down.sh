#!/usr/bin/env bash
# Stop the single-node SLURM test cluster started by tests/slurm/slurm-up.sh: cancel all jobs,
# then stop the slurmctld/slurmd (and munged) that it started. A no-op when nothing runs.
set -euo pipefail
DIR="${LLEM_SLURM_DIR:-/var/lib/llem-slurm}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export PATH="$PATH:/usr/sbin"

# The pid in pid file $1 when that process still runs (not a zombie) and is named $2.
pid_of() { [ -s "$1" ] && ps -o stat=,comm= -p "$(cat "$1")" | grep -qE "^[^Z][^ ]* +$2\$" && cat "$1"; }
# Stop that process: SIGTERM, then SIGKILL after 10 s; drop its pid file.
stop() {
  local pid
  if pid="$(pid_of "$1" "$2")"; then
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 10); do pid_of "$1" "$2" >/dev/null || break; sleep 1; done
    if pid_of "$1" "$2" >/dev/null; then $SUDO kill -9 "$pid" 2>/dev/null || true; fi
  fi
  $SUDO rm -f "$1"
}

if pid_of "$DIR/slurmctld.pid" slurmctld >/dev/null; then
  # Cancel every job (SIGTERM to the tasks; SIGKILL KillWait=30 s later), wait for them to go.
  jobs="$(squeue -h -o %F 2>/dev/null | sort -u | tr '\n' ' ')"
  if [ -n "${jobs// /}" ]; then
    echo "slurm: cancelling jobs $jobs"
    # shellcheck disable=SC2086 # one job id per word
    $SUDO scancel $jobs || true
    for _ in $(seq 40); do
      [ -z "$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  $SUDO scontrol shutdown >/dev/null 2>&1 || true  # slurmctld and slurmd exit
fi
stop "$DIR/slurmd.pid" slurmd
stop "$DIR/slurmctld.pid" slurmctld
if [ -e "$DIR/munged.ours" ]; then
  stop /run/munge/munged.pid munged
  $SUDO rm -f "$DIR/munged.ours"
fi
echo "slurm: stopped (state and logs kept in $DIR)"
