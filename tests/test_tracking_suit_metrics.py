"""ExperimentSuitMetrics: tf_al's directory layout (CSV bytes, .meta.json bytes, locking) with
its bugs fixed (fixed columns, no duplicate meta entries, only *.csv reconstructed, atomic and
locked writes from several processes)."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from al_experiments.tracking import ExperimentSuitMetrics
from al_experiments.utils.failpoints import ENV as FAILPOINTS
from al_experiments.utils.failpoints import wait_until_paused

ROUND_1 = {
    "train": {"loss": [1.5, 0.25], "accuracy": [0.5, 0.75]},
    "train_time": 2.5,
    "query_time": 0.125,
    "optim": None,
    "optim_time": None,
    "eval": {"loss": 0.75, "accuracy": 0.5},
    "eval_time": 0.0625,
    "indices_selected": [3, 1, 2],
    "iteration": 1,
    "labeled_pool_size": 10,
    "unlabeled_pool_size": 87,
}
ROUND_2 = {
    "train": {"loss": [np.float32(1.25), np.float32(0.5)], "accuracy": [0.25, 1.0]},
    "train_time": 3.0,
    "query_time": 0.25,
    "optim": None,
    "optim_time": None,
    "eval": {"loss": np.float32(0.56), "accuracy": np.float64(0.625)},
    "eval_time": 0.5,
    "indices_selected": np.array([7, 5, 4]),
    "iteration": np.int64(2),
    "labeled_pool_size": 13,
    "unlabeled_pool_size": 84,
}
HEADER = (
    "train_loss train_accuracy train_time query_time eval_loss eval_accuracy eval_time "
    "indices_selected iteration labeled_pool_size unlabeled_pool_size\r\n"
)
LINE_1 = '"[1.5, 0.25]" "[0.5, 0.75]" 2.5 0.125 0.75 0.5 0.0625 "[3, 1, 2]" 1 10 87\r\n'
LINE_2 = '"[1.25, 0.5]" "[0.25, 1.0]" 3.0 0.25 0.56 0.625 0.5 "[7, 5, 4]" 2 13 84\r\n'


def raw(path: os.PathLike[str] | str) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


# ---------------------------------------------------------------------------------------------
# directory, meta file


def test_new_directory_is_created_with_empty_meta(tmp_path):
    base = tmp_path / "deep" / "metrics"
    metrics = ExperimentSuitMetrics(base)
    assert metrics.BASE_PATH == str(base)
    assert metrics.META_FILE_PATH == os.path.join(str(base), ".meta.json")
    assert raw(base / ".meta.json") == json.dumps({"experiments": []}, indent=4)
    assert metrics.experiment_files == {}
    assert (metrics.delimiter, metrics.quotechar) == (" ", '"')
    assert metrics.read_meta() == {"experiments": []}


def test_meta_file_bytes_and_lookups(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.add_dataset_meta("mnist", "/data/mnist", 0.8, test_size=np.int64(200))
    params_a = {"iterations": 3, "step_size": 10, "initial_size": 20, "initial_indices": [4, 8]}
    params_b = {"iterations": 5, "step_size": 1, "initial_size": 2, "initial_indices": np.array([1, 9])}
    metrics.add_experiment_meta("0_mc_dropout_bald", "mc_dropout", "bald", params_a)
    metrics.add_experiment_meta("0_mc_dropout_random", "mc_dropout", "random", params_b)

    expected = {
        "experiments": [
            {"experiment_name": "0_mc_dropout_bald", "model": "mc_dropout", "query_fn": "bald", "params": params_a},
            {
                "experiment_name": "0_mc_dropout_random",
                "model": "mc_dropout",
                "query_fn": "random",
                "params": {"iterations": 5, "step_size": 1, "initial_size": 2, "initial_indices": [1, 9]},
            },
        ],
        # val_size None is omitted, test_size kept (as a plain int).
        "dataset": {"name": "mnist", "path": "/data/mnist", "train_size": 0.8, "test_size": 200},
    }
    assert raw(tmp_path / ".meta.json") == json.dumps(expected, indent=4)
    assert metrics.get_dataset_info() == expected["dataset"]
    assert metrics.get_experiment_meta("0_mc_dropout_random") == expected["experiments"][1]
    assert metrics.get_experiment_meta("unknown") == {}


def test_get_dataset_info_is_none_without_dataset(tmp_path):
    assert ExperimentSuitMetrics(tmp_path).get_dataset_info() is None


def test_duplicate_experiment_meta_is_replaced_in_place(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.add_experiment_meta("a", "mc_dropout", "bald", {"step_size": 1})
    metrics.add_experiment_meta("b", "mc_dropout", "random", {"step_size": 1})
    metrics.add_experiment_meta("a", "mc_dropout", "bald", {"step_size": 2})

    experiments = metrics.read_meta()["experiments"]
    assert [e["experiment_name"] for e in experiments] == ["a", "b"]
    assert experiments[0]["params"] == {"step_size": 2}
    assert metrics.get_experiment_meta("a")["params"] == {"step_size": 2}


def test_duplicates_left_by_tf_al_collapse_to_one_entry(tmp_path):
    old = {"experiment_name": "a", "model": "m", "query_fn": "q", "params": {}}
    other = {"experiment_name": "b", "model": "m", "query_fn": "q", "params": {}}
    ExperimentSuitMetrics(tmp_path).write_meta({"experiments": [old, other, old]})
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.add_experiment_meta("a", "m2", "q2", {"x": 1})
    assert metrics.read_meta()["experiments"] == [
        {"experiment_name": "a", "model": "m2", "query_fn": "q2", "params": {"x": 1}},
        other,
    ]


def test_write_meta_writes_exact_content(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    content = {"zeta": 1, "alpha": [1, 2], "experiments": []}
    metrics.write_meta(content)
    assert raw(tmp_path / ".meta.json") == json.dumps(content, indent=4)
    assert list(metrics.read_meta()) == ["zeta", "alpha", "experiments"]


def test_existing_meta_is_kept_by_a_new_object(tmp_path):
    ExperimentSuitMetrics(tmp_path).add_experiment_meta("a", "m", "q", {})
    before = raw(tmp_path / ".meta.json")
    ExperimentSuitMetrics(tmp_path)
    assert raw(tmp_path / ".meta.json") == before


@pytest.mark.parametrize("content", ['{"experiments": [{"experiment_name": "a", "mo', "", "[1, 2]"])
def test_corrupt_meta_raises_a_clear_error_and_is_left_untouched(tmp_path, content):
    (tmp_path / ".meta.json").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        ExperimentSuitMetrics(tmp_path)
    message = str(info.value)
    assert str(tmp_path / ".meta.json") in message
    assert "move it away or restore it" in message
    assert raw(tmp_path / ".meta.json") == content


def test_meta_corrupted_after_construction_is_not_overwritten(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    broken = '{"experiments": ['
    (tmp_path / ".meta.json").write_text(broken, encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        metrics.add_experiment_meta("a", "m", "q", {})
    with pytest.raises(ValueError, match="not valid JSON"):
        metrics.add_dataset_meta("d", "p", 10)
    assert raw(tmp_path / ".meta.json") == broken


def test_deleted_meta_raises_file_not_found(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    os.remove(tmp_path / ".meta.json")
    with pytest.raises(FileNotFoundError, match=".meta.json"):
        metrics.add_experiment_meta("a", "m", "q", {})
    assert not (tmp_path / ".meta.json").exists()


# ---------------------------------------------------------------------------------------------
# CSV format


def test_two_rows_give_exact_bytes(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("0_mc_dropout_bald", ROUND_1)
    metrics.write_line("0_mc_dropout_bald", ROUND_2)
    assert raw(tmp_path / "0_mc_dropout_bald.csv") == HEADER + LINE_1 + LINE_2
    assert metrics.experiment_files == {"0_mc_dropout_bald": 1}

    rows = metrics.read("0_mc_dropout_bald")
    assert rows[0]["indices_selected"] == "[3, 1, 2]"
    assert rows[1]["eval_loss"] == "0.56"
    assert rows[1]["train_loss"] == "[1.25, 0.5]"
    assert all(isinstance(v, str) for row in rows for v in row.values())


def test_b5_first_row_without_training_gets_a_consistent_header(tmp_path):
    # tf_al with init_size=0: round 1 has no train_* keys, later rounds do.
    metrics = ExperimentSuitMetrics(tmp_path)
    first = {k: v for k, v in ROUND_1.items() if not k.startswith("train")}
    metrics.write_line("exp", first)
    assert raw(tmp_path / "exp.csv") == (
        "query_time eval_loss eval_accuracy eval_time indices_selected iteration "
        "labeled_pool_size unlabeled_pool_size\r\n"
        '0.125 0.75 0.5 0.0625 "[3, 1, 2]" 1 10 87\r\n'
    )
    metrics.write_line("exp", ROUND_2)
    assert raw(tmp_path / "exp.csv") == (
        HEADER + '   0.125 0.75 0.5 0.0625 "[3, 1, 2]" 1 10 87\r\n' + LINE_2
    )
    rows = metrics.read("exp")
    assert [len(r) for r in rows] == [11, 11]
    assert rows[0]["train_loss"] == "" and rows[0]["query_time"] == "0.125"
    assert rows[1]["train_time"] == "3.0" and rows[1]["unlabeled_pool_size"] == "84"


def test_row_missing_header_keys_gets_empty_fields(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("e", {"a": 1, "b": 2, "c": 3})
    metrics.write_line("e", {"c": 6, "a": 4})
    metrics.write_line("e", {"b": 8, "d": 9})
    assert raw(tmp_path / "e.csv") == "a b d c\r\n1 2  3\r\n4   6\r\n 8 9 \r\n"


def test_misaligned_tf_al_file_is_not_rewritten_by_guessing(tmp_path):
    legacy = "query_time iteration\r\n0.5 1\r\n[1.0] 0.5 2\r\n"  # tf_al B5: row 3 has 3 fields
    (tmp_path / "old.csv").write_bytes(legacy.encode())
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.unlock("old")
    with pytest.raises(ValueError, match="more fields than its header"):
        metrics.write_line("old", {"train_loss": 1, "query_time": 0.25, "iteration": 3})
    assert raw(tmp_path / "old.csv") == legacy
    metrics.write_line("old", {"query_time": 0.25, "iteration": 3})  # same columns: appended
    assert raw(tmp_path / "old.csv") == legacy + "0.25 3\r\n"


def test_verbose_logs_through_the_module_logger(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="al_experiments.tracking.suit_metrics")
    ExperimentSuitMetrics(tmp_path / "quiet").write_line("e", {"a": 1})
    assert caplog.records == []
    ExperimentSuitMetrics(tmp_path / "loud", verbose=True).write_line("e", {"a": 1})
    assert {r.name for r in caplog.records} == {"al_experiments.tracking.suit_metrics"}
    assert any("e.csv" in r.getMessage() for r in caplog.records)


def test_none_values_and_flattening(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("e", {"top": None, "eval": {"loss": None, "acc": {"top1": 1, 2: "x"}}, "n": 0})
    # Top-level None: no column. Nested None: an empty field. Nested dicts join with "_".
    assert raw(tmp_path / "e.csv") == "eval_loss eval_acc_top1 eval_acc_2 n\r\n 1 x 0\r\n"


def test_nan_filtering(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    values = {"a": float("nan"), "b": np.float32("nan"), "eval": {"loss": np.nan, "acc": 1.0}, "c": [math.nan]}
    metrics.write_line("filtered", values)
    # Top-level NaN: no column; nested NaN: empty field; a list holding NaN is left as it is.
    assert raw(tmp_path / "filtered.csv") == "eval_loss eval_acc c\r\n 1.0 [nan]\r\n"
    metrics.write_line("kept", values, filter_nan=False)
    assert raw(tmp_path / "kept.csv") == "a b eval_loss eval_acc c\r\nnan nan nan 1.0 [nan]\r\n"


@pytest.mark.parametrize(
    ("filter_keys", "expected"),
    [
        (["query_time", "eval_loss"], "query_time eval_loss\r\n0.125 0.75\r\n"),
        ("iteration", "iteration\r\n1\r\n"),
        (("eval", "iteration"), "eval_loss eval_accuracy iteration\r\n0.75 0.5 1\r\n"),
    ],
)
def test_filter_keys(tmp_path, filter_keys, expected):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("e", ROUND_1, filter_keys=filter_keys)
    assert raw(tmp_path / "e.csv") == expected


def test_numpy_values_are_written_as_plain_numbers(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line(
        "e",
        {
            "f32": np.float32(1.8334665),
            "list": [np.float32(0.1), np.float64(0.2), np.int32(3)],
            "arr": np.array([0.5, 0.25], dtype=np.float32),
            "flag": np.bool_(True),
            "zero_d": np.array(4),
        },
    )
    text = raw(tmp_path / "e.csv")
    assert "np." not in text
    assert text == 'f32 list arr flag zero_d\r\n1.8334665 "[0.1, 0.2, 3]" "[0.5, 0.25]" True 4\r\n'


def test_one_element_list_is_not_quoted_and_quotes_are_escaped(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("e", {"one": [0.17], "text": 'say "hi"', "s": "a b"})
    assert raw(tmp_path / "e.csv") == 'one text s\r\n[0.17] "say ""hi""" "a b"\r\n'
    assert metrics.read("e") == [{"one": "[0.17]", "text": 'say "hi"', "s": "a b"}]


