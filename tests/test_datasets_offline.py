"""Offline loaders (MNIST from .npz or IDX, Fashion-MNIST from Debian's package) and the content
hash a job records. Loader tests write their own small IDX (plain and gzipped) and .npz files;
only the last test reads the real Fashion-MNIST, and skips where the package is not installed."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from al_experiments.data import (
    FASHION_MNIST_DEBIAN_DIR,
    DatasetFileError,
    content_hash,
    load_fashion_mnist,
    load_idx,
    load_mnist,
    load_npz,
)

IDX_NAMES = {"x": "train-images-idx3-ubyte", "y": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.integers(0, 256, (30, 5, 4), dtype=np.uint8), "y": (np.arange(30) % 3).astype(np.uint8),
            "x_test": rng.integers(0, 256, (9, 5, 4), dtype=np.uint8), "y_test": (np.arange(9) % 3).astype(np.uint8)}


def write_idx(folder: Path, data: dict[str, np.ndarray], gzipped: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_NAMES.items():
        array = data[key]
        raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
        if gzipped:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return folder


def write_npz(path: Path, data: dict[str, np.ndarray]) -> Path:
    np.savez(path, x_train=data["x"], y_train=data["y"], x_test=data["x_test"], y_test=data["y_test"])
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_plain_and_gzipped(tmp_path, gzipped):
    data = arrays()
    raw = load_idx(str(write_idx(tmp_path, data, gzipped)))
    np.testing.assert_array_equal(raw.x, data["x"])
    np.testing.assert_array_equal(raw.y_test, data["y_test"])
    assert raw.x.dtype == np.float32 and raw.y.dtype == np.int64


def test_mnist_reads_a_folder_or_an_npz_with_a_channel_axis(tmp_path):
    data = arrays()
    from_idx = load_mnist(str(write_idx(tmp_path / "idx", data, gzipped=True)))
    from_npz = load_mnist(str(write_npz(tmp_path / "mnist.npz", data)))
    for raw in (from_idx, from_npz):
        assert raw.x.shape == (30, 5, 4, 1) and raw.x_test.shape == (9, 5, 4, 1)
        np.testing.assert_array_equal(raw.x[..., 0], data["x"])
    # Same content, either format: one hash.
    assert from_idx.content_hash() == from_npz.content_hash()


def test_fashion_mnist_reads_any_folder_given(tmp_path):
    raw = load_fashion_mnist(str(write_idx(tmp_path, arrays(), gzipped=True)))
    assert raw.x.shape == (30, 5, 4, 1) and raw.path == str(tmp_path)


@pytest.mark.parametrize("loader, needle", [
    (load_mnist, "MNIST is not bundled and nothing is downloaded: pass dataset.path="),
    (load_npz, "dataset.path is not set"),
    (load_idx, "dataset.path is not set"),
])
def test_no_path_says_how_to_get_the_data(loader, needle):
    with pytest.raises(DatasetFileError, match=needle.replace(".", r"\.")) as info:
        loader(None)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("damage, message", [
    # gzip's, struct's and numpy's own errors used to end these.
    ("not_gzip", "is not a readable gzip file (truncated or damaged); re-download it."),
    ("cut_gzip", "is not a readable gzip file (truncated or damaged); re-download it."),
    ("cut_header", "is truncated inside its header; re-download it."),
    ("cut_values", "holds 479 bytes of values where its header announces 600: it is truncated or damaged; "
                   "re-download it."),
])
def test_a_damaged_idx_file_is_one_sentence(tmp_path, damage, message):
    folder = write_idx(tmp_path, arrays(), gzipped=True)
    path = folder / (IDX_NAMES["x"] + ".gz")
    raw = gzip.decompress(path.read_bytes())
    if damage == "not_gzip":
        path.write_bytes(raw)
    elif damage == "cut_gzip":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "cut_header":
        path.write_bytes(gzip.compress(raw[:10]))
    else:
        path.write_bytes(gzip.compress(raw[:-121]))
    with pytest.raises(DatasetFileError) as err:
        load_idx(str(folder))
    assert str(err.value) == f"{str(path)!r} {message}"


def test_missing_files_are_one_sentence(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(DatasetFileError, match=r"MNIST was not found at .*nope.*keras\.datasets\.mnist"):
        load_mnist(missing)
    with pytest.raises(DatasetFileError) as info:
        load_fashion_mnist(missing)
    message = str(info.value)
    assert message.startswith(f"Fashion-MNIST was not found at {missing!r}; install it with "
                              "`sudo apt-get install dataset-fashion-mnist`")
    assert "dataset.path=" in message and "\n" not in message
    with pytest.raises(DatasetFileError, match="train-labels-idx1-ubyte"):
        load_mnist(str(tmp_path))  # a folder without the IDX files


def test_content_hash_is_stable_and_changes_with_the_data(tmp_path):
    data = arrays()
    folder = write_idx(tmp_path, data, gzipped=False)
    first = load_idx(str(folder)).content_hash()
    assert first == load_idx(str(folder)).content_hash()  # stable across loads
    assert len(first) == 16 and int(first, 16) >= 0
    changed = dict(data, x=data["x"].copy())
    changed["x"][0, 0, 0] ^= 1  # one pixel
    assert load_idx(str(write_idx(tmp_path / "b", changed, gzipped=False))).content_hash() != first
    # shape and dtype count, not only the bytes; a missing test split counts too
    x = np.arange(12, dtype=np.float32)
    assert len({content_hash(x), content_hash(x.reshape(3, 4)), content_hash(x.view(np.int32)),
                content_hash(x, None)}) == 4


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DEBIAN_DIR),
                    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_DEBIAN_DIR} (make data)")
def test_real_fashion_mnist_from_debian():
    raw = load_fashion_mnist()
    assert raw.x.shape == (60000, 28, 28, 1) and raw.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(raw.y).tolist() == [6000] * 10 and np.bincount(raw.y_test).tolist() == [1000] * 10
    assert raw.x.max() == 255.0 and raw.path == FASHION_MNIST_DEBIAN_DIR
    assert raw.content_hash() == load_fashion_mnist().content_hash()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DEBIAN_DIR),
                    reason=f"Fashion-MNIST is not installed in {FASHION_MNIST_DEBIAN_DIR} (make data)")
def test_fashion_quick_preset_runs_one_round(folder):
    import json

    from _app_helpers import mlflow_runs
    from conftest import compose_config, in_folder

    from al_experiments.app.job import JobContext, run_job

    cfg = compose_config("+experiment=fashion_quick", "loop.max_rounds=1", "query.pool_subset=200", "model.fit.epochs=2")
    run_job(in_folder(cfg, folder), JobContext())
    [run] = mlflow_runs(folder)
    params = run.data.params
    assert (params["data.train_size"], params["data.val_size"], params["data.test_size"]) == ("59900", "100", "10000")
    assert params["data.input_shape"] == "(28, 28, 1)" and params["data.path"] == FASHION_MNIST_DEBIAN_DIR
    meta = json.loads((folder / "metrics" / ".meta.json").read_text())
    assert meta["dataset"]["content_hash"] == params["data.content_hash"] == load_fashion_mnist().content_hash()
