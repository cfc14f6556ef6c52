"""The MLflow side of tracking: store checks, experiments, one run per job, sweep parent runs.

Everything goes through ``MlflowClient`` with explicit run ids rather than MLflow's global
"active run", so jobs that share one process (Hydra's basic launcher) cannot leak a run into
each other. The loop never sees MLflow: ``JobRun.log_round`` consumes its step dicts.

Parent runs of a sweep are coordinated through a small JSON marker in the sweep directory:
the launching process announces the sweep (``announce_sweep``), the first job that passed
validation creates the parent run (``parent_run_for``, under a file lock, so parallel and
SLURM jobs agree on one parent), and the launching process closes it (``close_sweep``).
A sweep whose jobs all fail validation thus leaves no run behind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import filelock

from al_experiments.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
PARENT_MARKER = ".mlflow_sweep.json"
_BATCH = 100  # MLflow's log_batch limit for params per call


# MLflow's UI opens an experiment on its GenAI overview unless the experiment says it holds
# model training; this tag (the UI's "experiment type") makes it open on the runs.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be used; the message is one sentence with the fix."""


class JobTerminated(KeyboardInterrupt):
    """SIGTERM arrived: the run is recorded as KILLED, like a Ctrl-C."""


# ----------------------------------------------------------------------------- the store
def resolve_tracking_uri(configured: str | None) -> str:
    """Config value, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the cwd.

    Relative SQLite paths are made absolute now, so every job of a sweep (and the process
    closing the parent run) addresses the same file whatever its working directory.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    db = _sqlite_path(uri)
    if db is not None and not os.path.isabs(db):
        uri = "sqlite:///" + os.path.abspath(db)
    return uri


def _sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None
    return uri[len("sqlite:///"):].split("?", 1)[0]


def check_tracking_store(uri: str, timeout_s: float) -> None:
    """Fail fast, before any run exists, when ``uri`` cannot work."""
    scheme = urlparse(uri).scheme
    fix = "point mlflow.tracking_uri (or MLFLOW_TRACKING_URI) at a running server or at sqlite:///mlflow.db"
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
                if response.status != 200:
                    raise TrackingUnavailable(
                        f"The MLflow tracking server at {uri} answered /health with HTTP {response.status}; {fix}."
                    )
        except urllib.error.HTTPError as exc:
            raise TrackingUnavailable(
                f"The MLflow tracking server at {uri} answered /health with HTTP {exc.code}; {fix}."
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingUnavailable(
                f"The MLflow tracking server at {uri} cannot be reached within {timeout_s:g} s "
                f"({reason}); start it, or {fix}."
            ) from None
    elif scheme == "sqlite":
        folder = os.path.dirname(_sqlite_path(uri) or "") or "."
        if not os.path.isdir(folder):
            raise TrackingUnavailable(
                f"The folder {folder!r} of the MLflow SQLite store {uri} does not exist; create it or {fix}."
            )
    elif scheme in ("", "file"):
        raise TrackingUnavailable(
            f"mlflow.tracking_uri={uri!r} is a file store, which MLflow >= 3.13 refuses; "
            "use sqlite:///<path>/mlflow.db (or a tracking server) instead."
        )


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise first use of a SQLite file: concurrent schema migrations corrupt it."""
    db = _sqlite_path(uri)
    if db is None:
        yield  # a server (or a real database) serialises creation itself
        return
    with filelock.FileLock(db + ".lock", timeout=300):
        yield


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with the store) if missing.

    For a SQLite store the artifacts go to ``mlartifacts/`` beside the database file, so a
    store is one self-contained folder whatever the working directory was.
    """
    from mlflow.exceptions import MlflowException

    with _store_lock(uri):
        client = _client(uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            db = _sqlite_path(uri)
            location = Path(db).resolve().parent.joinpath("mlartifacts").as_uri() if db else None
            try:
                return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING})
            except MlflowException:
                experiment = client.get_experiment_by_name(name)  # created meanwhile by another job
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise TrackingUnavailable(
                f"The MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) "
                "or choose another mlflow.experiment_name."
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:  # made elsewhere: mark it, unless its owner chose a kind
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return experiment.experiment_id


# ----------------------------------------------------------------------------- values
def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings -> dotted keys; lists as JSON, so every leaf is one MLflow param."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = str(value)
    return flat


# MLflow names of a round's sections: the loop's ``eval`` is the test split, ``optim`` the
# validation split (the CSV keeps tf_al's ``eval_``/``optim_`` columns).
_SECTION_PREFIX = {"train": "train", "optim": "val", "eval": "test"}


def short_metric_name(key: str) -> str:
    """``sparse_categorical_accuracy`` -> ``accuracy``, ``sparse_categorical_crossentropy`` ->
    ``loss``; other names unchanged."""
    from al_experiments.wrapper.keras_metrics import is_accuracy

    lowered = key.lower()
    if is_accuracy(lowered):
        return "accuracy"
    if lowered == "loss" or lowered.endswith("crossentropy") or lowered.endswith("_loss"):
        return "loss"
    return key


def round_metrics(step: Mapping[str, Any]) -> dict[str, float]:
    """Every scalar of a round under a short name: ``test_accuracy``, ``test_loss``,
    ``train_loss``, ``val_accuracy``, ..., the phase seconds and the pool sizes.

    Training histories are per epoch; their last value is the round's training result. A
    second metric that would take a name already used keeps its own (``test_<metric>``).
    """
    metrics: dict[str, float] = {}
    for section, prefix in _SECTION_PREFIX.items():
        values = step.get(section) or {}
        for key, value in values.items():
            if isinstance(value, (list, tuple)):
                value = value[-1] if value else None
            if _is_number(value):
                name = f"{prefix}_{short_metric_name(key)}"
                metrics[name if name not in metrics else f"{prefix}_{key}"] = float(value)
    for key in ("train_time", "query_time", "eval_time", "labeled_pool_size", "unlabeled_pool_size"):
        if _is_number(step.get(key)):
            metrics[key] = float(step[key])
    if step.get("optim") and _is_number(step.get("optim_time")):  # only where a validation step ran
        metrics["optim_time"] = float(step["optim_time"])
    return metrics


def _is_number(value: Any) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- one run per job
class JobRun:
    """One MLflow run, ended FINISHED, FAILED (exception) or KILLED (Ctrl-C, SIGTERM).

    Use as a context manager. Files registered with ``add_artifact``/``add_json`` are uploaded
    when the run ends, whatever its status, so a failed run still shows its partial CSV.
    """

    def __init__(self, uri: str, experiment_id: str, run_name: str, tags: Mapping[str, str],
                 parent_run_id: str | None = None, resume_run_id: str | None = None) -> None:
        self.uri = uri
        self.client = _client(uri)
        tags = dict(tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id  # what the UI nests child runs by
        if resume_run_id is None:
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
            self.run_id: str = run.info.run_id
        else:
            # A resumed job continues its own run: RUNNING again, under the current sweep.
            self.run_id = resume_run_id
            self.client.update_run(resume_run_id, status="RUNNING")
            for key, value in tags.items():
                self.client.set_tag(resume_run_id, key, value)
        self._artifacts: list[tuple[str, str | None]] = []
        self._json: dict[str, Any] = {}
        self._previous_sigterm: Any = None

    def __enter__(self) -> "JobRun":
        # Only where nobody else handles SIGTERM (submitit installs its own in its workers).
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            # Ctrl-C, SIGTERM, or submitit's exit after a preemption requeue: the job was
            # stopped from outside and a rerun (or the requeued job) resumes it.
            status = "KILLED"
        else:
            status = "FAILED"
        if exc_type is None:
            try:
                self._upload()
            finally:
                self.client.set_terminated(self.run_id, status=status)
            return False
        # Ending after an error: the store itself may be what failed, so recording the end must
        # not replace the job's own error with a second one.
        from mlflow.exceptions import MlflowException

        try:
            if status == "FAILED":
                self.client.set_tag(self.run_id, "error", f"{exc_type.__name__}: {exc}"[:5000])
            self._upload()
            self.client.set_terminated(self.run_id, status=status)
        except (MlflowException, OSError) as failure:
            log.warning("Could not record the end of MLflow run %s (%s); a rerun of the same command "
                        "resumes it.", self.run_id, str(failure).splitlines()[0][:300])
        return False

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_dataset(self, name: str, digest: str, source: str, schema: Mapping[str, Any],
                    profile: Mapping[str, Any], context: str = "training") -> None:
        """The data the job ran on, as an MLflow dataset input (the UI's Dataset column)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest[:36] or "unknown", source_type="local", source=source,
                          schema=json.dumps(dict(schema)), profile=json.dumps(dict(profile)))
        self.client.log_inputs(self.run_id, datasets=[
            DatasetInput(dataset, tags=[InputTag(key="mlflow.data.context", value=context)])])

    def set_description(self, text: str) -> None:
        set_run_description(self.uri, self.run_id, text)

    def log_round(self, step: Mapping[str, Any]) -> None:
        """Log a loop step dict at ``step = iteration`` (the round)."""
        self.log_metrics(round_metrics(step), step=int(step["iteration"]))

    # ---- what an interrupted attempt left: log only what is missing, never twice
    def log_missing_params(self, params: Mapping[str, Any]) -> None:
        logged = self.client.get_run(self.run_id).data.params
        self.log_params({k: v for k, v in params.items() if k not in logged})

    def log_missing_metrics(self, steps: list[tuple[int, Mapping[str, float]]]) -> int:
        """Log each ``(step, metrics)`` value that the run does not hold yet; returns how many."""
        keys = {key for _, metrics in steps for key in metrics}
        logged = {key: {m.step for m in self.client.get_metric_history(self.run_id, key)} for key in keys}
        count = 0
        for step, metrics in steps:
            missing = {k: v for k, v in metrics.items() if step not in logged[k]}
            self.log_metrics(missing, step=step)
            count += len(missing)
        return count

    def log_missing_rounds(self, history: list[Mapping[str, Any]]) -> int:
        return self.log_missing_metrics([(int(s["iteration"]), round_metrics(s)) for s in history])

    def add_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._artifacts.append((os.fspath(path), artifact_path))

    def add_json(self, artifact_file: str, content: Any) -> None:
        """Upload ``content`` as JSON at the end; re-adding the same name replaces it."""
        self._json[artifact_file] = content

    def _upload(self) -> None:
        for path, artifact_path in self._artifacts:
            if os.path.isdir(path):
                self.client.log_artifacts(self.run_id, path, artifact_path)
            elif os.path.isfile(path):
                self.client.log_artifact(self.run_id, path, artifact_path)
        for name, content in self._json.items():
            self.client.log_dict(self.run_id, content, name)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise JobTerminated(f"received signal {signum}")


