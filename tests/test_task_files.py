"""The task of a job as files: splits, labels and the initial set saved as rows of the data, read
back whole and checked, and a sweep re-run from them selecting exactly what it selected."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _app_helpers import QUICK, run_cli
from hydra import compose, initialize_config_module

from al_experiments.app.build import build, build_dataset, task_file
from al_experiments.app.errors import DataError
from al_experiments.app.schema import register_configs
from al_experiments.data.task import Task, TaskFileError

register_configs()

SCENARIO = ["seed=4", "dataset.val_size=60", "dataset.imbalance_ratio=4", "dataset.label_noise=0.2",
            "dataset.repeat=2", "dataset.repeat_noise=0.05", "loop.init_size=20"]


@pytest.fixture(scope="module", autouse=True)
def hydra_config():
    with initialize_config_module("al_experiments.conf", version_base=None):
        yield


def _splits(dataset):
    return [dataset.get_train_split(), dataset.get_test_split(), dataset.get_eval_split()]


def test_a_task_read_back_builds_the_same_arrays(tmp_path):
    cfg = compose("config", overrides=SCENARIO)
    job = build(cfg)
    task_path = tmp_path / task_file(cfg)
    job.task.save(task_path)
    assert job.task.init is not None and job.data_info.task_hash == job.task.digest()
    again, info, task = build_dataset(compose("config", overrides=[*SCENARIO, f"dataset.task_dir={tmp_path}"]))
    assert task.digest() == job.task.digest()
    for (x, y), (x2, y2) in zip(_splits(job.dataset), _splits(again)):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(again.get_init_indices(), job.loop.initial_indices)
    assert info.flipped_labels == len(task.flipped) > 0


def test_a_task_file_names_the_initial_set_the_loop_then_uses(tmp_path):
    cfg = compose("config", overrides=SCENARIO)
    task = build_dataset(cfg)[2]
    task.init = np.arange(7, 37, dtype=np.int64)  # a set no strategy would draw
    task.save(tmp_path / task_file(cfg))
    job = build(compose("config", overrides=[*SCENARIO, f"dataset.task_dir={tmp_path}"]))
    np.testing.assert_array_equal(job.loop.initial_indices, np.arange(7, 37))


def test_a_changed_foreign_or_missing_task_file_is_refused(tmp_path):
    cfg = compose("config", overrides=SCENARIO)
    task = build_dataset(cfg)[2]
    path = tmp_path / "task.npz"
    task.save(path)
    with pytest.raises(TaskFileError, match="made from other data"):
        Task.load(path, "0" * 16)
    with np.load(path) as data:
        arrays = dict(data)
    arrays["pool_labels"] = arrays["pool_labels"].copy()
    arrays["pool_labels"][0] += 1
    np.savez(path, **arrays)
    with pytest.raises(TaskFileError, match="does not match its own digest"):
        Task.load(path, task.source_hash)
    with pytest.raises(DataError, match=r"does not exist: run the sweep once without dataset\.task_dir"):
        build_dataset(compose("config", overrides=[*SCENARIO, f"dataset.task_dir={tmp_path / 'none'}"]))


@pytest.mark.parametrize("case, message", [
    ("text", "is not a numpy .npz archive, or it is truncated or damaged: delete it so the sweep writes it again."),
    ("truncated", "is not a numpy .npz archive, or it is truncated or damaged: delete it so the sweep writes it again."),
    ("objects", "is damaged, or holds Python objects (pickled arrays), which are never loaded since loading them "
                "can run code: delete it so the sweep writes it again."),
    ("no_header", "has no readable header, so it is not a task file: delete it so the sweep writes it again."),
])
def test_a_damaged_task_file_is_one_sentence_not_numpys(tmp_path, case, message):
    path = tmp_path / "task.npz"
    if case == "objects":
        np.savez(path, header=np.array([{"format": 1}], dtype=object))
    else:
        np.savez(path, pool=np.arange(3000))
    if case == "text":
        path.write_text("not an archive")
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(TaskFileError) as err:
        Task.load(path, "0" * 16)
    assert str(err.value) == f"The task file {path} {message}"
    assert "allow_pickle" not in str(err.value)


def test_the_header_says_what_the_rows_are(tmp_path):
    task = build_dataset(compose("config", overrides=SCENARIO))[2]
    task.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as data:
        header = json.loads(str(data["header"]))
        assert header["digest"] == task.digest() and "rows" in header
        assert {"pool", "pool_labels", "test", "val", "copy_of", "flipped"} <= set(data.files)


@pytest.mark.slow
def test_a_sweep_re_run_from_its_task_files_selects_the_same_points(tmp_path):
    sweep = ["-m", *QUICK, "query=random,bald", "seed=0,1", "dataset.label_noise=0.1", "dataset.imbalance_ratio=3"]
    first = run_cli(tmp_path, *sweep)
    assert first.returncode == 0, first.stderr[-3000:]
    tasks = tmp_path / "sweep" / "metrics" / "tasks"
    assert len(list(tasks.glob("*.npz"))) == 2  # one per seed: the strategies of a seed share their task
    (tmp_path / "sweep").rename(tmp_path / "first")
    again = run_cli(tmp_path, *sweep, f"dataset.task_dir={tmp_path / 'first' / 'metrics' / 'tasks'}")
    assert again.returncode == 0, again.stderr[-3000:]

    def selections(folder):
        found = {}
        for csv in sorted((folder / "metrics").glob("*.csv")):
            found[re.sub(r"^\d+_", "", csv.stem)] = re.findall(r'"(\[[\d, ]+\])"', csv.read_text())
        return found

    first_picks, again_picks = selections(tmp_path / "first"), selections(tmp_path / "sweep")
    assert len(first_picks) == 4 and all(len(p) == 2 for p in first_picks.values())
    assert again_picks == first_picks
