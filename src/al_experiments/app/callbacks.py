"""Hydra callback that gives every multirun one MLflow parent run.

``on_multirun_start`` runs in the launching process before any job: it checks the store,
creates it and the experiment (SQLite migrations must not race between parallel jobs) and
announces the sweep; the first job creates the parent run. With ``resume`` the same sweep
command (same overrides) continues under the parent run and metrics folder of its last attempt,
found through a record in ``state_dir/sweeps/``. ``on_multirun_end`` ends it
FINISHED, after writing the sweep's report into ``<sweep dir>/report`` and logging it to the
parent run when ``report=true`` (a failing report is logged as an error; the sweep's runs and
the parent's status are unaffected). Hydra skips ``on_multirun_end`` when a job failed, so ``close_pending_sweeps`` is
called by the CLI's ``main`` on the way out and ends what is still open FAILED or KILLED.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from al_experiments.app.errors import TrackingError
from al_experiments.app.run_names import sweep_run_name, sweep_size, swept_overrides
from al_experiments.resume import sweep_identity
from al_experiments.tracking import mlflow_store, server_wait, sweep

log = logging.getLogger(__name__)

# Sweeps this process announced and has not closed yet, with the wait for their server.
_PENDING: dict[str, Any] = {}


class MlflowSweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = os.path.abspath(config.hydra.sweep.dir)
        try:
            uri = mlflow_store.resolve_tracking_uri(config.mlflow.tracking_uri)
            waiting = server_wait.ServerWait(uri, config.mlflow.server_wait_s)  # the sweep's, not its jobs'
            mlflow_store.wait_for_tracking_store(uri, config.mlflow.timeout_s, waiting)
            experiment_id = mlflow_store.ensure_experiment(uri, config.mlflow.experiment_name, waiting)
        except mlflow_store.TrackingUnavailable as exc:
            raise TrackingError(str(exc)) from None
        record = previous = None
        if config.get("resume", False):
            # The same sweep command again continues under the parent run of its last attempt.
            identity = sweep_identity(list(config.hydra.overrides.task))
            record = os.path.join(os.path.abspath(config.state_dir), "sweeps", identity + ".json")
            previous = sweep.recorded_sweep(record, uri, experiment_id, waiting)
        view = mlflow_store.share_sweep_view(uri, experiment_id, sweep_dir, waiting)
        log.info("Follow the sweep in MLflow (make ui): %s", mlflow_store.runs_page(uri, experiment_id, view=view))
        overrides = swept_with_preset(config)
        sweep.announce_sweep(sweep_dir, uri, experiment_id, previous=previous, record=record,
                             run_name=sweep_run_name(overrides, datetime.now()),
                             params=swept_overrides(overrides), jobs=sweep_size(overrides), wait=waiting)
        _PENDING[sweep_dir] = waiting

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = os.path.abspath(config.hydra.sweep.dir)
        try:
            _results(sweep_dir)
            if config.get("report", False):
                _report(sweep_dir)
        finally:
            _close(sweep_dir, "FINISHED")


def _results(sweep_dir: str) -> None:
    """The sweep's result table: printed, and the parent run's description; never fails the sweep."""
    parent = sweep.sweep_parent(sweep_dir)
    if parent is None:
        return
    uri, run_id = parent
    waiting = _PENDING.get(sweep_dir)
    if waiting is not None and waiting.uri != uri:
        waiting = None  # the marker's store is not the one this process waited for
    # The report's statistics (scipy.stats, slow to import) load when a sweep ends, not at
    # every al-run start.
    from al_experiments.report import analyse, load_mlflow
    from al_experiments.report.tables import results_markdown

    try:
        table = results_markdown(analyse(load_mlflow(uri, parent_run=run_id)))
        mlflow_store.set_run_description(uri, run_id, table, waiting)
    except Exception as exc:  # the jobs' results are safe in MLflow and the CSVs: say it, go on
        log.warning("No result table for the sweep (%s: %s); al-report makes one later.", type(exc).__name__, exc)
        table = None
    experiment_id = mlflow_store.run_experiment_id(uri, run_id, waiting)
    if table:
        print(table, flush=True)
    view = mlflow_store.sweep_view_key(sweep_dir)  # saved when the sweep started
    print(f"The sweep in MLflow (make ui): {mlflow_store.runs_page(uri, experiment_id, view=view)}\n"
          f"Its parent run, with this table: {mlflow_store.runs_page(uri, experiment_id, run_id)}", flush=True)


def _report(sweep_dir: str) -> None:
    """al-report for this sweep, before its parent run ends; never fails the sweep."""
    from al_experiments.report import report_sweep  # scipy.stats and matplotlib: see _results

    try:
        result = report_sweep(sweep_dir)
    except Exception as exc:  # the jobs' results are safe in MLflow and the CSVs: say it, go on
        log.error("The sweep's report failed (%s: %s); run al-report on the sweep later.",
                  type(exc).__name__, exc)
        return
    if result is None:
        log.warning("No report: the sweep has no MLflow parent run (no job started).")
    else:
        log.info("Report written to %s and logged to the parent run %s.", result.folder, result.logged_run_id)


def close_pending_sweeps(status: str) -> None:
    """End the parent runs of sweeps that did not reach ``on_multirun_end``."""
    for sweep_dir in sorted(_PENDING):
        _close(sweep_dir, status)


def _close(sweep_dir: str, status: str) -> None:
    sweep.close_sweep(sweep_dir, status, _PENDING.pop(sweep_dir, None))


def swept_with_preset(config: DictConfig) -> list[str]:
    """The sweep's overrides as the sweeper combines them: the axes a preset lists under
    ``hydra.sweeper.params``, then the command line's (which wins for a key in both)."""
    overrides = list(config.hydra.overrides.task)
    given = {o.split("=", 1)[0] for o in overrides}
    params = config.hydra.sweeper.get("params") or {}
    return [f"{key}={value}" for key, value in params.items() if key not in given] + overrides
