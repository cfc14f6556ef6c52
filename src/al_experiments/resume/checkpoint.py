"""A job's checkpoint: ``<state_dir>/<identity>/checkpoint.json`` (+ ``model-<round>.npz``).

The JSON is replaced atomically after every round; model arrays, when the loop needs them, go
to a new ``.npz`` named by round *before* the JSON that names it, so a kill at any instant
leaves a complete checkpoint (the old or the new one). A directory lock keeps two processes
from running the same job at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import filelock
import numpy as np

from al_experiments.utils.atomic import atomic_write_text, atomic_write_with
from al_experiments.utils.failpoints import failpoint
from al_experiments.utils.npz import UnreadableArchive, read_npz

FORMAT_VERSION = 1


class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be read back."""


class JobAlreadyRunning(RuntimeError):
    """Another process holds the job's lock."""


@dataclass
class Checkpoint:
    """Where a job's results live and how far it got."""

    identity: str
    run_id: str
    tracking_uri: str
    experiment_id: str
    metrics_dir: str
    experiment: str  # the tf_al experiment (CSV) name
    finished: bool = False
    loop: dict[str, Any] = field(default_factory=dict)  # ActiveLearningLoop.state() without "model"
    model_file: str | None = None
    summary: dict[str, float] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def rounds_done(self) -> int:
        return int(self.loop.get("round", 0))


class CheckpointStore:
    """Checkpoints of all jobs under one state directory."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir).resolve()

    def folder(self, identity: str) -> Path:
        return self.root / identity

    @contextlib.contextmanager
    def claim(self, identity: str, timeout_s: float = 0.0) -> Iterator[None]:
        """Hold the job's lock for as long as it runs: a second copy of the same job (two
        reruns started at once) fails instead of writing into the same results."""
        folder = self.folder(identity)
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(folder / ".lock"), timeout=timeout_s)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise JobAlreadyRunning(
                f"Job {identity} is already running in another process (lock {folder / '.lock'}); "
                "wait for it to finish or stop it before running it again."
            ) from None
        # Temporary files of a writer killed mid-save; the checkpoint they were for never existed.
        for stale in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            yield
        finally:
            lock.release()

    def load(self, identity: str) -> Checkpoint | None:
        path = self.folder(identity) / "checkpoint.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            content = json.loads(text)
            checkpoint = Checkpoint(**content)
        except (ValueError, TypeError):  # not JSON, or not the fields of a Checkpoint
            raise CorruptCheckpoint(
                f"The checkpoint {path} is damaged or was not written by a checkpoint; delete that folder "
                "to run the job afresh, or pass resume=false."
            ) from None
        if checkpoint.version != FORMAT_VERSION:
            raise CorruptCheckpoint(
                f"The checkpoint {path} has format {checkpoint.version}, this version reads "
                f"{FORMAT_VERSION}; pass resume=false to run the job afresh."
            )
        return checkpoint

    def load_model_state(self, checkpoint: Checkpoint) -> dict[str, list[np.ndarray]] | None:
        if not checkpoint.model_file:
            return None
        path = self.folder(checkpoint.identity) / checkpoint.model_file
        try:
            arrays = read_npz(path)
            groups: dict[str, list[np.ndarray]] = {}
            for key in sorted(arrays, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
                group, _ = key.split("/")
                groups.setdefault(group, []).append(arrays[key])
            return groups
        except UnreadableArchive as exc:
            raise CorruptCheckpoint(
                f"The model state {path} {exc.reason}; pass resume=false to run the job afresh."
            ) from None
        except (ValueError, IndexError):  # names that are not <group>/<position>
            raise CorruptCheckpoint(
                f"The model state {path} holds arrays not written by a checkpoint; pass resume=false to run "
                "the job afresh."
            ) from None

    def save(self, checkpoint: Checkpoint, model_state: dict[str, list[np.ndarray]] | None = None) -> None:
        folder = self.folder(checkpoint.identity)
        folder.mkdir(parents=True, exist_ok=True)
        previous_model = checkpoint.model_file
        if model_state is not None:
            name = f"model-{checkpoint.rounds_done}.npz"
            _atomic_savez(folder / name, {f"{group}/{i}": array for group, arrays in model_state.items()
                                          for i, array in enumerate(arrays)})
            checkpoint.model_file = name
            failpoint("checkpoint_model_saved", checkpoint.rounds_done)  # the JSON still names the previous file
        # Written every round and growing with the history, so kept cheap: a shallow dict (asdict
        # copies the whole tree) and json's C encoder (indent selects the Python one).
        record = {item.name: getattr(checkpoint, item.name) for item in fields(checkpoint)}
        atomic_write_text(folder / "checkpoint.json", json.dumps(record, separators=(",", ":")))
        failpoint("checkpoint_saved", checkpoint.rounds_done)  # the previous model file not yet removed
        if previous_model and previous_model != checkpoint.model_file:
            with contextlib.suppress(OSError):
                (folder / previous_model).unlink()

    def discard(self, identity: str) -> None:
        """Forget a job's checkpoint (resume=false): its old results stay where they are."""
        folder = self.folder(identity)
        for path in folder.glob("*"):
            if path.name != ".lock":
                with contextlib.suppress(OSError):
                    path.unlink()


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_with(path, lambda handle: np.savez(handle, **arrays))
