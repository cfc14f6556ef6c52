"""Selecting which pool points to label from their scores."""

from __future__ import annotations

import operator

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["top_k", "as_generator", "check_batch_size"]


def top_k(scores: ArrayLike, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first, as an int64 array.

    Ties are broken by lower position first, both in the order and in which tied points make
    the cut, so the result never depends on the sort algorithm. ``k`` larger than the number of
    scores is clamped; ``k == 0`` gives an empty array; ``k < 0`` or NaN scores raise
    ``ValueError``. Unlike tf_al (ascending order, best last), the best point comes first.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(
            f"top_k needs a 1-D vector of scores, one per pool point; got shape {s.shape}: "
            "score each point once (e.g. reduce the sample axis first)."
        )
    k = check_batch_size(k, s.size, name="k")
    if np.isnan(s).any():
        raise ValueError(
            f"scores contain {int(np.isnan(s).sum())} NaN value(s), so there is no ranking: "
            "fix the query function or its inputs so every point gets a real score."
        )
    n = s.size
    k = min(k, n)
    if k == 0:
        return np.empty(0, dtype=np.int64)

    # O(n) partial selection instead of tf_al's full argsort: the k largest land after n - k.
    part = np.argpartition(s, n - k)[n - k :]
    threshold = s[part].min()  # the k-th largest value
    # argpartition picks arbitrary members of a tie at the threshold; choose them by position
    # instead so the selection is deterministic.
    above = np.flatnonzero(s > threshold)
    at = np.flatnonzero(s == threshold)[: k - above.size]
    chosen = np.concatenate([above, at])
    # lexsort: last key is primary -> descending score, then ascending position.
    order = np.lexsort((chosen, -s[chosen]))
    return chosen[order].astype(np.int64, copy=False)


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Return ``rng`` as a numpy ``Generator``: a Generator is used as is, an int seed or ``None``
    (fresh OS entropy) goes through ``np.random.default_rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        try:
            return np.random.default_rng(rng)
        except ValueError:
            pass  # negative seed: fall through to the error below
    raise ValueError(
        f"rng must be a numpy Generator, a non-negative int seed or None; got {rng!r}: pass "
        "np.random.default_rng(seed) or the seed itself."
    )


def check_batch_size(batch_size: int, n: int, name: str = "batch_size") -> int:
    """``batch_size`` as an int clamped to the ``n`` candidates; one sentence when it is not a
    whole number >= 0."""
    try:
        b = operator.index(batch_size)
    except TypeError:
        raise ValueError(f"{name} must be an integer number of points; got {batch_size!r}.") from None
    if b < 0:
        raise ValueError(f"{name} must be >= 0 (the number of points to select); got {name}={b}.")
    return min(b, n)
