"""Small file helpers shared by the metric writers: atomic writes, a directory lock, plain values,
and the space-delimited CSV dialect of tf_al.

Many jobs of a sweep write into one metrics directory, so every read-modify-write happens under
the directory lock, and every write replaces the whole file atomically (temp file + rename): a job
killed at any instant leaves either the old or the new complete file, never a torn one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import filelock
import numpy as np

LOCK_FILE_NAME = ".lock"

# Long enough for any honest holder (a lock is held for one file rewrite), short enough that a
# wedged filesystem gives an error instead of a job that hangs for ever.
LOCK_TIMEOUT_S = 300.0

# tf_al's CSV dialect: space delimiter, '"' quote, minimal quoting and CRLF line endings (tf_al
# got CRLF by accident from opening files without newline=""; old readers expect it).
CSV_FORMAT: dict[str, Any] = {
    "delimiter": " ",
    "quotechar": '"',
    "quoting": csv.QUOTE_MINIMAL,
    "lineterminator": "\r\n",
}




@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike[str], timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the inter-process lock ``<directory>/.lock`` for the duration of the block.

    Reentrant within a thread: filelock's singleton gives nested calls the one lock object, and
    it resets its registry in a forked child, so a child never inherits its parent's hold.
    Raises ``TimeoutError`` naming the lock file if it cannot be acquired within ``timeout_s``.
    """
    path = os.path.join(os.path.realpath(os.fspath(directory)), LOCK_FILE_NAME)
    lock = filelock.FileLock(path, is_singleton=True)
    try:
        lock.acquire(timeout=timeout_s)
    except filelock.Timeout as error:
        raise TimeoutError(
            f"Could not lock {lock.lock_file} within {timeout_s:.0f} s; another process "
            "keeps it; check for a hung job writing into the same directory."
        ) from error
    try:
        yield
    finally:
        lock.release()


def to_plain(value: Any) -> Any:
    """Return ``value`` with numpy scalars and arrays turned into plain Python values.

    Works recursively inside dicts, lists and tuples (keeping their type), so ``str()`` of the
    result never shows ``np.float32(...)``. Floats narrower than 64 bits become the Python float
    with the same shortest decimal form (``np.float32(0.56)`` -> ``0.56``, as tf_al's CSVs
    showed), not their exact binary value (``0.5600000023841858``). Objects with a ``numpy()``
    method (eager tensors) are converted through it. Anything else is returned unchanged.
    """
    # numpy scalars first: np.float64 and np.str_ also pass isinstance(float/str) checks.
    if isinstance(value, np.generic):
        return _plain_scalar(value)
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _plain_scalar(value[()])
        if value.dtype.kind == "f" and value.dtype.itemsize < 8:
            return [to_plain(item) for item in value]
        return value.tolist()
    if isinstance(value, Mapping):
        return {to_plain(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(to_plain(item) for item in value)
    numpy_method = getattr(value, "numpy", None)
    if callable(numpy_method):
        return to_plain(numpy_method())
    return value


def _plain_scalar(value: np.generic) -> Any:
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        # str() of a numpy float is its shortest round-trip repr in its own precision.
        return float(str(value))
    if isinstance(value, np.floating):
        return float(value)  # float64 is exact; longdouble has no lossless plain form
    return value.item()


def is_nan(value: Any) -> bool:
    """True for a scalar float NaN (Python or numpy); False for everything else."""
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def format_csv_row(fields: Iterable[str]) -> str:
    """One CSV line (with its CRLF) in tf_al's dialect."""
    buffer = io.StringIO()
    csv.writer(buffer, **CSV_FORMAT).writerow(list(fields))
    return buffer.getvalue()


def parse_csv_lazily(text: str) -> Iterator[list[str]]:
    """The rows of ``text`` (tf_al's dialect) as lists of strings, one at a time; blank lines
    are skipped."""
    return (row for row in csv.reader(io.StringIO(text, newline=""), **CSV_FORMAT) if row)


def parse_csv(text: str) -> list[list[str]]:
    """All rows of ``text`` (tf_al's dialect) as lists of strings; blank lines are skipped."""
    return list(parse_csv_lazily(text))


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text exactly as stored (UTF-8, no newline translation)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def merge_header(header: Sequence[str], row_keys: Sequence[str]) -> list[str]:
    """``header`` plus the keys of ``row_keys`` it lacks, each placed right after the key that
    precedes it in ``row_keys`` (or first, if it is the row's first key).

    This keeps tf_al's column order when, for example, the first round had no ``train_*``
    columns and a later round has them: they land in front of ``train_time``/``query_time``.
    """
    merged = list(header)
    known = set(merged)
    for position, key in enumerate(row_keys):
        if key in known:
            continue
        insert_at = merged.index(row_keys[position - 1]) + 1 if position > 0 else 0
        merged.insert(insert_at, key)
        known.add(key)
    return merged


def append_row_text(
    existing: str | None,
    row: Mapping[str, str],
    new_header: Sequence[str] | None = None,
    *,
    path: str = "",
) -> str:
    """The full text of a CSV file after appending ``row`` to the file text ``existing``.

    ``existing`` None or empty: a new file, whose header is ``new_header`` (default: the row's
    keys). Otherwise the header is the file's first line; if the row brings keys the header
    lacks, every line is rewritten under the merged header (see ``merge_header``), with empty
    fields where a row has no value. Header keys the row lacks are written as empty fields.
    Unchanged files keep their existing bytes verbatim; only the new line is added.
    """
    if not existing:
        header = list(new_header) if new_header is not None else list(row)
        header = merge_header(header, list(row))
        return format_csv_row(header) + format_csv_row(row.get(key, "") for key in header)

    # Only the header is parsed on the common path: appending stays cheap for long files.
    header = next(iter(parse_csv_lazily(existing)), [])
    merged = merge_header(header, list(row))
    if merged == header:
        prefix = existing if existing.endswith("\n") else existing + "\r\n"
        return prefix + format_csv_row(row.get(key, "") for key in header)

    rows = parse_csv(existing)
    # The header grows: rewrite every line. A row longer than its header (as tf_al wrote them) cannot
    # be mapped onto named columns without guessing, so refuse instead of losing its values.
    lines = [format_csv_row(merged)]
    for number, fields in enumerate(rows[1:], start=2):
        if len(fields) > len(header):
            raise ValueError(
                f"Cannot add the columns {[k for k in merged if k not in header]} to {path}: its "
                f"row {number} has more fields than its header (a file written by tf_al's "
                "misaligned-columns bug); write to a new experiment name or call "
                ".overwrite(experiment_name) first."
            )
        values = dict(zip(header, fields))
        lines.append(format_csv_row(values.get(key, "") for key in merged))
    lines.append(format_csv_row(row.get(key, "") for key in merged))
    return "".join(lines)


def read_csv_dicts(text: str, skip_comments: bool = False) -> list[dict[str, str]]:
    """Rows of ``text`` as dicts keyed by the header (``csv.DictReader`` semantics: missing
    trailing fields are None). ``skip_comments`` drops lines starting with ``#`` first."""
    lines: Iterable[str] = io.StringIO(text, newline="")
    if skip_comments:
        lines = [line for line in lines if not line.startswith("#")]
    reader = csv.DictReader(lines, delimiter=" ", quotechar='"', quoting=csv.QUOTE_MINIMAL)
    return [dict(row) for row in reader]
