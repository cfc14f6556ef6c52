"""Per-job overhead of a multirun: what a sweep spends beyond its rounds.

Runs the digits sweep ``al-run -m query=random,bald,max_entropy seed=0,1,2`` (6 rounds, 50
epochs, no step budget: small rounds, so overhead shows) in a fresh folder with a pre-made
MLflow store, with a Hydra callback (job_timer.py) that stamps every sweep and job event. The
rounds of a job are what its CSV says they took (train + query + validation + evaluation); the
rest of the job's share of the sweep is overhead.

On the basic launcher (the default) every job runs in al-run's process. The overhead splits into:

* Hydra's: composing the job's config twice (the basic sweeper checks every job's config
  before the sweep starts, and the launcher composes it again before running it), measured
  as the sweep's start-up divided by the jobs plus the gap between one job's end and the next
  one's start;
* ours: the job itself beyond its rounds (checks, building, tracking, checkpoints).
The first job builds and traces the network; the others take it over (al_experiments.app.reuse),
so the medians over jobs 2..N are the steady state and job 1 is reported apart.

With ``--launcher pool`` (``hydra/launcher=pool``: joblib's reusable workers, one per core) a
worker's first job pays the process start and TensorFlow's import; its later jobs take the
network over as on the basic launcher, and what they pay is the gap after the worker's previous
job (dispatch, Hydra's composition of the job's config in the worker, its set-up) and ours.

With ``--launcher local`` (``hydra/launcher=local``: a process per job, all started at once, as
SLURM runs an array's tasks) every job pays a process's start: Python and the imports until
Hydra starts the job, TensorFlow's import and the network's build inside it, and in its first
round the tracing and compiling of the training program (that round's training time beyond the
second round's), which the compile cache (``compile_cache``) turns into a load. ``--cache``
runs the sweep three ways, one after the other: with an empty cache (every job compiles), with
the cache the first sweep filled (the next sweep, a re-run, the later tasks of an array), and
with ``compile_cache=null``; the last two take turns, ``--repeats`` times each.
Usage: python benchmarks/bench_sweep.py [--launcher basic|local|pool] [--seeds 0,1,2] [--cache]
       [--repeats K] [--json FILE] [overrides...]
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
QUERIES = ("random", "bald", "max_entropy")
SETTINGS = ["loop.max_rounds=6", "model.fit.epochs=50", "model.fit.min_steps=null"]
PHASES = ("train_time", "query_time", "optim_time", "eval_time")


def csv_rows(csv_path: str) -> list[dict]:
    with open(csv_path, newline="") as handle:  # tf_al's layout: space-separated
        return list(csv.DictReader(handle, delimiter=" "))


def rounds_seconds(rows: list[dict]) -> float:
    return sum(float(row[phase]) for row in rows for phase in PHASES if row.get(phase) not in (None, ""))


def first_round_excess(rows: list[dict]) -> float:
    """The first round's training time beyond the second's: tracing and compiling (or loading)
    the training program, which the first round pays once per process."""
    return float(rows[0]["train_time"]) - float(rows[1]["train_time"])


def one_sweep(sweep: list[str], overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{folder}/mlflow.db"
        subprocess.run([sys.executable, "-c", "import sys; from al_experiments.tracking import mlflow_store; "
                        "mlflow_store.ensure_experiment(sys.argv[1], 'al-experiments')", store], check=True)
        times = os.path.join(folder, "times.jsonl")
        env = {**os.environ, "AL_BENCH_TIMES": times, "MLFLOW_TRACKING_URI": store,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        subprocess.run([str(AL_RUN), "-m", *sweep, *overrides, "+hydra.callbacks.timer._target_=job_timer.JobTimer"],
                       cwd=folder, env=env, check=True, capture_output=True)
        command = time.perf_counter() - start
        events = [json.loads(line) for line in open(times)]
        tables = {}
        for path in glob.glob(os.path.join(folder, "multirun", "*", "*", "metrics", "*.csv")):
            name = os.path.basename(path)  # <job>_<seed>_<model>_<query>.csv
            query = next(q for q in sorted(QUERIES, key=len, reverse=True) if name.endswith(f"_{q}.csv"))
            tables[(int(name.split("_")[1]), query)] = csv_rows(path)
    begin = next(e["t"] for e in events if e["event"] == "multirun_start")
    end = next(e["t"] for e in events if e["event"] == "multirun_end")
    jobs = []  # in the order the jobs ended
    for finish in (e for e in events if e["event"] == "job_end"):
        rows = tables[(finish["seed"], finish["query"])]
        start_event = next(e for e in reversed([e for e in events if e["event"] == "job_start"])
                           if e["pid"] == finish["pid"] and e["t"] < finish["t"])
        process_start = start_event.get("process_start")
        jobs.append({"start": start_event["t"], "end": finish["t"], "rounds": rounds_seconds(rows), "pid": finish["pid"],
                     "first_round_excess": first_round_excess(rows),
                     "before_job": None if process_start is None else start_event["t"] - process_start})
    assert len(jobs) == len(tables), (len(jobs), len(tables))
    for job in jobs:
        job["ours_beyond_rounds"] = job["end"] - job["start"] - job["rounds"]
    ordered = sorted(jobs, key=lambda job: job["start"])
    return {
        "command_seconds": command, "sweep_seconds": end - begin, "jobs": ordered,
        "launcher_gap": [b["start"] - a["end"] for a, b in zip(ordered, ordered[1:])],
        "sweep_start": ordered[0]["start"] - begin,
        "overhead_per_job_all_in": (end - begin - sum(job["rounds"] for job in jobs)) / len(jobs),
        "process_start_seconds": command - (end - begin),
    }


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def basic_figures(sweeps: list[dict], jobs: int) -> list[tuple[str, float]]:
    later = lambda key: median([job[key] for s in sweeps for job in s["jobs"][1:]])  # noqa: E731
    gap = median([v for s in sweeps for v in s["launcher_gap"]])
    sweep_start = median([s["sweep_start"] / len(s["jobs"]) for s in sweeps])
    steady = later("ours_beyond_rounds") + gap + sweep_start
    return [
        (f"rounds of a job (train + query + evaluation, median of jobs 2-{jobs})", later("rounds")),
        ("beyond its rounds, ours: job 1 (builds and traces the network)",
         median([s["jobs"][0]["ours_beyond_rounds"] for s in sweeps])),
        ("job 1's first round beyond its second (traces and compiles, or loads, the training program)",
         median([s["jobs"][0]["first_round_excess"] for s in sweeps])),
        (f"beyond its rounds, ours: jobs 2-{jobs} (take the network over)", later("ours_beyond_rounds")),
        ("Hydra: launcher's compose between two jobs", gap),
        ("Hydra: sweeper's check of every config before the sweep, per job", sweep_start),
        ("overhead per job, steady state (the three above)", steady),
        (f"overhead per job, whole sweep (sweep time - rounds) / {jobs}",
         median([s["overhead_per_job_all_in"] for s in sweeps])),
        ("the command before the sweep starts (imports, checks)", median([s["process_start_seconds"] for s in sweeps])),
        ("the whole command", median([s["command_seconds"] for s in sweeps])),
    ]


def local_figures(sweeps: list[dict], jobs: int) -> list[tuple[str, float]]:
    every = lambda key: median([job[key] for s in sweeps for job in s["jobs"]])  # noqa: E731
    before, ours, excess = every("before_job"), every("ours_beyond_rounds"), every("first_round_excess")
    return [
        ("rounds of a job (train + query + evaluation, median of the jobs)", every("rounds")),
        ("process start to the job's start (Python, imports, Hydra's set-up of the job)", before),
        ("beyond its rounds, ours (TensorFlow's import, checks, build, tracking)", ours),
        ("first round beyond the second (traces and compiles, or loads, the training program)", excess),
        ("overhead per job in its own process (the three above)", before + ours + excess),
        (f"the sweep's wall time per job ({jobs} processes at once)",
         median([s["sweep_seconds"] / len(s["jobs"]) for s in sweeps])),
        ("the whole command", median([s["command_seconds"] for s in sweeps])),
    ]


def pool_figures(sweeps: list[dict], jobs: int) -> list[tuple[str, float]]:
    firsts, laters, gaps, workers = [], [], [], []
    for sweep in sweeps:
        by_worker: dict[int, list[dict]] = {}
        for job in sweep["jobs"]:  # in the order they started
            by_worker.setdefault(job["pid"], []).append(job)
        workers.append(len(by_worker))
        for runs in by_worker.values():
            firsts.append(runs[0])
            laters.extend(runs[1:])
            gaps.extend(b["start"] - a["end"] for a, b in zip(runs, runs[1:]))
    ours, gap = median([job["ours_beyond_rounds"] for job in laters]), median(gaps)
    return [
        ("worker processes", median(workers)),
        ("rounds of a job (train + query + evaluation, median of the jobs)",
         median([job["rounds"] for s in sweeps for job in s["jobs"]])),
        ("sweep start to the first job's start (the sweeper's checks, the workers' start)",
         median([s["sweep_start"] for s in sweeps])),
        ("a worker's first job: process start to the job's start",
         median([job["before_job"] for job in firsts])),
        ("a worker's first job: beyond its rounds, ours (TensorFlow's import, build)",
         median([job["ours_beyond_rounds"] for job in firsts])),
        ("later jobs of a worker: beyond their rounds, ours (take the network over)", ours),
        ("later jobs of a worker: gap after the worker's previous job (dispatch, Hydra's compose and set-up)", gap),
        ("overhead per later job of a worker (the two above)", ours + gap),
        (f"worker time beyond the rounds, whole sweep: (workers x sweep time - rounds) / {jobs}",
         median([(len({j["pid"] for j in s["jobs"]}) * s["sweep_seconds"] - sum(j["rounds"] for j in s["jobs"]))
                 / len(s["jobs"]) for s in sweeps])),
        ("the whole command", median([s["command_seconds"] for s in sweeps])),
    ]


def tensorflow_import_seconds() -> float:
    """TensorFlow's and Keras' import in a fresh process, as a job's process pays it."""
    code = ("import time; t = time.perf_counter()\n"
            "from al_experiments.utils.quiet_tensorflow import import_tensorflow\n"
            "import_tensorflow(); import keras; print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launcher", choices=("basic", "local", "pool"), default="basic")
    parser.add_argument("--seeds", default="0,1,2", help="the sweep's seeds (each runs the three queries)")
    parser.add_argument("--cache", action="store_true",
                        help="compare an empty, a filled and no compile cache (see the module's docstring)")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps to run per setting (medians are over them)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("overrides", nargs="*", help="more overrides for the sweep, e.g. +model.wrapper.xla=false")
    args = parser.parse_args()
    sweep = [f"query={','.join(QUERIES)}", f"seed={args.seeds}", *SETTINGS]
    overrides = list(args.overrides) + ([] if args.launcher == "basic" else [f"hydra/launcher={args.launcher}"])
    jobs = len(QUERIES) * len(args.seeds.split(","))
    figures_of = {"basic": basic_figures, "local": local_figures, "pool": pool_figures}[args.launcher]
    with tempfile.TemporaryDirectory() as cache:
        if args.cache:  # a sweep fills the cache, then filled and no cache take turns
            cache_on = [*overrides, f"compile_cache={cache}"]
            runs = {"empty cache": [one_sweep(sweep, cache_on)], "filled cache": [], "no cache": []}
            for _ in range(args.repeats):
                runs["filled cache"].append(one_sweep(sweep, cache_on))
                runs["no cache"].append(one_sweep(sweep, [*overrides, "compile_cache=null"]))
        else:
            runs = {"seconds": [one_sweep(sweep, overrides) for _ in range(args.repeats)]}
    columns = {name: dict(figures_of(sweeps, jobs)) for name, sweeps in runs.items()}
    if args.launcher == "local":
        seconds = median([tensorflow_import_seconds() for _ in range(3)])
        for column in columns.values():
            column["of which TensorFlow's and Keras' import (a fresh process, median of 3)"] = seconds
    rows = list(next(iter(columns.values())))
    command = "al-run -m " + " ".join(sweep + overrides)
    print(f"| {command} ({args.repeats} sweeps a setting, medians) | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{columns[name][row]:.3f}" for name in columns) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "figures": columns, "sweeps": runs}, indent=2))


if __name__ == "__main__":
    main()
