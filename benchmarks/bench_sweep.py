"""Per-job overhead of a multirun on the basic launcher: what a sweep spends beyond its rounds.

Runs the digits sweep ``al-run -m query=random,bald,max_entropy seed=0,1,2`` (6 rounds, 50
epochs, no step budget: small rounds, so overhead shows) in a fresh folder with a pre-made
MLflow store, with a Hydra callback (job_timer.py) that stamps every sweep and job event. The
rounds of a job are what its CSV says they took (train + query + validation + evaluation); the
rest of the job's share of the sweep is overhead, split into:

* Hydra's: composing the job's config twice (the basic sweeper checks every job's config
  before the sweep starts, and the launcher composes it again before running it), measured
  as the sweep's start-up divided by the jobs plus the gap between one job's end and the next
  one's start;
* ours: the job itself beyond its rounds (checks, building, tracking, checkpoints).

The first job builds and traces the network; the others take it over (al_experiments.app.reuse),
so the medians over jobs 2..N are the steady state and job 1 is reported apart.
Usage: python benchmarks/bench_sweep.py [--repeats K] [--json FILE]
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AL_RUN = Path(sys.executable).with_name("al-run")
SWEEP = ["query=random,bald,max_entropy", "seed=0,1,2", "loop.max_rounds=6", "model.fit.epochs=50",
         "model.fit.min_steps=null"]
PHASES = ("train_time", "query_time", "optim_time", "eval_time")


def rounds_seconds(csv_path: str) -> float:
    with open(csv_path, newline="") as handle:  # tf_al's layout: space-separated
        return sum(float(row[phase]) for row in csv.DictReader(handle, delimiter=" ") for phase in PHASES
                   if row.get(phase) not in (None, ""))


def one_sweep(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{folder}/mlflow.db"
        subprocess.run([sys.executable, "-c", "import sys; from al_experiments.tracking import mlflow_store; "
                        "mlflow_store.ensure_experiment(sys.argv[1], 'al-experiments')", store], check=True)
        times = os.path.join(folder, "times.jsonl")
        env = {**os.environ, "AL_BENCH_TIMES": times, "MLFLOW_TRACKING_URI": store,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        subprocess.run([str(AL_RUN), "-m", *SWEEP, *overrides, "+hydra.callbacks.timer._target_=job_timer.JobTimer"],
                       cwd=folder, env=env, check=True, capture_output=True)
        command = time.perf_counter() - start
        events = [json.loads(line) for line in open(times)]
        csvs = sorted(glob.glob(os.path.join(folder, "multirun", "*", "*", "metrics", "*.csv")),
                      key=lambda path: int(os.path.basename(path).split("_")[0]))
        rounds = [rounds_seconds(path) for path in csvs]
    begin = next(e["t"] for e in events if e["event"] == "multirun_start")
    end = next(e["t"] for e in events if e["event"] == "multirun_end")
    starts = [e["t"] for e in events if e["event"] == "job_start"]
    ends = [e["t"] for e in events if e["event"] == "job_end"]
    jobs = len(starts)
    assert jobs == len(ends) == len(rounds) == 9, (jobs, len(rounds))
    inside = [e - s for s, e in zip(starts, ends)]
    ours = [t - r for t, r in zip(inside, rounds)]
    launcher_gaps = [s - e for s, e in zip(starts[1:], ends[:-1])]
    sweep_start = starts[0] - begin  # the sweeper's check of every job's config, the parent run
    per_job_total = [(end - begin - sum(rounds)) / jobs]
    return {
        "command_seconds": command, "sweep_seconds": end - begin, "jobs": jobs,
        "rounds_seconds_per_job": rounds, "job_seconds": inside,
        "ours_beyond_rounds": ours, "launcher_gap": launcher_gaps, "sweep_start": sweep_start,
        "overhead_per_job_all_in": per_job_total[0],
        "process_start_seconds": command - (end - begin),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="sweeps to run (medians are over them)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("overrides", nargs="*", help="more overrides for the sweep, e.g. +model.wrapper.xla=false")
    args = parser.parse_args()
    sweeps = [one_sweep(args.overrides) for _ in range(args.repeats)]

    def median(values):
        return statistics.median(values)

    later = lambda key: median([v for s in sweeps for v in s[key][1:]])  # noqa: E731
    figures = {
        "sweep": "al-run -m " + " ".join(SWEEP + args.overrides),
        "repeats": args.repeats,
        "rounds_per_job": later("rounds_seconds_per_job"),
        "ours_first_job": median([s["ours_beyond_rounds"][0] for s in sweeps]),
        "ours_later_jobs": later("ours_beyond_rounds"),
        "hydra_launcher_gap": median([v for s in sweeps for v in s["launcher_gap"]]),
        "hydra_sweep_start_per_job": median([s["sweep_start"] / s["jobs"] for s in sweeps]),
        "overhead_per_job_all_in": median([s["overhead_per_job_all_in"] for s in sweeps]),
        "process_start": median([s["process_start_seconds"] for s in sweeps]),
        "command_seconds": median([s["command_seconds"] for s in sweeps]),
        "sweeps": sweeps,
    }
    steady = figures["ours_later_jobs"] + figures["hydra_launcher_gap"] + figures["hydra_sweep_start_per_job"]
    figures["overhead_per_job_steady"] = steady
    rows = [
        ("rounds of a job (train + query + evaluation, median of jobs 2-9)", figures["rounds_per_job"]),
        ("beyond its rounds, ours: job 1 (builds and traces the network)", figures["ours_first_job"]),
        ("beyond its rounds, ours: jobs 2-9 (take the network over)", figures["ours_later_jobs"]),
        ("Hydra: launcher's compose between two jobs", figures["hydra_launcher_gap"]),
        ("Hydra: sweeper's check of every config before the sweep, per job", figures["hydra_sweep_start_per_job"]),
        ("overhead per job, steady state (the three above) (goal <= 0.3 s)", steady),
        ("overhead per job, whole sweep (sweep time - rounds) / 9", figures["overhead_per_job_all_in"]),
        ("the command before the sweep starts (imports, checks)", figures["process_start"]),
        ("the whole command", figures["command_seconds"]),
    ]
    print(f"| {figures['sweep']} ({args.repeats} sweeps, medians) | seconds |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")
    text = json.dumps(figures, indent=2)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
