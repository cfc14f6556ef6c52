"""BADGE: batch selection by k-means++ seeding on gradient embeddings (Ash et al., ICLR 2020).

A point's gradient embedding is the gradient of the cross-entropy loss at its predicted label
with respect to the last layer's weights: ``g_i = a_i ⊗ h_i`` with ``a_i = onehot(argmax p_i)
- p_i`` (C values) and ``h_i`` the penultimate-layer embedding (D values). Its norm is large
where the model is unsure, and k-means++ seeding spreads the batch over different directions.

The C*D-dimensional ``g_i`` is never formed. Because ``<a ⊗ h, a' ⊗ h'> = (a.a')(h.h')``,

    |g_i - g_j|^2 = |a_i|^2 |h_i|^2 + |a_j|^2 |h_j|^2 - 2 (a_i.a_j)(h_i.h_j),

so each k-means++ step costs O(N (C + D)) instead of O(N C D), with O(N) extra memory.

Differences from some published implementations (on purpose): chosen points have distance 0
and are never drawn again (no duplicate positions); the first centre is a real point (the
largest gradient norm), not an implicit centre at the origin; the draw is seeded with ``rng``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike

from al_experiments.validation import RNG, WHOLE_AT_LEAST_0, Interval, numeric_array, validate_params

from ..scores import check_embeddings, check_probs, float64_row_blocks

__all__ = ["badge", "gradient_embedding_sq_distances", "gradient_embedding_factors"]

# Rows of probs must sum to 1 within this; float32 softmax over many classes strays ~1e-6.
_SUM_TOL = 1e-3
# Squared distances below this fraction of |g_i|^2 + |g_j|^2 are treated as round-off of the
# expansion (cancellation in float64 dot products over C and D terms is far below it), not
# distance, and set to exactly 0: exact duplicates of a centre then get 0 whatever the BLAS
# summation order. Points that close (relative distance < 1e-6) would have a draw probability
# of ~1e-12 of a typical point's anyway.
_CANCEL_TOL = 1e-12


def gradient_embedding_factors(
    probs: ArrayLike, embeddings: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Validate BADGE's inputs and return the factors ``(a, h)`` of the gradient embeddings
    ``g_i = a_i ⊗ h_i``: ``a = onehot(argmax p) - p`` of shape (N, C) (ties in the argmax go to
    the lowest class) and ``h`` the embeddings (N, D), float64 (``a``) and float64 or, as given,
    float32 (``h``: a large pool's float64 copy would double its memory; it is read in float64
    block by block)."""
    p = numeric_array(probs, "BADGE needs probabilities of shape (N, C)", "pass a numeric array of softmax rows")
    if p.ndim == 3:
        raise ValueError(
            f"BADGE needs the deterministic predictive of shape (N, C); got shape {p.shape}: "
            "for T=1 samples pass probs[:, 0, :], i.e. one softmax output per point."
        )
    if p.ndim != 2:
        raise ValueError(
            f"BADGE needs probabilities of shape (N, C); got shape {p.shape}: pass one "
            "softmax row per pool point."
        )
    p = check_probs(p[:, None, :])[:, 0, :]
    h = check_embeddings(embeddings, keep_float32=True)
    if h.shape[0] != p.shape[0]:
        raise ValueError(
            f"probs has {p.shape[0]} rows but embeddings has {h.shape[0]}: pass both for the "
            "same pool points, in the same order."
        )
    if p.size:
        row_sums = p.sum(axis=1)
        worst = int(np.argmax(np.abs(row_sums - 1.0)))
        if abs(row_sums[worst] - 1.0) > _SUM_TOL:
            raise ValueError(
                f"BADGE needs probability rows that sum to 1; row {worst} sums to "
                f"{row_sums[worst]:.6g}: apply softmax to the outputs (for a single sigmoid "
                "column pass two columns [1 - p, p])."
            )
    a = -p
    if p.shape[1]:
        a[np.arange(p.shape[0]), p.argmax(axis=1)] += 1.0
    return a, h


