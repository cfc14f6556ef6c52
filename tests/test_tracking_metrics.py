"""Metrics (tf_al §3.5 CSV), the history helpers (B9: they raised NameError in tf_al) and the
small file helpers of al_experiments.tracking."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from typing import Any

import numpy as np
import pytest

from al_experiments.tracking import (
    Metrics,
    aggregates_per_key,
    atomic_write_text,
    read_history,
    save_history,
)
from al_experiments.tracking.files import directory_lock, to_plain
from al_experiments.utils.atomic import atomic_write_with, replacing


def raw(path: os.PathLike[str] | str) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


# ---------------------------------------------------------------------------------------------
# Metrics


def test_write_exact_bytes(tmp_path):
    metrics = Metrics(tmp_path / "m", keys=["accuracy", "loss"])
    metrics.write(
        "run",
        [
            {"accuracy": [0.5], "loss": np.float32(0.25), "extra": 1},  # one-element list unwrapped
            {"loss": 0.125},  # missing key: empty field
            {"accuracy": np.array([0.75]), "loss": [0.5, 0.25]},
        ],
    )
    assert raw(tmp_path / "m" / "run.csv") == 'accuracy loss\r\n0.5 0.25\r\n 0.125\r\n0.75 "[0.5, 0.25]"\r\n'


def test_default_keys_and_get_path(tmp_path):
    metrics = Metrics(str(tmp_path))
    assert metrics.get_path() == str(tmp_path)
    metrics.write("f", [{"loss": 1, "accuracy": 2}])
    assert raw(tmp_path / "f.csv") == "accuracy loss\r\n2 1\r\n"


def test_write_overwrites_and_always_appends_csv(tmp_path):
    metrics = Metrics(tmp_path, keys=["a"])
    metrics.write("x.csv", [{"a": 1}])
    metrics.write("x.csv", [{"a": 2}])
    assert raw(tmp_path / "x.csv.csv") == "a\r\n2\r\n"
    assert metrics.read("x.csv.csv") == [{"a": "2"}]


def test_read_skips_comments_and_appends_csv_only_when_missing(tmp_path):
    (tmp_path / "r.csv").write_bytes(b"# written by hand\r\na b\r\n1 2\r\n# note\r\n3 \"x y\"\r\n")
    metrics = Metrics(tmp_path)
    expected = [{"a": "1", "b": "2"}, {"a": "3", "b": "x y"}]
    assert metrics.read("r") == expected
    assert metrics.read("r.csv") == expected
    with pytest.raises(FileNotFoundError):
        metrics.read("missing")


def test_collect(tmp_path):
    metrics = Metrics(tmp_path, keys=["loss", "accuracy"])
    values = {"accuracy": [np.float32(0.5)], "loss": (0.25,), "other": 3}
    assert metrics.collect(values) == {"loss": 0.25, "accuracy": 0.5}
    assert list(metrics.collect(values)) == ["loss", "accuracy"]
    assert metrics.collect(values, keys=["other", "nope"]) == {"other": 3}
    assert metrics.collect({"loss": [1, 2]}) == {"loss": [1, 2]}


def test_write_line_appends_with_a_single_header(tmp_path):
    metrics = Metrics(tmp_path / "new", keys=["accuracy", "loss"])
    metrics.write_line("log", {"loss": 1.5, "accuracy": [0.5]})
    metrics.write_line("log", {"accuracy": 0.75})
    metrics.write_line("log", {"loss": None, "accuracy": 1})
    assert raw(tmp_path / "new" / "log.csv") == "accuracy loss\r\n0.5 1.5\r\n0.75 \r\n1 \r\n"
    assert metrics.read("log") == [
        {"accuracy": "0.5", "loss": "1.5"},
        {"accuracy": "0.75", "loss": ""},
        {"accuracy": "1", "loss": ""},
    ]


def test_write_line_after_write_keeps_the_columns_aligned(tmp_path):
    Metrics(tmp_path, keys=["a"]).write("f", [{"a": 1}])
    Metrics(tmp_path, keys=["a", "b"]).write_line("f", {"b": 2, "a": 3})
    assert raw(tmp_path / "f.csv") == "a b\r\n1 \r\n3 2\r\n"


# ---------------------------------------------------------------------------------------------
# aggregates_per_key, save_history, read_history


def test_aggregates_per_key_takes_the_union_of_keys():
    history = [{"a": 1, "b": 2}, {"b": 3, "c": 4}, {}]
    assert aggregates_per_key(history) == {"a": [1, None, None], "b": [2, 3, None], "c": [None, 4, None]}
    assert list(aggregates_per_key(history)) == ["a", "b", "c"]
    assert aggregates_per_key([]) == {}


def test_save_and_read_history_round_trip(tmp_path):
    history = [
        {"iteration": 1, "eval_accuracy": np.float32(0.56), "indices": [3, 4]},
        {"iteration": 2, "eval_accuracy": 0.75, "train_loss": [0.5], "indices": [7]},
    ]
    save_history(history, tmp_path / "hist", "run0")
    assert raw(tmp_path / "hist" / "run0.csv") == (
        'iteration eval_accuracy indices train_loss\r\n1 0.56 "[3, 4]" \r\n2 0.75 7 0.5\r\n'
    )
    assert read_history(tmp_path / "hist", "run0") == [
        {"iteration": "1", "eval_accuracy": "0.56", "indices": "[3, 4]", "train_loss": ""},
        {"iteration": "2", "eval_accuracy": "0.75", "indices": "7", "train_loss": "0.5"},
    ]


def test_save_history_accepts_a_dict_of_lists(tmp_path):
    class History:  # the shape of a Keras History object
        history = {"loss": [0.5, 0.25, 0.125], "accuracy": np.array([0.5, 0.75], dtype=np.float32)}

    save_history(History(), tmp_path, "keras")
    assert read_history(tmp_path, "keras.csv") == [
        {"loss": "0.5", "accuracy": "0.5"},
        {"loss": "0.25", "accuracy": "0.75"},
        {"loss": "0.125", "accuracy": ""},
    ]
    save_history(History.history, tmp_path, "plain")
    assert raw(tmp_path / "plain.csv") == raw(tmp_path / "keras.csv")


# ---------------------------------------------------------------------------------------------
# file helpers


def test_atomic_write_text_exact_bytes_and_permissions(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "a\r\nb\nc\r")
    assert target.read_bytes() == b"a\r\nb\nc\r"
    atomic_write_text(str(target), "\u00e9")
    assert target.read_bytes() == "\u00e9".encode()
    assert os.listdir(tmp_path) == ["out.txt"]  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask


def test_atomic_write_text_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.txt"
    atomic_write_text(target, "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800 surrogate")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_replacing_serves_writers_that_want_a_path(tmp_path):
    target = tmp_path / "model.weights.h5"
    target.write_bytes(b"old")
    with replacing(target, suffix=".weights.h5") as tmp:
        assert tmp.endswith(".weights.h5") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as handle:  # as Keras' save_weights(tmp) would
            handle.write(b"new")
        assert target.read_bytes() == b"old"  # replaced only once the block is done
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["model.weights.h5"]


def test_a_writer_that_fails_halfway_leaves_the_old_file(tmp_path):
    target = tmp_path / "state.npz"
    atomic_write_with(target, lambda handle: np.savez(handle, a=np.arange(3)))

    def half(handle):
        handle.write(b"PK\x03\x04 torn")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, half)
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["state.npz"]


def test_directory_lock_is_reentrant_and_uses_dot_lock(tmp_path):
    with directory_lock(tmp_path):
        with directory_lock(str(tmp_path)):
            atomic_write_text(tmp_path / "x", "1")
    assert (tmp_path / ".lock").exists()


def _report_lock_attempt(directory: str, results: Any) -> None:
    try:
        with directory_lock(directory, timeout_s=0.2):
            results.put("acquired")
    except TimeoutError:
        results.put("timed out")


def test_directory_lock_excludes_a_forked_child_of_its_holder(tmp_path):
    # A forked child inherits the parent's lock objects; it must still wait for the parent's
    # hold instead of taking it as its own reentrant one.
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with directory_lock(tmp_path):
        child = context.Process(target=_report_lock_attempt, args=(str(tmp_path), results))
        child.start()
        child.join(60)
        assert results.get(timeout=10) == "timed out"
    child = context.Process(target=_report_lock_attempt, args=(str(tmp_path), results))
    child.start()
    child.join(60)
    assert results.get(timeout=10) == "acquired"


def test_to_plain():
    value = {
        np.str_("k"): [np.float32(0.1), np.float64(0.2), np.int64(3), np.bool_(False)],
        "arr": np.array([[1, 2], [3, 4]], dtype=np.int32),
        "f16": np.array([0.1], dtype=np.float16),
        "tuple": (np.float32(2.5), None, "s"),
        "zero_d": np.array(1.5, dtype=np.float32),
        "nested": {"x": np.array([np.nan])},
    }
    plain = to_plain(value)
    assert plain == {
        "k": [0.1, 0.2, 3, False],
        "arr": [[1, 2], [3, 4]],
        "f16": [0.1],
        "tuple": (2.5, None, "s"),
        "zero_d": 1.5,
        "nested": {"x": [pytest.approx(float("nan"), nan_ok=True)]},
    }
    assert "np." not in str(plain)
    assert type(plain["k"][0]) is float and type(plain["k"][2]) is int and type(plain["k"][3]) is bool
    assert type(next(iter(plain))) is str
    json.dumps({k: v for k, v in plain.items() if k != "nested"})  # plain types serialise


def test_to_plain_uses_numpy_method_of_tensor_like_objects():
    class FakeTensor:
        def numpy(self):
            return np.array([np.float32(0.25)])

    assert to_plain({"t": FakeTensor()}) == {"t": [0.25]}
