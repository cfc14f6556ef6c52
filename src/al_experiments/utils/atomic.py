"""Atomic file replacement: readers see the old file or the new one, never a torn one.

The new content goes to a temporary file in the same folder (so the rename stays on one
filesystem), is flushed and fsync'ed, renamed over the target with ``os.replace``, and the
folder is fsync'ed so the rename itself survives a power loss. Every file the project writes
for others to read (CSVs, ``.meta.json``, checkpoints, saved weights, sweep markers) goes
through here.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from al_experiments.utils.failpoints import failpoint

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_with", "replacing"]


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path beside ``path``; once the block has written it, it replaces
    ``path`` durably. On an error the temporary file is removed and ``path`` is untouched.

    ``suffix`` ends the temporary name, for writers that insist on one (Keras wants
    ``.weights.h5``). The name starts with ``.``, so it never looks like a result file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}{suffix}")
    try:
        yield tmp
        _fsync_file(tmp)
        failpoint("before_replace")  # the new content complete beside the old file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    failpoint("after_replace")  # the rename done, the folder not yet synced
    _fsync_folder(folder)


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Replace ``path`` by what ``write(handle)`` writes to a binary file handle."""
    with replacing(path) as tmp:
        # os.open with mode 0o666 lets the umask decide the permissions, as for a normally
        # created file (tempfile.mkstemp would make it 0o600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            write(handle)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write_with(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` by a file holding exactly ``text`` (UTF-8, no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_file(path: str) -> None:
    with open(path, "rb+") as handle:
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_folder(folder: str) -> None:
    # Makes the rename itself durable across a power loss; not possible on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
