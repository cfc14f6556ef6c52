"""tf_al's simple ``Metrics`` CSV writer and the history helpers built on it.

tf_al 0.1.1's format: ``<base_path>/<filename>.csv``, header = the configured keys in
order, space delimiter, ``"`` quoting (minimal), CRLF lines. Unlike tf_al, ``write_line`` really
appends, ``save_history``/``read_history`` work (they raised NameError), ``aggregates_per_key``
takes the union of the keys, and every write is atomic.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from al_experiments.tracking.files import (
    append_row_text,
    directory_lock,
    format_csv_row,
    read_csv_dicts,
    read_text,
    to_plain,
)
from al_experiments.utils.atomic import atomic_write_text


class Metrics:
    """Write and read CSV files of metrics with a fixed list of columns.

    Args:
        base_path: directory of the files (created on the first write).
        keys: the columns, in order.
    """

    def __init__(self, base_path: str | os.PathLike[str], keys: Sequence[str] = ("accuracy", "loss")) -> None:
        self.BASE_PATH = os.fspath(base_path)
        self.KEYS = list(keys)

    def get_path(self) -> str:
        """The base directory."""
        return self.BASE_PATH

    def collect(self, values: Mapping[str, Any], keys: Sequence[str] | None = None) -> dict[str, Any]:
        """The entries of ``values`` named in ``keys`` (default: this object's keys), in key
        order, as plain Python values; a one-element list or tuple is unwrapped to its element.
        Keys missing from ``values`` are left out."""
        collected: dict[str, Any] = {}
        for key in self.KEYS if keys is None else keys:
            if key in values:
                value = to_plain(values[key])
                if isinstance(value, (list, tuple)) and len(value) == 1:
                    value = value[0]
                collected[key] = value
        return collected

    def _row(self, values: Mapping[str, Any]) -> dict[str, str]:
        # None is written as an empty field, like csv.DictWriter did in tf_al.
        return {k: "" if v is None else str(v) for k, v in self.collect(values).items()}

    def _write_path(self, filename: str) -> str:
        # tf_al always appends ".csv" when writing (but not when reading, see read()).
        return os.path.join(self.BASE_PATH, filename + ".csv")

    def write(self, filename: str, values: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Replace ``<base_path>/<filename>.csv`` by the header (the keys) and one row per dict
        of ``values`` (a single dict is one row); missing keys give empty fields."""
        rows = [values] if isinstance(values, Mapping) else list(values)
        text = format_csv_row(self.KEYS)
        for row in map(self._row, rows):
            text += format_csv_row(row.get(key, "") for key in self.KEYS)
        os.makedirs(self.BASE_PATH, exist_ok=True)
        with directory_lock(self.BASE_PATH):
            atomic_write_text(self._write_path(filename), text)

    def write_line(self, filename: str, values: Mapping[str, Any]) -> None:
        """Append one row to ``<base_path>/<filename>.csv``, writing the header first if the
        file is new. If the row has a key the existing header lacks, the file is rewritten
        under a merged header (earlier rows get empty fields)."""
        path = self._write_path(filename)
        os.makedirs(self.BASE_PATH, exist_ok=True)
        with directory_lock(self.BASE_PATH):
            try:
                existing: str | None = read_text(path)
            except FileNotFoundError:
                existing = None
            atomic_write_text(path, append_row_text(existing, self._row(values), self.KEYS, path=path))

    def read(self, filename: str) -> list[dict[str, str]]:
        """Rows of ``<base_path>/<filename>`` as dicts of strings. ``.csv`` is appended unless
        the name already contains it; lines starting with ``#`` are skipped."""
        if ".csv" not in filename:
            filename += ".csv"
        return read_csv_dicts(read_text(os.path.join(self.BASE_PATH, filename)), skip_comments=True)


def aggregates_per_key(history: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Turn a list of dicts into a dict of lists over the union of their keys (in order of first
    appearance); a dict without some key contributes None to that key's list."""
    rows = list(history)
    keys = _union_keys(rows)
    return {key: [row.get(key) for row in rows] for key in keys}


def _union_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    # dict as an ordered set: keeps the order in which keys first appear.
    return list(dict.fromkeys(key for row in rows for key in row))


def _history_rows(history: Any) -> list[Mapping[str, Any]]:
    # Accept a Keras History object or its .history dict of per-epoch lists, next to tf_al's
    # list of per-round dicts.
    if not isinstance(history, Mapping) and isinstance(getattr(history, "history", None), Mapping):
        history = history.history
    if isinstance(history, Mapping):
        columns: dict[str, list[Any]] = {}
        for key, value in history.items():
            value = to_plain(value)
            columns[key] = list(value) if isinstance(value, (list, tuple)) else [value]
        length = max((len(column) for column in columns.values()), default=0)
        return [{key: column[i] for key, column in columns.items() if i < len(column)} for i in range(length)]
    return list(history)


def save_history(history: Any, path: str | os.PathLike[str], filename: str) -> None:
    """Write ``history`` to ``<path>/<filename>.csv`` with ``Metrics`` over the union of its
    keys (in order of first appearance).

    ``history`` is a list of dicts (one row each), or a dict of lists / a Keras ``History``
    (row ``i`` holds each key's ``i``-th value). One-element list values are unwrapped, as
    ``Metrics.collect`` does.
    """
    rows = _history_rows(history)
    Metrics(path, keys=_union_keys(rows)).write(filename, rows)


def read_history(path: str | os.PathLike[str], filename: str) -> list[dict[str, str]]:
    """Read a file written by ``save_history``: a list of dicts of strings (empty fields for
    keys a row did not have)."""
    return Metrics(path, keys=[]).read(filename)
