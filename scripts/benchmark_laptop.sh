#!/usr/bin/env bash
# The laptop benchmark (conf/experiment/benchmark_laptop.yaml) on one machine: two al-run sweeps
# side by side (even and odd seeds), each on Hydra's basic launcher, then al-report over both.
#   scripts/benchmark_laptop.sh [FOLDER]       # default: benchmark-laptop/ here
#   BENCHMARK_SEEDS=10 scripts/benchmark_laptop.sh
# Two processes of in-process jobs, not hydra/launcher=local: that launcher starts a process per
# job, and TensorFlow's start-up per job would cost more than most of these jobs' rounds (see the
# README's "The laptop benchmark"). Everything lands in FOLDER: mlflow.db, the sweeps, report/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${AL_BIN:-$repo/.venv/bin}
folder=${1:-benchmark-laptop}
seeds=${BENCHMARK_SEEDS:-4}
mkdir -p "$folder"
cd "$folder"
# One process creates the store and the experiment, before two sweeps write to it at once.
"$bin/python" -c "from al_experiments.tracking.mlflow_store import ensure_experiment, resolve_tracking_uri
ensure_experiment(resolve_tracking_uri(None), 'benchmark-laptop')"
even=$(seq -s, 0 2 $((seeds - 1)))
odd=$(seq -s, 1 2 $((seeds - 1)))
start=$(date +%s)
pids=()
for part in even odd; do
    [ -n "${!part}" ] || continue
    "$bin/al-run" -m +experiment=benchmark_laptop "seed=${!part}" hydra.sweep.dir="sweep-$part" \
        > "sweep-$part.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
echo "sweeps finished in $(( $(date +%s) - start )) s (exit status $status); logs in $PWD/sweep-*.log" >&2
[ "$status" -eq 0 ] || exit "$status"
"$bin/al-report" --experiment benchmark-laptop --out report --no-log