# ----------------------------------------------------------------------------- sweep parents
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
                   jobs: int | None = None) -> None:
    """Called once by the launching process: jobs of this sweep share one parent run.

    ``previous`` (from ``recorded_sweep``) continues an earlier attempt of the same sweep: its
    parent run is set RUNNING again and its metrics folder stays the sweep's. Otherwise the
    first job creates the parent, named ``run_name`` with ``params`` (the swept overrides), and
    writes it to ``record`` too, for the next attempt.
    """
    os.makedirs(sweep_dir, exist_ok=True)
    previous = previous or {}
    if previous.get("parent_run_id"):
        _client(uri).update_run(previous["parent_run_id"], status="RUNNING")
    content = {"tracking_uri": uri, "experiment_id": experiment_id,
               "parent_run_id": previous.get("parent_run_id"),
               "metrics_dir": previous.get("metrics_dir") or os.path.join(os.path.abspath(sweep_dir), "metrics"),
               "record": os.fspath(record) if record else None,
               "run_name": run_name, "params": dict(params or {}), "jobs": jobs, "started": time.time()}
    atomic_write_text(_marker(sweep_dir), json.dumps(content, indent=2))


def recorded_sweep(record: str | os.PathLike[str], uri: str, experiment_id: str) -> dict[str, Any] | None:
    """What an earlier attempt of a sweep recorded (its parent run and metrics folder), if that
    parent is in this store and experiment and still exists."""
    from mlflow.exceptions import MlflowException

    try:
        content = json.loads(Path(record).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or (content.get("tracking_uri"), content.get("experiment_id")) != (uri, experiment_id):
        return None
    try:
        run = _client(uri).get_run(content["parent_run_id"])
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


def parent_run_for(sweep_dir: str | os.PathLike[str], uri: str, experiment_id: str) -> str | None:
    """The parent run id of an announced sweep, created by the first job that asks.

    None when no sweep was announced (the sweep callback is off) or when it was announced for
    another store or experiment: a job never nests under a run it cannot reach.
    """
    if _read_marker(sweep_dir) is None:
        return None
    with filelock.FileLock(str(_marker(sweep_dir)) + ".lock", timeout=300):
        marker = _read_marker(sweep_dir) or {}
        if marker.get("tracking_uri") != uri or marker.get("experiment_id") != experiment_id:
            return None
        if marker.get("parent_run_id") is None:
            name = marker.get("run_name") or f"sweep-{Path(sweep_dir).resolve().name}"
            client = _client(uri)
            run = client.create_run(
                experiment_id, run_name=name,
                tags={"sweep": str(Path(sweep_dir).resolve()), "run_kind": "sweep",
                      "mlflow.source.name": "al-run -m", "mlflow.source.type": "LOCAL"},
            )
            if marker.get("params"):
                from mlflow.entities import Param

                client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in marker["params"].items()])
            marker["parent_run_id"] = run.info.run_id
            atomic_write_text(_marker(sweep_dir), json.dumps(marker, indent=2))
            if marker.get("record"):
                os.makedirs(os.path.dirname(marker["record"]), exist_ok=True)
                atomic_write_text(marker["record"], json.dumps(
                    {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": run.info.run_id,
                     "metrics_dir": marker.get("metrics_dir")}))
        return marker["parent_run_id"]


