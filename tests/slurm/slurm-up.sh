#!/usr/bin/env bash
# Bring up a single-node SLURM test cluster (CI and integration tests), without systemd.
#  - one node named after `hostname -s` (localhost if that does not resolve), its real CPUs
#    and memory (from `slurmd -C`), one default partition `debug`; no gres, no accounting,
#    no cgroups (proctrack/linuxproc, task/none), MaxArraySize=10001;
#  - config in Debian's default /etc/slurm/slurm.conf, so sbatch/squeue need no SLURM_CONF;
#  - state, pid files and logs under $LLEM_SLURM_DIR (default /var/lib/llem-slurm).
# Idempotent: when the cluster already answers with a usable node, it says so and exits 0.
# Needs the Debian packages slurm-wlm and munge. Stop it with tests/slurm/slurm-down.sh.
set -euo pipefail
DIR="${LLEM_SLURM_DIR:-/var/lib/llem-slurm}"
CONF=/etc/slurm/slurm.conf
MARK="# llem-slurm: written by tests/slurm/slurm-up.sh"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

# The node answers and can take jobs (a trailing * or ~ etc. means it does not).
node_ok() { timeout 15 sinfo -h -o %T 2>/dev/null | grep -qxE 'idle|mixed|allocated|completing'; }
# A daemon we started still runs (pid file under $DIR; a zombie does not count: PID 1 may be
# slow to reap).
alive() { [ -s "$DIR/$1.pid" ] && ps -o stat=,comm= -p "$(cat "$DIR/$1.pid")" | grep -qE "^[^Z][^ ]* +$1\$"; }
# Say why, show the ends of the logs, exit 1.
fail() {
  echo "error: $*" >&2
  for f in slurmctld.log slurmd.log; do
    echo "--- $DIR/$f" >&2
    $SUDO tail -20 "$DIR/$f" >&2 2>/dev/null || true
  done
  exit 1
}

# Up: when the cluster is ours, both our daemons run (slurmctld notices a dead slurmd only after
# SlurmdTimeout, 300 s; and sinfo takes ~10 s to give up on a dead slurmctld); the node is usable.
up() {
  if grep -qxF "$MARK" "$CONF" 2>/dev/null; then alive slurmctld && alive slurmd && node_ok; else node_ok; fi
}
if up; then
  echo "slurm: cluster already up ($(sinfo -h -o '%P %N %T' | head -1)); nothing to do"
  exit 0
fi

missing=""
for b in slurmctld slurmd munged; do
  command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || missing="$missing $b"
done
if [ -n "$missing" ]; then
  echo "error: missing$missing; install the Debian packages: apt-get install -y slurm-wlm munge" >&2
  exit 1
fi
export PATH="$PATH:/usr/sbin"
if [ -e "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  echo "error: $CONF exists and was not written by this script; move it away first" >&2
  exit 1
fi

# Stop half-started daemons of ours so that they start again on the config written below.
for d in slurmd slurmctld; do
  alive "$d" || continue
  $SUDO kill "$(cat "$DIR/$d.pid")"
  for _ in $(seq 10); do alive "$d" || break; sleep 1; done
done

NODE="$(hostname -s 2>/dev/null || true)"
getent hosts "${NODE:-x}" >/dev/null 2>&1 || NODE=localhost
# e.g. "CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
HW="$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')"
$SUDO mkdir -p "$DIR/ctld" "$DIR/spool" /etc/slurm
$SUDO tee "$CONF" >/dev/null <<CONF
$MARK
ClusterName=llem
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MaxArraySize=10001
MaxJobCount=20000
# Defaults, spelled out: ended jobs stay in squeue/scontrol 300 s; SIGTERM, then SIGKILL 30 s later.
MinJobAge=300
KillWait=30
NodeName=$NODE $HW State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF

# munge: a key, then munged as the munge user (unless one already answers).
if ! $SUDO test -s /etc/munge/munge.key; then
  $SUDO mkdir -p /etc/munge
  $SUDO mungekey --create --keyfile=/etc/munge/munge.key
  $SUDO chown munge:munge /etc/munge/munge.key
  $SUDO chmod 0400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  $SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
  $SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge
  $SUDO runuser -u munge -- munged
  $SUDO touch "$DIR/munged.ours"  # tells slurm-down.sh that it may stop munged
fi

echo "slurm: starting slurmctld and slurmd for node $NODE (logs: $DIR/slurmctld.log, $DIR/slurmd.log)"
# Both fork into the background, closing stdout/stderr (a CI pipe does not stay open).
$SUDO slurmctld </dev/null || fail "slurmctld did not start"
$SUDO slurmd -N "$NODE" </dev/null || fail "slurmd did not start"

for _ in $(seq 60); do
  if up; then
    echo "slurm: up: $(sinfo -h -o 'partition=%P node=%N cpus=%c mem=%m state=%T')"
    exit 0
  fi
  sleep 1
done
fail "slurm node $NODE not usable after 60 s: $(sinfo -h -o '%N %T %E' 2>&1 | head -1)"
