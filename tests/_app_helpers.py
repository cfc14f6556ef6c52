"""Helpers shared by the tests of jobs: run the real ``al-run`` in a subprocess inside a fresh
folder, and read back what a job left (MLflow runs in a SQLite store, tf_al CSVs)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).parent / "al-run"
AL_RUN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "al_experiments"]
# small and fast on 2 cores: digits, 2 rounds, 5 epochs, T=5
QUICK = ["+experiment=smoke"]
# The same two rounds with a classical model, for what only a process shows and no network
# changes (servers, credentials, launchers, kills of a sweep): such a job never loads
# TensorFlow, so its process starts in about half the time.
QUICK_CLASSICAL = ["+experiment=smoke", "model=logistic_regression", "dataset=breast_cancer"]


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def cli_command(tmp_path: Path, *args: str, tracking: bool = True) -> tuple[list[str], dict[str, str]]:
    """The ``al-run <args>`` command line and environment, with run/sweep dirs and the MLflow
    store inside ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    extra = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    if tracking:
        extra.append(f"mlflow.tracking_uri={store_uri(tmp_path)}")
    return [*AL_RUN, *args, *extra], env


def run_cli(tmp_path: Path, *args: str, timeout: float = 300, tracking: bool = True, preforked: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``al-run <args>`` run to its end, its output captured, with ``env`` added to its
    environment; ``preforked``: a classical job's process forked from one that made al-run's
    imports once (tests/_preforked.py)."""
    command, base_env = cli_command(tmp_path, *args, tracking=tracking)
    env = {**base_env, **(env or {})}
    if preforked:
        import _preforked

        return _preforked.run(command, cwd=tmp_path, env=env, timeout=timeout)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def assert_nothing_created(tmp_path: Path, result: subprocess.CompletedProcess, *needles: str) -> str:
    """A failed command whose stderr holds ``needles`` and no traceback, and that left no MLflow
    run, no CSV and no metrics folder. Returns its stderr."""
    assert result.returncode != 0
    err = result.stderr.strip()
    assert "Traceback" not in err, err[-3000:]
    for needle in needles:
        assert needle in err, err[-3000:]
    assert mlflow_runs(tmp_path) == []
    assert csv_files(tmp_path) == []
    assert not (tmp_path / "run" / "metrics").exists() and not (tmp_path / "sweep" / "metrics").exists()
    return err


@functools.cache
def _empty_store(basetemp: Path) -> Path:
    from mlflow import MlflowClient

    db = basetemp / "empty-store" / "mlflow.db"
    db.parent.mkdir()
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def with_store(folder: Path, tmp_path_factory: pytest.TempPathFactory, name: str = "mlflow.db") -> Path:
    """``folder`` with an empty MLflow SQLite store in it (its tables made, nothing in them).
    Making the tables takes about 4 s, which every job into a new store would pay: they are made
    once a session and copied; the job still creates its experiment and runs."""
    shutil.copyfile(_empty_store(tmp_path_factory.getbasetemp()), folder / name)
    return folder


def mlflow_runs(tmp_path: Path, experiment: str = "al-experiments") -> list:
    """Every run in the test's store ([] when no store or experiment exists)."""
    if not (tmp_path / "mlflow.db").exists():
        return []
    from mlflow import MlflowClient

    client = MlflowClient(store_uri(tmp_path))
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def metric_history(tmp_path: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    return [(m.step, m.value) for m in MlflowClient(store_uri(tmp_path)).get_metric_history(run_id, key)]


def csv_files(tmp_path: Path) -> list[Path]:
    """CSVs the jobs wrote (not the copies uploaded as MLflow artifacts)."""
    return sorted(p for d in ("run", "sweep") for p in (tmp_path / d).rglob("*.csv"))


def rounds_checkpointed(state_dir: Path) -> int:
    """The last round any job under ``state_dir`` has checkpointed (0 before the first): what a
    test can watch while a job runs without touching the MLflow store the job may be creating."""
    return max(checkpointed_rounds(state_dir), default=0)


def checkpointed_rounds(state_dir: Path) -> list[int]:
    """The round each job under ``state_dir`` has checkpointed (0 while its file is replaced)."""
    import json

    rounds = []
    for path in state_dir.glob("*/checkpoint.json"):
        try:
            rounds.append(int(json.loads(path.read_text())["loop"]["round"]))
        except (OSError, ValueError, KeyError):
            rounds.append(0)
    return rounds


def check_sweep(tmp_path: Path, jobs: int, rounds: int = 2) -> tuple[object, list]:
    """A finished sweep: one FINISHED parent, ``jobs`` FINISHED children with per-round
    histories, one CSV per job and one .meta.json in <sweep>/metrics. Returns (parent, children)."""
    import json

    runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == jobs and len(runs) == jobs + 1
    assert parent.info.status == "FINISHED"
    for run in children:
        assert run.info.status == "FINISHED"
        # A classical model (QUICK_CLASSICAL) has no loss to log; a network logs both.
        losses = ("test_loss", "train_loss") if run.data.params.get("model.loss") not in (None, "None") else ()
        for key in ("test_accuracy", "labeled_pool_size", "train_time", "query_time", "eval_time", *losses):
            history = metric_history(tmp_path, run.info.run_id, key)
            assert [step for step, _ in history] == list(range(1, rounds + 1)), key
        assert run.data.params["al_experiments.version"]
        assert int(run.data.params["data.train_size"]) > 0
        assert len(run.data.params["data.content_hash"]) == 16
        for tag in ("query", "model", "dataset", "seed", "sweep"):
            assert run.data.tags[tag]
    metrics = tmp_path / "sweep" / "metrics"
    csvs = sorted(p.name for p in metrics.glob("*.csv"))
    assert len(csvs) == jobs
    for name in csvs:  # every round of every job once: a header and one row per round
        assert len((metrics / name).read_text().splitlines()) == rounds + 1, name
    meta = json.loads((metrics / ".meta.json").read_text())
    assert sorted(e["experiment_name"] + ".csv" for e in meta["experiments"]) == csvs
    assert {meta["dataset"]["name"]} == {r.data.tags["dataset"] for r in children}
    assert {meta["dataset"]["content_hash"]} == {r.data.params["data.content_hash"] for r in children}
    return parent, children
