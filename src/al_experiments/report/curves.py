"""Loading learning curves for a report, from MLflow or from a tf_al metrics directory.

Both sources give the same tidy list of ``Curve``s: one per run (job), with its dataset, model,
setting (the rest of what defines the experiment: scenario, budget, ...), strategy (the query
function), seed, and the points ``x`` = labelled points the model was
trained on that round (``labeled_pool_size``, initial set included) and ``y`` = test accuracy.

- MLflow: the runs of an experiment, or the children of a sweep's parent run (linked by the
  ``mlflow.parentRunId`` tag); strategy, seed, dataset, model and setting come from the run's
  tags, the points from the metric histories (step = round).
- A metrics directory: ``<job>_<seed>_<model>_<query>.csv`` plus ``.meta.json``; strategy and
  model come from the meta entry (the setting from its params), the seed from the file name, the
  dataset from the meta file.
  The files are read directly (not through ``ExperimentSuitMetrics``, which creates the folder,
  a meta file and a lock file): a report must work on a read-only copy and change nothing.

Only finished runs are used unless asked otherwise: an MLflow run must be FINISHED; a CSV must
have as many rows as its meta entry's planned ``iterations``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from al_experiments.tracking import mlflow_store
from al_experiments.tracking.files import read_csv_dicts, read_text

X_KEY = "labeled_pool_size"
DEFAULT_EXPERIMENT = "al-experiments"  # al-run's mlflow.experiment_name
# al-run logs test_accuracy to MLflow; tf_al CSVs (and stores of earlier versions) eval_*accuracy*.
# Its eval_balanced_accuracy (mean recall over classes) is another metric, used only by --metric.
_ACCURACY = re.compile(r"^(test_accuracy$|eval_(?!balanced_).*accuracy)")
_PREFERRED = "test_accuracy"


class ReportError(Exception):
    """A report cannot be made; the message is one sentence naming the fix."""


@dataclass(frozen=True)
class Curve:
    """One run's learning curve, sorted by x."""

    dataset: str
    model: str
    strategy: str
    seed: str
    run: str  # MLflow run id or CSV file name: where to look
    x: np.ndarray
    y: np.ndarray
    # What the strategy's choice rested on (independent or consistent samples, ...); "" unknown.
    samples: str = ""
    # Mean copies per selected batch over the run's rounds, where the pool's copies were known.
    copies: float | None = None
    # Labelled validation points the run used besides its training labels (early stopping,
    # a validation step): part of its label budget.
    validation: int = 0
    # The rest of what makes the experiment besides dataset and model, in words (scenario,
    # budget, e.g. "imbalance 10; init 20 + 10/round"): runs of different settings are not
    # comparable, so each setting is a section of its own. "" when the job did not say.
    setting: str = ""


@dataclass
class CurveSet:
    """The curves of a report and where they came from."""

    curves: list[Curve]
    metric: str
    source: str  # one line for the report: what was read
    notes: list[str] = field(default_factory=list)  # what was skipped, and why
    tracking_uri: str | None = None
    parent_run_id: str | None = None  # the sweep's parent run, where the report is logged


# ----------------------------------------------------------------------------- shared rules
def pick_metric(available: Iterable[str], requested: str | None) -> str:
    """The accuracy metric: ``requested``, else ``test_accuracy``, else the single
    ``eval_*accuracy*`` key."""
    keys = sorted(set(available))
    candidates = [k for k in keys if _ACCURACY.match(k)]
    if requested:
        if requested not in keys:
            hint = f"accuracy metrics found: {', '.join(candidates)}" if candidates else \
                f"metrics found: {', '.join(keys[:12]) or 'none'}"
            raise ReportError(f"The metric {requested!r} is in none of the runs ({hint}).")
        return requested
    if _PREFERRED in candidates:
        return _PREFERRED
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ReportError(
            f"No test-accuracy metric (test_accuracy or eval_*accuracy*) in the runs (metrics found: "
            f"{', '.join(keys[:12]) or 'none'}); name one with --metric."
        )
    raise ReportError(
        f"Several test-accuracy metrics in the runs ({', '.join(candidates)}); choose one with --metric."
    )


COPIES_KEY = "copies_selected"


