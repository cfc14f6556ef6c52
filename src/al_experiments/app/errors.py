"""Errors al-run reports as one sentence instead of a traceback."""

from __future__ import annotations

from hydra.errors import CompactHydraException


class AppError(CompactHydraException):
    """A problem the user fixes (a value, a file, a server), not a bug.

    Hydra prints a ``CompactHydraException`` as its message only, both for a single run and
    for a failed job of a multirun, and exits with status 1.
    """


class ConfigError(AppError):
    """A config value that cannot work."""


class DataError(AppError):
    """A dataset that cannot be loaded or split as configured."""


class TrackingError(AppError):
    """A tracking store that cannot be reached or used."""


class StorageError(AppError):
    """A results folder that cannot be written (permissions, a full disk)."""
