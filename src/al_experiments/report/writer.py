"""Make a report: analyse curves, write the output folder in one piece, log it to the sweep's run.

The folder is written into a temporary folder beside the target and renamed into place, so a
failure leaves no half-written report and a previous report stays until the new one is whole.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from al_experiments.report.analysis import DEFAULT_BAND, DEFAULT_BASELINE, DEFAULT_TARGETS, Report, analyse
from al_experiments.report.curves import CurveSet, ReportError, load_mlflow
from al_experiments.report.plots import plot_critical_difference, plot_learning_curves
from al_experiments.report.tables import SUMMARY_MD, write_tables
from al_experiments.tracking import sweep

ARTIFACT_PATH = "report"  # where the files go in the parent run's artifacts


@dataclass
class ReportResult:
    report: Report
    folder: Path
    files: list[str]  # names inside folder
    logged_run_id: str | None  # the MLflow run that got the files as artifacts


def make_report(
    curve_set: CurveSet,
    out: str | os.PathLike[str],
    *,
    targets: Sequence[float] = DEFAULT_TARGETS,
    baseline: str = DEFAULT_BASELINE,
    band: str = DEFAULT_BAND,
    budget_includes_validation: bool = False,
    log: bool = True,
) -> ReportResult:
    """Write the report of ``curve_set`` into ``out``; with ``log``, also upload it as artifacts
    (under ``report/``) of the sweep's parent run when the curves came from one. With
    ``budget_includes_validation`` the label axis counts each run's validation labels too."""
    report = analyse(curve_set, targets, baseline, band, budget_includes_validation)
    folder = write_folder(report, out)
    logged = None
    if log and curve_set.tracking_uri and curve_set.parent_run_id:
        log_folder(curve_set.tracking_uri, curve_set.parent_run_id, folder)
        logged = curve_set.parent_run_id
    return ReportResult(report, folder, sorted(p.name for p in folder.iterdir()), logged)


def write_folder(report: Report, out: str | os.PathLike[str]) -> Path:
    """Write tables and figures into a fresh folder and put it at ``out`` (replacing an older
    report there, but never a folder that holds something else)."""
    target = Path(out).resolve()
    if target.exists() and not _is_replaceable(target):
        raise ReportError(
            f"The output folder {target} exists and holds no earlier report ({SUMMARY_MD}); choose another --out."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes it private; a report is for sharing
        write_tables(report, staging)
        plot_learning_curves(report, staging)
        plot_critical_difference(report, staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _is_replaceable(folder: Path) -> bool:
    return folder.is_dir() and (not any(folder.iterdir()) or (folder / SUMMARY_MD).is_file())


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def log_folder(tracking_uri: str, run_id: str, folder: Path) -> None:
    """Upload the report folder as artifacts ``report/...`` of ``run_id``."""
    from mlflow import MlflowClient  # slow to import: loaded on use
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=tracking_uri).log_artifacts(run_id, str(folder), ARTIFACT_PATH)
    except (MlflowException, OSError) as exc:
        raise ReportError(
            f"The report is in {folder}, but logging it to the MLflow run {run_id} failed ({exc})."
        ) from None


def report_sweep(sweep_dir: str | os.PathLike[str]) -> ReportResult | None:
    """The report of a finished Hydra sweep: its parent run's children, written into
    ``<sweep dir>/report`` and logged to the parent run. None when the sweep has no parent run."""
    parent = sweep.sweep_parent(sweep_dir)
    if parent is None:
        return None
    uri, run_id = parent
    curves = load_mlflow(uri, parent_run=run_id)
    return make_report(curves, Path(sweep_dir) / "report")