def test_file_name_rule(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("plain", {"a": 1})
    metrics.write_line("my_csv_run", {"a": 1})  # tf_al: no suffix when "csv" is in the name
    metrics.write_line("with.csv", {"a": 1})
    assert sorted(os.listdir(tmp_path)) == [".lock", ".meta.json", "my_csv_run", "plain.csv", "with.csv"]
    # "with" and "with.csv" name one file and share one status.
    metrics.write_line("with", {"a": 2})
    assert metrics.read("with.csv") == [{"a": "1"}, {"a": "2"}]
    assert metrics.experiment_files == {"plain": 1, "my_csv_run": 1, "with": 1}


def test_empty_row_writes_nothing(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("e", {"a": None})
    assert not (tmp_path / "e.csv").exists()


def test_read_missing_experiment_names_the_file(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        metrics.read("nothing")


# ---------------------------------------------------------------------------------------------
# reconstruction and locking


def test_reconstructed_files_are_locked_until_unlocked(tmp_path):
    ExperimentSuitMetrics(tmp_path).write_line("exp", ROUND_1)
    metrics = ExperimentSuitMetrics(tmp_path)
    assert metrics.experiment_files == {"exp": 0}
    with pytest.raises(ValueError) as info:
        metrics.write_line("exp", ROUND_2)
    assert str(info.value) == (
        "File exp was reconstructed and is locked. Use .unlock(experiment_name) to open this file up for writing."
    )
    assert raw(tmp_path / "exp.csv") == HEADER + LINE_1

    metrics.unlock("exp")
    assert metrics.experiment_files == {"exp": 1}
    metrics.write_line("exp", ROUND_2)
    assert raw(tmp_path / "exp.csv") == HEADER + LINE_1 + LINE_2


def test_overwrite_replaces_then_appends(tmp_path):
    ExperimentSuitMetrics(tmp_path).write_line("exp", ROUND_1)
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.overwrite("exp")
    assert metrics.experiment_files == {"exp": 2}
    metrics.write_line("exp", ROUND_2)
    assert raw(tmp_path / "exp.csv") == HEADER + LINE_2
    assert metrics.experiment_files == {"exp": 1}
    metrics.write_line("exp", ROUND_1)
    assert raw(tmp_path / "exp.csv") == HEADER + LINE_2 + LINE_1


def test_unlock_all_and_unknown_names(tmp_path):
    first = ExperimentSuitMetrics(tmp_path)
    first.write_line("a", {"x": 1})
    first.write_line("b", {"x": 1})
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.unlock("unknown")
    metrics.overwrite("unknown")
    assert metrics.experiment_files == {"a": 0, "b": 0}
    metrics.unlock_all()
    assert metrics.experiment_files == {"a": 1, "b": 1}


def test_only_csv_files_are_reconstructed(tmp_path):
    for name in ["notes.txt", ".DS_Store", ".x.csv.0123abcd.tmp", "results.csv.bak"]:
        (tmp_path / name).write_text("junk", encoding="utf-8")
    (tmp_path / "sub.csv").mkdir()
    (tmp_path / "old.csv").write_text("a\r\n1\r\n", encoding="utf-8")
    metrics = ExperimentSuitMetrics(tmp_path)
    metrics.write_line("x", {"a": 1})  # creates .lock, which must not register either
    assert metrics.experiment_files == {"old": 0, "x": 1}
    assert ExperimentSuitMetrics(tmp_path).experiment_files == {"old": 0, "x": 0}


def test_a_file_appearing_after_construction_is_locked(tmp_path):
    metrics = ExperimentSuitMetrics(tmp_path)
    ExperimentSuitMetrics(tmp_path).write_line("late", {"a": 1})  # e.g. another process
    ExperimentSuitMetrics(tmp_path).write_line("csv_named", {"a": 1})  # no .csv suffix on disk
    for name in ["late", "csv_named"]:
        with pytest.raises(ValueError, match="locked"):
            metrics.write_line(name, {"a": 2})
        metrics.unlock(name)
        metrics.write_line(name, {"a": 2})
        assert metrics.read(name) == [{"a": "1"}, {"a": "2"}]


# ---------------------------------------------------------------------------------------------
# crash safety and concurrency

_WRITER = textwrap.dedent(
    """
    import sys
    from al_experiments.tracking import ExperimentSuitMetrics
    metrics = ExperimentSuitMetrics(sys.argv[1])
    metrics.unlock_all()
    for i in range(int(sys.argv[3])):
        metrics.write_line("exp", {"attempt": sys.argv[2], "i": i, "payload": list(range(2000))})
    """
)
PAYLOAD = str(list(range(2000)))


def _writer(folder, attempt: int, rows: int, points: str) -> subprocess.Popen:
    """A process appending ``rows`` rows to ``exp``, stopped by the failpoints ``points``; the
    folder's ``.meta.json`` exists before, so its n-th file replaced is its n-th row."""
    ExperimentSuitMetrics(folder)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **{FAILPOINTS: points})
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), str(attempt), str(rows)], env=env)


