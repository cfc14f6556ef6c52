"""ProbCover: greedy coverage by balls of radius delta (Yehuda, Dekel, Hacohen & Weinshall,
"Active Learning Through a Covering Lens", NeurIPS 2022).

Every point has a ball of radius delta around it (closed: distance <= delta, the point itself
included). Each pick is the candidate whose ball holds the most points not yet covered, which
then count as covered; the points in a labelled point's ball start covered. Ties are drawn
with ``rng``. Once nothing is left to cover, the rest of the batch is drawn uniformly from the
remaining candidates (the authors' code, avihu111/TypiClust ``deep-al/pycls/al/prob_cover.py``,
keeps taking the argmax of all-zero degrees there, i.e. the same first point again, and its
balls are open: distance < delta). Features are L2-normalised first, as the paper covers
normalised self-supervised embeddings.

Default delta, as the paper chooses it: cluster all points with k-means into as many clusters as
there are classes (pseudo-labels); a ball is pure when all its points share a pseudo-label, and
delta is the largest radius whose balls are pure for at least a fraction alpha = 0.95 of the
points. The ball around x is pure exactly when delta < d(x), the distance from x to the nearest
point of another cluster, so the fraction of pure balls is the fraction of points with
d(x) > delta, and the largest delta with purity >= alpha is read exactly off the sorted d(x)
instead of being searched on a grid. That costs one k-means and O(N^2 D) distance computations
(in blocks), which is why it is re-estimated only where delta is not given.

Neighbourhoods are a sparse graph (scikit-learn's radius neighbours), and the greedy loop
updates every candidate's gain only for the points a pick newly covers: O(edges) in all.

The graph costs O(N^2 D), which the authors paid on a GPU for pools of up to 100,000 points.
Beyond ``subsample`` candidates (``DEFAULT_SUBSAMPLE``), a uniform sample of that many stands for
the pool, both as the points to cover and as the picks; every labelled point stays. The paper's
objective is the probability mass the balls cover, which the pool itself only estimates, and a
uniform sample of it estimates the same mass. How much coverage the sample costs, measured on
Fashion-MNIST, is in the README.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse

from numbers import Integral, Real

from al_experiments.validation import (
    POSITIVE,
    RNG,
    WHOLE_AT_LEAST_0,
    WHOLE_AT_LEAST_1,
    Interval,
    optional,
    validate_params,
)

from .coreset import DEFAULT_CHUNK_SIZE, min_sq_dist_to_set
from .features import check_feature_sets, kmeans_labels, stacked_points

__all__ = ["probcover", "purity_delta", "ball_graph", "greedy_cover", "PURITY", "DELTA",
           "DEFAULT_PURITY", "DEFAULT_SUBSAMPLE", "sampled_candidates"]

DEFAULT_PURITY = 0.95  # the paper's alpha
# The most candidates the graph is built over; larger pools are sampled (module docstring).
DEFAULT_SUBSAMPLE = 20_000


# The declared ranges of ProbCover's settings: a purity fraction, a ball radius (L2-normalised
# feature units, at most 2) or None for the purity-based default.
PURITY = Interval(Real, 0, 1, closed="right")
DELTA = optional(POSITIVE)


@validate_params({"num_classes": WHOLE_AT_LEAST_1, "purity": PURITY, "rng": RNG})
def purity_delta(points: ArrayLike, num_classes: int, purity: float = DEFAULT_PURITY,
                 rng: np.random.Generator | int | None = None) -> float:
    """The largest ball radius for which at least a ``purity`` fraction of the balls around
    ``points`` (M, D) hold one k-means cluster only, with ``num_classes`` clusters (seeded from
    ``rng``). Points are used as given (normalise them first for the paper's setting); inf when
    k-means finds a single cluster (every ball is then pure)."""
    x = check_feature_sets(points, None, names=("points", "labelled_points"))[0]
    alpha = float(purity)
    m = len(x)
    if m == 0:
        raise ValueError("purity_delta needs at least one point.")
    cluster = kmeans_labels(x, min(int(num_classes), m), np.random.default_rng(rng))
    nearest_other = np.full(m, np.inf)  # distance to the nearest point of another cluster
    for c in np.unique(cluster):
        inside = cluster == c
        if inside.all():
            break
        nearest_other[inside] = np.sqrt(min_sq_dist_to_set(x[inside], x[~inside], DEFAULT_CHUNK_SIZE))
    # A ball is impure iff delta >= nearest_other; at most this many may be.
    impure_allowed = min(int(np.floor((1.0 - alpha) * m + 1e-9)), m - 1)
    bound = np.partition(nearest_other, impure_allowed)[impure_allowed]
    # Just below the bound: the point at exactly that distance must stay outside the closed ball.
    return float(np.nextafter(bound, 0.0)) if np.isfinite(bound) else np.inf


def ball_graph(points: np.ndarray, delta: float) -> sparse.csr_matrix:
    """(M, M) boolean matrix whose row i marks the points within ``delta`` of point i (itself too)."""
    from sklearn.neighbors import NearestNeighbors  # scikit-learn is slow to import: loaded on use

    if not np.isfinite(delta):
        # Every ball holds every point; a finite radius that says so (triangle inequality).
        delta = 2.0 * float(np.linalg.norm(points - points[0], axis=1).max()) + 1.0
    # Trees only pay off in few dimensions (scikit-learn's own rule for k-neighbours: D <= 15).
    algorithm = "auto" if points.shape[1] <= 15 else "brute"
    graph = NearestNeighbors(radius=delta, algorithm=algorithm).fit(points).radius_neighbors_graph(
        points, mode="connectivity")
    return graph.astype(bool).tocsr()


@validate_params({"n_candidates": WHOLE_AT_LEAST_0, "batch_size": WHOLE_AT_LEAST_0, "rng": RNG})
def greedy_cover(balls: sparse.spmatrix, n_candidates: int, batch_size: int, *,
                 covered: ArrayLike | None = None,
                 rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy max coverage: ``(picks, gains)``, the candidate rows in pick order and how many
    points each newly covered (0 for picks drawn after everything was covered).

    ``balls`` (M, M): row i marks the points in the ball of point i; rows 0..n_candidates-1 are
    the candidates. ``covered`` (M,) marks points covered at the start (default none). Ties in
    the gain are drawn uniformly with ``rng``, as is every pick once nothing is left to cover.
    """
    graph = sparse.csr_matrix(balls)
    m = graph.shape[0]
    if graph.shape != (m, m):
        raise ValueError(f"balls must be a square (M, M) matrix; got shape {graph.shape}.")
    if graph.dtype != bool:
        graph = (graph != 0).tocsr()  # stored zeros are not members
    Interval(Integral, 0, m).check("n_candidates", n_candidates)  # at most the rows of balls
    n = int(n_candidates)
    b = min(int(batch_size), n)
    gen = np.random.default_rng(rng)
    uncovered = np.ones(m, dtype=bool) if covered is None else ~np.asarray(covered, dtype=bool)
    if uncovered.shape != (m,):
        raise ValueError(f"covered must hold one flag per point ({m}); got shape {uncovered.shape}.")
    holders = graph.T.tocsr()  # row y: the points whose ball holds y
    gain = graph[:n] @ uncovered.astype(np.int64)
    available = np.ones(n, dtype=bool)
    picks = np.empty(b, dtype=np.int64)
    gains = np.zeros(b, dtype=np.int64)
    for i in range(b):
        open_gain = np.where(available, gain, -1)
        best = int(open_gain.max())
        if best <= 0:  # nothing left to cover: the rest uniformly from the open candidates
            picks[i:] = gen.permutation(np.flatnonzero(available))[: b - i]
            break
        ties = np.flatnonzero(open_gain == best)
        j = int(ties[gen.integers(len(ties))])
        ball = graph.indices[graph.indptr[j]:graph.indptr[j + 1]]
        newly = ball[uncovered[ball]]
        uncovered[newly] = False
        # Each newly covered point leaves the gain of every ball that holds it.
        gain -= np.bincount(holders[newly].indices, minlength=m)[:n]
        available[j] = False
        picks[i], gains[i] = j, best
    return picks, gains


def sampled_candidates(n: int, subsample: int | None, batch_size: int,
                       rng: np.random.Generator) -> np.ndarray | None:
    """Positions (ascending) of a uniform sample of ``subsample`` of ``n`` candidates, drawn
    from ``rng``; None where all stay (``subsample`` None or at least ``n``, or an empty batch).
    A sample smaller than the batch is refused."""
    b = min(int(batch_size), n)
    if subsample is None or n <= subsample or b == 0:
        return None
    if subsample < b:
        raise ValueError(
            f"subsample={subsample} keeps fewer candidates than the batch of {b}: set "
            "query.options.subsample to at least the batch size, or null to keep every candidate."
        )
    return np.sort(rng.choice(n, subsample, replace=False))


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "rng": RNG, "delta": DELTA,
                  "num_classes": optional(WHOLE_AT_LEAST_1), "purity": PURITY,
                  "subsample": optional(WHOLE_AT_LEAST_1)})
