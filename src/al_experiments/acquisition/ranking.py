"""Selecting which pool points to label from their scores."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from al_experiments.validation import WHOLE_AT_LEAST_0, validate_params

__all__ = ["top_k"]


@validate_params({"k": WHOLE_AT_LEAST_0})
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
    if np.isnan(s).any():
        raise ValueError(
            f"scores contain {int(np.isnan(s).sum())} NaN value(s), so there is no ranking: "
            "fix the query function or its inputs so every point gets a real score."
        )
    n = s.size
    k = min(int(k), n)
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
