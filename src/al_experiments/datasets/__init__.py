"""Loaders of offline data, named from ``conf/dataset`` (``loader._target_``).

Each returns a ``RawData``: the training inputs/targets and, where the source has one, its own
test split. Splitting, scaling and the initial labelled set are done by the app from config, so
every loader stays a plain reader. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["RawData", "DatasetFileError", "load_digits", "load_breast_cancer", "load_npz", "load_idx"]


class DatasetFileError(FileNotFoundError):
    """A dataset file or folder is missing or unreadable; the message says how to get it."""


@dataclass
class RawData:
    x: np.ndarray
    y: np.ndarray
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
    path: str = ""  # where it came from, for .meta.json

    def has_test_split(self) -> bool:
        return self.x_test is not None


def load_digits() -> RawData:
    """scikit-learn's digits as 8x8 gray images (values 0..16), 10 classes."""
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    return RawData(bunch.images.astype("float32"), bunch.target.astype("int64"), path="sklearn:digits")


def load_breast_cancer() -> RawData:
    """scikit-learn's breast cancer: 30 features, 2 classes."""
    from sklearn.datasets import load_breast_cancer as sk_load

    bunch = sk_load()
    return RawData(bunch.data.astype("float32"), bunch.target.astype("int64"), path="sklearn:breast_cancer")


_NPZ_HINT = (
    "download MNIST in this layout with `python -c \"import keras; keras.datasets.mnist.load_data()\"` "
    "(it lands in ~/.keras/datasets/mnist.npz) and set dataset.loader.path to the file"
)


def load_npz(path: str) -> RawData:
    """A Keras-layout ``.npz`` with ``x_train, y_train, x_test, y_test``."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise DatasetFileError(f"The dataset file {path!r} does not exist: {_NPZ_HINT}.")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in data.files]
            if missing:
                raise DatasetFileError(
                    f"The dataset file {path!r} lacks the arrays {', '.join(missing)}: "
                    f"it must hold x_train, y_train, x_test and y_test; {_NPZ_HINT}."
                )
            arrays = {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError) as exc:
        raise DatasetFileError(f"The dataset file {path!r} is not a readable .npz file ({exc}); {_NPZ_HINT}.") from None
    return RawData(
        arrays["x_train"].astype("float32"), arrays["y_train"].astype("int64").reshape(-1),
        arrays["x_test"].astype("float32"), arrays["y_test"].astype("int64").reshape(-1), path=path,
    )


_IDX_FILES = {
    "x": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(path: str) -> RawData:
    """A folder holding MNIST-named IDX files (plain or ``.gz``)."""
    folder = os.path.expanduser(path)
    arrays = {}
    for key, stem in _IDX_FILES.items():
        candidates = [os.path.join(folder, stem), os.path.join(folder, stem + ".gz")]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise DatasetFileError(
                f"The IDX file {stem}[.gz] is missing in {folder!r}: download the four MNIST "
                "(or Fashion-MNIST) IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) into that folder and set "
                "dataset.loader.path to it."
            )
        arrays[key] = _read_idx(found)
    return RawData(arrays["x"].astype("float32"), arrays["y"].astype("int64"),
                   arrays["x_test"].astype("float32"), arrays["y_test"].astype("int64"), path=folder)


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetFileError(f"{path!r} is not an IDX file (bad magic number); re-download it.")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetFileError(f"{path!r} is truncated: expected {int(np.prod(shape))} values; re-download it.")
    return data.reshape(shape).astype(dtype.newbyteorder("="))