def probcover(
    features: ArrayLike,
    labelled_features: ArrayLike | None,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
    delta: float | None = None,
    num_classes: int | None = None,
    purity: float = DEFAULT_PURITY,
    normalise: bool = True,
    subsample: int | None = DEFAULT_SUBSAMPLE,
) -> np.ndarray:
    """Positions of a ProbCover batch among the candidates, in pick order.

    ``features`` (N, D) are the candidates, ``labelled_features`` (L, D) the labelled points (or
    ``None`` / empty); all N + L points are to be covered. ``delta`` is the ball radius, or
    ``None`` for :func:`purity_delta` with ``num_classes`` k-means clusters and ``purity``
    (then ``num_classes`` is required). ``normalise`` scales rows to unit length first, as the
    paper does. ``rng`` (Generator, int seed or ``None``) seeds k-means, ties and the uniform
    fill once everything is covered. With more than ``subsample`` candidates (``None``: no
    limit), a uniform sample of that many, drawn first from ``rng``, stands for them.

    Returns an int64 array of ``min(batch_size, N)`` distinct positions.
    """
    x, labelled = check_feature_sets(features, labelled_features, names=("features", "labelled_features"),
                                     keep_float32=True)
    n = len(x)
    b = min(int(batch_size), n)
    if delta is None and num_classes is None:
        raise ValueError(
            "probcover needs delta or num_classes: pass the ball radius, or the number of classes "
            "for the purity-based default radius."
        )
    gen = np.random.default_rng(rng)
    kept = sampled_candidates(n, subsample, b, gen)
    if b == 0:
        return np.empty(0, dtype=np.int64)
    if kept is not None:
        x, n = x[kept], len(kept)
    # The graph's distances in float64, as for a pool given in float64 (the sample is small).
    points = stacked_points(x.astype(np.float64, copy=False), labelled, normalise)
    radius = purity_delta(points, num_classes, purity, gen) if delta is None else float(delta)
    balls = ball_graph(points, radius)
    covered = np.zeros(len(points), dtype=bool)
    covered[balls[n:].indices] = True  # what the labelled points' balls hold
    picks = greedy_cover(balls, n, b, covered=covered, rng=gen)[0]
    return picks if kept is None else kept[picks]
