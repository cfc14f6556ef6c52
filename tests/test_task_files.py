"""The task of a job as files: splits, labels and the initial set saved as rows of the data, read
back whole and checked, and the jobs of a sweep re-run from them selecting exactly what they selected."""

from __future__ import annotations

import json
import re

from pathlib import Path

import numpy as np
import pytest
from _app_helpers import QUICK, with_store
from conftest import compose_config, in_folder

from al_experiments.app.build import build, build_dataset, task_file
from al_experiments.app.errors import DataError
from al_experiments.app.job import JobContext, run_job
from al_experiments.data.task import Task, TaskFileError

SCENARIO = ["seed=4", "dataset.val_size=60", "dataset.imbalance_ratio=4", "dataset.label_noise=0.2",
            "dataset.repeat=2", "dataset.repeat_noise=0.05", "loop.init_size=20"]


def _splits(dataset):
    return [dataset.get_train_split(), dataset.get_test_split(), dataset.get_eval_split()]


def test_a_task_read_back_builds_the_same_arrays(tmp_path):
    cfg = compose_config(*SCENARIO)
    job = build(cfg)
    task_path = tmp_path / task_file(cfg)
    job.task.save(task_path)
    assert job.task.init is not None and job.data_info.task_hash == job.task.digest()
    again, info, task = build_dataset(compose_config(*SCENARIO, f"dataset.task_dir={tmp_path}"))
    assert task.digest() == job.task.digest()
    for (x, y), (x2, y2) in zip(_splits(job.dataset), _splits(again)):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(again.get_init_indices(), job.loop.initial_indices)
    assert info.flipped_labels == len(task.flipped) > 0


def test_a_task_file_names_the_initial_set_the_loop_then_uses(tmp_path):
    cfg = compose_config(*SCENARIO)
    task = build_dataset(cfg)[2]
    task.init = np.arange(7, 37, dtype=np.int64)  # a set no strategy would draw
    task.save(tmp_path / task_file(cfg))
    job = build(compose_config(*SCENARIO, f"dataset.task_dir={tmp_path}"))
    np.testing.assert_array_equal(job.loop.initial_indices, np.arange(7, 37))


def test_a_changed_foreign_or_missing_task_file_is_refused(tmp_path):
    cfg = compose_config(*SCENARIO)
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
        build_dataset(compose_config(*SCENARIO, f"dataset.task_dir={tmp_path / 'none'}"))


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
    task = build_dataset(compose_config(*SCENARIO))[2]
    task.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as data:
        header = json.loads(str(data["header"]))
        assert header["digest"] == task.digest() and "rows" in header
        assert {"pool", "pool_labels", "test", "val", "copy_of", "flipped"} <= set(data.files)


@pytest.mark.slow
def test_jobs_re_run_from_their_task_files_select_the_same_points(tmp_path, tmp_path_factory):
    """The jobs of a sweep (one metrics folder), then the same jobs from the task files they wrote."""
    def sweep(folder, *extra: str) -> dict[str, list[str]]:
        with_store(folder, tmp_path_factory)
        picks = {}
        for job_num, (query, seed) in enumerate([("random", 0), ("bald", 0), ("random", 1), ("bald", 1)]):
            cfg = in_folder(compose_config(*QUICK, "loop.max_rounds=1", f"query={query}", f"seed={seed}",
                                           "dataset.label_noise=0.1", "dataset.imbalance_ratio=3", *extra), folder)
            csv = run_job(cfg, JobContext(job_num=job_num))["csv"]
            picks[f"{query}_{seed}"] = re.findall(r'"(\[[\d, ]+\])"', Path(csv).read_text())
        return picks

    first_folder, again_folder = tmp_path / "first", tmp_path / "again"
    first_folder.mkdir(), again_folder.mkdir()
    first = sweep(first_folder)
    tasks = first_folder / "metrics" / "tasks"
    assert len(list(tasks.glob("*.npz"))) == 2  # one per seed: the strategies of a seed share their task
    assert len(first) == 4 and all(len(p) == 1 for p in first.values())
    assert sweep(again_folder, f"dataset.task_dir={tasks}") == first