def _make_curve(dataset: str, model: str, strategy: str, seed: str, run: str,
                points: Sequence[tuple[float, float]], samples: str = "",
                copies: Sequence[float] = (), validation: Any = 0, setting: Any = "") -> Curve:
    points = sorted(points)
    return Curve(dataset, model, strategy, seed, run,
                 np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float),
                 samples=samples, copies=float(np.mean(copies)) if len(copies) else None,
                 validation=int(_number(str(validation)) or 0), setting=str(setting or "").strip())


def _unfinished_note(kinds: Counter, source_kind: str) -> list[str]:
    if not kinds:
        return []
    total = sum(kinds.values())
    detail = ", ".join(f"{status}: {count}" for status, count in sorted(kinds.items()))
    return [f"{total} unfinished {source_kind} skipped ({detail}); --include-unfinished uses them."]


# ----------------------------------------------------------------------------- MLflow
def load_mlflow(
    tracking_uri: str | None,
    experiment: str | None = None,
    parent_run: str | None = None,
    metric: str | None = None,
    include_unfinished: bool = False,
    timeout_s: float = 5.0,
) -> CurveSet:
    """The runs of ``experiment`` or the children of ``parent_run`` in the store ``tracking_uri``
    (None: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``, as for al-run)."""
    uri, client = _open_store(tracking_uri, timeout_s)
    experiment_ids, filter_string, source, where = _scope(client, uri, experiment, parent_run)
    runs = [r for r in _search_all(client, experiment_ids, filter_string)
            if r.data.tags.get("run_kind") != "sweep"]
    notes: list[str] = []
    tagged = [r for r in runs if {"query", "seed"} <= set(r.data.tags)]
    if len(tagged) < len(runs):
        notes.append(f"{len(runs) - len(tagged)} run(s) without query/seed tags (not al-run jobs) skipped.")
    runs = tagged
    if not include_unfinished:
        notes.extend(_unfinished_note(Counter(r.info.status for r in runs if r.info.status != "FINISHED"), "run(s)"))
        runs = [r for r in runs if r.info.status == "FINISHED"]
    if not runs:
        skipped = f" ({' '.join(notes)})" if notes else ""
        raise ReportError(f"No {'' if include_unfinished else 'finished '}al-run jobs {where} of {uri}{skipped}.")

    key = pick_metric((k for r in runs for k in r.data.metrics), metric)
    curves: list[Curve] = []
    for run in runs:
        points = _joined_history(client, run.info.run_id, key)
        if not points:
            notes.append(f"run {run.info.run_id} ({run.info.run_name}) has no {key} rounds; skipped.")
            continue
        tags = run.data.tags
        copies = [c for _, c in _joined_history(client, run.info.run_id, COPIES_KEY)] \
            if COPIES_KEY in run.data.metrics else []
        curves.append(_make_curve(tags.get("dataset", "unknown"), tags.get("model", "unknown"),
                                  tags["query"], tags["seed"], run.info.run_id, points,
                                  samples=tags.get("samples", ""), copies=copies,
                                  validation=run.data.params.get("data.val_size", 0),
                                  setting=tags.get("setting", "")))
    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
    sweep_parent = parent_run or (parents.pop() if len(parents) == 1 else None)
    return CurveSet(curves, key, source, notes, tracking_uri=uri, parent_run_id=sweep_parent)


