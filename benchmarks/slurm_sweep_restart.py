"""A real sweep through SLURM into the shared tracking server, which restarts in the middle.

Runs ``al-run -m hydra/launcher=slurm`` (the single-node cluster of ``scripts/slurm_cluster.sh``)
with ``--jobs`` jobs (seeds x random,bald) logging to the server of ``scripts/tracking_server.sh``,
restarts the server once about half of the rounds are in the CSVs (and again at each further
``--restarts``), then checks the store run by run against the CSVs the jobs wrote: one FINISHED
run per job under one FINISHED parent, each round metric at steps 1..rounds exactly once, and
the round's test accuracy and labelled-pool size equal to the CSV's row.

    python benchmarks/slurm_sweep_restart.py                # 16 jobs of 6 rounds
    python benchmarks/slurm_sweep_restart.py --jobs 4 --rounds 3 --classical
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracking_server_control import csv_rounds, running_server, server

AL_RUN = Path(sys.executable).parent / "al-run"


def check(uri: str, experiment: str, sweep_dir: Path, jobs: int, rounds: int) -> list[str]:
    """What is wrong with the sweep in the store, compared with its CSVs (empty: nothing)."""
    from mlflow import MlflowClient

    from al_experiments.tracking.suit_metrics import ExperimentSuitMetrics

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], f"tags.sweep = '{sweep_dir.resolve()}'", max_results=1000)
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("run_kind") != "sweep"]
    problems = []
    if len(parents) != 1 or parents[0].info.status != "FINISHED":
        problems.append(f"parent runs: {[(r.info.run_id, r.info.status) for r in parents]}")
    if len(children) != jobs:
        problems.append(f"{len(children)} job runs for {jobs} jobs")
    suit = ExperimentSuitMetrics(str(sweep_dir / "metrics"))
    for run in children:
        name = run.data.tags["experiment_file"]
        if run.info.status != "FINISHED":
            problems.append(f"{name}: run {run.info.status}")
        rows = {int(row["iteration"]): row for row in suit.read(name)}
        if sorted(rows) != list(range(1, rounds + 1)):
            problems.append(f"{name}: CSV rounds {sorted(rows)}")
        round_keys = [k for k in run.data.metrics if k not in ("final_test_accuracy", "aulc")]
        for key in round_keys:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            if sorted(steps) != list(range(1, rounds + 1)):
                problems.append(f"{name}: {key} at steps {sorted(steps)}")
        # the CSV's accuracy column is named for the model's metric (eval_accuracy for a classical model)
        accuracy = next((c for c in next(iter(rows.values()), {}) if c.startswith("eval_") and c.endswith("accuracy")
                         and "balanced" not in c), "eval_accuracy")
        for key, column in (("test_accuracy", accuracy), ("labeled_pool_size", "labeled_pool_size")):
            logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            for step, row in rows.items():
                if not math.isclose(logged.get(step, math.nan), float(row[column]), rel_tol=1e-6):
                    problems.append(f"{name}: {key} of round {step} is {logged.get(step)} in MLflow, "
                                    f"{row[column]} in the CSV")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16, help="an even number: seeds x (random, bald)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--folder", help="where the sweep's folders go (default: a temporary one)")
    parser.add_argument("--classical", action="store_true",
                        help="jobs of a logistic regression on breast_cancer instead of the smoke network: no "
                             "TensorFlow start-up per job, when the launcher and the server are what is looked at")
    args = parser.parse_args()

    with running_server() as uri:
        return _sweep(args, uri)


def _sweep(args: argparse.Namespace, uri: str) -> int:
    experiment = f"slurm-sweep-{int(time.time())}"
    folder = Path(args.folder or tempfile.mkdtemp(prefix="slurm-sweep-"))
    sweep_dir = folder / "sweep"
    seeds = ",".join(str(s) for s in range(args.jobs // 2))
    command = [str(AL_RUN), "-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=20",
               "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "+experiment=smoke",
               *(["model=logistic_regression", "dataset=breast_cancer"] if args.classical else []),
               f"loop.max_rounds={args.rounds}", "query=random,bald", f"seed={seeds}",
               f"mlflow.tracking_uri={uri}", f"mlflow.experiment_name={experiment}",
               f"hydra.sweep.dir={sweep_dir}", f"state_dir={folder / 'state'}"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    total = args.jobs * args.rounds
    began = time.time()
    with open(folder / "al-run.log", "w") as output:
        sweep = subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)
        restarted = []
        for number in range(args.restarts):
            target = total * (number + 1) // (args.restarts + 1)
            while sweep.poll() is None and csv_rounds(sweep_dir / "metrics") < target:
                time.sleep(0.5)
            if sweep.poll() is not None:
                break
            server("restart")
            restarted.append(f"{time.time() - began:.0f} s ({csv_rounds(sweep_dir / 'metrics')} of {total} rounds in)")
        code = sweep.wait()
    elapsed = time.time() - began
    problems = check(uri, experiment, sweep_dir, args.jobs, args.rounds) if code == 0 else []
    print(f"{args.jobs} jobs x {args.rounds} rounds through SLURM into {uri} in {elapsed:.0f} s; "
          f"server restarted at {', '.join(restarted) or 'no point (the sweep ended first)'}; "
          f"al-run exit {code}; {len(problems)} problems")
    for problem in problems:
        print("  " + problem)
    if code != 0:
        print((folder / "al-run.log").read_text()[-3000:])
    return 0 if code == 0 and not problems and len(restarted) == args.restarts else 1


if __name__ == "__main__":
    sys.exit(main())
