"""One MLflow run per job: params once, each round's metrics in one request, artifacts at the end.

The loop never sees MLflow: ``JobRun.log_round`` consumes its step dicts. Metric names are
short and say the split (``test_accuracy``, ``train_loss``, ``val_*``); the tf_al CSVs keep
tf_al's column names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from al_experiments.tracking.mlflow_store import client as _client
from al_experiments.tracking.mlflow_store import NOTE_TAG, create_run
from al_experiments.tracking.server_wait import ServerWait
from al_experiments.utils.signals import sigterm_as_interrupt
from al_experiments.utils.trees import flat_items
from al_experiments.wrapper.keras_metrics import is_accuracy

log = logging.getLogger(__name__)

_BATCH = 100  # MLflow's log_batch limit for params per call


# ----------------------------------------------------------------------------- values
def flatten(tree: Mapping[str, Any]) -> dict[str, str]:
    """Nested mappings -> dotted keys; lists as JSON, so every leaf is one MLflow param."""
    return {key: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
            for key, _, value in flat_items(tree, ".")}


# MLflow names of a round's sections: the loop's ``eval`` is the test split, ``optim`` the
# validation split (the CSV keeps tf_al's ``eval_``/``optim_`` columns).
_SECTION_PREFIX = {"train": "train", "optim": "val", "eval": "test"}


def short_metric_name(key: str) -> str:
    """``sparse_categorical_accuracy`` -> ``accuracy``, ``sparse_categorical_crossentropy`` ->
    ``loss``; other names unchanged."""
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
    for key in ("train_time", "query_time", "eval_time", "labeled_pool_size", "unlabeled_pool_size",
                "copies_selected", "target_picks"):
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


def _lost_insert_race(exc: Exception) -> bool:
    """A store's refusal of a row another client inserted first (PostgreSQL, SQLite, MySQL)."""
    text = str(exc)
    return any(marker in text for marker in ("UniqueViolation", "UNIQUE constraint failed", "Duplicate entry"))


# ----------------------------------------------------------------------------- one run per job
class JobRun:
    """One MLflow run, ended FINISHED, FAILED (exception) or KILLED (Ctrl-C, SIGTERM).

    Use as a context manager. Files registered with ``add_artifact``/``add_json`` are uploaded
    when the run ends, whatever its status, so a failed run still shows its partial CSV.
    ``wait``: the job's wait for its tracking server (``mlflow_store.client``).
    """

    def __init__(self, uri: str, experiment_id: str, run_name: str, tags: Mapping[str, str],
                 parent_run_id: str | None = None, resume_run_id: str | None = None,
                 wait: ServerWait | None = None) -> None:
        self.uri = uri
        self.client = _client(uri, wait)
        tags = dict(tags)
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id  # what the UI nests child runs by
        if resume_run_id is None:
            self.run_id: str = create_run(uri, experiment_id, run_name, tags, wait=wait)
        else:
            # A resumed job continues its own run: RUNNING again, under the current sweep.
            self.run_id = resume_run_id
            self.client.update_run(resume_run_id, status="RUNNING")
            for key, value in tags.items():
                self.client.set_tag(resume_run_id, key, value)
        self.resumed = resume_run_id is not None
        self._artifacts: list[tuple[str, str | None]] = []
        self._json: dict[str, Any] = {}
        self._sigterm = contextlib.ExitStack()

    def __enter__(self) -> "JobRun":
        self._sigterm.enter_context(sigterm_as_interrupt())
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self._sigterm.close()
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
        from mlflow.exceptions import MlflowException  # slow to import: loaded on use

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
        from mlflow.entities import Param  # slow to import: loaded on use

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, tags: Mapping[str, str] | None = None) -> None:
        """``metrics`` at ``step``, and ``tags`` with them, in one request."""
        from mlflow.entities import Metric, RunTag  # slow to import: loaded on use

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        labels = [RunTag(k, v) for k, v in (tags or {}).items()]
        if batch or labels:
            self.client.log_batch(self.run_id, metrics=batch, tags=labels)

    def log_dataset(self, name: str, digest: str, source: str, schema: Mapping[str, Any],
                    profile: Mapping[str, Any], context: str = "training") -> None:
        """The data the job ran on, as an MLflow dataset input (the UI's Dataset column)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag  # slow to import: loaded on use
        from mlflow.exceptions import MlflowException

        dataset = Dataset(name=name, digest=digest[:36] or "unknown", source_type="local", source=source,
                          schema=json.dumps(dict(schema)), profile=json.dumps(dict(profile)))
        inputs = [DatasetInput(dataset, tags=[InputTag(key="mlflow.data.context", value=context)])]
        # The store looks for the experiment's dataset, then inserts it: jobs of a sweep that start
        # together race, and all but one fail on its unique key. Again, the dataset is there.
        for attempt in range(3):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except MlflowException as exc:
                if attempt == 2 or not _lost_insert_race(exc):
                    raise

    def set_description(self, text: str) -> None:
        self.client.set_tag(self.run_id, NOTE_TAG, text)

    def log_results(self, metrics: Mapping[str, float], description: str) -> None:
        """The job's results (at step 0) and its description: one request for a run this attempt
        created; a resumed run gets the values it does not hold yet."""
        if self.resumed:
            self.log_missing_metrics([(0, metrics)])
            self.set_description(description)
        else:
            self.log_metrics(metrics, step=0, tags={NOTE_TAG: description})

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
