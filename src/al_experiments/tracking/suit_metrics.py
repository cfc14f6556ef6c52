"""``ExperimentSuitMetrics``: tf_al's metrics directory (one CSV per experiment + ``.meta.json``).

The file layout is tf_al 0.1.1's (``docs/tf_al_differences.md``) so old readers keep working; its
bugs are fixed:

- every experiment keeps one column set: a row with new keys rewrites the file under a merged
  header instead of appending misaligned fields;
- ``filter_keys`` works;
- meta entries are not duplicated: ``add_experiment_meta`` replaces an entry of the same name;
- only ``*.csv`` files are reconstructed as experiments (no ``notes.txt``, ``.lock``, temp files);
- every write is atomic and every read-modify-write happens under a directory lock, so several
  processes of a sweep can share one directory and one ``.meta.json``;
- a corrupt ``.meta.json`` raises a clear error instead of being overwritten.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from al_experiments.tracking.files import (
    append_row_text,
    directory_lock,
    is_nan,
    read_csv_dicts,
    read_text,
    to_plain,
)
from al_experiments.utils.atomic import atomic_write_text
from al_experiments.utils.trees import flat_items

logger = logging.getLogger(__name__)

META_FILE_NAME = ".meta.json"

# Status codes of ``experiment_files``, as in tf_al.
LOCKED = 0  # reconstructed from disk: writing raises until unlock()/overwrite()
OPEN = 1  # rows are appended
OVERWRITE = 2  # the next write replaces the file


class ExperimentSuitMetrics:
    """Write and read the metrics of a suit of experiments in ``base_path``.

    ``base_path`` (and its parents) is created if missing, with an empty ``.meta.json``
    (``{"experiments": []}``). Every ``*.csv`` file already there is registered as a
    reconstructed experiment and locked (status 0): writing to it raises until ``unlock(name)``
    (append) or ``overwrite(name)`` (replace) is called.

    Args:
        base_path: the metrics directory.
        verbose: log what is written at INFO instead of DEBUG (logger ``__name__``).
    """

    def __init__(self, base_path: str | os.PathLike[str], verbose: bool = False) -> None:
        self.BASE_PATH = os.fspath(base_path)
        self.META_FILE_PATH = os.path.join(self.BASE_PATH, META_FILE_NAME)
        self.verbose = verbose
        self._log_level = logging.INFO if verbose else logging.DEBUG
        self.delimiter = " "
        self.quotechar = '"'
        self.quoting = csv.QUOTE_MINIMAL
        self.experiment_files: dict[str, int] = {}

        # exist_ok: parallel jobs of a sweep create the same directory at the same time.
        os.makedirs(self.BASE_PATH, exist_ok=True)
        with directory_lock(self.BASE_PATH):
            if os.path.exists(self.META_FILE_PATH):
                # Validate now: a corrupt meta file should stop a job before hours of training.
                self.read_meta()
            else:
                atomic_write_text(self.META_FILE_PATH, json.dumps({"experiments": []}, indent=4))
                self._log("Created %s", self.META_FILE_PATH)
        self._reconstruct()

    # ------------------------------------------------------------------ reconstruction, locking

    def _reconstruct(self) -> None:
        for entry in sorted(os.listdir(self.BASE_PATH)):
            if entry.endswith(".csv") and os.path.isfile(os.path.join(self.BASE_PATH, entry)):
                self.experiment_files[entry[: -len(".csv")]] = LOCKED
        if self.experiment_files:
            self._log(
                "Reconstructed %d locked experiment file(s) in %s: %s",
                len(self.experiment_files),
                self.BASE_PATH,
                ", ".join(self.experiment_files),
            )

    @staticmethod
    def _key(experiment_name: str) -> str:
        # "x" and "x.csv" name the same file, so they share one status entry.
        return experiment_name[: -len(".csv")] if experiment_name.endswith(".csv") else experiment_name

    def _status(self, experiment_name: str) -> int | None:
        """The status of an experiment; a file on disk this object has not seen is locked.

        tf_al reconstructed only at construction and wrote names containing "csv" without a
        ".csv" suffix; both could silently overwrite an existing file. Checking the disk here
        closes that hole.
        """
        key = self._key(experiment_name)
        if key not in self.experiment_files and os.path.isfile(self._file_path(experiment_name)):
            self.experiment_files[key] = LOCKED
        return self.experiment_files.get(key)

    def unlock(self, experiment_name: str) -> None:
        """Open a reconstructed (locked) experiment for appending. Unknown names are ignored."""
        if self._status(experiment_name) is not None:
            self.experiment_files[self._key(experiment_name)] = OPEN

    def unlock_all(self) -> None:
        """Open every locked experiment for appending."""
        for key, status in self.experiment_files.items():
            if status == LOCKED:
                self.experiment_files[key] = OPEN

    def overwrite(self, experiment_name: str) -> None:
        """Mark an experiment so that its next ``write_line`` replaces the file. Unknown names
        are ignored (a new name creates its file anyway)."""
        if self._status(experiment_name) is not None:
            self.experiment_files[self._key(experiment_name)] = OVERWRITE

    # ------------------------------------------------------------------ meta file

    def read_meta(self) -> dict[str, Any]:
        """The content of ``.meta.json``.

        Raises:
            FileNotFoundError: the file was deleted.
            ValueError: the file is not a valid JSON object (e.g. truncated by a crash).
        """
        try:
            text = read_text(self.META_FILE_PATH)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"The meta file {self.META_FILE_PATH} does not exist (deleted after "
                f"ExperimentSuitMetrics({self.BASE_PATH!r}) was created?); create the "
                "ExperimentSuitMetrics object again to start a new one."
            ) from None
        try:
            content = json.loads(text)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise ValueError(
                f"The meta file {self.META_FILE_PATH} is not valid JSON ({error}), probably "
                "truncated by a crashed job; move it away or restore it from a backup, then run "
                "again."
            ) from error
        if not isinstance(content, dict):
            raise ValueError(
                f"The meta file {self.META_FILE_PATH} holds a JSON {type(content).__name__}, not "
                "an object; move it away or restore it from a backup, then run again."
            )
        return content

    def write_meta(self, content: Mapping[str, Any]) -> None:
        """Replace ``.meta.json`` by ``content`` (``json.dumps(..., indent=4)``, atomically)."""
        with directory_lock(self.BASE_PATH):
            self._write_meta_unlocked(content)

    def _write_meta_unlocked(self, content: Mapping[str, Any]) -> None:
        atomic_write_text(self.META_FILE_PATH, json.dumps(to_plain(dict(content)), indent=4))

    def _update_meta(self, change: Callable[[dict[str, Any]], None]) -> None:
        # Re-read inside the lock: other processes of the sweep may have added entries since.
        with directory_lock(self.BASE_PATH):
            meta = self.read_meta()
            change(meta)
            self._write_meta_unlocked(meta)

    def add_dataset_meta(
        self,
        name: str,
        path: str,
        train_size: float | int,
        test_size: float | int | None = None,
        val_size: float | int | None = None,
        content_hash: str | None = None,
    ) -> None:
        """Record the dataset under ``"dataset"`` in ``.meta.json`` (None values are omitted, so
        tf_al's calls write tf_al's bytes; ``content_hash`` tells which data a sweep really saw)."""
        dataset: dict[str, Any] = {"name": name, "path": path, "train_size": train_size}
        if test_size is not None:
            dataset["test_size"] = test_size
        if val_size is not None:
            dataset["val_size"] = val_size
        if content_hash is not None:
            dataset["content_hash"] = content_hash

        def change(meta: dict[str, Any]) -> None:
            meta["dataset"] = dataset

        self._update_meta(change)
        self._log("Dataset meta written to %s: %s", self.META_FILE_PATH, dataset)

    def add_experiment_meta(
        self, experiment_name: str, model_name: str, query_fn: str, params: Mapping[str, Any]
    ) -> None:
        """Record an experiment in ``.meta.json``'s ``"experiments"`` list.

        An entry with the same ``experiment_name`` is replaced in place (and any further
        duplicates left by tf_al are removed), so re-running an experiment never duplicates it.
        """
        entry = {
            "experiment_name": experiment_name,
            "model": model_name,
            "query_fn": query_fn,
            "params": params,
        }

        def change(meta: dict[str, Any]) -> None:
            experiments = meta.get("experiments")
            if not isinstance(experiments, list):
                experiments = []
            updated: list[Any] = []
            replaced = False
            for existing in experiments:
                if isinstance(existing, dict) and existing.get("experiment_name") == experiment_name:
                    if not replaced:
                        updated.append(entry)
                        replaced = True
                    continue
                updated.append(existing)
            if not replaced:
                updated.append(entry)
            meta["experiments"] = updated

        self._update_meta(change)
        self._log("Experiment meta for %s written to %s", experiment_name, self.META_FILE_PATH)

    def get_dataset_info(self) -> dict[str, Any] | None:
        """The ``"dataset"`` entry of ``.meta.json``, or None."""
        return self.read_meta().get("dataset")

    def get_experiment_meta(self, experiment_name: str) -> dict[str, Any]:
        """The last ``.meta.json`` entry named ``experiment_name``, or ``{}``."""
        found: dict[str, Any] = {}
        for entry in self.read_meta().get("experiments", []):
            if isinstance(entry, dict) and entry.get("experiment_name") == experiment_name:
                found = entry
        return found

    # ------------------------------------------------------------------ CSV files

    def _file_path(self, experiment_name: str) -> str:
        # tf_al's rule, kept for compatibility: ".csv" is added unless "csv" occurs in the name.
        filename = experiment_name if "csv" in experiment_name else experiment_name + ".csv"
        return os.path.join(self.BASE_PATH, filename)

    def write_line(
        self,
        experiment_name: str,
        values: Mapping[str, Any],
        filter_keys: str | Iterable[str] | None = None,
        filter_nan: bool = True,
    ) -> None:
        """Append one row of ``values`` to the experiment's CSV file (created if new).

        The row is built as in tf_al: top-level None values are dropped; nested dicts are
        flattened with ``_`` (``{"eval": {"acc": 1}}`` -> ``eval_acc``), a nested None becomes
        an empty field; every value is written as ``str()`` of its plain-Python form.

        Args:
            experiment_name: the experiment; its file is ``<base>/<name>.csv``.
            values: the row.
            filter_keys: a key name or a list of them; only those columns are kept. A name
                matches a flattened key (``"eval_acc"``) or a whole top-level entry (``"eval"``
                keeps every ``eval_*`` column of a nested dict).
            filter_nan: treat a scalar float NaN like None: a top-level NaN drops its key, a
                nested NaN leaves an empty field. False writes ``nan``.

        Raises:
            ValueError: the experiment was reconstructed and is locked, or its old file cannot
                take the new columns.
        """
        status = self._status(experiment_name)
        if status == LOCKED:
            raise ValueError(
                f"File {experiment_name} was reconstructed and is locked. Use "
                ".unlock(experiment_name) to open this file up for writing."
            )
        row = self._build_row(values, filter_keys, filter_nan)
        if not row:
            logger.warning(
                "Nothing to write for experiment %s: every value was None/NaN or filtered out.",
                experiment_name,
            )
            return

        path = self._file_path(experiment_name)
        # The whole file is rebuilt and replaced atomically under the lock: a killed job leaves
        # the old or the new complete file, and concurrent writers never interleave.
        with directory_lock(self.BASE_PATH):
            if status is None and os.path.exists(path):
                # Another process created this experiment's file since our look-up above.
                self.experiment_files[self._key(experiment_name)] = LOCKED
                raise ValueError(
                    f"File {experiment_name} was created by another process and is locked. Use "
                    ".unlock(experiment_name) to open this file up for writing."
                )
            existing = None
            if status == OPEN:
                try:
                    existing = read_text(path)
                except FileNotFoundError:
                    existing = None
            atomic_write_text(path, append_row_text(existing, row, path=path))
        self.experiment_files[self._key(experiment_name)] = OPEN
        self._log("Wrote a row to %s", path)

    def rewrite(self, experiment_name: str, rows: Iterable[Mapping[str, Any]], filter_nan: bool = True) -> None:
        """Replace the experiment's CSV by exactly ``rows`` (built as by ``write_line``), in one
        atomic write: a resumed job restores the rows of its checkpoint, whatever an
        interrupted attempt left in the file (fewer rows, one more, or a torn copy)."""
        text: str | None = None
        path = self._file_path(experiment_name)
        for values in rows:
            row = self._build_row(values, None, filter_nan)
            if row:
                text = append_row_text(text, row, path=path)
        with directory_lock(self.BASE_PATH):
            if text is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                atomic_write_text(path, text)
        self.experiment_files[self._key(experiment_name)] = OPEN
        self._log("Rewrote %s", path)

    @staticmethod
    def _build_row(
        values: Mapping[str, Any], filter_keys: str | Iterable[str] | None, filter_nan: bool
    ) -> dict[str, str]:
        wanted: set[str] | None = None
        if filter_keys is not None:
            wanted = {filter_keys} if isinstance(filter_keys, str) else {str(k) for k in filter_keys}

        row: dict[str, str] = {}
        for key, top_key, value in flat_items(to_plain(dict(values)), "_"):
            if wanted is not None and key not in wanted and top_key not in wanted:
                continue
            if value is None or (filter_nan and is_nan(value)):
                if key == top_key:
                    continue  # top level: the column is left out of this row, as in tf_al
                row[key] = ""
            else:
                row[key] = str(value)
        return row

    def read(self, experiment_name: str) -> list[dict[str, str]]:
        """The rows of an experiment's CSV file as dicts of strings (header keys).

        Raises:
            FileNotFoundError: the experiment has no file.
        """
        path = self._file_path(experiment_name)
        try:
            text = read_text(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No metrics file for experiment {experiment_name!r}: {path} does not exist."
            ) from None
        return read_csv_dicts(text)

    def _log(self, message: str, *args: Any) -> None:
        logger.log(self._log_level, message, *args)