def latest_sweep(tracking_uri: str | None, experiment: str = DEFAULT_EXPERIMENT, timeout_s: float = 5.0) -> str | None:
    """The parent run id of the most recently started sweep in ``experiment``; None when it
    holds no sweep (or does not exist: ``load_mlflow`` then says so)."""
    uri, client = _open_store(tracking_uri, timeout_s)
    found = client.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        return None
    newest = client.search_runs([found.experiment_id], filter_string="tags.run_kind = 'sweep'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    return newest[0].info.run_id if newest else None


def _open_store(tracking_uri: str | None, timeout_s: float) -> tuple[str, Any]:
    """The resolved URI and a client, after the checks al-run makes; a missing SQLite file is an
    error here (opening it would create an empty store)."""
    from mlflow import MlflowClient  # slow to import: loaded on use

    try:
        uri = mlflow_store.resolve_tracking_uri(tracking_uri, "--tracking-uri")
        mlflow_store.check_tracking_store(uri, timeout_s)
    except mlflow_store.TrackingUnavailable as exc:
        raise ReportError(str(exc).replace("mlflow.tracking_uri", "--tracking-uri")) from None
    db = mlflow_store.sqlite_path(uri)
    if db is not None and not os.path.isfile(db):
        raise ReportError(f"There is no MLflow store at {db}; point --tracking-uri at the store the sweep used.")
    return uri, MlflowClient(tracking_uri=uri)


def _scope(client: Any, uri: str, experiment: str | None, parent_run: str | None) -> tuple[list[str], str, str, str]:
    """Experiment ids and filter of the runs to read, the source line, and "where" for errors."""
    from mlflow.exceptions import MlflowException  # slow to import: loaded on use

    if parent_run:
        try:
            parent = client.get_run(parent_run)
        except MlflowException:
            raise ReportError(f"There is no MLflow run {parent_run!r} in {uri}; check --parent-run.") from None
        return ([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run}'",
                f"MLflow {uri}, children of the parent run {parent_run} ({parent.info.run_name})",
                f"under the parent run {parent_run}")
    name = experiment or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is None or found.lifecycle_stage == "deleted":
        known = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"There is no MLflow experiment {name!r} in {uri} (experiments: {', '.join(known) or 'none'})."
        )
    return [found.experiment_id], "", f"MLflow {uri}, experiment {name!r}", f"in the experiment {name!r}"


