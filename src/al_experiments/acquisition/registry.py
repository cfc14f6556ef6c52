"""Registry of query strategies, extensible without subclassing.

A strategy is a named scoring function. Users add their own with :func:`register_query`
(as a decorator or a plain call) and look any of them up with :func:`get_query`. Unknown names
raise :class:`UnknownQueryError` instead of silently turning into random selection, which is what
tf_al 0.1.1 did (bug B3, including for its own documented name ``mean_std``).
"""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, overload

import numpy as np
from numpy.typing import ArrayLike

from . import functions as _f

__all__ = [
    "QueryStrategy",
    "UnknownQueryError",
    "register_query",
    "unregister_query",
    "get_query",
    "canonical_query_name",
    "available_queries",
]

class UnknownQueryError(ValueError, KeyError):
    """A query function name that is neither registered nor an alias.

    Subclasses both ``ValueError`` (a bad config value) and ``KeyError`` (a failed lookup), so
    either ``except`` clause catches it.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes; show it as a plain sentence.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class QueryStrategy:
    """A named scoring function; higher scores mean more worth labelling.

    ``fn(probs)`` maps predictive samples ``(N, T, C)`` to scores ``(N,)`` when
    ``needs_samples`` is True; otherwise ``fn(n, rng)`` maps a pool size and a
    ``numpy.random.Generator`` to ``(N,)`` scores (e.g. ``random``), so no model call is needed.
    """

    name: str
    fn: Callable[..., ArrayLike]
    needs_samples: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a query strategy needs a non-empty string name; got {self.name!r}.")
        if not callable(self.fn):
            raise TypeError(
                f"query strategy {self.name!r} needs a callable fn; got {type(self.fn).__name__}."
            )

    def scores(
        self,
        probs: ArrayLike | None = None,
        *,
        n: int | None = None,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """Validate the inputs, call ``fn`` and return float64 scores of shape ``(N,)``.

        Sample-based strategies need ``probs`` (``n`` and ``rng`` are only checked/ignored).
        Sample-free ones need ``n`` or ``probs`` (only its length is used) and take ``rng`` as a
        Generator or int seed; ``rng=None`` draws fresh OS entropy, so pass one for
        reproducible runs.
        """
        if self.needs_samples:
            if probs is None:
                raise ValueError(
                    f"query strategy {self.name!r} scores predictive samples: pass probs of "
                    "shape (N, T, C)."
                )
            p = _f.check_probs(probs)
            if n is not None and n != p.shape[0]:
                raise ValueError(
                    f"n={n} does not match the {p.shape[0]} points in probs of shape {p.shape}: "
                    "drop n or pass matching values."
                )
            out = self.fn(p)
            expected = p.shape[0]
        else:
            if probs is not None:
                size = len(probs)
                if n is not None and n != size:
                    raise ValueError(
                        f"n={n} does not match the {size} points in probs: drop n or pass "
                        "matching values."
                    )
                n = size
            if n is None:
                raise ValueError(
                    f"query strategy {self.name!r} needs the pool size: pass n=<number of "
                    "unlabelled points> (or probs)."
                )
            n = int(n)
            if n < 0:
                raise ValueError(f"n must be >= 0; got n={n}.")
            generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            out = self.fn(n, generator)
            expected = n
        return self._check_output(out, expected)

    def _check_output(self, out: ArrayLike, expected: int) -> np.ndarray:
        """Make sure a (possibly user-written) fn returned ``expected`` real numbers."""
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"query strategy {self.name!r} must return numeric scores; got "
                f"{type(out).__name__}."
            ) from None
        if arr.shape != (expected,):
            raise ValueError(
                f"query strategy {self.name!r} returned scores of shape {arr.shape}; expected "
                f"({expected},), one score per pool point."
            )
        if np.isnan(arr).any():
            raise ValueError(
                f"query strategy {self.name!r} returned NaN scores: make it return a real "
                "number for every point."
            )
        return arr


# name -> strategy, and alias -> canonical name. Guarded by a lock so registration from
# plug-in imports running in threads cannot interleave.
_STRATEGIES: dict[str, QueryStrategy] = {}
_ALIASES: dict[str, str] = {}
_LOCK = threading.RLock()


def _normalise(name: str) -> str:
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
) -> QueryStrategy:
    key = _normalise(name)
    if isinstance(aliases, str):
        aliases = (aliases,)  # a lone string is one alias, not a sequence of letters
    alias_keys = [_normalise(a) for a in aliases]
    if not description and fn.__doc__:
        description = fn.__doc__.strip().splitlines()[0]
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

    _normalise(name)  # fail at decoration time, not at first call, on a non-string name

    def decorator(func: Callable[..., ArrayLike]) -> Callable[..., ArrayLike]:
        _register(name, func, needs_samples, aliases, description, overwrite)
        return func

    return decorator


def unregister_query(name: str) -> None:
    """Remove a strategy and every alias pointing at it (mostly for tests and plug-in reloads)."""
    key = canonical_query_name(name)
    with _LOCK:
        _STRATEGIES.pop(key, None)
        for alias in [a for a, target in _ALIASES.items() if target == key]:
            del _ALIASES[alias]


def canonical_query_name(name: str) -> str:
    """Resolve aliases and case: ``'mean_std'`` -> ``'std_mean'``; unknown -> UnknownQueryError."""
    key = _normalise(name)
    with _LOCK:
        key = _ALIASES.get(key, key)
        if key in _STRATEGIES:
            return key
        known = sorted(_STRATEGIES)
        candidates = known + sorted(_ALIASES)
    hint = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    raise UnknownQueryError(
        f"Unknown query function {name!r}.{did_you_mean} Known names: {', '.join(known)}; "
        "register your own with al_experiments.acquisition.register_query."
    )


def get_query(name: str | QueryStrategy) -> QueryStrategy:
    """Return the strategy registered under ``name`` or one of its aliases.

    A :class:`QueryStrategy` passes through unchanged, so callers may accept either.
    """
    if isinstance(name, QueryStrategy):
        return name
    key = canonical_query_name(name)
    with _LOCK:
        return _STRATEGIES[key]


def available_queries() -> list[str]:
    """Sorted canonical names of all registered strategies (aliases not included)."""
    with _LOCK:
        return sorted(_STRATEGIES)


def _random_scores(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random scores; the top k of them are a uniform sample without replacement."""
    return rng.random(n)


def _register_builtins() -> None:
    _register("random", _random_scores, False, (), "", False)
    _register("max_entropy", _f.max_entropy, True, (), "", False)
    _register("bald", _f.bald, True, (), "", False)
    _register("max_var_ratio", _f.max_var_ratio, True, (), "", False)
    # tf_al's docs call it mean_std, its code only knew std_mean; accept both.
    _register("std_mean", _f.std_mean, True, ("mean_std",), "", False)
    _register("variation_ratio", _f.variation_ratio, True, (), "", False)
    _register("margin", _f.margin, True, (), "", False)
    _register("least_confidence", _f.least_confidence, True, (), "", False)


_register_builtins()