def _assert_complete(folder, rows_per_attempt: list[int]) -> None:
    """``exp.csv`` holds rows 0..n-1 of each attempt in turn, none torn. Read as any reader
    would, without the lock (a stopped writer may hold it)."""
    from al_experiments.tracking.files import read_csv_dicts

    text = raw(folder / "exp.csv")
    assert text.startswith("attempt i payload\r\n") and text.endswith("\r\n")
    rows = read_csv_dicts(text)
    assert [(row["attempt"], row["i"]) for row in rows] == [
        (str(attempt), str(i)) for attempt, count in enumerate(rows_per_attempt) for i in range(count)]
    assert all(row["payload"] == PAYLOAD for row in rows)


# Where each writer dies, and the rows of its own the file then holds: its 3rd row written
# beside the file (under the directory lock), its 2nd row renamed into place (the folder not
# synced), its 1st row written beside the file.
KILLS = [("before_replace@3", 2), ("after_replace@2", 2), ("before_replace@1", 0)]


def test_killed_writer_leaves_a_complete_file(tmp_path):
    """A writer killed while it holds the lock, mid-replace, leaves the last complete file, and
    the next writer takes the lock and appends after it."""
    done = []
    for attempt, (points, rows) in enumerate(KILLS):
        writer = _writer(tmp_path, attempt, 10, points)
        assert writer.wait(timeout=300) == -signal.SIGKILL, points  # a hang guard, not a timing
        done.append(rows)
        _assert_complete(tmp_path, done)
        # Left-over temp files (if any) are never taken for experiments.
        assert set(ExperimentSuitMetrics(tmp_path).experiment_files) == {"exp"}
    last = _writer(tmp_path, len(KILLS), 2, "")
    assert last.wait(timeout=300) == 0
    _assert_complete(tmp_path, [*done, 2])


