"""The compile cache the processes of a sweep share (utils.compile_cache): how it sets up
TensorFlow's persistent XLA cache, and, with real processes, that of processes starting at once
one compiles and the others load, and that a later process loads what they left.

Which process compiled and which loaded is read from TensorFlow's own log of the cache (the
lines it writes when it saves an entry and when it loads one)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from al_experiments.app.errors import ConfigError
from al_experiments.app.schema import validate
from al_experiments.utils import compile_cache
from al_experiments.utils.compile_cache import XLA_FLAGS_ENV, cache_key, first_compile, use_compile_cache


@pytest.fixture
def fresh_process(monkeypatch):
    """As a job's process before TensorFlow loads: no XLA flags or log level of the test's own,
    and TensorFlow not in ``sys.modules`` (restored afterwards)."""
    for name in (XLA_FLAGS_ENV, "TF_CPP_MIN_LOG_LEVEL", compile_cache.KEEP_LOGS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(compile_cache, "_writable_cache", None)
    return monkeypatch


def test_the_cache_goes_into_a_folder_per_tensorflow_and_processor(fresh_process, tmp_path):
    path = use_compile_cache(tmp_path / "cache")
    assert path == tmp_path / "cache" / cache_key()
    assert not path.exists()  # TensorFlow makes it with its first entry: a refused job writes nothing
    assert cache_key().startswith("tf") and len(cache_key().split("-")[-1]) == 12
    flags = os.environ[XLA_FLAGS_ENV]
    assert f'--tf_xla_persistent_cache_directory="{path}"' in flags
    assert "--tf_xla_persistent_cache_device_types=CPU" in flags  # GPU programs are not keyed by model
    assert "read_only" not in flags
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_a_users_own_flags_and_log_level_are_kept(fresh_process, tmp_path):
    fresh_process.setenv(XLA_FLAGS_ENV, "--tf_xla_auto_jit=0")
    fresh_process.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    path = use_compile_cache(str(tmp_path / "with space"))
    assert os.environ[XLA_FLAGS_ENV].startswith("--tf_xla_auto_jit=0 ")
    assert f'="{path}"' in os.environ[XLA_FLAGS_ENV]
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


@pytest.mark.parametrize("setting", ["none", "own cache", "tensorflow loaded"])
def test_no_cache_is_set_up_where_it_cannot_take_effect_or_is_not_wanted(fresh_process, tmp_path, setting):
    folder = None if setting == "none" else tmp_path / "cache"
    if setting == "own cache":
        fresh_process.setenv(XLA_FLAGS_ENV, "--tf_xla_persistent_cache_directory=/elsewhere")
    if setting == "tensorflow loaded":  # TensorFlow read its flags when it loaded
        fresh_process.setitem(sys.modules, "tensorflow", object())
    before = os.environ.get(XLA_FLAGS_ENV)
    assert use_compile_cache(folder) is None
    assert os.environ.get(XLA_FLAGS_ENV) == before
    assert not (tmp_path / "cache").exists()


def test_a_folder_that_cannot_be_made_costs_a_warning_not_the_job(fresh_process, tmp_path, caplog):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger=compile_cache.__name__):
        assert use_compile_cache(blocker / "cache") is None
    assert XLA_FLAGS_ENV not in os.environ
    (record,) = caplog.records
    assert "cannot be made" in record.getMessage() and "compile_cache=null" in record.getMessage()


def test_a_folder_that_can_be_read_but_not_written_is_used_read_only(fresh_process, tmp_path, caplog):
    key_folder = tmp_path / "cache" / cache_key()
    key_folder.mkdir(parents=True)
    # Permission bits do not stop root, who runs the tests on some machines: the check is denied.
    real_access = os.access
    fresh_process.setattr(compile_cache.os, "access",
                          lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    with caplog.at_level(logging.WARNING, logger=compile_cache.__name__):
        assert use_compile_cache(tmp_path / "cache") == key_folder
    assert "--tf_xla_persistent_cache_read_only=true" in os.environ[XLA_FLAGS_ENV]
    (record,) = caplog.records
    assert "read-only" in record.getMessage()


def test_an_empty_compile_cache_setting_is_refused_with_its_fix(smoke_config):
    cfg = smoke_config.copy()
    cfg.compile_cache = " "
    with pytest.raises(ConfigError, match="compile_cache is empty.*compile_cache=null"):
        validate(cfg)


def test_the_cache_lives_under_state_dir_and_leaves_the_job_identity_alone(smoke_config):
    from omegaconf import OmegaConf

    from al_experiments.resume import job_identity

    cfg = smoke_config.copy()
    cfg.state_dir = "/somewhere/state"
    assert cfg.compile_cache == "/somewhere/state/compile-cache"
    resolved = OmegaConf.to_container(cfg, resolve=True)
    moved = {**resolved, "compile_cache": "/elsewhere"}
    assert job_identity(moved) == job_identity(resolved)


def test_one_process_at_a_time_compiles_a_program(fresh_process, tmp_path):
    use_compile_cache(tmp_path / "cache")
    times: dict[str, float] = {}

    def hold(who: str, program: str, seconds: float) -> None:
        with first_compile(program):
            times[f"{who} in"] = time.monotonic()
            time.sleep(seconds)
            times[f"{who} out"] = time.monotonic()

    first = threading.Thread(target=hold, args=("first", "train A", 0.5))
    first.start()
    while "first in" not in times:
        time.sleep(0.01)
    # flock locks an open file, so a second opening in this process waits as another process would
    same = threading.Thread(target=hold, args=("same", "train A", 0.0))
    other = threading.Thread(target=hold, args=("other", "train B", 0.0))
    same.start(), other.start()
    for thread in (first, same, other):
        thread.join(timeout=60)
    assert times["same in"] >= times["first out"]  # the same program waited for the first
    assert times["other in"] < times["first out"]  # another program did not
    assert len(list((tmp_path / "cache" / cache_key()).glob("*.lock"))) == 2


def test_without_a_writable_cache_nothing_is_locked(fresh_process, tmp_path):
    with first_compile("train A"):
        pass
    blocker = tmp_path / "a file"
    blocker.write_text("")
    use_compile_cache(blocker / "cache")  # cannot be made: no cache
    with first_compile("train A"):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["a file"]


# A process as a job's: the cache set up before TensorFlow loads, then a dense network trained
# through XLA (one compiled program); prints its losses.
TRAIN = """
import json, sys
from al_experiments.utils.compile_cache import use_compile_cache
use_compile_cache(sys.argv[1])
import numpy as np
import keras
from al_experiments import networks
from al_experiments.config import Config
from al_experiments.wrapper import McDropout
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x, y = rng.normal(size=(40, 8)).astype("float32"), rng.integers(0, 3, 40)
model = McDropout(networks.mlp(input_shape=[8], num_classes=3, hidden_units=[16], dropout=0.5),
                  Config(fit={"epochs": 3, "batch_size": 16}))
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
print(json.dumps(model.fit(x, y).history["loss"]))
"""


def _start(folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "0",
           "TF_CPP_VMODULE": "device_executable_persistor=2"}  # its lines on saving and loading an entry
    env.pop(XLA_FLAGS_ENV, None)
    return subprocess.Popen([sys.executable, "-c", TRAIN, str(folder)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[list[float], dict[str, int]]:
    """The process's losses, and how many programs it compiled and saved, and loaded."""
    out, err = process.communicate(timeout=600)  # a hang guard only
    assert process.returncode == 0, err[-3000:]
    cache = {"saved": err.count("XlaSerializedCacheEntry saved"), "loaded": err.count("Loading cached entry")}
    return json.loads(out.strip().splitlines()[-1]), cache


