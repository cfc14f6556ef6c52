"""BADGE: k-means++ seeding on factorised gradient embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import traced_peak

from al_experiments.acquisition.batch.badge import (
    badge,
    gradient_embedding_factors,
    gradient_embedding_sq_distances,
)


def random_inputs(n=25, c=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(c) * 0.7, size=n), rng.normal(size=(n, d))


def materialised(probs, embeddings):
    """The (N, C*D) gradient embeddings (onehot(argmax p) - p) ⊗ h, built explicitly."""
    onehot = np.eye(probs.shape[1])[probs.argmax(axis=1)]
    g = (onehot - probs)[:, :, None] * embeddings[:, None, :]
    return g.reshape(len(probs), -1)


def test_factorised_distances_equal_materialised():
    probs, h = random_inputs()
    g = materialised(probs, h)
    for j in range(len(probs)):
        expected = ((g - g[j]) ** 2).sum(axis=1)
        got = gradient_embedding_sq_distances(probs, h, j)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        assert got[j] == 0.0 and (got >= 0).all()


def test_a_float32_pool_gives_its_float64_copys_picks_without_being_copied_whole():
    """Embeddings from the network are float32: read in float64 a block of rows at a time, they
    give the picks of their float64 copy, and no whole float64 copy is made."""
    probs, h = random_inputs(n=20_000, c=5, d=32, seed=4)
    h32 = h.astype(np.float32)
    expected = badge(probs, h32.astype(np.float64), 8, rng=1)
    got, peak = traced_peak(lambda: badge(probs, h32, 8, rng=1))
    np.testing.assert_array_equal(got, expected)
    # h's float64 copy alone would be 5 MB (the rest: a, blocks of 4,096 rows, per-pick vectors)
    assert peak < h32.size * 8, peak


def test_factors():
    probs = np.array([[0.5, 0.5], [0.1, 0.9]])
    a, h = gradient_embedding_factors(probs, [[1.0], [2.0]])
    # Argmax ties go to the lowest class: onehot [1, 0] for the first row.
    np.testing.assert_allclose(a, [[0.5, -0.5], [-0.1, 0.1]])
    np.testing.assert_allclose(h, [[1.0], [2.0]])


@pytest.mark.parametrize("seed", range(3))
def test_first_pick_is_the_largest_gradient_norm(seed):
    probs, h = random_inputs(seed=seed)
    largest = int(np.argmax(np.linalg.norm(materialised(probs, h), axis=1)))
    for rng in range(5):
        assert badge(probs, h, 5, rng=rng)[0] == largest


def test_hand_worked_case():
    # Two classes, 1-D embeddings:
    #   p0 = [0.5, 0.5], h0 = 2: a0 = [0.5, -0.5], g0 = [1, -1],      |g0|^2 = 2
    #   p1 = [0.9, 0.1], h1 = 1: a1 = [0.1, -0.1], g1 = [0.1, -0.1],  |g1|^2 = 0.02
    #   p2 = [0.2, 0.8], h2 = 1: a2 = [-0.2, 0.2], g2 = [-0.2, 0.2],  |g2|^2 = 0.08
    # First pick: point 0. Squared distances to g0: 0.9^2 * 2 = 1.62 and 1.2^2 * 2 = 2.88,
    # so the second pick is point 1 with probability 1.62 / 4.5 = 0.36, point 2 with 0.64.
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    h = np.array([[2.0], [1.0], [1.0]])
    np.testing.assert_allclose(gradient_embedding_sq_distances(probs, h, 0), [0.0, 1.62, 2.88])
    gen = np.random.default_rng(0)
    draws = 4000
    seconds = np.array([badge(probs, h, 2, rng=gen)[1] for _ in range(draws)])
    assert set(seconds) <= {1, 2}
    # Standard error sqrt(0.36 * 0.64 / 4000) = 0.0076; allow four of them.
    assert abs(np.mean(seconds == 1) - 0.36) < 0.03
    for seed in range(5):
        got = badge(probs, h, 3, rng=seed)
        assert got[0] == 0 and sorted(got) == [0, 1, 2]


def test_no_duplicates_with_duplicated_rows():
    probs, h = random_inputs(n=8, seed=3)
    # Three copies of each of the 8 points, interleaved.
    probs3, h3 = np.repeat(probs, 3, axis=0), np.repeat(h, 3, axis=0)
    for seed in range(10):
        got = badge(probs3, h3, 24, rng=seed)
        assert sorted(got) == list(range(24))
        # A copy of a pick has D = 0, so the first 8 picks hit the 8 distinct points once each.
        assert sorted(got[:8] // 3) == list(range(8))


def test_all_rows_identical_falls_back_to_uniform():
    probs = np.tile([0.6, 0.3, 0.1], (6, 1))
    h = np.tile([1.0, -2.0], (6, 1))
    orders = set()
    for seed in range(10):
        got = badge(probs, h, 6, rng=seed)
        assert got[0] == 0 and sorted(got) == list(range(6))
        orders.add(tuple(got))
    assert len(orders) > 1  # the later picks are random, not always in position order


def test_seeded_reproducibility():
    probs, h = random_inputs(n=60, seed=1)
    a = badge(probs, h, 10, rng=123)
    np.testing.assert_array_equal(badge(probs, h, 10, rng=123), a)
    np.testing.assert_array_equal(badge(probs, h, 10, rng=np.random.default_rng(123)), a)
    assert a.dtype == np.int64 and np.unique(a).size == 10
    assert any(not np.array_equal(badge(probs, h, 10, rng=s), a) for s in range(5))


def test_later_picks_avoid_the_first_centre():
    # A cluster of 20 near-copies of the largest-norm point and 20 far points: k-means++ draws
    # the second centre from the far group with probability ~1 (D^2 ratio ~1e-8).
    rng = np.random.default_rng(4)
    probs = np.tile([0.5, 0.5], (40, 1))
    h = np.concatenate([10.0 + 1e-4 * rng.normal(size=(20, 3)), -rng.random((20, 3))])
    for seed in range(10):
        got = badge(probs, h, 2, rng=seed)
        assert got[0] < 20 and got[1] >= 20


def test_batch_size_rules():
    probs, h = random_inputs(n=4)
    out = badge(probs, h, 0, rng=0)
    assert out.shape == (0,) and out.dtype == np.int64
    assert sorted(badge(probs, h, 10, rng=0)) == [0, 1, 2, 3]
    assert badge(np.empty((0, 3)), np.empty((0, 2)), 5).shape == (0,)
    with pytest.raises(ValueError, match=r"^batch_size=-1 is invalid: it must be a whole number >= 0\.$"):
        badge(probs, h, -1)


def test_errors():
    probs, h = random_inputs(n=4)
    with pytest.raises(ValueError, match=r"deterministic predictive of shape \(N, C\)"):
        badge(probs[:, None, :], h, 1)
    with pytest.raises(ValueError, match="sum to 1"):
        badge(probs * 2 / 3, h, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        badge(probs * 5, h, 1)
    with pytest.raises(ValueError, match="4 rows but embeddings has 3"):
        badge(probs, h[:3], 1)
    with pytest.raises(ValueError, match=r"embeddings must be a 2-D array of shape \(rows, D\)"):
        badge(probs, h[:, 0], 1)
    bad = h.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        badge(probs, bad, 1)
    with pytest.raises(ValueError, match=r"^centre_index=4 is invalid: it must be a whole number in \[-4, 4\)\.$"):
        gradient_embedding_sq_distances(probs, h, 4)
    with pytest.raises(ValueError, match="rng='seed' is invalid: it must be None, a whole number >= 0 or a numpy Generator"):
        badge(probs, h, 2, rng="seed")
