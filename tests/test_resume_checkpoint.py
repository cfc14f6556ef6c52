"""Job identity and the checkpoint store: stable hashes, atomic saves, clear errors on damage."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import numpy as np
import pytest

from al_experiments.resume import Checkpoint, CheckpointStore, CorruptCheckpoint, job_identity
from al_experiments.resume.checkpoint import JobAlreadyRunning
from al_experiments.utils.failpoints import ENV as FAILPOINTS

CONFIG = {"seed": 1, "loop": {"init_size": 20, "step_size": 10}, "query": {"name": "bald"},
          "mlflow": {"tracking_uri": "sqlite:///a.db"}, "metrics_dir": "/tmp/a", "tags": {"x": "1"}}


def test_identity_ignores_where_results_go_and_key_order_but_not_what_is_computed():
    base = job_identity(CONFIG)
    moved = {**CONFIG, "mlflow": {"tracking_uri": "http://elsewhere"}, "metrics_dir": "/b", "tags": {},
             "run_name": "other", "resume": False}
    assert job_identity(moved) == base
    assert job_identity(dict(reversed(list(CONFIG.items())))) == base
    assert job_identity({**CONFIG, "seed": 2}) != base
    assert job_identity({**CONFIG, "loop": {"init_size": 20, "step_size": 11}}) != base
    assert len(base) == 16 and int(base, 16) >= 0


def checkpoint(identity="abc", rounds=0, **kw) -> Checkpoint:
    return Checkpoint(identity=identity, run_id="r1", tracking_uri="sqlite:///x.db", experiment_id="1",
                      metrics_dir="/m", experiment="0_1_m_bald", loop={"round": rounds, "history": []}, **kw)


def test_save_and_load_round_trip_with_model_arrays(tmp_path):
    store = CheckpointStore(tmp_path)
    assert store.load("abc") is None
    weights = [np.arange(6.0).reshape(2, 3), np.ones(3, np.float32)] + [np.zeros(1)] * 10
    state = {"weights": weights, "optimizer": [np.array(3, np.int64)]}
    store.save(checkpoint(rounds=2), state)
    loaded = store.load("abc")
    assert loaded.rounds_done == 2 and loaded.model_file == "model-2.npz"
    arrays = store.load_model_state(loaded)
    assert len(arrays["weights"]) == 12
    for a, b in zip(arrays["weights"], weights):  # order kept past 10 entries
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(arrays["optimizer"][0], 3)
    # The next round's save replaces the model file and removes the old one.
    loaded.loop["round"] = 3
    store.save(loaded, state)
    assert sorted(p.name for p in store.folder("abc").iterdir() if not p.name.startswith(".")) == [
        "checkpoint.json", "model-3.npz"]


@pytest.mark.parametrize("content", ["{", '{"identity": "abc"}', "[]", ""])
def test_a_damaged_checkpoint_gives_one_sentence_and_is_left_alone(tmp_path, content):
    store = CheckpointStore(tmp_path)
    path = store.folder("abc") / "checkpoint.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(CorruptCheckpoint, match="is damaged or was not written by a checkpoint; .* resume=false"):
        store.load("abc")
    assert path.read_text() == content


@pytest.mark.parametrize("damage", ["truncate", "objects"])
def test_a_damaged_model_state_is_one_sentence_not_numpys(tmp_path, damage):
    store = CheckpointStore(tmp_path)
    store.save(checkpoint(rounds=1), {"weights": [np.arange(5000.0)]})
    loaded = store.load("abc")
    path = store.folder("abc") / loaded.model_file
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
        reason = "is not a numpy .npz archive, or it is truncated or damaged"
    else:
        np.savez(path, **{"weights/0": np.array([{}], dtype=object)})
        reason = ("is damaged, or holds Python objects (pickled arrays), which are never loaded since loading "
                  "them can run code")
    with pytest.raises(CorruptCheckpoint) as err:
        store.load_model_state(loaded)
    assert str(err.value) == f"The model state {path} {reason}; pass resume=false to run the job afresh."


def test_checkpoint_of_another_format_version_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(checkpoint())
    path = store.folder("abc") / "checkpoint.json"
    content = json.loads(path.read_text())
    content["version"] = 99
    path.write_text(json.dumps(content))
    with pytest.raises(CorruptCheckpoint, match="format 99"):
        store.load("abc")


def _save_until_killed(root: str, points: str) -> None:
    os.environ[FAILPOINTS] = points
    store = CheckpointStore(root)
    for rounds in range(1, 100):
        store.save(checkpoint(rounds=rounds), {"weights": [np.full(1000, rounds, float)], "optimizer": []})


# Each writer starts again at round 1 and dies at one instant of a save: a round's arrays saved
# and its JSON not, a file written beside the one it replaces (the 4th file: round 2's JSON),
# the rename done and the folder not synced, the JSON saved and the old arrays not removed, the
# first arrays' file written and not renamed. With the round the checkpoint holds after it.
KILLS = [("checkpoint_model_saved@2", 1), ("before_replace@4", 1), ("after_replace@4", 2),
         ("checkpoint_saved@3", 3), ("before_replace@1", 3)]


def test_a_writer_killed_at_any_point_of_a_save_leaves_a_complete_checkpoint(tmp_path):
    for points, rounds_done in KILLS:
        process = multiprocessing.get_context("fork").Process(target=_save_until_killed, args=(str(tmp_path), points))
        process.start()
        process.join()
        assert process.exitcode == -signal.SIGKILL, points
        store = CheckpointStore(tmp_path)
        loaded = store.load("abc")
        assert loaded.rounds_done == rounds_done, points
        arrays = store.load_model_state(loaded)
        assert np.all(arrays["weights"][0] == rounds_done), points


def test_two_processes_cannot_claim_the_same_job(tmp_path):
    store = CheckpointStore(tmp_path)
    with store.claim("abc"):
        other = CheckpointStore(tmp_path)
        with pytest.raises(JobAlreadyRunning, match="already running"):
            with other.claim("abc"):
                pass
    with store.claim("abc"):
        pass


def test_discard_forgets_the_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(checkpoint(rounds=1), {"weights": [np.zeros(2)], "optimizer": []})
    store.discard("abc")
    assert store.load("abc") is None


def test_claiming_a_job_removes_temporary_files_of_a_killed_writer(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(checkpoint(rounds=1))
    stale = store.folder("abc") / ".model-2.npz.tmp"
    stale.write_bytes(b"half")
    with store.claim("abc"):
        assert not stale.exists()
    assert store.load("abc").rounds_done == 1