def sweep_parent(sweep_dir: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``(tracking_uri, parent_run_id)`` of an announced sweep, or None if it has no parent run."""
    marker = _read_marker(sweep_dir)
    if not marker or not marker.get("parent_run_id"):
        return None
    return marker["tracking_uri"], marker["parent_run_id"]


# The UI loads a saved view from the experiment tag ``mlflow.sharedViewState.<key>`` when its
# address carries ``viewStateShareKey=<key>`` (MLflow's own "share view"); ``workflowType``
# opens the model-training pages rather than the GenAI overview.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
UI_QUERY = "workflowType=machine_learning"


def share_sweep_view(uri: str, experiment_id: str, sweep_dir: str | os.PathLike[str]) -> str:
    """Save a UI view of one sweep: its runs grouped by query, and test accuracy against
    labelled points as the charts' x axis. Returns the view's key (see ``sweep_view_page``)."""
    import hashlib

    folder = str(Path(sweep_dir).resolve())
    key = "sweep-" + hashlib.sha256(folder.encode()).hexdigest()[:16]
    state = {
        "searchFilter": "tags.sweep = '{}'".format(folder.replace("'", "\\'")),
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "query"}]},
        "useGroupedValuesInCharts": True,
        "globalLineChartConfig": {"xAxisKey": "metric", "selectedXAxisMetricKey": "labeled_pool_size",
                                  "lineSmoothness": 0},
        "chartsSearchFilter": "test_accuracy",
    }
    _client(uri).set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, json.dumps(state))
    return key


def ui_address(uri: str) -> str:
    """The UI's address for this store: the server's own, or for a local store the one
    ``make ui`` / ``mlflow ui`` serves."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


def set_run_description(uri: str, run_id: str, text: str) -> None:
    """A run page's description (MLflow's ``mlflow.note.content`` tag)."""
    _client(uri).set_tag(run_id, "mlflow.note.content", text)


def run_experiment_id(uri: str, run_id: str) -> str:
    return _client(uri).get_run(run_id).info.experiment_id


def close_sweep(sweep_dir: str | os.PathLike[str], status: str) -> None:
    """End the sweep's parent run with ``status`` if it exists and is still running."""
    marker = _read_marker(sweep_dir)
    if not marker or not marker.get("parent_run_id"):
        return
    client = _client(marker["tracking_uri"])
    run_id = marker["parent_run_id"]
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status=status)
