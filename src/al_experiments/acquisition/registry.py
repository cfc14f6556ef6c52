"""Registry of query strategies, extensible without subclassing.

A strategy is a named per-point score function (:func:`register_query`) or a named batch
selector (:func:`register_batch_query`); both are decorators or plain calls, and
:func:`get_query` looks either up by name or alias. Unknown names
raise :class:`UnknownQueryError` instead of silently turning into random selection, which is what
tf_al 0.1.1 did (even for its own documented name ``mean_std``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, overload

from numpy.typing import ArrayLike

from al_experiments.validation import closest_match

from .plugins import PluginStrategy, load_entry_points
from .strategy import BatchStrategy, QueryStrategy, Strategy

__all__ = [
    "UnknownQueryError",
    "register_query",
    "register_batch_query",
    "register_strategy",
    "unregister_query",
    "get_query",
    "canonical_query_name",
    "available_queries",
    "load_strategy_plugins",
]

class UnknownQueryError(ValueError, KeyError):
    """A query function name that is neither registered nor an alias.

    Subclasses both ``ValueError`` (a bad config value) and ``KeyError`` (a failed lookup), so
    either ``except`` clause catches it.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes; show it as a plain sentence.
        return str(self.args[0]) if self.args else ""


# name -> strategy, and alias -> canonical name. Guarded by a lock so registration from
# plug-in imports running in threads cannot interleave.
_STRATEGIES: dict[str, Strategy] = {}
_ALIASES: dict[str, str] = {}
_LOCK = threading.RLock()

# Installed plug-ins load once per process. Another thread asking meanwhile waits on the lock
# until they have loaded; the loading thread itself re-enters it when a plug-in's import calls
# the registry, and then sees the names registered so far instead of starting the load again.
_PLUGIN_LOCK = threading.RLock()
_PLUGINS_LOADED: list[str] | None = None  # entry-point names, once every entry point has loaded
_plugins_loading: list[str] | None = None  # entry-point names loaded so far, while loading


def normalise_name(name: str) -> str:
    """The registry's key of a name: stripped and lower-case."""
    if not isinstance(name, str):
        raise TypeError(f"query function names are strings; got {type(name).__name__} {name!r}.")
    return name.strip().lower()