def _search_all(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _joined_history(client: Any, run_id: str, key: str) -> list[tuple[float, float]]:
    """(labels, accuracy) per step; a step logged twice keeps its latest value."""

    def by_step(name: str) -> dict[int, float]:
        history = sorted(client.get_metric_history(run_id, name), key=lambda m: (m.step, m.timestamp))
        return {m.step: m.value for m in history}

    x, y = by_step(X_KEY), by_step(key)
    return [(x[step], y[step]) for step in sorted(x.keys() & y.keys())]


# ----------------------------------------------------------------------------- metrics directory
def load_metrics_dir(path: str | os.PathLike[str], metric: str | None = None,
                     include_unfinished: bool = False) -> CurveSet:
    """The experiments of a tf_al-layout metrics directory (CSV files + ``.meta.json``)."""
    folder = Path(path).resolve()
    if not folder.is_dir():
        raise ReportError(f"The metrics directory {folder} does not exist; give the folder of the CSV files (e.g. <sweep dir>/metrics).")
    meta_path = folder / ".meta.json"
    try:
        meta = json.loads(read_text(meta_path))
    except FileNotFoundError:
        raise ReportError(f"{folder} has no .meta.json, so it is not a tf_al metrics directory; give the folder al-run or ExperimentSuit wrote.") from None
    except ValueError as exc:
        raise ReportError(f"The meta file {meta_path} is not valid JSON ({exc}); restore it, then run again.") from None
    entries = {e.get("experiment_name"): e for e in meta.get("experiments", []) if isinstance(e, dict)}
    dataset = str((meta.get("dataset") or {}).get("name", "unknown"))
    files = sorted(p for p in folder.glob("*.csv") if p.is_file())
    if not files:
        raise ReportError(f"There are no experiment CSV files in the metrics directory {folder}.")

    notes: list[str] = []
    unfinished: Counter = Counter()
    tables: list[tuple[Path, dict[str, Any], str, list[dict[str, str]]]] = []
    for csv_path in files:
        name = csv_path.stem
        entry = entries.get(name)
        if entry is None:
            notes.append(f"{csv_path.name} has no entry in .meta.json; skipped.")
            continue
        seed = _seed_from_name(name, str(entry.get("model", "")), str(entry.get("query_fn", "")))
        if seed is None:
            notes.append(f"{csv_path.name} is not named <run>_<seed>_<model>_<query>.csv; skipped.")
            continue
        rows = read_csv_dicts(read_text(csv_path))
        planned = (entry.get("params") or {}).get("iterations")
        if isinstance(planned, int) and len(rows) < planned:
            unfinished["fewer rows than planned rounds"] += 1
            if not include_unfinished:
                continue
        tables.append((csv_path, entry, seed, rows))
    notes.extend(_unfinished_note(unfinished, "CSV file(s)") if not include_unfinished else [])
    if not tables:
        raise ReportError(f"No {'' if include_unfinished else 'finished '}experiments in the metrics directory {folder}.")

    key = pick_metric((k for _, _, _, rows in tables for row in rows[:1] for k in row), metric)
    curves: list[Curve] = []
    for csv_path, entry, seed, rows in tables:
        points = [(x, y) for x, y in ((_number(r.get(X_KEY)), _number(r.get(key))) for r in rows)
                  if x is not None and y is not None]
        if not points:
            notes.append(f"{csv_path.name} has no {key} rounds; skipped.")
            continue
        copies = [c for c in (_number(r.get(COPIES_KEY)) for r in rows) if c is not None]
        params = entry.get("params") or {}
        curves.append(_make_curve(dataset, str(entry.get("model", "unknown")), str(entry["query_fn"]),
                                  seed, csv_path.name, points,
                                  samples=str(params.get("samples", "")), copies=copies,
                                  validation=(meta.get("dataset") or {}).get("val_size", 0),
                                  setting=params.get("setting", "")))
    return CurveSet(curves, key, f"metrics directory {folder}", notes)


def _number(text: str | None) -> float | None:
    """A finite number from a CSV field; None for an empty, non-numeric or NaN field."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _seed_from_name(name: str, model: str, query: str) -> str | None:
    """The seed in ``<run>_<seed>_<model>_<query>``; tf_al suits without seeds name files
    ``<run>_<model>_<query>``, where the run index stands for the repetition."""
    suffix = f"_{model}_{query}"
    if not model or not query or not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split("_")
    if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
        return parts[1]
    if len(parts) == 1 and parts[0].isdigit():
        return parts[0]
    return None


# ----------------------------------------------------------------------------- selection
def select(curve_set: CurveSet, dataset: str | None = None, model: str | None = None) -> CurveSet:
    """Keep the curves of ``dataset``/``model`` (None: all)."""
    curves = [c for c in curve_set.curves
              if (dataset is None or c.dataset == dataset) and (model is None or c.model == model)]
    if not curves:
        have = sorted({f"{c.dataset}/{c.model}" for c in curve_set.curves})
        raise ReportError(
            f"No runs match --dataset {dataset or '(any)'} --model {model or '(any)'} "
            f"(dataset/model found: {', '.join(have) or 'none'})."
        )
    return replace(curve_set, curves=curves)


def count_validation_labels(curves: Sequence[Curve]) -> list[Curve]:
    """The curves with x counting each run's labelled validation points as well: the label
    budget of a run that spent labels on early stopping or validation metrics."""
    return [replace(c, x=c.x + c.validation) if c.validation else c for c in curves]


def label_samples(curves: Sequence[Curve]) -> list[Curve]:
    """Curves of one strategy that ran on different samples (a sweep over ``query.samples``)
    become separate strategies, ``bald (consistent)`` and ``bald (independent)``; the others
    keep their names."""
    kinds: dict[tuple[str, str, str, str], set[str]] = {}
    for c in curves:
        kinds.setdefault((c.dataset, c.model, c.setting, c.strategy), set()).add(c.samples)
    return [replace(c, strategy=f"{c.strategy} ({c.samples or 'unknown'})")
            if len(kinds[(c.dataset, c.model, c.setting, c.strategy)]) > 1 else c for c in curves]


def check_one_run_per_seed(curves: Sequence[Curve]) -> None:
    """Refuse two runs of one (dataset, model, setting, strategy, seed).

    They would make a seed count twice and break the pairing with the baseline, so they are an
    error rather than a silent choice (e.g. two sweeps in one experiment, or a sweep over
    ``loop.step_size`` as well as query and seed by jobs that do not tag their setting).
    """
    counts = Counter((c.dataset, c.model, c.setting, c.strategy, c.seed) for c in curves)
    duplicated = [k for k, n in counts.items() if n > 1]
    if duplicated:
        d, m, setting, s, seed = duplicated[0]
        runs = [c.run for c in curves if (c.dataset, c.model, c.setting, c.strategy, c.seed) == duplicated[0]]
        where = f"{d}/{m}" + (f" ({setting})" if setting else "")
        raise ReportError(
            f"{len(runs)} runs of {s} with seed {seed} on {where} ({', '.join(runs)}), but a report "
            "compares strategies over seeds; report one sweep that varies only query and seed "
            "within a setting (--parent-run, or its metrics directory)."
        )
