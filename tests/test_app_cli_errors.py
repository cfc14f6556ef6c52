"""Commands ``al-run`` refuses: one sentence on stderr, status 1, nothing left behind. Run in
this process (``run_in_process``): the same ``main`` as the command, without a process's start;
test_app_cli.py shows a refusal's status and single line in real processes."""

from __future__ import annotations

import io
import logging
import os
import signal

import pytest
from _app_helpers import QUICK, assert_nothing_created, run_in_process

pytestmark = pytest.mark.slow  # "run the CLI", as the marker says, if in this process


def _one_sentence(err: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err


def test_misspelt_query_lists_names_and_leaves_nothing(tmp_path):
    result = run_in_process(tmp_path, "query=bqld")
    assert_nothing_created(tmp_path, result, "bqld", "bald", "random", "max_entropy")
    assert not (tmp_path / "mlflow.db").exists()


def test_misspelt_query_name_in_a_sweep_leaves_no_run(tmp_path):
    result = run_in_process(tmp_path, "-m", "query.name=bqld", "seed=0,1")
    err = assert_nothing_created(tmp_path, result, "query.name='bqld' is not a query function",
                                 "Known names: badge, bald, batch_bald")
    assert "Did you mean 'bald'" in err


@pytest.mark.parametrize("args, message", [
    (["-m", "query=random,bqld", "seed=0,1"], "Error: query=bqld is not an option of the config group 'query'. "
                                              "Did you mean 'bald'? Options: badge, bald,"),
    (["-m", "loop.step_size=abc", "seed=0,1"], "Error: loop.step_size=abc is invalid: loop.step_size takes a whole number."),
    (["-m", "seed=0,1", "loop.step_size=10,0"], "Error: loop.step_size=0 is invalid: it must be a whole number >= 1."),
])
def test_a_refused_sweep_leaves_no_store_and_no_folder(tmp_path, args, message):
    result = run_in_process(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [], left  # no mlflow.db, no sweep folder, no state folder


@pytest.mark.parametrize("args, needle", [
    (["loop.init_size=100000"], "loop.init_size=100000 is larger than the training pool"),
    (["loop.step_size=0"], "loop.step_size=0 is invalid"),
    # Checked up front: scikit-learn's own sentence about random_state used to end such a job.
    (["seed=-1"], "seed=-1 is invalid: it must be a whole number in [0, 4294967295]."),
    (["dataset.split_seed=-1"], "dataset.split_seed=-1 is invalid: it must be a whole number in [0, 4294967295] or null."),
    (["dataset=npz", "dataset.loader.path=/nonexistent/mnist.npz"], "The dataset file '/nonexistent/mnist.npz' does not exist"),
    (["dataset=idx", "dataset.loader.path=/nonexistent"], "is missing in '/nonexistent'"),
])
def test_impossible_values_fail_before_work(tmp_path, args, needle):
    result = run_in_process(tmp_path, *QUICK, *args)
    _one_sentence(assert_nothing_created(tmp_path, result, needle))


def _hostile_npz(folder, case: str) -> str:
    """A small .npz dataset with one thing wrong with it."""
    import numpy as np

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
def test_hostile_data_fails_before_work_with_one_sentence(tmp_path, case, needle):
    result = run_in_process(tmp_path, *QUICK, "dataset=npz", f"dataset.path={_hostile_npz(tmp_path, case)}")
    _one_sentence(assert_nothing_created(tmp_path, result, needle))


def test_metrics_dir_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_in_process(tmp_path, *QUICK, f"metrics_dir={blocker / 'metrics'}")
    assert_nothing_created(tmp_path, result, f"Cannot write {blocker / 'metrics'}: Not a directory")
    assert blocker.read_text() == "not a folder"
    assert not (tmp_path / "mlflow.db").exists()  # refused before the store is made


def test_unreachable_tracking_server(tmp_path):
    """Refused after the bounded wait for a server that may be restarting, before anything exists."""
    result = run_in_process(tmp_path, *QUICK, "mlflow.tracking_uri=http://127.0.0.1:9", "mlflow.timeout_s=2",
                            "mlflow.server_wait_s=1", tracking=False)
    assert_nothing_created(tmp_path, result, "The MLflow tracking server at http://127.0.0.1:9 cannot be reached",
                           "nor after waiting mlflow.server_wait_s=1 s for it; start it")
    assert "Waiting up to 1 s for it (mlflow.server_wait_s)" in result.stdout
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()


def test_a_call_leaves_this_process_as_it_was(tmp_path, caplog, capsys):
    """``run_in_process`` itself: what the call changes is undone, and Hydra's logging config
    closes no handler of this process (absl's would close its stream: pytest's capture file)."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobRuntime

    def hydra_ran() -> bool:  # JobRuntime: one of Hydra's singletons, made by a run
        return JobRuntime in Singleton.get_state()["instances"]

    class ClosesItsStream(logging.StreamHandler):
        def close(self):
            self.stream.close()
            super().close()

    bystander, logger = ClosesItsStream(io.StringIO()), logging.getLogger("tests.bystander")
    logger.addHandler(bystander)
    logger.setLevel(logging.INFO)
    root = logging.getLogger()
    before = (dict(os.environ), os.getcwd(), signal.getsignal(signal.SIGTERM), root.level, root.handlers[:])
    ran_before = hydra_ran()
    try:
        result = run_in_process(tmp_path, *QUICK, "dataset=npz", "dataset.loader.path=/nonexistent/mnist.npz")
        logger_kept = logger.handlers == [bystander] and logger.level == logging.INFO
    finally:
        logger.removeHandler(bystander)
        logger.setLevel(logging.NOTSET)
    assert result.returncode == 1 and (tmp_path / "run" / ".hydra").is_dir()  # refused in Hydra's job
    assert (dict(os.environ), os.getcwd(), signal.getsignal(signal.SIGTERM), root.level, root.handlers) == before
    assert logger_kept and not bystander.stream.closed
    assert hydra_ran() == ran_before
    logging.getLogger("tests").warning("logged after the call")
    print("printed after the call")
    assert "logged after the call" in caplog.text and "printed after the call" in capsys.readouterr().out
