"""Loading curves for al-report: a tf_al metrics directory written by the real writer, and a real
MLflow SQLite store filled by hand (no training, so these run in seconds)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from al_experiments.report.analysis import analyse
from al_experiments.report.curves import ReportError, latest_sweep, load_metrics_dir, load_mlflow, pick_metric, select
from al_experiments.tracking import ExperimentSuitMetrics, mlflow_run, mlflow_store

ROUNDS = [  # labels, accuracy
    (20, 0.5), (30, 0.6), (40, 0.7),
]


def _write_experiment(suit, name, model, query, rounds, planned=3):
    suit.add_experiment_meta(name, model, query, {"iterations": planned, "step_size": 10, "initial_size": 20})
    for i, (labels, acc) in enumerate(rounds, start=1):
        suit.write_line(name, {"eval": {"sparse_categorical_accuracy": acc, "loss": 1.0}, "iteration": i,
                               "labeled_pool_size": labels, "unlabeled_pool_size": 100 - labels})


@pytest.fixture
def metrics_dir(tmp_path):
    suit = ExperimentSuitMetrics(tmp_path / "metrics")
    suit.add_dataset_meta("digits", "", 1000, 300)
    _write_experiment(suit, "0_0_mc_dropout_mlp_random", "mc_dropout_mlp", "random", ROUNDS)
    _write_experiment(suit, "1_1_mc_dropout_mlp_max_entropy", "mc_dropout_mlp", "max_entropy", ROUNDS[::-1])
    _write_experiment(suit, "2_7_mc_dropout_mlp_bald", "mc_dropout_mlp", "bald", ROUNDS[:2])  # killed
    return tmp_path / "metrics"


def test_metrics_dir_gives_strategy_seed_and_points(metrics_dir):
    curves = load_metrics_dir(metrics_dir)
    assert curves.metric == "eval_sparse_categorical_accuracy"
    found = {(c.strategy, c.seed, c.model, c.dataset): (c.x.tolist(), c.y.tolist()) for c in curves.curves}
    assert found == {
        ("random", "0", "mc_dropout_mlp", "digits"): ([20, 30, 40], [0.5, 0.6, 0.7]),
        ("max_entropy", "1", "mc_dropout_mlp", "digits"): ([20, 30, 40], [0.5, 0.6, 0.7]),  # sorted by x
    }
    assert curves.notes == ["1 unfinished CSV file(s) skipped (fewer rows than planned rounds: 1); "
                            "--include-unfinished uses them."]
    assert curves.parent_run_id is None
    everything = load_metrics_dir(metrics_dir, include_unfinished=True)
    assert sorted(c.strategy for c in everything.curves) == ["bald", "max_entropy", "random"]
    assert [c.seed for c in everything.curves if c.strategy == "bald"] == ["7"]


def test_metrics_dir_errors_are_one_sentence(tmp_path, metrics_dir):
    with pytest.raises(ReportError, match="does not exist"):
        load_metrics_dir(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ReportError, match="has no .meta.json"):
        load_metrics_dir(tmp_path / "plain")
    with pytest.raises(ReportError, match="'eval_accuracy' is in none of the runs"):
        load_metrics_dir(metrics_dir, metric="eval_accuracy")
    assert not (tmp_path / "nowhere").exists()  # reading creates nothing


def test_pick_metric():
    assert pick_metric(["eval_loss", "eval_accuracy", "train_accuracy"], None) == "eval_accuracy"
    assert pick_metric(["eval_loss", "eval_accuracy"], "eval_loss") == "eval_loss"
    with pytest.raises(ReportError, match="No test-accuracy metric"):
        pick_metric(["eval_loss", "train_accuracy"], None)
    with pytest.raises(ReportError, match="Several test-accuracy metrics .*--metric"):
        pick_metric(["eval_accuracy", "eval_top5_accuracy"], None)
    # al-run's MLflow name wins; a store of an earlier version still has eval_*accuracy*.
    assert pick_metric(["test_accuracy", "test_loss", "eval_sparse_categorical_accuracy"], None) == "test_accuracy"
    assert pick_metric(["test_accuracy", "train_accuracy", "val_accuracy"], None) == "test_accuracy"
    # al-run's CSVs hold the class-balanced accuracy beside the accuracy: not a second candidate.
    assert pick_metric(["eval_balanced_accuracy", "eval_sparse_categorical_accuracy"], None) == \
        "eval_sparse_categorical_accuracy"
    assert pick_metric(["eval_balanced_accuracy", "eval_accuracy"], "eval_balanced_accuracy") == "eval_balanced_accuracy"


# ----------------------------------------------------------------------------- MLflow
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real SQLite store: a sweep parent with three children (one FAILED), an unrelated run,
    and a second sweep repeating one (strategy, seed)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    experiment = mlflow_store.ensure_experiment(uri, "al-experiments")
    client = MlflowClient(uri)

    def parent():
        return client.create_run(experiment, tags={"run_kind": "sweep"}).info.run_id

    def job(parent_id, query, seed, accuracies, status="FINISHED"):
        tags = {"query": query, "seed": str(seed), "dataset": "digits", "model": "mc_dropout_mlp",
                "mlflow.parentRunId": parent_id}
        run = mlflow_run.JobRun(uri, experiment, f"{query}-s{seed}", tags)
        for step, acc in enumerate(accuracies, start=1):
            run.log_metrics({"eval_accuracy": acc, "labeled_pool_size": 10 + 10 * step}, step=step)
        client.set_terminated(run.run_id, status=status)
        return run.run_id

    first = parent()
    time.sleep(0.01)  # start times in ms: the second sweep starts strictly later
    second = parent()
    job(first, "random", 0, [0.5, 0.6])
    job(first, "bald", 0, [0.5, 0.7])
    job(first, "bald", 1, [0.4], status="FAILED")
    job(second, "bald", 0, [0.6, 0.8])
    client.create_run(experiment, run_name="notebook")  # no tags: not an al-run job
    return {"uri": uri, "first": first, "second": second}


def test_mlflow_children_of_a_parent_run(store):
    curves = load_mlflow(store["uri"], parent_run=store["first"])
    found = {(c.strategy, c.seed): (c.x.tolist(), c.y.tolist()) for c in curves.curves}
    assert found == {("random", "0"): ([20, 30], [0.5, 0.6]), ("bald", "0"): ([20, 30], [0.5, 0.7])}
    assert curves.metric == "eval_accuracy" and curves.parent_run_id == store["first"]
    assert curves.notes == ["1 unfinished run(s) skipped (FAILED: 1); --include-unfinished uses them."]
    with_failed = load_mlflow(store["uri"], parent_run=store["first"], include_unfinished=True)
    assert len(with_failed.curves) == 3


def test_mlflow_experiment_with_two_sweeps_refuses_a_seed_twice(store):
    curves = load_mlflow(store["uri"], experiment="al-experiments")
    assert curves.parent_run_id is None  # two sweeps: no single parent to log to
    assert "1 run(s) without query/seed tags (not al-run jobs) skipped." in curves.notes
    with pytest.raises(ReportError, match="2 runs of bald with seed 0 .*--parent-run"):
        analyse(curves)
    with pytest.raises(ReportError, match="No runs match --dataset mnist"):
        select(curves, dataset="mnist")
    assert len(select(curves, model="mc_dropout_mlp").curves) == 3


def test_plain_al_report_reads_the_latest_sweep(store, tmp_path, capsys):
    from al_experiments.report.cli import main

    assert latest_sweep(store["uri"]) == store["second"]
    # Two sweeps repeat (bald, seed 0); without arguments the report is the latest sweep's alone.
    assert main(["--tracking-uri", store["uri"], "--out", str(tmp_path / "r"), "--no-log"]) == 0
    text = (tmp_path / "r" / "summary.md").read_text()
    assert f"children of the parent run {store['second']}" in text and "| bald | 1 |" in text
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    mlflow_store.ensure_experiment(empty, "al-experiments")
    assert latest_sweep(empty) is None  # no sweep: al-report then reads every run of the experiment


def test_mlflow_errors_are_one_sentence(store, tmp_path):
    with pytest.raises(ReportError, match="no MLflow experiment 'other' .*experiments: Default, al-experiments"):
        load_mlflow(store["uri"], experiment="other")
    with pytest.raises(ReportError, match="no MLflow run 'abc'"):
        load_mlflow(store["uri"], parent_run="abc")
    with pytest.raises(ReportError, match="no MLflow store at"):
        load_mlflow(f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(ReportError, match="cannot be reached.*--tracking-uri"):
        load_mlflow("http://127.0.0.1:9", timeout_s=1)


def test_report_does_not_import_tensorflow(metrics_dir, tmp_path):
    code = (
        "import sys; from al_experiments.report.cli import main; "
        f"rc = main(['--metrics-dir', {str(metrics_dir)!r}, '--out', {str(tmp_path / 'r')!r}]); "
        "assert rc == 0, rc; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "r" / "summary.md").is_file()
