"""TypiClust: the most typical point of each large uncovered cluster (Hacohen, Dekel & Weinshall,
"Active Learning on a Budget", ICML 2022).

With few labels, the points most worth labelling are typical (in dense regions) and diverse.
TypiClust clusters every point, labelled and candidate, into ``L + B`` clusters with k-means
(L labelled points, B the batch; at most 500), so B clusters or more hold no labelled point. Each pick takes
the largest cluster that holds no labelled point (or earlier pick), and in it the candidate of
highest typicality, the inverse mean Euclidean distance to its k nearest neighbours in the
cluster, k = min(20, cluster size - 1). Features are L2-normalised first, as the paper clusters
normalised self-supervised embeddings.

Where this differs from the authors' code (avihu111/TypiClust, ``deep-al/pycls/al/typiclust.py``):

* Clusters smaller than ``min_cluster_size`` (5) are used only after every larger cluster, where
  that code drops clusters of 5 points or fewer outright.
* Once every cluster holds a labelled point or pick, the next pick comes from the cluster with
  the fewest, largest first; that code cycles through its initial order, the same order while
  no cluster runs out of candidates.
* k-means has one restart, seeded from ``rng``. As there, it is scikit-learn's ``KMeans`` up to
  50 clusters and ``MiniBatchKMeans`` on batches of 5,000 points above, and the count is capped
  at 500 clusters: a round at 1,000,000 candidates takes 30 s (``benchmarks/bench_scale.py``),
  where with full k-means it had not ended after 150 s. What
  mini-batches save and cost in the picks is measured in the README
  (``benchmarks/cold_start_picks.py``).
* Typicality uses the Euclidean distance, as the paper defines it; that code's nearest-neighbour
  search returns squared distances, so it ranks by the inverse mean squared distance.
* A cluster's neighbourhoods include its labelled points (density does not change when a point
  gets a label); that code counts only unlabelled points and uses k = min(20, size // 2).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike

from al_experiments.validation import RNG, WHOLE_AT_LEAST_0, WHOLE_AT_LEAST_1, Interval, optional, validate_params

from ..scores import check_embeddings
from .features import check_feature_sets, kmeans_labels, l2_normalise, stacked_points

__all__ = ["typiclust", "typiclust_stacked", "typicality", "MAX_CLUSTERS", "MAX_NEIGHBOURS"]

MAX_CLUSTERS = 500  # the authors' cap on the cluster count (k-means time grows with it)
MAX_NEIGHBOURS = 20  # the paper's k for typicality


@validate_params({"neighbours": optional(WHOLE_AT_LEAST_0)})
def typicality(features: ArrayLike, neighbours: int | None = None) -> np.ndarray:
    """Typicality of every row: 1 / mean Euclidean distance to its ``neighbours`` nearest other
    rows (default min(20, rows - 1)). A lone row has typicality 0 (no neighbour to vouch for its
    density); a row with as many exact duplicates as neighbours has typicality inf.
    """
    from sklearn.neighbors import NearestNeighbors  # scikit-learn is slow to import: loaded on use

    x = check_feature_sets(features, None, names=("features", "labelled_features"))[0]
    m = len(x)
    k = max(0, min(MAX_NEIGHBOURS, m - 1)) if neighbours is None else neighbours
    Interval(Integral, 0, max(0, m - 1)).check("neighbours", k)  # at most the other rows
    if k == 0:
        return np.zeros(m)
    # kneighbors() without X leaves each row out of its own neighbours, even among duplicates.
    distances, _ = NearestNeighbors(n_neighbors=k).fit(x).kneighbors()
    with np.errstate(divide="ignore"):
        return 1.0 / distances.mean(axis=1)


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "rng": RNG, "min_cluster_size": WHOLE_AT_LEAST_1,
                  "max_clusters": WHOLE_AT_LEAST_1})
def typiclust(
    features: ArrayLike,
    labelled_features: ArrayLike | None,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
    min_cluster_size: int = 5,
    max_clusters: int = MAX_CLUSTERS,
    normalise: bool = True,
) -> np.ndarray:
    """Positions of a TypiClust batch among the candidates, in pick order.

    ``features`` (N, D) are the candidates, ``labelled_features`` (L, D) the labelled points (or
    ``None`` / empty). All N + L points are clustered into min(L + batch_size, max_clusters,
    N + L) k-means clusters (seeded from ``rng``: a Generator, int seed or ``None``). Each pick
    comes from the cluster ranked first by: at least ``min_cluster_size`` points, fewest
    labelled points and picks, most points, lowest cluster id; within it, the candidate of
    highest :func:`typicality` not yet picked (ties: lowest position). ``normalise`` scales rows
    to unit length first, as the paper does.

    Returns an int64 array of ``min(batch_size, N)`` distinct positions.
    """
    # Float32 features stay float32 (half the memory of a large pool), as the authors' code runs.
    x, labelled = check_feature_sets(features, labelled_features, names=("features", "labelled_features"),
                                     keep_float32=True)
    return _select(stacked_points(x, labelled, normalise), len(x), batch_size, np.random.default_rng(rng),
                   min_cluster_size, max_clusters)


@validate_params({"n_candidates": WHOLE_AT_LEAST_0, "batch_size": WHOLE_AT_LEAST_0, "rng": RNG,
                  "min_cluster_size": WHOLE_AT_LEAST_1, "max_clusters": WHOLE_AT_LEAST_1})
def typiclust_stacked(
    points: ArrayLike,
    n_candidates: int,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
    min_cluster_size: int = 5,
    max_clusters: int = MAX_CLUSTERS,
    normalise: bool = True,
    overwrite: bool = False,
) -> np.ndarray:
    """:func:`typiclust` on one array ``points`` (M, D): the first ``n_candidates`` rows are the
    candidates, the rest the labelled points. ``overwrite`` lets ``normalise`` scale ``points``
    itself instead of a copy (a large pool's features then exist once); it gives the same batch.
    """
    x = check_embeddings(points, "points", keep_float32=True)
    Interval(Integral, 0, len(x)).check("n_candidates", n_candidates)  # at most the rows
    if normalise:
        copied = not (isinstance(points, np.ndarray) and np.may_share_memory(x, points))
        x = l2_normalise(x, in_place=overwrite or copied)
    return _select(x, int(n_candidates), batch_size, np.random.default_rng(rng), min_cluster_size, max_clusters)


def _select(points: np.ndarray, n: int, batch_size: int, gen: np.random.Generator, min_cluster_size: int,
            max_clusters: int) -> np.ndarray:
    """The batch among the first ``n`` rows of ``points`` (candidates, then labelled points),
    as :func:`typiclust` describes it."""
    labelled_count = len(points) - n
    b = min(int(batch_size), n)
    if b == 0:
        return np.empty(0, dtype=np.int64)
    n_clusters = min(labelled_count + b, max_clusters, len(points))
    cluster = kmeans_labels(points, n_clusters, gen)
    size = np.bincount(cluster, minlength=n_clusters)
    occupied = np.bincount(cluster[n:], minlength=n_clusters)  # labelled points, then picks too
    left = np.bincount(cluster[:n], minlength=n_clusters)  # candidates not yet picked
    # Rank: usable size first, then fewest occupants, then largest, then lowest id.
    small = size < min_cluster_size
    ids = np.arange(n_clusters)
    by_typicality: dict[int, list[int]] = {}  # cluster -> its candidates, most typical last
    picks = np.empty(b, dtype=np.int64)
    for i in range(b):
        order = np.lexsort((ids, -size, occupied, small))
        c = int(order[np.argmax(left[order] > 0)])  # b <= n, so some cluster has a candidate left
        if c not in by_typicality:
            by_typicality[c] = _candidates_by_typicality(points, cluster, c, n)
        picks[i] = by_typicality[c].pop()
        occupied[c] += 1
        left[c] -= 1
    return picks


def _candidates_by_typicality(points: np.ndarray, cluster: np.ndarray, c: int, n: int) -> list[int]:
    """Candidate positions of cluster ``c`` in ascending typicality (ties: highest position
    first), so ``pop()`` gives the most typical, lowest position among equals."""
    members = np.flatnonzero(cluster == c)
    typical = typicality(points[members])
    is_candidate = members < n
    members, typical = members[is_candidate], typical[is_candidate]
    order = np.lexsort((-members, typical))
    return members[order].tolist()
