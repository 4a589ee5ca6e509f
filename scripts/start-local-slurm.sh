#!/usr/bin/env bash
# (A copy of the workplace's shared/slurm/start-local-slurm.sh, kept here so
# that CI on a clean clone finds it.)
# Start a one-node Slurm cluster on this machine (root, Debian 12), for tests
# that must run under real `srun` / `sbatch`. Idempotent: safe to run twice.
# After it: `srun --mpi=pmix -n 2 ./prog` launches MPI ranks; `sbatch x.sh`.
# Stop: kill "$(cat /run/slurmd.pid)" "$(cat /run/slurmctld.pid)".
set -eu
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null
fi
host=$(hostname)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /run/munge /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 30); do
  sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && { sinfo; exit 0; }
  sleep 1
done
echo "slurm did not come up: see /var/log/slurm*" >&2
exit 1
