#!/usr/bin/env bash
# Runs the README's Slurm recipe for real on this machine: installs a one-node Slurm from
# Debian's packages (slurm-wlm with munge), submits a tiny half-moons sweep as an array job
# of 3 shards, waits for it, and merges the shards with `mflow report`. Needs root (or
# sudo) and apt-get; takes a few minutes (the install is most of it). Not part of CI.
#
#   bash tools/slurm-check.sh [WORKDIR]      # default: a fresh folder under /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-$(mktemp -d /tmp/mflow-slurm-XXXX)}
mkdir -p "$work"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export NODEVICE_SELECT=1

echo "== build"
cargo build --release --quiet
mflow="${CARGO_TARGET_DIR:-$root/target}/release/mflow"
"$mflow" info | tail -n 1

echo "== install slurm-wlm and munge (Debian packages)"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
fi
slurmctld -V

echo "== configure a one-node cluster"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
$SUDO tee /etc/slurm/slurm.conf >/dev/null <<CONF
ClusterName=mflowcheck
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mkdir -p /etc/munge
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
$SUDO chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
$SUDO chmod 0400 /etc/munge/munge.key

echo "== start munged, slurmctld, slurmd"
pgrep -x munged >/dev/null || $SUDO runuser -u munge -- munged --force
pgrep -x slurmctld >/dev/null || $SUDO slurmctld
pgrep -x slurmd >/dev/null || $SUDO slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)
    [ "$state" = idle ] && break
    sleep 1
done
sinfo -N

echo "== submit the sweep as an array job of 3 shards"
cat >"$work/sweep.sbatch" <<JOB
#!/bin/bash
#SBATCH --array=0-2
#SBATCH --cpus-per-task=1
#SBATCH --output=$work/shard-%a.log
export NODEVICE_SELECT=1
$mflow sweep moons --seeds 2 --epochs 4 --train-size 256 --test-size 200 --batch 32 --hidden 16 \\
    --samples 8 --shard \$SLURM_ARRAY_TASK_ID/3 --out $work/sweep-\$SLURM_ARRAY_TASK_ID
JOB
job=$(sbatch --parsable "$work/sweep.sbatch")
echo "submitted array job $job"

echo "== wait for it"
for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
    sleep 1
done
if [ -n "$(squeue -h -j "$job" 2>/dev/null)" ]; then
    echo "slurm-check: the array job did not finish in 10 minutes" >&2
    squeue -j "$job"
    exit 1
fi
for i in 0 1 2; do
    echo "-- shard $i"
    tail -n 2 "$work/shard-$i.log"
    [ -f "$work/sweep-$i/results.csv" ] || { echo "slurm-check: shard $i wrote no results" >&2; exit 1; }
done

echo "== merge the shards"
"$mflow" report "$work"/sweep-0 "$work"/sweep-1 "$work"/sweep-2 --out "$work/report" | head -n 20
echo "slurm-check: ok ($work/report/report.md)"
