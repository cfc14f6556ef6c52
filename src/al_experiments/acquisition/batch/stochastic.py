"""Stochastic batch acquisition: draw a batch at random, favouring high scores.

Instead of the top ``B`` scores, :func:`stochastic_top_k` samples ``B`` points without
replacement with a probability that grows with the score (Kirsch et al., "Stochastic Batch
Acquisition", TMLR 2023; PowerBALD is the ``"power"`` mode on BALD scores). Sampling uses the
Gumbel-top-k trick: adding independent Gumbel(0, 1) noise to ``log p_i`` and keeping the ``B``
largest keys gives the same distribution as drawing ``B`` times in a row with probabilities
``p`` renormalised over the points not yet drawn. It costs O(N) plus a partial sort.

Differences from baal's ``PowerSampling`` family (on purpose):

* Scores are clamped to the smallest positive float before the log, so BALD values of 0 or
  slightly below it (round-off) never turn into NaN at any temperature.
* The draw is seeded (``rng``), and points with probability ~0 are simply drawn last instead
  of triggering a fallback to uniform sampling.
* ``"softrank"`` uses the rank of each point (1 for the highest score), not the sort order
  ``argsort(scores)``: the latter gives a point's *position in the ranking* to the wrong point.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from al_experiments.validation import (
    POSITIVE,
    RNG,
    WHOLE_AT_LEAST_0,
    Options,
    optional,
    validate_params,
)

from ..ranking import top_k

__all__ = ["STOCHASTIC_MODES", "STOCHASTIC_CONSTRAINTS", "stochastic_top_k", "take_batch"]

STOCHASTIC_MODES = ("power", "softmax", "softrank")

# How a batch is drawn from scores: the settings every score-based strategy takes.
STOCHASTIC_CONSTRAINTS = {"stochastic": optional(Options(STOCHASTIC_MODES)), "temperature": POSITIVE}

# Clamp for the "power" mode: log(tiny) is about -708, finite, so a zero score gets a
# vanishingly small but well-defined probability.
_TINY = np.finfo(np.float64).tiny


def _ranks(s: np.ndarray) -> np.ndarray:
    """Rank of every score, 1 for the highest; equal scores are ranked by position."""
    order = np.lexsort((np.arange(s.size), -s))  # best first, ties by lower position
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.arange(1, s.size + 1, dtype=np.float64)
    return ranks


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "mode": Options(STOCHASTIC_MODES),
                  "temperature": POSITIVE, "rng": RNG})
def stochastic_top_k(
    scores: ArrayLike,
    batch_size: int,
    *,
    mode: str = "power",
    temperature: float = 1.0,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Positions of ``batch_size`` points drawn without replacement, favouring high scores.

    The sampling probabilities (over the points not drawn yet) are, with ``s`` the scores and
    ``tau`` the temperature:

    * ``"power"``: ``p ∝ max(s, tiny) ** (1 / tau)`` (PowerBALD on BALD scores);
    * ``"softmax"``: ``p ∝ exp(s / tau)``;
    * ``"softrank"``: ``p ∝ rank ** (-1 / tau)`` with rank 1 for the highest score (ties ranked by
      position), so only the order of the scores matters.

    Returns an int64 array of ``min(batch_size, N)`` distinct positions in the order they were
    drawn (most favoured first). As ``tau -> 0`` the draw becomes :func:`top_k`; ``tau = 1`` is
    the setting of Kirsch et al. ``batch_size`` follows ``top_k``'s rules (clamped to N, 0 gives
    an empty array, negative raises). ``rng`` is a numpy Generator, an int seed or ``None``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(
            f"stochastic_top_k needs a 1-D vector of scores, one per pool point; got shape "
            f"{s.shape}: score each point once (e.g. reduce the sample axis first)."
        )
    if np.isnan(s).any():
        raise ValueError(
            f"scores contain {int(np.isnan(s).sum())} NaN value(s), so there is no ranking: "
            "fix the query function or its inputs so every point gets a real score."
        )
    tau = float(temperature)
    b = min(int(batch_size), s.size)
    gen = np.random.default_rng(rng)
    if b == 0:
        return np.empty(0, dtype=np.int64)

    if mode == "power":
        log_weight = np.log(np.maximum(s, _TINY))
    elif mode == "softmax":
        log_weight = s
    else:  # softrank
        log_weight = -np.log(_ranks(s))
    with np.errstate(over="ignore"):  # a huge score over a tiny tau is +inf: drawn first
        keys = log_weight / tau + gen.gumbel(size=s.size)
    return top_k(keys, b)


@validate_params({"batch_size": WHOLE_AT_LEAST_0, **STOCHASTIC_CONSTRAINTS, "rng": RNG})
def take_batch(scores: ArrayLike, batch_size: int, stochastic: str | None = None,
               temperature: float = 1.0, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """The batch a score strategy takes: the top ``batch_size`` scores, or with ``stochastic``
    set a :func:`stochastic_top_k` draw in that mode."""
    if stochastic is None:
        return top_k(scores, batch_size)
    return stochastic_top_k(scores, batch_size, mode=stochastic, temperature=temperature, rng=rng)
