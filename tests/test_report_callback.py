"""The sweep callback's ``report=true`` step against a real MLflow store, without training: a
report that cannot be written is logged as an error and the parent run still ends FINISHED."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from al_experiments.app.callbacks import MlflowSweepCallback
from al_experiments.tracking import mlflow_run, mlflow_store, sweep


def _sweep(folder):
    """A sweep dir announced for the SQLite store in ``folder`` (an empty store copied, not made
    again), with a parent run and two finished jobs."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment = mlflow_store.ensure_experiment(uri, "al-experiments")
    sweep_dir = folder / "sweep"
    sweep.announce_sweep(sweep_dir, uri, experiment)
    parent = sweep.parent_run_for(sweep_dir, uri, experiment)
    for query in ("random", "bald"):
        tags = {"query": query, "seed": "0", "dataset": "digits", "model": "mlp"}
        with mlflow_run.JobRun(uri, experiment, query, tags, parent_run_id=parent) as run:
            for step in (1, 2):
                run.log_metrics({"eval_accuracy": 0.5 + 0.1 * step, "labeled_pool_size": 10 * step}, step=step)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}, "report": True})
    return uri, parent, sweep_dir, config


def _status(uri, run_id):
    from mlflow import MlflowClient

    return MlflowClient(uri).get_run(run_id).info.status


def test_report_step_writes_and_closes(folder):
    uri, parent, sweep_dir, config = _sweep(folder)
    MlflowSweepCallback().on_multirun_end(config)
    assert (sweep_dir / "report" / "summary.md").is_file()
    assert _status(uri, parent) == "FINISHED"


def test_failing_report_is_an_error_and_the_parent_still_ends(folder, caplog):
    uri, parent, sweep_dir, config = _sweep(folder)
    (sweep_dir / "report").mkdir()
    (sweep_dir / "report" / "notes.txt").write_text("mine")  # not a report: must not be replaced
    with caplog.at_level(logging.ERROR, logger="al_experiments.app.callbacks"):
        MlflowSweepCallback().on_multirun_end(config)
    assert "The sweep's report failed" in caplog.text and "holds no earlier report" in caplog.text
    assert (sweep_dir / "report" / "notes.txt").read_text() == "mine"
    assert _status(uri, parent) == "FINISHED"


@pytest.mark.parametrize("flag", [False, None])
def test_no_report_unless_asked(folder, flag):
    uri, parent, sweep_dir, config = _sweep(folder)
    if flag is None:
        del config["report"]
    else:
        config.report = flag
    MlflowSweepCallback().on_multirun_end(config)
    assert not (sweep_dir / "report").exists()
    assert _status(uri, parent) == "FINISHED"
