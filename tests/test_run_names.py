"""What a researcher reads in MLflow and the terminal: run names, sweep names, progress, the
short metric names and one-line descriptions."""

from __future__ import annotations

import subprocess
from datetime import datetime

import pytest

from al_experiments.app.job import round_line
from al_experiments.app.run_names import (
    git_commit,
    job_description,
    job_run_name,
    progress_line,
    sweep_run_name,
    sweep_size,
    swept_overrides,
    varying_keys,
)
from al_experiments.tracking.mlflow_run import round_metrics, short_metric_name
from al_experiments.tracking.mlflow_store import runs_page


def test_a_single_run_is_strategy_and_seed():
    assert job_run_name("bald", 0) == "bald-s0"
    # Fixed overrides of a single run do not vary, so they stay out of the name.
    assert job_run_name("bald", 3, ["query=bald", "seed=3", "model.fit.epochs=200"]) == "bald-s3"


def test_a_sweep_job_names_what_varies_strategy_first_seed_last():
    overrides = ["+experiment=quick", "model=mc_dropout_cnn", "model.fit.epochs=200", "query=bald", "seed=1",
                 "mlflow.tracking_uri=sqlite:///x.db"]
    varying = varying_keys(swept_overrides(["+experiment=quick", "model=mc_dropout_mlp,mc_dropout_cnn",
                                            "model.fit.epochs=50,200", "query=random,bald", "seed=range(3)",
                                            "mlflow.tracking_uri=sqlite:///x.db"]))
    assert varying == {"model", "model.fit.epochs", "query", "seed"}
    assert job_run_name("bald", 1, overrides, varying) == "bald-mc_dropout_cnn-epochs=200-s1"


def test_long_values_are_cut():
    name = job_run_name("bald", 0, ["dataset.path=/a/very/long/path/to/some/data/file.npz"], {"dataset.path"})
    assert name == "bald-path=/a/very/long/path/to/so~-s0"


def test_sweep_name_and_params_are_the_swept_overrides():
    overrides = ["query=random,bald", "seed=0,1", "+experiment=quick", "hydra/launcher=local"]
    assert sweep_run_name(overrides, datetime(2026, 12, 1, 14, 3)) == \
        "query=random,bald seed=0,1 experiment=quick 2026-12-01 14:03"
    assert swept_overrides(overrides) == {"query": "random,bald", "seed": "0,1", "experiment": "quick"}
    assert sweep_run_name([], datetime(2026, 1, 2, 3, 4)) == "sweep 2026-01-02 03:04"


def test_sweep_size_is_the_product_of_the_swept_values():
    assert sweep_size(["query=random,bald,batch_bald", "seed=range(5)", "+experiment=quick"]) == 15
    assert sweep_size(["seed=0"]) == 1


@pytest.mark.parametrize(("num", "total", "elapsed", "expected"), [
    (0, 8, 5.0, "job 1 of 8"),
    (2, 8, 30.0, "job 3 of 8, about 1 min 30 s left"),  # 15 s a job, 6 to go
    (3, 4, 12.0, "job 4 of 4, about 4 s left"),
    (1, None, 3.0, "job 2"),
])
def test_progress_estimates_from_the_jobs_before(num, total, elapsed, expected):
    assert progress_line(num, total, elapsed) == expected


def test_metric_names_are_short_and_say_which_split():
    step = {"iteration": 2, "labeled_pool_size": 30, "unlabeled_pool_size": 70, "train_time": 1.5,
            "query_time": 0.5, "optim_time": 0.0, "eval_time": 0.25, "optim": None,
            "train": {"loss": [1.0, 0.4], "sparse_categorical_accuracy": [0.5, 0.9]},
            "eval": {"sparse_categorical_crossentropy": 0.7, "sparse_categorical_accuracy": 0.8, "auc": 0.9}}
    assert round_metrics(step) == {
        "train_loss": 0.4, "train_accuracy": 0.9, "test_loss": 0.7, "test_accuracy": 0.8, "test_auc": 0.9,
        "train_time": 1.5, "query_time": 0.5, "eval_time": 0.25, "labeled_pool_size": 30.0,
        "unlabeled_pool_size": 70.0}
    # A validation step that ran is logged as val_*, with its time.
    step.update(optim={"loss": 0.6, "accuracy": 0.75}, optim_time=0.1)
    metrics = round_metrics(step)
    assert (metrics["val_loss"], metrics["val_accuracy"], metrics["optim_time"]) == (0.6, 0.75, 0.1)


def test_a_second_accuracy_keeps_its_own_name():
    metrics = round_metrics({"iteration": 1, "eval": {"accuracy": 0.8, "sparse_categorical_accuracy": 0.7}})
    assert metrics == {"test_accuracy": 0.8, "test_sparse_categorical_accuracy": 0.7}
    assert short_metric_name("binary_crossentropy") == "loss" and short_metric_name("auc") == "auc"


def test_round_line_and_description():
    step = {"iteration": 3, "labeled_pool_size": 40, "eval": {"loss": 0.5, "accuracy": 0.8125},
            "train_time": 1.0, "query_time": 0.25, "optim_time": 0.0, "eval_time": 0.125}
    assert round_line(step, 10) == "round 3/10: 40 labels, test accuracy 0.812, 1.38 s"
    summary = {"rounds": 10.0, "final_accuracy": 0.91234, "aulc": 0.8, "train_seconds": 12.34,
               "query_seconds": 5.0, "optim_seconds": 0.0, "eval_seconds": 1.0}
    assert job_description("bald", "digits", 0, summary, 120) == (
        "bald on digits, seed 0: test accuracy 0.912 after 120 labels, AULC 0.800, 10 rounds "
        "(train 12.3 s, query 5.0 s, eval 1.0 s).")


def test_runs_page_of_a_server_and_of_a_local_store():
    # workflowType: MLflow's UI would otherwise open its GenAI pages
    assert runs_page("http://host:5000/", "3") == "http://host:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert runs_page("sqlite:////tmp/mlflow.db", "1", "abc") == \
        "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    assert runs_page("sqlite:////tmp/mlflow.db", "1", view="sweep-1") == (
        "http://127.0.0.1:5000/#/experiments/1/runs?workflowType=machine_learning"
        "&viewStateShareKey=sweep-1&compareRunsMode=CHART")


def test_git_commit_of_a_repository_and_of_a_plain_folder(tmp_path):
    assert git_commit(str(tmp_path)) is None
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run(["git", "add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"], cwd=tmp_path, check=True)
    commit, dirty = git_commit(str(tmp_path))
    assert len(commit) == 40 and dirty is False
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(str(tmp_path))[1] is True
