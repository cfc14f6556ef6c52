"""The real ``al-run`` CLI in subprocesses, against a real MLflow SQLite store in tmp_path, for
what only a process shows: a sweep's parent run and terminal, signals, a failed job's exit, a
refused command's exit status and whole stderr. What one job logs is in test_app_job.py and the
values a job refuses in test_app_job_refusals.py, both in this process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest
from _app_helpers import QUICK, QUICK_CLASSICAL, assert_nothing_created, check_sweep, cli_command, mlflow_runs, rounds_checkpointed, run_cli, store_uri

from al_experiments.utils.failpoints import ENV as FAILPOINTS

pytestmark = pytest.mark.slow

_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


def test_two_by_two_sweep(tmp_path):
    """A sweep as the terminal and the MLflow UI show it (a classical model: the sweep is under
    test; the report's sweep runs the network)."""
    result = run_cli(tmp_path, "-m", "query=random,bald", "seed=0,1", "loop.max_rounds=2",
                     "model=logistic_regression", "dataset=breast_cancer", "query.sample_size=5")
    assert result.returncode == 0, result.stderr[-3000:]
    parent, children = check_sweep(tmp_path, jobs=4)
    assert sorted((r.data.tags["query"], r.data.tags["seed"]) for r in children) == [
        ("bald", "0"), ("bald", "1"), ("random", "0"), ("random", "1")]
    names = sorted(p.name for p in (tmp_path / "sweep" / "metrics").glob("*.csv"))
    assert all(re.fullmatch(r"\d_\d_logistic_regression_(random|bald)\.csv", n) for n in names), names
    # Names: the varying parts, strategy first (a fixed override such as the epochs is left out).
    assert sorted(r.info.run_name for r in children) == ["bald-s0", "bald-s1", "random-s0", "random-s1"]
    assert re.fullmatch(r"query=random,bald seed=0,1 loop\.max_rounds=2 model=logistic_regression "
                        r"dataset=breast_cancer query\.sample_size=5 \d{4}-\d\d-\d\d \d\d:\d\d",
                        parent.info.run_name), parent.info.run_name
    assert parent.data.params["query"] == "random,bald" and parent.data.params["seed"] == "0,1"
    description = parent.data.tags["mlflow.note.content"]
    assert "| random | 2 |" in description and "| bald | 2 |" in description
    from mlflow import MlflowClient

    experiment = MlflowClient(store_uri(tmp_path)).get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # A saved UI view of the sweep: its runs grouped by query, accuracy against labelled points.
    [key] = [k for k in experiment.tags if k.startswith("mlflow.sharedViewState.sweep-")]
    view = json.loads(experiment.tags[key])
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "query"}]
    assert view["globalLineChartConfig"]["selectedXAxisMetricKey"] == "labeled_pool_size"
    assert view["searchFilter"] == f"tags.sweep = '{parent.data.tags['sweep']}'"
    assert f"viewStateShareKey={key.rsplit('.', 1)[1]}&compareRunsMode=CHART" in result.stdout
    # The terminal: progress with an estimate, the result table and the sweep's page.
    assert "job 1 of 4" in result.stdout and re.search(r"job 4 of 4, about \d+ s left", result.stdout)
    assert "| bald | 2 |" in result.stdout
    assert f"#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}" in result.stdout
    # Each job's lines: one per round with labels and accuracy, its run's page at the end; no
    # TensorFlow or MLflow chatter.
    out = result.stdout
    assert re.search(r"^\[\d\d:\d\d:\d\d\] round 1/2: 20 labels, test accuracy 0\.\d{3}, \d+\.\d\d s$", out, re.M), out
    assert len(re.findall(r"round 2/2: 30 labels", out)) == 4
    for run in children:
        assert f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in out
    assert not [line for line in (out + result.stderr).splitlines() if _TF_NOISE.match(line)], result.stderr[-2000:]
    assert "Creating initial MLflow database tables" not in out + result.stderr
    # Hydra's record of each job's command goes with its run.
    client = MlflowClient(store_uri(tmp_path))
    for run in children:
        config = {a.path for a in client.list_artifacts(run.info.run_id, "config")}
        assert config >= {"config/.hydra", "config/resolved.json"}, config


@pytest.mark.parametrize("args, message, left", [
    # refused by the check before Hydra starts: not even the sweep folder is made
    (["-m", "query=random,bqld", "seed=0,1"], "Error: query=bqld is not an option of the config group 'query'.", []),
    # refused by the job inside Hydra's app: only Hydra's run folder (its config and log)
    ([*QUICK, "dataset=npz", "dataset.loader.path=/nonexistent/mnist.npz"],
     "Error: The dataset file '/nonexistent/mnist.npz' does not exist", ["run"]),
])
def test_a_refused_command_exits_1_with_one_line(tmp_path, args, message, left):
    """A real process's exit status and whole stderr (TensorFlow, which writes to stderr from C++,
    is not started for either); the other refusals are in test_app_precheck.py and
    test_app_job_refusals.py, in this process."""
    result = run_cli(tmp_path, *args)
    assert result.returncode == 1
    err = assert_nothing_created(tmp_path, result)
    assert err.startswith(message) and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == left  # no mlflow.db, no state folder


def test_help_describes_the_app_and_hides_internal_groups(tmp_path):
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0
    out = result.stdout
    assert out.startswith("al-run: one deep active-learning job per configuration")
    assert "al-run -m query=random,bald,batch_bald seed=0,1,2,3,4" in out
    assert re.search(r"^  query: .*\bbald\b.*\brandom\b", out, re.M)
    assert "hydra/launcher: basic, local, pool, slurm" in out
    assert "schema/" not in out


def _statuses(tmp_path) -> list[tuple[str, str]]:
    return sorted((r.data.tags.get("run_kind", "job"), r.info.status) for r in mlflow_runs(tmp_path))


def test_failing_job_marks_runs_failed(tmp_path):
    """A job failing mid-loop ends FAILED, and so does its sweep's parent (Hydra skips
    on_multirun_end after a failure; al-run's main closes the parent)."""
    # scikit-learn checks an estimator's settings at fit, so the job fails in its first round
    result = run_cli(tmp_path, "-m", *QUICK_CLASSICAL, "model.estimator.C=-1")
    assert result.returncode != 0
    assert _statuses(tmp_path) == [("job", "FAILED"), ("sweep", "FAILED")]
    [job] = [r for r in mlflow_runs(tmp_path) if "mlflow.parentRunId" in r.data.tags]
    assert "'C' parameter" in job.data.tags["error"]


def test_sigterm_marks_runs_killed(tmp_path):
    """SIGTERM (scancel, kill) ends the job's run and the sweep's parent KILLED (a classical job:
    the signal's handling is under test, not the network)."""
    command, env = cli_command(tmp_path, "-m", *QUICK_CLASSICAL)
    # The job holds once round 1 is checkpointed: the signal finds it mid-run however fast the
    # machine. Waiting reads the checkpoint, not the MLflow store, which the job may be creating.
    env[FAILPOINTS] = "after_checkpoint@1:wait"
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while rounds_checkpointed(tmp_path / ".al-state") < 1:
            assert process.poll() is None and time.monotonic() < deadline, "the job never reached round 1"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, stderr[-3000:]
    assert _statuses(tmp_path) == [("job", "KILLED"), ("sweep", "KILLED")]
