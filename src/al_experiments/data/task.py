"""The task of a job as data: which rows of the loaded data each split holds, the labels the oracle
gives, and the initial labelled set. Saved as one ``.npz`` per job, so anyone (with this
framework or another) can run the identical task, and ``dataset.task_dir`` re-runs a sweep from
the files exactly.

Rows are numbered in the *source*: the loader's training arrays, then its own test arrays
where the file has them (``source_rows``). A pool of repeated data lists a row once per copy;
copies differ by Gaussian noise of standard deviation ``repeat_noise`` drawn by
``noise_generator(split_seed)`` (recorded, not stored: the inputs are the source's).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from al_experiments.utils.atomic import atomic_write_with
from al_experiments.utils.npz import UnreadableArchive, read_npz

__all__ = ["Task", "TaskFileError", "SPLITS", "TASKS_FOLDER", "noise_generator", "split_generator", "source_inputs",
           "FORMAT"]

FORMAT = "al-experiments task 1"
TASKS_FOLDER = "tasks"  # inside a sweep's metrics folder: one task file per (setting, seed)
SPLITS = ("pool", "test", "val", "target")  # each a pair of arrays: <split> rows, <split>_labels


class TaskFileError(ValueError):
    """A task file is missing, unreadable or not of the loaded data; the message says what to do."""


def split_generator(split_seed: int, purpose: int) -> np.random.Generator:
    """The generator of one draw of a task (a scenario option, the repeated pool's noise): one
    stream per (split seed, purpose), so adding an option leaves the others' draws as they were."""
    return np.random.default_rng(np.random.SeedSequence([int(split_seed) % 2**32, purpose]))


def noise_generator(split_seed: int) -> np.random.Generator:
    """The generator of the repeated pool's noise."""
    return split_generator(split_seed, 0x5EED)


def source_inputs(x: np.ndarray, x_test: Optional[np.ndarray]) -> np.ndarray:
    """The source's inputs, the rows a task names: training arrays then the file's test arrays."""
    return x if x_test is None else np.concatenate([x, x_test], axis=0)


@dataclass
class Task:
    """Rows and labels of every split, the initial set, and what the pool's inputs need beyond rows."""

    source_hash: str  # datasets.content_hash of the loaded arrays: a task fits that data only
    split_seed: int
    pool: np.ndarray
    pool_labels: np.ndarray
    test: Optional[np.ndarray] = None
    test_labels: Optional[np.ndarray] = None
    val: Optional[np.ndarray] = None
    val_labels: Optional[np.ndarray] = None
    target: Optional[np.ndarray] = None
    target_labels: Optional[np.ndarray] = None
    copy_of: Optional[np.ndarray] = None  # per pool point, the id of its original (repeated data)
    repeat_noise: float = 0.0
    init: Optional[np.ndarray] = None  # pool indices of the initial labelled set, once drawn
    flipped: Optional[np.ndarray] = None  # pool points whose label the oracle gets wrong

    def digest(self) -> str:
        """16 hex digits over every array and setting: equal digests, identical tasks."""
        sha = hashlib.sha256()
        for item in fields(self):
            value = getattr(self, item.name)
            sha.update(item.name.encode())
            if isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value)
                sha.update(f"{value.dtype.str}{value.shape};".encode())
                sha.update(value)
            else:
                sha.update(repr(value).encode())
        return sha.hexdigest()[:16]

    def split(self, name: str, inputs: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """``(inputs, labels)`` of split ``name`` from the source's ``inputs``; None if absent."""
        rows = getattr(self, name)
        return None if rows is None else (inputs[rows], getattr(self, f"{name}_labels"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the task as one ``.npz`` (atomically), with a JSON header saying what it is."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        header = {"format": FORMAT, "source_hash": self.source_hash, "split_seed": int(self.split_seed),
                  "repeat_noise": float(self.repeat_noise), "digest": self.digest(),
                  "rows": "rows of the loader's training arrays, then of its own test arrays",
                  "noise": "repeated pool copies: Gaussian noise drawn per copy from "
                           "numpy SeedSequence([split_seed, 0x5EED])"}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_with(path, lambda handle: np.savez(handle, header=np.array(json.dumps(header)), **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str], source_hash: str) -> "Task":
        """The task in ``path``, checked to be whole and of the data whose hash is ``source_hash``."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise TaskFileError(f"The task file {path} does not exist: run the sweep once without dataset.task_dir "
                                "to write it, or point dataset.task_dir at the folder that holds it.")
        try:
            arrays = read_npz(path)
            header = json.loads(str(arrays.pop("header")))
        except UnreadableArchive as exc:
            raise TaskFileError(f"The task file {path} {exc.reason}: delete it so the sweep writes it again.") from None
        except (KeyError, ValueError):  # no header, or one that is not JSON
            raise TaskFileError(f"The task file {path} has no readable header, so it is not a task file: delete it "
                                "so the sweep writes it again.") from None
        if header.get("format") != FORMAT:
            raise TaskFileError(f"The file {path} is not a task file of this version ({header.get('format')!r}).")
        if header["source_hash"] != source_hash:
            raise TaskFileError(f"The task file {path} was made from other data (hash {header['source_hash']}, "
                                f"loaded {source_hash}): point dataset.path at the data it was made from.")
        task = cls(source_hash=header["source_hash"], split_seed=int(header["split_seed"]),
                   repeat_noise=float(header["repeat_noise"]), **arrays)
        if task.digest() != header["digest"]:
            raise TaskFileError(f"The task file {path} does not match its own digest; it was changed or is damaged.")
        return task
