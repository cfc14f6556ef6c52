"""Query strategies from installed packages, through the entry-point group ``al_experiments.strategies``.

A package declares its strategies in its own ``pyproject.toml``::

    [project.entry-points."al_experiments.strategies"]
    confidence_ratio = "my_project.strategies:confidence_ratio"

The entry point's name is the strategy's name; its object is either a function registered at
import time with ``register_query`` / ``register_batch_query`` (the import is the registration),
a ``QueryStrategy`` / ``BatchStrategy`` (registered under the entry point's name), or a module
whose import registers what it defines. Entry points are loaded once per process, the first
time a name is not found or the names are listed, so ``query=<name>`` works in ``al-run`` and
``AcquisitionFunction("<name>")`` in the Python API without importing the package by hand.

This module only finds and loads entry points and says what each one gave; the registry
(:func:`~al_experiments.acquisition.registry.load_strategy_plugins`) registers it. A plug-in
may call the registry's public functions while it is imported.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from importlib import metadata
from typing import Iterator

from .strategy import BatchStrategy, QueryStrategy, Strategy

__all__ = ["ENTRY_POINT_GROUP", "StrategyPluginError", "PluginStrategy", "load_entry_points"]

ENTRY_POINT_GROUP = "al_experiments.strategies"


class StrategyPluginError(ImportError):
    """An installed package's strategy entry point that cannot be loaded or registers nothing."""


@dataclass(frozen=True)
class PluginStrategy:
    """What one loaded entry point gave the registry.

    ``strategy`` is a ready strategy to register under ``name`` (unless that name is already
    registered); without one, ``named`` says whether importing the entry point must have
    registered ``name`` (it pointed at a function) or may have registered anything (a module).
    """

    name: str
    origin: str
    strategy: Strategy | None = None
    named: bool = False

    def registered_nothing(self) -> StrategyPluginError:
        """The error for a function entry point whose import registered no strategy of its name."""
        return StrategyPluginError(
            f"The query strategy {self.origin} loaded but registered no strategy named "
            f"{self.name!r}: decorate the function with @register_query({self.name!r}) or "
            f"@register_batch_query({self.name!r}), or point the entry point at a QueryStrategy."
        )


def _entry_points() -> list[metadata.EntryPoint]:
    # One entry per name: a distribution seen twice on sys.path (an editable and a built
    # install side by side) declares the same entry points twice.
    unique: dict[str, metadata.EntryPoint] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        unique.setdefault(entry_point.name, entry_point)
    return list(unique.values())


def _origin(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    package = f" of package {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {entry_point.name!r} ({entry_point.value}){package} in group {ENTRY_POINT_GROUP!r}"


def _load(entry_point: metadata.EntryPoint) -> PluginStrategy:
    origin = _origin(entry_point)
    try:
        obj = entry_point.load()
    except Exception as exc:  # the user's module: any error in it is a broken plug-in
        raise StrategyPluginError(
            f"The query strategy {origin} failed to load ({type(exc).__name__}: {exc}); "
            "fix that package or uninstall it."
        ) from exc
    if isinstance(obj, types.ModuleType):
        return PluginStrategy(entry_point.name, origin)  # importing it registered whatever it defines
    if isinstance(obj, (QueryStrategy, BatchStrategy)):
        return PluginStrategy(entry_point.name, origin, strategy=obj)
    return PluginStrategy(entry_point.name, origin, named=True)


def load_entry_points() -> Iterator[PluginStrategy]:
    """Load the installed strategy entry points one by one, yielding what each gave.

    One at a time, so the caller registers each before the next is imported. Raises
    ``StrategyPluginError`` (an ``ImportError``) naming the entry point and its package when
    one fails to load.
    """
    for entry_point in _entry_points():
        yield _load(entry_point)
