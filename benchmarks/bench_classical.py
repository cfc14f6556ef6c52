"""A classical-model job's rounds against the model's own fit and predict (figures only).

The classical benchmark protocol: an RBF SVM (scikit-learn's SVC, no probabilities) on
breast_cancer, standardised features, 20 class-balanced initial labels, one label per round by
margin until the pool is empty (407 rounds). Side by side in one run:

* ``al-run -m model=svm_rbf ... seed=0..K-1``: a real sweep (basic launcher, one process, MLflow
  SQLite store, tf_al CSVs, a checkpoint per round). Its per-job time is the difference between
  a K-seed sweep and a 1-seed sweep, divided by K - 1, so the process start-up and imports drop
  out; per round, that divided by the rounds.
* the bare loop: the same protocol written directly against scikit-learn (fit on the labelled
  set, decision_function on the pool, predict on the test set, take the smallest |f(x)|).

Usage: python benchmarks/bench_classical.py [--seeds 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AL_RUN = Path(sys.executable).parent / "al-run"
PROTOCOL = ["model=svm_rbf", "dataset=breast_cancer", "dataset.scaling=standard", "query=margin",
            "loop.init_size=20", "loop.step_size=1", "loop.max_rounds=null", "~hydra/callbacks"]


def sweep_seconds(seeds: int) -> float:
    """Wall seconds of an ``al-run -m`` sweep over ``seeds`` seeds in a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        # The store exists before the sweep (its creation is not what is measured).
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{folder}/mlflow.db").search_experiments()
        command = [str(AL_RUN), "-m", *PROTOCOL, f"seed=range(0,{seeds})", f"hydra.sweep.dir={folder}/sweep"]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        started = time.perf_counter()
        subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
        return time.perf_counter() - started


def bare_job(seed: int) -> tuple[float, int]:
    """Seconds and rounds of the protocol in plain scikit-learn (the same split and scaling)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(x_train), bool)
    for c in (0, 1):
        labelled[rng.choice(np.flatnonzero(y_train == c), 10, replace=False)] = True
    started, rounds = time.perf_counter(), 0
    while True:
        model = SVC(random_state=seed).fit(x_train[labelled], y_train[labelled])
        (model.predict(x_test) == y_test).mean()
        rounds += 1
        pool = np.flatnonzero(~labelled)
        if not len(pool):
            break
        labelled[pool[np.argmin(np.abs(model.decision_function(x_train[pool])))]] = True
    return time.perf_counter() - started, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    one = sweep_seconds(1)
    many = sweep_seconds(args.seeds)
    bare = [bare_job(seed) for seed in range(args.seeds)]
    rounds = bare[0][1]
    job_s = (many - one) / (args.seeds - 1)
    bare_s = statistics.median(seconds for seconds, _ in bare)
    figures = {
        "seeds": args.seeds, "rounds_per_job": rounds, "sweep_1_seed_s": one, f"sweep_{args.seeds}_seeds_s": many,
        "job_s": job_s, "job_round_ms": 1000 * job_s / rounds, "bare_job_s": bare_s,
        "bare_round_ms": 1000 * bare_s / rounds, "overhead_round_ms": 1000 * (job_s - bare_s) / rounds,
        "minutes_for_300_seeds": (one + 300 * job_s) / 60,
    }
    print(f"SVC margin on breast_cancer, one label a round until the pool is empty ({rounds} rounds a job)")
    print(f"{'':<34} {'a job, s':>9} {'a round, ms':>12}")
    print(f"{'al-run sweep (per job, K=' + str(args.seeds) + ')':<34} {job_s:>9.2f} {figures['job_round_ms']:>12.2f}")
    print(f"{'bare scikit-learn (median)':<34} {bare_s:>9.2f} {figures['bare_round_ms']:>12.2f}")
    print(f"framework overhead a round: {figures['overhead_round_ms']:.2f} ms; "
          f"300 seeds: about {figures['minutes_for_300_seeds']:.1f} min (start-up {one:.1f} s once)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
