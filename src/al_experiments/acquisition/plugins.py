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
"""

from __future__ import annotations

import threading
import types
from importlib import metadata

__all__ = ["ENTRY_POINT_GROUP", "StrategyPluginError", "load_strategy_plugins"]

ENTRY_POINT_GROUP = "al_experiments.strategies"

_LOCK = threading.Lock()
_LOADED: list[str] | None = None  # entry-point names, once every entry point has loaded


class StrategyPluginError(ImportError):
    """An installed package's strategy entry point that cannot be loaded or registers nothing."""


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


def _load(entry_point: metadata.EntryPoint) -> None:
    from . import registry
    from .strategy import BatchStrategy, QueryStrategy

    try:
        obj = entry_point.load()
    except Exception as exc:  # the user's module: any error in it is a broken plug-in
        raise StrategyPluginError(
            f"The query strategy {_origin(entry_point)} failed to load ({type(exc).__name__}: {exc}); "
            "fix that package or uninstall it."
        ) from exc
    if isinstance(obj, types.ModuleType):
        return  # importing it registered whatever it defines
    name = entry_point.name
    known = registry.available_queries(load_plugins=False)
    if isinstance(obj, (QueryStrategy, BatchStrategy)):
        if registry.normalise_name(name) not in known:
            registry.register_strategy(name, obj)
        return
    if registry.normalise_name(name) not in known:
        raise StrategyPluginError(
            f"The query strategy {_origin(entry_point)} loaded but registered no strategy named "
            f"{name!r}: decorate the function with @register_query({name!r}) or "
            f"@register_batch_query({name!r}), or point the entry point at a QueryStrategy."
        )


def load_strategy_plugins() -> list[str]:
    """Load every installed strategy entry point (once); returns their names.

    Raises ``StrategyPluginError`` (an ``ImportError``) naming the entry point and its package
    when one fails; the next call tries again, so a fixed package is picked up.
    """
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            entry_points = _entry_points()
            for entry_point in entry_points:
                _load(entry_point)
            _LOADED = sorted(entry_point.name for entry_point in entry_points)
        return list(_LOADED)