def test_readers_never_see_a_partial_file(tmp_path):
    """Read while the writer is stopped with its next file complete beside the old one: the
    reader sees the old file whole; after the rename, the new one whole."""
    pauses = [("before_replace", 2), ("after_replace", 2), ("before_replace", 4)]
    writer = _writer(tmp_path, 0, 5, ",".join(f"{point}@{row}:pause" for point, row in pauses))
    try:
        for point, row in pauses:
            wait_until_paused(writer.pid)
            visible = row - 1 if point == "before_replace" else row
            _assert_complete(tmp_path, [visible])
            beside = list(tmp_path.glob(".exp.csv.*"))
            if point == "before_replace":  # the next content is all there, just not visible yet
                assert len(beside) == 1 and raw(beside[0]).count("\r\n") == 1 + row
            else:
                assert beside == []
            writer.send_signal(signal.SIGCONT)
        assert writer.wait(timeout=300) == 0  # a hang guard, not a timing
        _assert_complete(tmp_path, [5])
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def _parallel_worker(base: str, worker: int, rows: int) -> None:
    metrics = ExperimentSuitMetrics(base)
    metrics.add_experiment_meta(f"{worker}_mc_dropout_bald", "mc_dropout", "bald", {"worker": worker})
    for i in range(rows):
        metrics.write_line(f"{worker}_mc_dropout_bald", {"worker": worker, "iteration": i + 1})
    metrics.unlock("shared")
    for i in range(rows):
        metrics.write_line("shared", {"worker": worker, "iteration": i + 1})
    metrics.add_experiment_meta("shared", "mc_dropout", "bald", {"last": worker})


