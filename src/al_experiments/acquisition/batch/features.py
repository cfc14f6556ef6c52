"""Feature matrices for the distance-based selectors (Core-set, TypiClust, ProbCover): one check
of a candidate/labelled pair, raw inputs flattened to rows, L2 normalisation, and k-means
cluster labels seeded from the caller's generator."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..scores import ROW_BLOCK, check_embeddings

__all__ = ["check_feature_sets", "flat_features", "l2_normalise", "kmeans_labels", "stacked_points", "KMEANS_RESTARTS",
           "MINIBATCH_ABOVE_CLUSTERS", "MINIBATCH_ROWS"]

# k-means restarts per clustering: one k-means++ start, as scikit-learn's "auto" gives today (each
# restart costs a full clustering of the pool), but fixed so an upgrade cannot change the
# clusters of a seed.
KMEANS_RESTARTS = 1
# Above this many clusters k-means runs on mini-batches of MINIBATCH_ROWS points, as TypiClust's
# authors cluster (avihu111/TypiClust, pycls/al/typiclust.py): full Lloyd passes cost clusters x
# points per iteration (benchmarks/cold_start_picks.py times both).
MINIBATCH_ABOVE_CLUSTERS = 50
MINIBATCH_ROWS = 5000


def check_feature_sets(features: ArrayLike, labelled_features: ArrayLike | None,
                       names: tuple[str, str] = ("embeddings", "labelled_embeddings"),
                       keep_float32: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(candidates (N, D), labelled (L, D))`` as finite float64 matrices; ``None`` or an empty
    array means no labelled point. One sentence when either is malformed or their D differ.
    ``keep_float32``: float32 candidates are kept as they are (see ``check_embeddings``)."""
    own, other = names
    x = check_embeddings(features, own, keep_float32=keep_float32)
    dim = x.shape[1]
    if labelled_features is None:
        return x, np.empty((0, dim))
    labelled = check_embeddings(labelled_features, other, empty_dim=dim)
    if labelled.shape[1] != dim:
        raise ValueError(
            f"{other} have D={labelled.shape[1]} features but {own} have D={dim}: compute both "
            "sets the same way (the same layer of the same model, or the same raw inputs)."
        )
    return x, labelled


def flat_features(inputs: Any) -> np.ndarray:
    """Inputs of any shape ``(N, ...)`` as float64 rows ``(N, D)``: each point flattened."""
    array = np.asarray(inputs, dtype=np.float64)
    # An explicit width: reshape(0, -1) cannot infer it for an empty selection.
    return array.reshape(len(array), int(np.prod(array.shape[1:], dtype=np.int64)))


def l2_normalise(x: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Rows scaled to unit Euclidean length; an all-zero row stays zero (it has no direction).
    ``in_place`` scales ``x`` itself (a float array the caller owns) instead of a copy."""
    # Row blocks: the squares of a whole large pool would be one more copy of it.
    norms = np.empty((len(x), 1), dtype=x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)
    for start in range(0, len(x), ROW_BLOCK):
        norms[start:start + ROW_BLOCK, 0] = np.linalg.norm(x[start:start + ROW_BLOCK], axis=1)
    norms[norms == 0.0] = 1.0
    if in_place:
        x /= norms
        return x
    return x / norms


def stacked_points(candidates: np.ndarray, labelled: np.ndarray, normalise: bool) -> np.ndarray:
    """Candidates then labelled points in one new array of the candidates' dtype (row i <
    len(candidates) is candidate i), scaled to unit length with ``normalise``, as both cold-start
    papers work on normalised embeddings. Float32 candidates stay float32: a million 256-wide
    embeddings are 1 GiB, and 2 GiB more in float64."""
    points = np.concatenate([candidates, labelled.astype(candidates.dtype, copy=False)])
    return l2_normalise(points, in_place=True) if normalise else points


def kmeans_labels(points: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster id (0..n_clusters-1) of every row by scikit-learn's KMeans, or MiniBatchKMeans
    above ``MINIBATCH_ABOVE_CLUSTERS`` clusters, seeded from ``rng``.

    With duplicate points k-means may find fewer distinct clusters; the missing ids are then
    simply empty (callers skip empty clusters), so scikit-learn's warning about it is silenced.
    """
    if n_clusters <= 1:
        return np.zeros(len(points), dtype=np.int64)
    from sklearn.cluster import KMeans, MiniBatchKMeans  # scikit-learn is slow to import: loaded on use
    from sklearn.exceptions import ConvergenceWarning

    seed = int(rng.integers(0, 2**31 - 1))
    if n_clusters > MINIBATCH_ABOVE_CLUSTERS:
        model = MiniBatchKMeans(n_clusters=n_clusters, batch_size=MINIBATCH_ROWS, n_init=KMEANS_RESTARTS,
                                random_state=seed)
    else:
        model = KMeans(n_clusters=n_clusters, n_init=KMEANS_RESTARTS, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit_predict(points).astype(np.int64)
