"""Fault injection on a real sweep: kill ``al-run -m`` (SIGKILL) at named points of its jobs,
drawn at random or fixed, re-run the same command until it completes, and compare every MLflow
run and every CSV with an uninterrupted sweep, row for row. The sweeps are classical, each run of
the command a process forked with al-run's imports made (tests/_preforked.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from _app_helpers import QUICK_CLASSICAL, csv_files, mlflow_runs, run_cli, with_store
from al_experiments.utils.failpoints import ENV as FAILPOINTS
from test_resume_cli import csv_rows, run_record

pytestmark = pytest.mark.slow

# Two jobs, run one after the other: a kill lands in the first that reaches its point.
SWEEP = ["-m", *QUICK_CLASSICAL, "loop.max_rounds=3", "query=random,bald", "seed=0"]
JOBS = 2
POINTS = ["after_run_created", "after_run_finished",
          *(f"{name}@{round_index}" for name in ("before_checkpoint", "after_checkpoint", "after_csv", "after_mlflow")
            for round_index in (1, 2, 3))]


def sweep_results(tmp_path: Path) -> tuple[dict, dict]:
    """``({job identity: run record}, {csv name: rows})``, after checking the sweep's shape:
    one FINISHED parent, every job FINISHED under it, nothing left RUNNING."""
    runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("run_kind") != "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags.get("mlflow.parentRunId") for r in jobs} == {parents[0].info.run_id}
    records = {r.data.tags["job_identity"]: run_record(tmp_path, r) for r in jobs}
    assert len(records) == len(jobs) == JOBS, "one run per job, none duplicated"
    return records, {path.name: csv_rows(path) for path in csv_files(tmp_path)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = with_store(tmp_path_factory.mktemp("uninterrupted"), tmp_path_factory)
    done = run_cli(tmp_path, *SWEEP, preforked=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep_results(tmp_path)


def run_until_done(tmp_path: Path, failpoints: Callable[[], str], attempts: int = 10) -> int:
    """Re-run the same sweep command, each time with the failpoints ``failpoints()`` gives,
    until it exits 0; every run before must have died at one. Returns the number of runs."""
    for attempt in range(1, attempts + 1):
        points = failpoints()
        done = run_cli(tmp_path, *SWEEP, timeout=600, preforked=True, env={FAILPOINTS: points})
        if done.returncode == 0:
            return attempt
        assert done.returncode == -9, (points, done.stderr[-3000:])
    raise AssertionError(f"the sweep did not complete in {attempts} attempts")


def test_kills_at_random_points_then_reruns_give_the_uninterrupted_sweep(folder, uninterrupted):
    """Each run dies at a point drawn by a seeded RNG, the same draws however fast the machine,
    in whichever job reaches it first; the first run whose point no job reaches any more
    completes the sweep."""
    chance = random.Random(20261125)
    attempts = run_until_done(folder, lambda: chance.choice(POINTS))
    assert attempts > 3, "at least three kills landed"
    assert sweep_results(folder) == uninterrupted


def test_every_job_killed_at_the_same_points_needs_one_rerun_per_kill(folder, uninterrupted):
    """A resumed job continues after its checkpoint, so it never reaches a point of its
    checkpointed rounds again: each job dies at after_mlflow@1, then (resumed) at
    after_checkpoint@2, and the next rerun finishes it and starts the next job."""
    attempts = run_until_done(folder, lambda: "after_mlflow@1,after_checkpoint@2")
    assert attempts == 2 * JOBS + 1  # two kills per job, then the run that completes the sweep
    assert sweep_results(folder) == uninterrupted
