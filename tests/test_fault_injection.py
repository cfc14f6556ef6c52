"""Fault injection on a real sweep: kill ``al-run -m`` (SIGKILL, the whole process group) at
random instants or at named points of every job, re-run the same command until it completes,
and compare every MLflow run and every CSV with an uninterrupted sweep, row for row."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from _app_helpers import cli_command, csv_files, mlflow_runs, run_cli
from test_resume_cli import csv_rows, run_record

pytestmark = pytest.mark.slow

SWEEP = ["-m", "+experiment=smoke", "loop.max_rounds=3", "query=random,bald", "seed=0,1"]


def sweep_results(tmp_path: Path) -> tuple[dict, dict]:
    """``({job identity: run record}, {csv name: rows})``, after checking the sweep's shape:
    one FINISHED parent, every job FINISHED under it, nothing left RUNNING."""
    runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("run_kind") != "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags.get("mlflow.parentRunId") for r in jobs} == {parents[0].info.run_id}
    records = {r.data.tags["job_identity"]: run_record(tmp_path, r) for r in jobs}
    assert len(records) == len(jobs) == 4, "one run per job, none duplicated"
    return records, {path.name: csv_rows(path) for path in csv_files(tmp_path)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    done = run_cli(tmp_path, *SWEEP)
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep_results(tmp_path)


def run_until_done(tmp_path: Path, attempts: int = 8, **env_extra: str) -> int:
    """Re-run the same sweep command until it exits 0; returns the number of runs it took."""
    for attempt in range(1, attempts + 1):
        command, env = cli_command(tmp_path, *SWEEP)
        env.update(env_extra)
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            return attempt
        assert done.returncode == -9, done.stderr[-3000:]
    raise AssertionError(f"the sweep did not complete in {attempts} attempts")


def test_random_kills_then_reruns_give_the_uninterrupted_sweep(tmp_path, uninterrupted):
    chance = random.Random(20261125)
    kills = 0
    for _ in range(3):
        command, env = cli_command(tmp_path, *SWEEP)
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(chance.uniform(3.0, 9.0))  # a sweep takes ~20 s here: the first two land
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 2, "the kills must land while the sweep runs"
    run_until_done(tmp_path)
    assert sweep_results(tmp_path) == uninterrupted


@pytest.mark.parametrize("point", ["after_checkpoint@2", "after_mlflow@1"])
def test_every_job_killed_at_the_same_point_completes_one_job_per_rerun(tmp_path, uninterrupted, point):
    attempts = run_until_done(tmp_path, AL_EXPERIMENTS_FAILPOINTS=point)
    assert attempts == 5  # each rerun resumes the killed job, finishes it, and kills the next
    assert sweep_results(tmp_path) == uninterrupted