def _rows_dot(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``h @ v`` (N,) in float64, ``h`` read a block of rows at a time."""
    out = np.empty(h.shape[0], dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    for start, block in float64_row_blocks(h):
        np.matmul(block, v, out=out[start : start + len(block)])
    return out


def _sq_norms(h: np.ndarray) -> np.ndarray:
    """``|h_i|^2`` (N,) in float64, a block of rows at a time."""
    out = np.empty(h.shape[0], dtype=np.float64)
    for start, block in float64_row_blocks(h):
        out[start : start + len(block)] = np.einsum("ij,ij->i", block, block)
    return out


def _sq_dist_to(a: np.ndarray, h: np.ndarray, g_sq: np.ndarray, j: int) -> np.ndarray:
    """Squared distances |g_i - g_j|^2 from the factors, round-off clipped to exactly 0."""
    cross = (a @ a[j]) * _rows_dot(h, h[j])
    d2 = g_sq + g_sq[j] - 2.0 * cross
    d2[d2 <= _CANCEL_TOL * (g_sq + g_sq[j])] = 0.0  # also clips negative round-off
    d2[j] = 0.0
    return d2


def gradient_embedding_sq_distances(
    probs: ArrayLike, embeddings: ArrayLike, centre_index: int
) -> np.ndarray:
    """Squared Euclidean distances ``|g_i - g_j|^2`` (N,) from every point's gradient embedding
    to that of point ``j = centre_index``, computed without forming the C*D vectors.

    Values at most 1e-12 of ``|g_i|^2 + |g_j|^2`` (round-off of the expansion) are returned as 0.
    """
    a, h = gradient_embedding_factors(probs, embeddings)
    n = a.shape[0]
    Interval(Integral, -n, n, closed="left").check("centre_index", centre_index)
    g_sq = np.einsum("ij,ij->i", a, a) * _sq_norms(h)
    return _sq_dist_to(a, h, g_sq, int(centre_index) % n)


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "rng": RNG})
def badge(
    probs: ArrayLike,
    embeddings: ArrayLike,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Positions of a BADGE batch: k-means++ seeding on gradient embeddings.

    ``probs`` (N, C) is the deterministic predictive (softmax rows summing to 1) and
    ``embeddings`` (N, D) the penultimate-layer outputs of the same points. The first pick is
    the point with the largest gradient norm ``|g_i| = |a_i| |h_i|`` (ties: lowest position);
    each further pick is drawn with probability proportional to ``D_i^2``, the squared distance
    from ``g_i`` to its nearest pick so far. Picks have ``D = 0`` and are never drawn twice; if
    every remaining point is at distance 0 (duplicates of picks) the next pick is uniform over
    the points not yet chosen.

    Returns an int64 array of ``min(batch_size, N)`` distinct positions in pick order.
    ``rng`` (numpy Generator, int seed or ``None``) drives the draws; the first pick never
    depends on it.
    """
    a, h = gradient_embedding_factors(probs, embeddings)
    n = a.shape[0]
    b = min(int(batch_size), n)
    gen = np.random.default_rng(rng)
    if b == 0:
        return np.empty(0, dtype=np.int64)

    g_sq = np.einsum("ij,ij->i", a, a) * _sq_norms(h)
    picks = np.empty(b, dtype=np.int64)
    chosen = np.zeros(n, dtype=bool)
    picks[0] = int(np.argmax(g_sq))
    chosen[picks[0]] = True
    min_d2 = _sq_dist_to(a, h, g_sq, picks[0])
    for i in range(1, b):
        weights = np.where(chosen, 0.0, min_d2)
        cum = np.cumsum(weights)
        total = cum[-1]
        if total > 0.0:
            j = int(np.searchsorted(cum, gen.random() * total, side="right"))
            # u * total can round up to total; fall back to the last point with weight.
            j = min(j, int(np.flatnonzero(weights)[-1]))
        else:
            j = int(gen.choice(np.flatnonzero(~chosen)))
        picks[i] = j
        chosen[j] = True
        if i + 1 < b:
            np.minimum(min_d2, _sq_dist_to(a, h, g_sq, j), out=min_d2)
    return picks
