"""A sweep's parent MLflow run, agreed on by jobs that may run in other processes or nodes.

The protocol, through one JSON marker file in the sweep folder (``.mlflow_sweep.json``):

1. The launching process announces the sweep before any job (``announce_sweep``, from the
   Hydra callback's ``on_multirun_start``): the store and experiment to use, the metrics folder,
   the parent run's name and params (the swept overrides), the number of jobs, and, when the
   same sweep command ran before (``resume``), that attempt's parent run, set RUNNING again.
2. The first job that passed its config check creates the parent run (``parent_run_for``),
   under a file lock on the marker, so parallel and SLURM jobs agree on one parent; the others
   read it. A sweep whose jobs all fail their check leaves no run behind. The parent is also
   written to ``record`` (in ``state_dir/sweeps/``), where the next attempt finds it.
3. Each job nests under the parent (``mlflow.parentRunId``) and reads the sweep's progress
   (``sweep_progress``) and swept keys (``swept_params``) from the marker.
4. The launching process ends the parent (``close_sweep``): FINISHED after the last job, FAILED
   or KILLED when Hydra stopped early (the CLI's exit path closes what is still open).

A job whose marker names another store or experiment does not nest: it never points at a run
it cannot reach.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import filelock

from al_experiments.tracking.mlflow_store import client as _client
from al_experiments.tracking.mlflow_store import create_run
from al_experiments.tracking.server_wait import ServerWait
from al_experiments.utils.atomic import atomic_write_text

PARENT_MARKER = ".mlflow_sweep.json"


def _marker(sweep_dir: str | os.PathLike[str]) -> Path:
    return Path(sweep_dir) / PARENT_MARKER


def _read_marker(sweep_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        return json.loads(_marker(sweep_dir).read_text())
    except FileNotFoundError:
        return None


def announce_sweep(sweep_dir: str | os.PathLike[str], uri: str, experiment_id: str,
                   previous: Mapping[str, Any] | None = None, record: str | os.PathLike[str] | None = None,
                   run_name: str | None = None, params: Mapping[str, str] | None = None,
                   jobs: int | None = None, wait: ServerWait | None = None) -> None:
    """Called once by the launching process: jobs of this sweep share one parent run.

    ``previous`` (from ``recorded_sweep``) continues an earlier attempt of the same sweep: its
    parent run is set RUNNING again and its metrics folder stays the sweep's. Otherwise the
    first job creates the parent, named ``run_name`` with ``params`` (the swept overrides), and
    writes it to ``record`` too, for the next attempt. ``wait``: the launching process's wait
    for its server (``mlflow_store.client``).
    """
    os.makedirs(sweep_dir, exist_ok=True)
    previous = previous or {}
    if previous.get("parent_run_id"):
        _client(uri, wait).update_run(previous["parent_run_id"], status="RUNNING")
    content = {"tracking_uri": uri, "experiment_id": experiment_id,
               "parent_run_id": previous.get("parent_run_id"),
               "metrics_dir": previous.get("metrics_dir") or os.path.join(os.path.abspath(sweep_dir), "metrics"),
               "record": os.fspath(record) if record else None,
               "run_name": run_name, "params": dict(params or {}), "jobs": jobs, "started": time.time()}
    atomic_write_text(_marker(sweep_dir), json.dumps(content, indent=2))


def recorded_sweep(record: str | os.PathLike[str], uri: str, experiment_id: str,
                   wait: ServerWait | None = None) -> dict[str, Any] | None:
    """What an earlier attempt of a sweep recorded (its parent run and metrics folder), if that
    parent is in this store and experiment and still exists."""
    from mlflow.exceptions import MlflowException  # slow to import: loaded on use

    try:
        content = json.loads(Path(record).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or (content.get("tracking_uri"), content.get("experiment_id")) != (uri, experiment_id):
        return None
    try:
        run = _client(uri, wait).get_run(content["parent_run_id"])
    except (MlflowException, KeyError):
        return None
    return content if run.info.lifecycle_stage == "active" else None


def swept_params(sweep_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The overrides of an announced sweep's command (``{"query": "random,bald", ...}``)."""
    marker = _read_marker(sweep_dir)
    return dict(marker.get("params") or {}) if marker else {}


def sweep_progress(sweep_dir: str | os.PathLike[str]) -> tuple[int | None, float]:
    """``(jobs in the sweep or None, seconds since it was announced)``."""
    marker = _read_marker(sweep_dir) or {}
    return marker.get("jobs"), time.time() - float(marker.get("started") or time.time())


def sweep_metrics_dir(sweep_dir: str | os.PathLike[str]) -> str | None:
    """The metrics folder of an announced sweep (that of its first attempt when resumed)."""
    marker = _read_marker(sweep_dir)
    return marker.get("metrics_dir") if marker else None


def parent_run_for(sweep_dir: str | os.PathLike[str], uri: str, experiment_id: str,
                   wait: ServerWait | None = None) -> str | None:
    """The parent run id of an announced sweep, created by the first job that asks.

    None when no sweep was announced (the sweep callback is off) or when it was announced for
    another store or experiment: a job never nests under a run it cannot reach. ``wait``: the
    job's wait for its server (``mlflow_store.client``).
    """
    if _read_marker(sweep_dir) is None:
        return None
    with filelock.FileLock(str(_marker(sweep_dir)) + ".lock", timeout=300):
        marker = _read_marker(sweep_dir) or {}
        if marker.get("tracking_uri") != uri or marker.get("experiment_id") != experiment_id:
            return None
        if marker.get("parent_run_id") is None:
            name = marker.get("run_name") or f"sweep-{Path(sweep_dir).resolve().name}"
            run_id = create_run(uri, experiment_id, name,
                                {"sweep": str(Path(sweep_dir).resolve()), "run_kind": "sweep",
                                 "mlflow.source.name": "al-run -m", "mlflow.source.type": "LOCAL"}, wait=wait)
            if marker.get("params"):
                from mlflow.entities import Param  # slow to import: loaded on use

                _client(uri, wait).log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in marker["params"].items()])
            marker["parent_run_id"] = run_id
            atomic_write_text(_marker(sweep_dir), json.dumps(marker, indent=2))
            if marker.get("record"):
                os.makedirs(os.path.dirname(marker["record"]), exist_ok=True)
                atomic_write_text(marker["record"], json.dumps(
                    {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": run_id,
                     "metrics_dir": marker.get("metrics_dir")}))
        return marker["parent_run_id"]


def sweep_parent(sweep_dir: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``(tracking_uri, parent_run_id)`` of an announced sweep, or None if it has no parent run."""
    marker = _read_marker(sweep_dir)
    if not marker or not marker.get("parent_run_id"):
        return None
    return marker["tracking_uri"], marker["parent_run_id"]


def close_sweep(sweep_dir: str | os.PathLike[str], status: str, wait: ServerWait | None = None) -> None:
    """End the sweep's parent run with ``status`` if it exists and is still running."""
    marker = _read_marker(sweep_dir)
    if not marker or not marker.get("parent_run_id"):
        return
    if wait is not None and wait.uri != marker["tracking_uri"]:
        wait = None  # the marker's store is not the one this process waited for
    client = _client(marker["tracking_uri"], wait)
    run_id = marker["parent_run_id"]
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status=status)
