"""The two kinds of query strategy and what a strategy returns.

A strategy owns selection: given a per-round view of the pool (``RoundView``: candidates, the
labelled set, and on demand scores, predictive samples, consistent joint samples, embeddings and
a target set), a batch size and a seeded generator, it returns candidate positions, best first.

* ``QueryStrategy`` is a per-point score function (tf_al's kind): score every candidate, then
  take the top k (or a stochastic top k).
* ``BatchStrategy`` chooses the whole batch itself (BatchBALD, Core-set, BADGE, ...), asking the
  view only for what it needs.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Union

import numpy as np
from numpy.typing import ArrayLike

from al_experiments.validation import (
    WHOLE_AT_LEAST_0,
    YAML_WORDS,
    check_params,
    rng_from,
)

from . import scores as _f
from .batch.stochastic import STOCHASTIC_CONSTRAINTS, take_batch

__all__ = ["QueryStrategy", "BatchStrategy", "Selection", "Strategy", "SCORE_OPTIONS",
           "check_options"]

# Settings every score-based strategy takes: how the batch is taken from the scores.
SCORE_OPTIONS: dict[str, Any] = {"stochastic": None, "temperature": 1.0}


class Selection(NamedTuple):
    """Candidate positions, best first, and one score per position: the strategy's score of the
    point (for a stochastic draw, not ordered), or for a selector without scores its pick rank
    (first pick highest)."""

    positions: np.ndarray
    scores: np.ndarray


def _check_name_and_fn(name: Any, fn: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a query strategy needs a non-empty string name; got {name!r}.")
    if not callable(fn):
        raise TypeError(f"query strategy {name!r} needs a callable fn; got {type(fn).__name__}.")


def check_options(strategy: "Strategy", options: dict[str, Any]) -> dict[str, Any]:
    """``options`` completed with the strategy's defaults; unknown names are a TypeError."""
    accepted = strategy.options()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(sorted(accepted)) if accepted else "no options"
        raise TypeError(
            f"query strategy {strategy.name!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"it takes: {takes}."
        )
    settings = {**accepted, **options}
    # Options are what query.options sets, so the messages use the config's words (null, true).
    check_params(STOCHASTIC_CONSTRAINTS, settings, YAML_WORDS)
    check_params(getattr(strategy.fn, "parameter_constraints", {}), settings, YAML_WORDS)
    check = getattr(strategy, "check", None)
    if check is not None:
        check(settings)
    return settings


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
    kind = "score"

    def __post_init__(self) -> None:
        _check_name_and_fn(self.name, self.fn)

    def options(self) -> dict[str, Any]:
        """The settings ``select`` takes, with their defaults: how the top of the scores is
        taken (sample-free strategies such as ``random`` take none)."""
        return dict(SCORE_OPTIONS) if self.needs_samples else {}

    def select(self, view: Any, batch_size: int, rng: np.random.Generator | None = None,
               **options: Any) -> Selection:
        """Score the round's candidates and take the best ``batch_size``: the top k, or with
        ``stochastic`` (``power`` | ``softmax`` | ``softrank``) a seeded Gumbel-top-k draw at
        ``temperature``."""
        settings = check_options(self, options)
        rng = rng_from(rng)
        if self.needs_samples:
            scores = view.scores(self)
        else:
            scores = self.scores(n=len(view), rng=rng)
        chosen = take_batch(scores, batch_size, settings.get("stochastic"),
                            settings.get("temperature", 1.0), rng)
        return Selection(chosen, scores[chosen])

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
            out = self.fn(n, rng_from(rng))
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


# Parameters of a batch selector that the view supplies rather than the user's settings.
_SELECTOR_ARGS = ("view", "batch_size", "rng")


@dataclass(frozen=True)
class BatchStrategy:
    """A named batch selector: ``fn(view, batch_size, rng, **options)`` returns candidate
    positions best first (an int array), or a ``(positions, scores)`` pair.

    ``options`` are the keyword parameters of ``fn`` after the first three, with their defaults
    (for example BatchBALD's ``num_samples``); they are what ``query.options`` sets.
    """

    name: str
    fn: Callable[..., Any]
    description: str = ""
    # Optional ``check(settings)`` raising ValueError for a setting out of range, so a bad value
    # stops a job at its config check rather than at its first query.
    check: Callable[[dict[str, Any]], None] | None = None
    kind = "batch"
    needs_samples = True  # it calls the model (through the view); tf_al code checks this flag

    def __post_init__(self) -> None:
        _check_name_and_fn(self.name, self.fn)
        self.options()  # a selector whose signature cannot be read fails at registration

    def options(self) -> dict[str, Any]:
        """The selector's own settings and their defaults, read from its signature."""
        try:
            parameters = list(inspect.signature(self.fn).parameters.values())
        except (TypeError, ValueError):
            return {}
        found: dict[str, Any] = {}
        for parameter in parameters[len(_SELECTOR_ARGS):]:
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if parameter.default is parameter.empty:
                raise TypeError(
                    f"batch query {self.name!r}: option {parameter.name!r} needs a default value, "
                    "since settings are optional; give it one."
                )
            found[parameter.name] = parameter.default
        return found

    def select(self, view: Any, batch_size: int, rng: np.random.Generator | None = None,
               **options: Any) -> Selection:
        """Run the selector and check what it returned: distinct candidate positions."""
        settings = check_options(self, options)
        WHOLE_AT_LEAST_0.check("batch_size", batch_size)
        k = min(int(batch_size), len(view))
        out = self.fn(view, k, rng_from(rng), **settings)
        positions, scores = out if isinstance(out, tuple) else (out, None)
        return _checked_selection(self.name, positions, scores, k, len(view))


def _checked_selection(name: str, positions: ArrayLike, scores: ArrayLike | None, k: int,
                       n: int) -> Selection:
    """A user-written selector's result as a ``Selection``, or one sentence on what is wrong."""
    try:
        chosen = np.asarray(positions)
        if chosen.size == 0:
            chosen = chosen.astype(np.int64)
        if chosen.dtype.kind not in "iu":
            raise TypeError
        chosen = chosen.astype(np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"query strategy {name!r} must return integer candidate positions.") from None
    if len(chosen) != k:
        raise ValueError(f"query strategy {name!r} returned {len(chosen)} positions; expected {k}.")
    if len(chosen) and (chosen.min() < 0 or chosen.max() >= n):
        raise ValueError(f"query strategy {name!r} returned positions outside 0..{n - 1}.")
    if len(np.unique(chosen)) != len(chosen):
        raise ValueError(f"query strategy {name!r} returned the same candidate twice.")
    if scores is None:
        # A pick order has no scores of its own: the first pick ranks highest.
        values = np.arange(k, 0, -1, dtype=np.float64)
    else:
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.shape != (k,):
            raise ValueError(f"query strategy {name!r} returned {values.size} scores for {k} positions.")
    return Selection(chosen, values)


Strategy = Union[QueryStrategy, BatchStrategy]
