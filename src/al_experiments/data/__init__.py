"""Loaders of offline data, named from ``conf/dataset`` (``loader._target_``).

Each returns a ``RawData``: the training inputs/targets and, where the source has one, its own
test split. Splitting, scaling and the initial labelled set are done by the app from config, so
every loader stays a plain reader. Nothing here imports TensorFlow, and nothing is downloaded:
MNIST is read from a file the user names, Fashion-MNIST from Debian's ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from al_experiments.utils.npz import UnreadableArchive, read_npz

__all__ = [
    "RawData", "DatasetFileError", "content_hash", "load_digits", "load_breast_cancer", "load_npz", "load_idx",
    "load_mnist", "load_fashion_mnist", "FASHION_MNIST_DEBIAN_DIR",
]

# Where Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files.
FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"


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

    def content_hash(self) -> str:
        """Fingerprint of the loaded arrays, so a run records exactly which data it saw."""
        return content_hash(self.x, self.y, self.x_test, self.y_test)


def content_hash(*arrays: Optional[np.ndarray]) -> str:
    """sha256 over each array's dtype, shape and bytes (None counts as absent), 16 hex digits.

    Two loads of the same content give the same hash whatever the file format (the loaders
    convert to one dtype); any changed value, shape or dtype changes it.
    """
    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"none;")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array)
    return digest.hexdigest()[:16]


def load_digits() -> RawData:
    """scikit-learn's digits as 8x8 gray images (values 0..16), 10 classes."""
    from sklearn.datasets import load_digits as sk_load  # scikit-learn is slow to import: loaded on use

    bunch = sk_load()
    return RawData(bunch.images.astype("float32"), bunch.target.astype("int64"), path="sklearn:digits")


def load_breast_cancer() -> RawData:
    """scikit-learn's breast cancer: 30 features, 2 classes."""
    from sklearn.datasets import load_breast_cancer as sk_load  # slow to import: loaded on use

    bunch = sk_load()
    return RawData(bunch.data.astype("float32"), bunch.target.astype("int64"), path="sklearn:breast_cancer")


_NPZ_HINT = (
    "download MNIST in this layout with `python -c \"import keras; keras.datasets.mnist.load_data()\"` "
    "(it lands in ~/.keras/datasets/mnist.npz) and set dataset.path to the file"
)


def load_npz(path: Optional[str]) -> RawData:
    """A Keras-layout ``.npz`` with ``x_train, y_train, x_test, y_test``."""
    path = _expand(path, f"dataset.path is not set: {_NPZ_HINT}.")
    if not os.path.isfile(path):
        raise DatasetFileError(f"The dataset file {path!r} does not exist: {_NPZ_HINT}.")
    try:
        arrays = read_npz(path)
    except UnreadableArchive as exc:
        raise DatasetFileError(f"The dataset file {path!r} {exc.reason}: {_NPZ_HINT}.") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DatasetFileError(
            f"The dataset file {path!r} lacks the arrays {', '.join(missing)}: "
            f"it must hold x_train, y_train, x_test and y_test; {_NPZ_HINT}."
        )
    return RawData(
        arrays["x_train"].astype("float32"), _class_numbers(arrays["y_train"], "y_train", path),
        arrays["x_test"].astype("float32"), _class_numbers(arrays["y_test"], "y_test", path), path=path,
    )


