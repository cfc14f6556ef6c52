"""One job, ``run_job(cfg)``, in this process on a composed config, against a real MLflow SQLite
store in the test's folder: what it logs to its run, writes to its CSV and says per round.
test_app_cli.py runs jobs through the ``al-run`` command for what only a process shows."""

from __future__ import annotations

import json
import logging
import re
import subprocess

import pytest
from _app_helpers import metric_history, mlflow_runs, store_uri

from al_experiments.app.job import JobContext, run_job

pytestmark = pytest.mark.slow  # trains a network


def _git_repository(folder) -> str:
    """``folder`` as a git repository with one commit; returns the commit."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (folder / "notes.txt").write_text("x")
    git("add", "notes.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    return git("rev-parse", "HEAD")


def test_a_job_logs_its_run_csv_and_artifacts(job_config, folder, monkeypatch, caplog):
    # A git repository as the working directory: its commit is recorded with the run.
    workdir = folder / "work"
    workdir.mkdir()
    commit = _git_repository(workdir)
    monkeypatch.chdir(workdir)
    # Where Hydra would have put the run: its folder with the .hydra/ record of the command.
    run_dir = folder / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=3\n")
    cfg = job_config()
    cfg.seed, cfg.metrics_dir = 3, None  # the CSV in the run's folder
    with caplog.at_level(logging.INFO, logger="al_experiments"):
        result = run_job(cfg, JobContext(output_dir=str(run_dir), overrides=("seed=3",)))

    [run] = mlflow_runs(folder)
    assert result["run_id"] == run.info.run_id and result["rounds"] == 2
    assert run.info.status == "FINISHED" and "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags["seed"] == "3" and run.data.params["query.name"] == "bald"
    assert run.info.run_name == "bald-s3"
    assert run.data.tags["mlflow.source.git.commit"] == commit and run.data.tags["git_dirty"] == "false"
    assert run.data.tags["mlflow.source.name"] == "al-run"
    assert run.data.tags["mlflow.note.content"].startswith("bald on digits, seed 3: test accuracy ")
    # The two results as metrics; the rest of the summary in the description, not as charts.
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(result["final_accuracy"])
    assert run.data.metrics["aulc"] == pytest.approx(result["aulc"])
    assert not [k for k in run.data.metrics if k.startswith("summary.")]
    [data] = run.inputs.dataset_inputs
    assert data.dataset.name == "digits" and data.dataset.digest == run.data.params["data.content_hash"]
    assert json.loads(data.dataset.profile)["train"] == int(run.data.params["data.train_size"])
    # One line per round with labels and accuracy, the run's page at the end.
    said = [r.getMessage() for r in caplog.records]
    assert any(re.fullmatch(r"round 1/2: 20 labels, test accuracy 0\.\d{3}, \d+\.\d\d s", m) for m in said), said
    assert any(m.startswith("round 2/2: 30 labels") for m in said), said
    page = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert any(page in m for m in said), said
    assert [s for s, _ in metric_history(folder, run.info.run_id, "test_accuracy")] == [1, 2]
    csv = run_dir / "metrics" / "0_3_mc_dropout_mlp_bald.csv"
    assert result["csv"] == str(csv) and len(csv.read_text().splitlines()) == 3  # a header, a row per round
    # artifacts: resolved config, Hydra's .hydra/, the CSV, the task, the selected indices
    from mlflow import MlflowClient
    from mlflow.artifacts import load_dict

    client = MlflowClient(store_uri(folder))
    paths = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config", "metrics", "task", "indices_selected.json"} <= paths
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} >= {"config/.hydra", "config/resolved.json"}
    assert load_dict(run.info.artifact_uri + "/config/resolved.json")["seed"] == 3
    indices = load_dict(run.info.artifact_uri + "/indices_selected.json")
    assert [r["iteration"] for r in indices["rounds"]] == [1, 2] and len(indices["initial_indices"]) == 20