def _register(
    name: str,
    fn: Callable[..., ArrayLike],
    needs_samples: bool,
    aliases: Iterable[str],
    description: str,
    overwrite: bool,
    batch: bool = False,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Strategy:
    key = normalise_name(name)
    if isinstance(aliases, str):
        aliases = (aliases,)  # a lone string is one alias, not a sequence of letters
    alias_keys = [normalise_name(a) for a in aliases]
    if not description and getattr(fn, "__doc__", None):
        description = fn.__doc__.strip().splitlines()[0]
    if batch:
        strategy: Strategy = BatchStrategy(key, fn, description=description, check=check)
    else:
        strategy = QueryStrategy(key, fn, needs_samples=needs_samples, description=description)
    with _LOCK:
        if not overwrite and (key in _STRATEGIES or key in _ALIASES):
            raise ValueError(
                f"query function {key!r} is already registered: choose another name or pass "
                "overwrite=True to replace it."
            )
        for a in alias_keys:
            if a == key:
                continue
            if a in _STRATEGIES:
                # Even with overwrite: silently hiding a whole strategy behind an alias would
                # leave its own aliases dangling.
                raise ValueError(
                    f"alias {a!r} is the name of a registered query function: choose another "
                    "alias, or unregister_query it first."
                )
            if not overwrite and a in _ALIASES and _ALIASES[a] != key:
                raise ValueError(
                    f"alias {a!r} already points to query function {_ALIASES[a]!r}: choose "
                    "another alias or pass overwrite=True."
                )
        for a in alias_keys:
            if a != key:
                _ALIASES[a] = key
        # Overwriting an alias with a real strategy: the name now means the new strategy.
        _ALIASES.pop(key, None)
        _STRATEGIES[key] = strategy
    return strategy


@overload
def register_query(
    name: str,
    fn: None = None,
    *,
    needs_samples: bool = ...,
    aliases: Iterable[str] = ...,
    description: str = ...,
    overwrite: bool = ...,
) -> Callable[[Callable[..., ArrayLike]], Callable[..., ArrayLike]]: ...


@overload
def register_query(
    name: str | Callable[..., ArrayLike],
    fn: Callable[..., ArrayLike],
    *,
    needs_samples: bool = ...,
    aliases: Iterable[str] = ...,
    description: str = ...,
    overwrite: bool = ...,
) -> QueryStrategy: ...


def register_query(
    name,
    fn=None,
    *,
    needs_samples: bool = True,
    aliases: Iterable[str] = (),
    description: str = "",
    overwrite: bool = False,
):
    """Register a query function under ``name`` (case-insensitive) plus optional ``aliases``.

    Use as a call, ``register_query("my_q", fn)`` (returns the :class:`QueryStrategy`), or as a
    decorator, ``@register_query("my_q")`` or bare ``@register_query`` (uses the function's
    ``__name__``; the decorated function is returned unchanged). ``fn(probs)`` must map
    ``(N, T, C)`` samples to ``(N,)`` scores, higher = more worth labelling; with
    ``needs_samples=False`` it is called as ``fn(n, rng)``. Re-using a registered name or alias
    raises ``ValueError`` unless ``overwrite=True``. ``description`` defaults to the first line
    of the docstring.
    """
    if callable(name) and fn is None:
        # Bare decorator: @register_query
        func = name
        _register(func.__name__, func, needs_samples, aliases, description, overwrite)
        return func
    if fn is not None:
        return _register(name, fn, needs_samples, aliases, description, overwrite)

    normalise_name(name)  # fail at decoration time, not at first call, on a non-string name

    def decorator(func: Callable[..., ArrayLike]) -> Callable[..., ArrayLike]:
        _register(name, func, needs_samples, aliases, description, overwrite)
        return func

    return decorator


def register_batch_query(name, fn=None, *, aliases: Iterable[str] = (), description: str = "",
                         overwrite: bool = False, check: Callable[[dict[str, Any]], None] | None = None):
    """Register a batch selector under ``name``: ``fn(view, batch_size, rng, **options)``
    returns candidate positions, best first (or a ``(positions, scores)`` pair).

    ``view`` is the round's :class:`~al_experiments.acquisition.RoundView` (ask it for
    ``joint_samples()``, ``embeddings()``, ``labelled_embeddings()``, ``predictive()``,
    ``target_samples()``, ``scores(name)``); keyword parameters after ``rng`` are the strategy's
    options (``query.options`` in the config) and need defaults. Decorator or call, like
    :func:`register_query`. ``check(settings)`` may raise ``ValueError`` for settings out of
    range, so a config check catches them before any training.
    """
    if callable(name) and fn is None:
        _register(name.__name__, name, True, aliases, description, overwrite, batch=True, check=check)
        return name
    if fn is not None:
        return _register(name, fn, True, aliases, description, overwrite, batch=True, check=check)
    normalise_name(name)

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        _register(name, func, True, aliases, description, overwrite, batch=True, check=check)
        return func

    return decorator


def register_strategy(name: str, strategy: Strategy, *, overwrite: bool = False) -> Strategy:
    """Register a ready ``QueryStrategy`` or ``BatchStrategy`` under ``name`` (e.g. one named by
    an installed package's entry point)."""
    if not isinstance(strategy, (QueryStrategy, BatchStrategy)):
        raise TypeError(
            f"register_strategy needs a QueryStrategy or BatchStrategy; got {type(strategy).__name__}."
        )
    batch = isinstance(strategy, BatchStrategy)
    return _register(name, strategy.fn, getattr(strategy, "needs_samples", True), (), strategy.description,
                     overwrite, batch=batch, check=getattr(strategy, "check", None))


def unregister_query(name: str) -> None:
    """Remove a strategy and every alias pointing at it (mostly for tests and plug-in reloads)."""
    key = canonical_query_name(name)
    with _LOCK:
        _STRATEGIES.pop(key, None)
        for alias in [a for a, target in _ALIASES.items() if target == key]:
            del _ALIASES[alias]


def canonical_query_name(name: str) -> str:
    """Resolve aliases and case: ``'mean_std'`` -> ``'std_mean'``; unknown -> UnknownQueryError."""
    key = normalise_name(name)
    with _LOCK:
        key = _ALIASES.get(key, key)
        if key in _STRATEGIES:
            return key
    # Not a built-in or a registered name: an installed package may provide it.
    load_strategy_plugins()
    with _LOCK:
        key = _ALIASES.get(key, key)
        if key in _STRATEGIES:
            return key
        known = sorted(_STRATEGIES)
        candidates = known + sorted(_ALIASES)
    hint = closest_match(key, candidates)
    did_you_mean = f" Did you mean {hint!r}?" if hint else ""
    raise UnknownQueryError(
        f"Unknown query function {name!r}.{did_you_mean} Known names: {', '.join(known)}; "
        "register your own with al_experiments.acquisition.register_query or register_batch_query "
        "(or install a package that declares it in the entry-point group al_experiments.strategies)."
    )


def get_query(name: str | Strategy) -> Strategy:
    """Return the strategy registered under ``name`` or one of its aliases.

    A :class:`QueryStrategy` or :class:`BatchStrategy` passes through unchanged, so callers may
    accept either.
    """
    if isinstance(name, (QueryStrategy, BatchStrategy)):
        return name
    key = canonical_query_name(name)
    with _LOCK:
        return _STRATEGIES[key]


def available_queries(load_plugins: bool = True) -> list[str]:
    """Sorted canonical names of all registered strategies (aliases not included), with those
    of installed packages (entry points) unless ``load_plugins=False``."""
    if load_plugins:
        load_strategy_plugins()
    with _LOCK:
        return sorted(_STRATEGIES)


def load_strategy_plugins() -> list[str]:
    """Load every installed strategy entry point (once) and register what each gives; returns
    their names.

    Raises ``StrategyPluginError`` (an ``ImportError``) naming the entry point and its package
    when one fails; the next call tries again, so a fixed package is picked up. Called from a
    plug-in's own import (through any public function here), it returns the names loaded so far.
    """
    global _PLUGINS_LOADED, _plugins_loading
    with _PLUGIN_LOCK:
        if _PLUGINS_LOADED is not None:
            return list(_PLUGINS_LOADED)
        if _plugins_loading is not None:
            return sorted(_plugins_loading)  # a plug-in's import, in the loading thread
        _plugins_loading = []
        try:
            for plugin in load_entry_points():
                _register_plugin(plugin)
                _plugins_loading.append(plugin.name)
            _PLUGINS_LOADED = sorted(_plugins_loading)
        finally:
            _plugins_loading = None
        return list(_PLUGINS_LOADED)


def _register_plugin(plugin: PluginStrategy) -> None:
    with _LOCK:
        known = normalise_name(plugin.name) in _STRATEGIES
    if plugin.strategy is not None:
        if not known:
            register_strategy(plugin.name, plugin.strategy)
    elif plugin.named and not known:
        raise plugin.registered_nothing()