def _entries(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry of the cache: its identity on disk (inode, modification time in ns)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and p.suffix != ".lock"}


@pytest.mark.slow
def test_of_processes_starting_at_once_one_compiles_and_a_later_one_loads(tmp_path):
    folder = tmp_path / "cache"
    writers = [_finish(p) for p in [_start(folder) for _ in range(2)]]  # as a local sweep's jobs
    assert writers[0][0] == writers[1][0]  # a loaded program computes what the compiled one does
    assert sorted(cache["saved"] for _, cache in writers) == [0, 1], writers
    assert sorted(cache["loaded"] for _, cache in writers) == [0, 1], writers
    written = _entries(folder)
    # The entry was renamed into place whole: one file for the one program, no temporary one.
    assert len(written) == 1 and all(name.endswith("XLA_CPU_JIT.pb") for name in written), written

    losses, cache = _finish(_start(folder))
    assert losses == writers[0][0] and cache == {"saved": 0, "loaded": 1}
    assert _entries(folder) == written  # read, not written again


def test_a_failed_write_into_the_cache_is_the_os_error_behind_it(tmp_path, monkeypatch):
    """TensorFlow writes an entry while it compiles, so a full cache folder fails the program's
    call with TensorFlow's own error: it comes out as the OSError it is, naming the folder (what a
    job reports as a results folder to fix); any other error passes unchanged."""
    import errno

    cache = tmp_path / "cache"
    monkeypatch.setattr(compile_cache, "_writable_cache", cache)
    message = f"{cache}/xla_compile_cache__1__2__XLA_CPU_JIT.pbvm-1.tmp; No space left on device"
    with pytest.raises(OSError) as raised:
        with first_compile("program"):
            raise RuntimeError(message)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(cache)
    with pytest.raises(RuntimeError, match="elsewhere"):
        with first_compile("program"):
            raise RuntimeError("/somewhere/elsewhere: No space left on device")
    monkeypatch.setattr(compile_cache, "_writable_cache", None)
    with pytest.raises(RuntimeError):  # no cache of this process's: nothing of it can fail
        with first_compile("program"):
            raise RuntimeError(message)
