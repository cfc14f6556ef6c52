"""Core-set selection: greedy k-center on embeddings (Sener & Savarese, ICLR 2018).

The greedy 2-approximation of the k-center problem repeatedly takes the candidate farthest
from everything chosen so far (the labelled set plus the points already in the batch). Only
one vector of nearest-centre distances is kept and updated with each new centre, so a batch
of B costs O(N_U * (N_L + B) * D) time and O(N_U) extra memory, with the candidate-to-labelled
distances computed block by block; a float32 pool is read block by block in float64, never
copied whole.

Differences from the widely copied ``kcenter_greedy.py`` (google/active-learning), on purpose:

* With no labelled point the first centre is drawn uniformly with ``rng``; that code treats
  "no labels" as an empty list and always starts at position 0.
* Chosen points are masked, so the batch never holds a position twice, even when the pool is
  full of exact duplicates (those have distance 0 and are taken last, lowest position first).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from al_experiments.validation import RNG, WHOLE_AT_LEAST_0, WHOLE_AT_LEAST_1, validate_params

from ..scores import float64_row_blocks
from .features import check_feature_sets

__all__ = ["k_center_greedy", "min_sq_dist_to_set", "DEFAULT_CHUNK_SIZE"]

# Rows per block of the candidate-to-labelled distance table: blocks of at most
# DEFAULT_CHUNK_SIZE x DEFAULT_CHUNK_SIZE float64 values (32 MiB).
DEFAULT_CHUNK_SIZE = 2048


def _sq_dist_to_point(x: np.ndarray, centre: np.ndarray, chunk_size: int) -> np.ndarray:
    """Exact squared Euclidean distances from every row of ``x`` to ``centre``, by blocks."""
    out = np.empty(x.shape[0], dtype=np.float64)
    centre = np.asarray(centre, dtype=np.float64)
    for start, block in float64_row_blocks(x, chunk_size):
        diff = block - centre
        out[start : start + len(block)] = np.einsum("ij,ij->i", diff, diff)
    return out


def min_sq_dist_to_set(x: np.ndarray, centres: np.ndarray, chunk_size: int) -> np.ndarray:
    """Squared distance from every row of ``x`` to its nearest row of ``centres``.

    Blocks of at most ``chunk_size x chunk_size`` distances are formed with the matmul
    expansion ``|u|^2 + |l|^2 - 2 u.l``, which finds each row's nearest centre quickly but
    loses precision when u and l are close (cancellation). The returned distance is then
    recomputed exactly against that nearest centre, so exact duplicates get exactly 0.
    Rows of a float32 ``x`` are taken to float64 one block at a time.
    """
    centres = np.asarray(centres, dtype=np.float64)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    best = np.empty(x.shape[0], dtype=np.float64)
    for start, block in float64_row_blocks(x, chunk_size):
        rows = block.shape[0]
        block_sq = np.einsum("ij,ij->i", block, block)
        best_val = np.full(rows, np.inf)
        best_idx = np.zeros(rows, dtype=np.int64)
        for c_start in range(0, centres.shape[0], chunk_size):
            cb = centres[c_start : c_start + chunk_size]
            d = block @ cb.T
            d *= -2.0
            d += block_sq[:, None]
            d += c_sq[None, c_start : c_start + cb.shape[0]]
            idx = d.argmin(axis=1)
            val = d[np.arange(rows), idx]
            better = val < best_val
            best_val[better] = val[better]
            best_idx[better] = idx[better] + c_start
            del d  # free this block before the next one is formed
        diff = block - centres[best_idx]
        best[start : start + rows] = np.einsum("ij,ij->i", diff, diff)
    return best


@validate_params({"batch_size": WHOLE_AT_LEAST_0, "rng": RNG, "chunk_size": WHOLE_AT_LEAST_1})
def k_center_greedy(
    embeddings: ArrayLike,
    labelled_embeddings: ArrayLike | None,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> np.ndarray:
    """Positions of a core-set batch: greedy k-center on Euclidean distances.

    ``embeddings`` (N, D) are the candidates (unlabelled pool), ``labelled_embeddings``
    (N_L, D) the points already labelled, or ``None`` / an empty array when there are none.
    Each pick is the candidate whose nearest centre (labelled point or earlier pick) is
    farthest; ties go to the lowest position. Without labelled points the first pick is drawn
    uniformly with ``rng`` (a numpy Generator, int seed or ``None``); otherwise ``rng`` is unused
    and the result is deterministic.

    Returns an int64 array of ``min(batch_size, N)`` distinct positions in pick order.
    Candidates at distance 0 (duplicates of a labelled point or of an earlier pick) come only
    after every other candidate. ``chunk_size`` bounds the candidate-to-labelled distance
    blocks to ``chunk_size x chunk_size`` values and does not change the result.
    """
    # a float32 pool stays float32 (distances are taken in float64 block by block): its float64
    # copy would add twice its size to the round's memory
    x, labelled = check_feature_sets(embeddings, labelled_embeddings, keep_float32=True)
    n = x.shape[0]
    chunk = int(chunk_size)
    b = min(int(batch_size), n)
    gen = np.random.default_rng(rng)
    if b == 0:
        return np.empty(0, dtype=np.int64)

    picks = np.empty(b, dtype=np.int64)
    if labelled.shape[0] > 0:
        min_sq = min_sq_dist_to_set(x, labelled, chunk)
        first = 0
    else:
        picks[0] = gen.integers(n)
        min_sq = _sq_dist_to_point(x, x[picks[0]], chunk)
        first = 1
    # Chosen points get -1 (below every real distance) so argmax never returns them again.
    if first:
        min_sq[picks[0]] = -1.0
    for i in range(first, b):
        j = int(np.argmax(min_sq))  # first maximum: ties go to the lowest position
        picks[i] = j
        if i + 1 < b:
            np.minimum(min_sq, _sq_dist_to_point(x, x[j], chunk), out=min_sq)
        min_sq[j] = -1.0
    return picks
