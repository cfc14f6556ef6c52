"""Configs, data and folders a job refuses: one sentence, before anything is written (no MLflow
store, no metrics folder, no checkpoint). The job itself, ``run_job``, on composed configs; the
command lines refused before Hydra starts are in test_app_precheck.py, and test_app_cli.py shows
a refusal's exit status and single line of stderr in real processes."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
from conftest import compose_config, in_folder

from al_experiments.app.errors import AppError
from al_experiments.app.job import run_job


@pytest.fixture
def refused(tmp_path, caplog):
    """``refused(cfg, *needles)``: run the job on ``cfg`` (its results placed in ``tmp_path``), which
    must fail with one sentence holding ``needles``, warn of nothing and leave nothing in
    ``tmp_path`` but what the test put there. Returns the sentence."""
    def run(cfg, *needles: str, warned: tuple[str, ...] = ()) -> str:
        before = set(tmp_path.iterdir())
        with caplog.at_level(logging.WARNING), pytest.raises(AppError) as info:
            run_job(cfg)
        message = str(info.value)
        assert "\n" not in message, message
        for needle in needles:
            assert needle in message, message
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == len(warned) and all(w in m for w, m in zip(warned, warnings)), warnings
        assert set(tmp_path.iterdir()) == before, sorted(set(tmp_path.iterdir()) - before)
        return message

    return run


@pytest.mark.parametrize("overrides, needle", [
    (["loop.init_size=100000"], "loop.init_size=100000 is larger than the training pool"),
    (["loop.step_size=0"], "loop.step_size=0 is invalid"),
    # Checked up front: scikit-learn's own sentence about random_state used to end such a job.
    (["seed=-1"], "seed=-1 is invalid: it must be a whole number in [0, 4294967295]."),
    (["dataset.split_seed=-1"], "dataset.split_seed=-1 is invalid: it must be a whole number in [0, 4294967295] or null."),
    (["dataset=npz", "dataset.loader.path=/nonexistent/mnist.npz"], "The dataset file '/nonexistent/mnist.npz' does not exist"),
    (["dataset=idx", "dataset.loader.path=/nonexistent"], "is missing in '/nonexistent'"),
])
def test_impossible_values_fail_before_work(refused, tmp_path, overrides, needle):
    refused(in_folder(compose_config("+experiment=smoke", *overrides), tmp_path), needle)


def _hostile_npz(folder, case: str) -> str:
    """A small .npz dataset with one thing wrong with it."""
    rng = np.random.default_rng(0)
    x, y = rng.random((200, 8)).astype("float32"), np.arange(200) % 3
    x_test, y_test = x[:30], y[:30]
    if case == "nan_inputs":
        x = x.copy()
        x[5, 3] = np.nan
    elif case == "inf_test_inputs":
        x_test = x_test.copy()
        x_test[2, 0] = np.inf
    elif case == "negative_labels":
        y = np.where(y == 2, -1, y)
    elif case == "nan_labels":
        y = np.where(y == 1, np.nan, y)
    elif case == "labels_too_short":
        y = y[:150]
    elif case == "two_label_columns":
        y = np.stack([y, y], axis=1)
    elif case == "too_small":
        x, y = x[:25], y[:25]
    elif case == "test_shape":
        x_test = rng.random((30, 5)).astype("float32")
    path = folder / f"{case}.npz"
    if case == "object_arrays":
        np.savez(path, x_train=x, y_train=np.array([{"label": 0}] * len(y), dtype=object), x_test=x_test,
                 y_test=y_test)
        return str(path)
    np.savez(path, x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif case == "not_an_archive":
        path.write_text("x,y\n0.1,1\n")
    return str(path)


@pytest.fixture(scope="module")
def npz_config():
    return compose_config("+experiment=smoke", "dataset=npz")


@pytest.mark.parametrize("case, needle", [
    ("nan_inputs", "Train inputs contain 1 NaN or infinite value(s)"),
    ("inf_test_inputs", "Test inputs contain 1 NaN or infinite value(s)"),
    ("negative_labels", "Train targets hold labels -1..1, outside the model's 3 classes"),
    ("nan_labels", "holds 67 NaN, infinite or fractional label(s)"),
    ("labels_too_short", "Train inputs and targets differ in length (200 vs 150)"),
    ("two_label_columns", "Train inputs and targets differ in length (200 vs 400)"),
    ("too_small", "has 25 points, fewer than loop.init_size=20 plus one round of loop.step_size=10"),
    ("test_shape", "The test inputs have shape (5,) per point but the train inputs (8,)"),
    # numpy's advice about allow_pickle used to end these.
    ("truncated", "truncated.npz' is not a numpy .npz archive, or it is truncated or damaged: download MNIST"),
    ("not_an_archive", "not_an_archive.npz' is not a numpy .npz archive, or it is truncated or damaged"),
    ("object_arrays", "object_arrays.npz' is damaged, or holds Python objects (pickled arrays), which are never "
                      "loaded since loading them can run code: download MNIST"),
])
def test_hostile_data_fails_before_work_with_one_sentence(refused, npz_config, tmp_path, case, needle):
    cfg = in_folder(copy.deepcopy(npz_config), tmp_path)
    cfg.dataset.path = _hostile_npz(tmp_path, case)
    refused(cfg, needle)


def test_metrics_dir_that_cannot_be_written(refused, smoke_config, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = in_folder(copy.deepcopy(smoke_config), tmp_path)
    cfg.metrics_dir = str(blocker / "metrics")
    refused(cfg, f"Cannot write {blocker / 'metrics'}: Not a directory")  # before the store is made
    assert blocker.read_text() == "not a folder"


def test_unreachable_tracking_server(refused, smoke_config, tmp_path):
    """Refused after the bounded wait for a server that may be restarting, before anything exists."""
    cfg = in_folder(copy.deepcopy(smoke_config), tmp_path)
    cfg.mlflow.tracking_uri, cfg.mlflow.timeout_s, cfg.mlflow.server_wait_s = "http://127.0.0.1:9", 2, 1
    refused(cfg, "The MLflow tracking server at http://127.0.0.1:9 cannot be reached",
            "nor after waiting mlflow.server_wait_s=1 s for it; start it",
            warned=("Waiting up to 1 s for it (mlflow.server_wait_s)",))
