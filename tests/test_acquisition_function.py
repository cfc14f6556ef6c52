"""``AcquisitionFunction`` on a pool: indices best last, and ``pool_subset`` (Gal et al.'s
random subset of the pool per round) scores only that many unlabelled points."""

from __future__ import annotations

import numpy as np
import pytest

from al_experiments import AcquisitionFunction, Pool


class RecordingModel:
    """Scores each point by its first input feature and remembers what it was asked to score."""

    def __init__(self) -> None:
        self.scored: list[np.ndarray] = []

    def get_query_fn(self, name):
        def score(inputs, **kwargs):
            array = np.asarray(inputs)
            self.scored.append(array[:, 0].copy())
            return array[:, 0]

        return score


def pool_of(n: int = 300, labelled: int = 40) -> Pool:
    inputs = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 2))  # point i has feature i
    pool = Pool(inputs, np.zeros(n, dtype=int))
    pool.annotate(np.arange(0, 2 * labelled, 2))  # every second point of the first 80
    return pool


def test_whole_pool_scored_and_best_last():
    model, pool = RecordingModel(), pool_of()
    indices, scores = AcquisitionFunction("bald")(model, pool, step_size=5, rng=np.random.default_rng(0))
    assert len(model.scored[0]) == pool.get_length_unlabeled()
    assert indices.tolist() == [295, 296, 297, 298, 299] and scores.tolist() == [295, 296, 297, 298, 299]


def test_pool_subset_scores_a_seeded_random_subset_of_the_unlabelled_points():
    pool = pool_of()
    unlabelled = set(pool.get_unlabeled_indices().tolist())
    subset_sizes, chosen = [], []
    for seed in (0, 0, 1):
        model = RecordingModel()
        indices, _ = AcquisitionFunction("bald", pool_subset=50)(model, pool, step_size=5,
                                                                  rng=np.random.default_rng(seed))
        scored = model.scored[0].astype(int)
        subset_sizes.append(len(scored))
        assert set(scored.tolist()) <= unlabelled and len(set(scored.tolist())) == 50
        # The best of the subset, not of the pool: the five largest scored indices.
        assert indices.tolist() == sorted(scored.tolist())[-5:]
        chosen.append(indices.tolist())
    assert subset_sizes == [50, 50, 50]
    assert chosen[0] == chosen[1] and chosen[0] != chosen[2]


def test_pool_subset_larger_than_the_pool_scores_everything():
    model, pool = RecordingModel(), pool_of(n=100, labelled=10)
    AcquisitionFunction("max_entropy", pool_subset=1000)(model, pool, step_size=3, rng=np.random.default_rng(0))
    assert len(model.scored[0]) == 90


def test_random_with_pool_subset_picks_inside_the_subset_without_scoring():
    pool = pool_of()
    indices, _ = AcquisitionFunction("random", pool_subset=20)(None, pool, step_size=20, rng=np.random.default_rng(4))
    assert len(set(indices.tolist())) == 20 and set(indices.tolist()) <= set(pool.get_unlabeled_indices().tolist())


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_pool_subset_is_refused(bad):
    with pytest.raises(ValueError, match=f"pool_subset={bad} is invalid: it must be a whole number >= 1 or None"):
        AcquisitionFunction("bald", pool_subset=bad)