def _class_numbers(labels: np.ndarray, name: str, path: str) -> np.ndarray:
    """Labels as int64 class numbers; NaN or fractional values are refused (a cast would turn
    NaN into -9223372036854775808 and 1.5 into 1 without a word)."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DatasetFileError(
                f"{name} in {path!r} holds {int(bad.sum())} NaN, infinite or fractional label(s); "
                "labels must be whole class numbers 0..C-1."
            )
    elif labels.dtype.kind not in "iub":
        raise DatasetFileError(f"{name} in {path!r} has labels of type {labels.dtype}; labels must be whole class numbers 0..C-1.")
    return labels.astype("int64").reshape(-1)


_IDX_FILES = {
    "x": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_IDX_HINT = (
    "download the four MNIST (or Fashion-MNIST) IDX files (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) into a folder and "
    "set dataset.path to it"
)


def load_idx(path: Optional[str]) -> RawData:
    """A folder holding MNIST-named IDX files (plain or ``.gz``)."""
    folder = _expand(path, f"dataset.path is not set: {_IDX_HINT}.")
    arrays = {}
    for key, stem in _IDX_FILES.items():
        candidates = [os.path.join(folder, stem), os.path.join(folder, stem + ".gz")]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise DatasetFileError(f"The IDX file {stem}[.gz] is missing in {folder!r}: {_IDX_HINT}.")
        arrays[key] = _read_idx(found)
    return RawData(arrays["x"].astype("float32"), arrays["y"].astype("int64"),
                   arrays["x_test"].astype("float32"), arrays["y_test"].astype("int64"), path=folder)


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError):  # gzip's errors for a file that is not, or no longer, whole gzip
        raise DatasetFileError(f"{path!r} is not a readable gzip file (truncated or damaged); re-download it.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetFileError(f"{path!r} is not an IDX file (bad magic number); re-download it.")
    ndim, offset = raw[3], 4 + 4 * raw[3]
    if len(raw) < offset:
        raise DatasetFileError(f"{path!r} is truncated inside its header; re-download it.")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DatasetFileError(f"{path!r} holds {len(raw) - offset} bytes of values where its header announces "
                               f"{expected}: it is truncated or damaged; re-download it.")
    data = np.frombuffer(raw, dtype=dtype, offset=offset)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def _expand(path: Optional[str], missing: str) -> str:
    if path is None or not str(path).strip():
        raise DatasetFileError(missing)
    return os.path.expanduser(str(path))


_MNIST_HINT = (
    "MNIST is not bundled and nothing is downloaded: pass dataset.path=<a Keras mnist.npz, e.g. "
    "from `python -c \"import keras; keras.datasets.mnist.load_data()\"` (saved as "
    "~/.keras/datasets/mnist.npz), or a folder of the four MNIST IDX files>"
)


def load_mnist(path: Optional[str] = None) -> RawData:
    """MNIST from a Keras ``mnist.npz`` file or a folder of IDX files (told apart by the path),
    as ``(N, 28, 28, 1)`` gray images: the channel axis a CNN expects."""
    path = _expand(path, f"{_MNIST_HINT}.")
    if not os.path.exists(path):
        raise DatasetFileError(f"MNIST was not found at {path!r}; {_MNIST_HINT}.")
    return _gray_images(_load_file_or_folder(path))


def load_fashion_mnist(path: Optional[str] = FASHION_MNIST_DEBIAN_DIR) -> RawData:
    """Fashion-MNIST (Zalando, 10 clothing classes) from a folder of IDX files or a Keras-layout
    ``.npz``; by default from Debian's package. Images come as ``(N, 28, 28, 1)``."""
    path = os.path.expanduser(path or FASHION_MNIST_DEBIAN_DIR)
    if not os.path.exists(path):
        raise DatasetFileError(
            f"Fashion-MNIST was not found at {path!r}; install it with "
            "`sudo apt-get install dataset-fashion-mnist` (or `make data`) or pass "
            "dataset.path=<a folder of its IDX files or a Keras-layout .npz>."
        )
    return _gray_images(_load_file_or_folder(path))


def _load_file_or_folder(path: str) -> RawData:
    """A folder is read as IDX files, a file as a Keras-layout ``.npz``."""
    return load_idx(path) if os.path.isdir(path) else load_npz(path)


def _gray_images(raw: RawData) -> RawData:
    """Add the trailing channel axis to (N, H, W) images, leaving (N, H, W, C) as it is."""
    def with_channel(x: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return x[..., np.newaxis] if x is not None and x.ndim == 3 else x

    raw.x, raw.x_test = with_channel(raw.x), with_channel(raw.x_test)
    return raw
