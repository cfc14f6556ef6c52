"""Reading a numpy ``.npz`` archive, with one sentence on what is wrong with a file that is not
one (numpy's own errors speak of pickling and zip internals, not of the user's file)."""

from __future__ import annotations

import os
import zipfile

import numpy as np

__all__ = ["UnreadableArchive", "read_npz"]

# What goes wrong inside numpy and zipfile when the bytes are not a whole archive.
_DAMAGE = (OSError, EOFError, ValueError, zipfile.BadZipFile)


class UnreadableArchive(ValueError):
    """The file is not a readable ``.npz`` archive; ``reason`` says why in words a user acts on."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path} {reason}")
        self.path, self.reason = path, reason


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` archive at ``path``, by name. Object (pickled) arrays are
    never read: they could run code. Raises ``UnreadableArchive`` for a damaged file, a file of
    another format or one holding Python objects."""
    path = os.fspath(path)
    try:
        data = np.load(path, allow_pickle=False)
    except _DAMAGE:
        raise UnreadableArchive(path, "is not a numpy .npz archive, or it is truncated or damaged") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UnreadableArchive(path, "holds a single .npy array, not an .npz archive of named arrays")
    with data:
        try:
            return {name: data[name] for name in data.files}
        except _DAMAGE:
            raise UnreadableArchive(path, "is damaged, or holds Python objects (pickled arrays), which are "
                                          "never loaded since loading them can run code") from None