def test_parallel_writers_share_one_directory(tmp_path):
    base = str(tmp_path / "sweep")
    # The shared experiment exists before the workers start, so each of them unlocks it.
    ExperimentSuitMetrics(base).write_line("shared", {"worker": -1, "iteration": 0})
    workers, rows = 4, 20
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_parallel_worker, args=(base, w, rows)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * workers

    metrics = ExperimentSuitMetrics(base)
    for w in range(workers):
        assert metrics.read(f"{w}_mc_dropout_bald") == [
            {"worker": str(w), "iteration": str(i + 1)} for i in range(rows)
        ]
    shared = [(r["worker"], r["iteration"]) for r in metrics.read("shared")]
    assert sorted(shared) == sorted([("-1", "0")] + [(str(w), str(i + 1)) for w in range(workers) for i in range(rows)])
    for w in range(workers):  # each worker's rows stay in order
        assert [int(i) for worker, i in shared if worker == str(w)] == list(range(1, rows + 1))

    with open(metrics.META_FILE_PATH, encoding="utf-8") as handle:
        meta = json.load(handle)
    names = [entry["experiment_name"] for entry in meta["experiments"]]
    assert sorted(names) == sorted([f"{w}_mc_dropout_bald" for w in range(workers)] + ["shared"])
    assert sorted(os.listdir(base)) == sorted(
        [".lock", ".meta.json", "shared.csv"] + [f"{w}_mc_dropout_bald.csv" for w in range(workers)]
    )


def _create_same_directory(base: str) -> None:
    ExperimentSuitMetrics(base).add_experiment_meta(f"pid{os.getpid()}", "m", "q", {})


def test_processes_creating_the_same_new_directory(tmp_path):
    base = str(tmp_path / "a" / "b")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_create_same_directory, args=(base,)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * 4
    assert len(ExperimentSuitMetrics(base).read_meta()["experiments"]) == 4


# ---------------------------------------------------------------------------------------------
# property: write_line then read gives back str() of the values

_keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_values = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(st.characters(blacklist_categories=("Cs",))),
    st.lists(st.integers(), max_size=4),
    st.lists(st.floats(allow_nan=False), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.dictionaries(_keys, _values, min_size=1, max_size=5), min_size=1, max_size=3))
def test_csv_round_trip(rows):
    with tempfile.TemporaryDirectory() as base:
        metrics = ExperimentSuitMetrics(base)
        for row in rows:
            metrics.write_line("exp", row)
        read = metrics.read("exp")
    all_keys = {key for row in rows for key in row}
    assert len(read) == len(rows)
    for written, got in zip(rows, read):
        assert set(got) == all_keys
        assert got == {key: str(written[key]) if key in written else "" for key in all_keys}
