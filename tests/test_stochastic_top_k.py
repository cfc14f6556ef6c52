"""stochastic_top_k: Gumbel-top-k sampling for power / softmax / softrank acquisition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import chisquare

from al_experiments.acquisition.ranking import top_k
from al_experiments.acquisition.batch.stochastic import STOCHASTIC_MODES, stochastic_top_k


def _first_pick_counts(scores, mode, temperature, draws, seed=0):
    gen = np.random.default_rng(seed)
    counts = np.zeros(len(scores), dtype=np.int64)
    for _ in range(draws):
        counts[stochastic_top_k(scores, 1, mode=mode, temperature=temperature, rng=gen)[0]] += 1
    return counts


def test_modes_constant():
    assert STOCHASTIC_MODES == ("power", "softmax", "softrank")


@pytest.mark.parametrize("mode", STOCHASTIC_MODES)
def test_zero_temperature_is_top_k(mode):
    # At tau = 1e-6 the gaps between distinct scores (>= ~1e-4 here) are scaled to >= 100,
    # far beyond what Gumbel noise reaches, so the draw is the deterministic top-k.
    rng = np.random.default_rng(1)
    for seed in range(5):
        scores = rng.random(50) + 0.01
        got = stochastic_top_k(scores, 10, mode=mode, temperature=1e-6, rng=seed)
        np.testing.assert_array_equal(got, top_k(scores, 10))


# Scores deliberately out of order, so a softrank that used the sort order instead of the
# ranks (argsort instead of argsort of argsort) would put its mass on the wrong points.
SCORES = np.array([0.1, 0.35, 0.2, 0.05, 0.3])
RANKS = np.array([4, 1, 3, 5, 2])


@pytest.mark.parametrize(
    "mode, temperature, expected",
    [
        ("power", 1.0, SCORES),
        ("power", 0.5, SCORES**2),
        ("softmax", 0.1, np.exp(SCORES / 0.1)),
        ("softrank", 1.0, 1.0 / RANKS),
        ("softrank", 0.5, RANKS**-2.0),
    ],
)
def test_first_pick_frequencies_match_the_distribution(mode, temperature, expected):
    draws = 6000
    counts = _first_pick_counts(SCORES, mode, temperature, draws)
    p = expected / expected.sum()
    # Fixed seed, so this is deterministic; p > 1e-3 would fail for a wrong distribution
    # (e.g. p ∝ s for softmax, or the argsort bug for softrank) by a wide margin.
    assert chisquare(counts, p * draws).pvalue > 1e-3


def test_softrank_sort_order_bug_would_be_detected():
    counts = _first_pick_counts(SCORES, "softrank", 1.0, 6000)
    # The sort order used as the rank: point i weighs 1 / (position-of-the-i-th-best + 1).
    buggy = 1.0 / (np.argsort(-SCORES) + 1.0)
    assert not np.array_equal(np.argsort(-SCORES) + 1, RANKS)
    assert chisquare(counts, buggy / buggy.sum() * 6000).pvalue < 1e-6


def test_second_pick_is_a_draw_without_replacement():
    # Plackett-Luce: P(i then j) = p_i * p_j / (1 - p_i).
    scores = np.array([0.4, 0.1, 0.3, 0.2])
    p = scores / scores.sum()
    gen = np.random.default_rng(7)
    draws = 6000
    counts = {}
    for _ in range(draws):
        pair = tuple(stochastic_top_k(scores, 2, rng=gen))
        counts[pair] = counts.get(pair, 0) + 1
    pairs = list(itertools.permutations(range(4), 2))
    observed = np.array([counts.get(pair, 0) for pair in pairs])
    expected = np.array([p[i] * p[j] / (1 - p[i]) for i, j in pairs]) * draws
    assert observed.sum() == draws
    assert chisquare(observed, expected).pvalue > 1e-3


def test_softrank_depends_only_on_ranks():
    scores = np.random.default_rng(3).random(30)
    base = stochastic_top_k(scores, 8, mode="softrank", rng=11)
    for transformed in (np.exp(3 * scores) + 1.0, scores**3, 100 * scores - 7):
        np.testing.assert_array_equal(
            stochastic_top_k(transformed, 8, mode="softrank", rng=11), base
        )


def test_power_is_scale_free_and_softmax_shift_free():
    scores = np.random.default_rng(4).random(30) + 0.05
    power = stochastic_top_k(scores, 8, mode="power", temperature=0.7, rng=5)
    np.testing.assert_array_equal(
        stochastic_top_k(4.0 * scores, 8, mode="power", temperature=0.7, rng=5), power
    )
    soft = stochastic_top_k(scores, 8, mode="softmax", temperature=0.3, rng=5)
    np.testing.assert_array_equal(
        stochastic_top_k(scores + 2.5, 8, mode="softmax", temperature=0.3, rng=5), soft
    )


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_zero_and_negative_bald_scores_give_no_nan_in_power_mode(temperature):
    # BALD is >= 0 in theory but round-off gives 0 or -1e-17; s ** (1 / tau) of those is NaN.
    scores = np.array([-1e-12, 0.0, -0.0, 0.3, 0.2, -1e-17])
    for seed in range(20):
        got = stochastic_top_k(scores, 6, mode="power", temperature=temperature, rng=seed)
        assert sorted(got) == list(range(6))
        # Clamped scores weigh ~1e-308 against 0.2 and 0.3: those two always come first.
        assert set(got[:2]) == {3, 4}


def test_all_zero_scores_are_drawn_uniformly_in_power_mode():
    counts = _first_pick_counts(np.zeros(4), "power", 1.0, 4000)
    assert chisquare(counts).pvalue > 1e-3


def test_infinite_scores_come_first():
    got = stochastic_top_k([0.2, np.inf, 0.5, -np.inf], 4, mode="softmax", rng=0)
    assert got[0] == 1 and got[-1] == 3
    got = stochastic_top_k([0.2, np.inf, 0.5, -np.inf], 4, mode="power", rng=0)
    assert got[0] == 1


def test_same_seed_same_output_and_generator_accepted():
    scores = np.random.default_rng(0).random(100)
    for mode in STOCHASTIC_MODES:
        a = stochastic_top_k(scores, 10, mode=mode, rng=42)
        np.testing.assert_array_equal(stochastic_top_k(scores, 10, mode=mode, rng=42), a)
        np.testing.assert_array_equal(
            stochastic_top_k(scores, 10, mode=mode, rng=np.random.default_rng(42)), a
        )
    gen = np.random.default_rng(1)
    first = stochastic_top_k(scores, 10, rng=gen)
    second = stochastic_top_k(scores, 10, rng=gen)  # the generator advanced
    assert not np.array_equal(first, second)
    assert stochastic_top_k(scores, 10).shape == (10,)  # rng=None: fresh entropy


def test_batch_size_rules_follow_top_k():
    out = stochastic_top_k([0.3, 0.1], 0, rng=0)
    assert out.shape == (0,) and out.dtype == np.int64
    out = stochastic_top_k([0.3, 0.1, 0.2], 10, rng=0)
    assert out.dtype == np.int64 and sorted(out) == [0, 1, 2]
    assert stochastic_top_k([], 3, rng=0).shape == (0,)
    np.testing.assert_array_equal(stochastic_top_k([0.3], np.int64(1), rng=0), [0])
    with pytest.raises(ValueError, match=r"^batch_size=-1 is invalid: it must be a whole number >= 0\.$"):
        stochastic_top_k([0.3, 0.1], -1)
    with pytest.raises(ValueError, match=r"^batch_size=1\.5 is invalid"):
        stochastic_top_k([0.3, 0.1], 1.5)


def test_no_duplicates_in_large_draws():
    scores = np.random.default_rng(2).random(1000)
    for mode in STOCHASTIC_MODES:
        got = stochastic_top_k(scores, 500, mode=mode, temperature=3.0, rng=0)
        assert np.unique(got).size == 500


def test_errors():
    with pytest.raises(ValueError, match="mode='gumbel' is invalid: it must be one of 'power', 'softmax', 'softrank'"):
        stochastic_top_k([0.1, 0.2], 1, mode="gumbel")
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match=r"temperature=.* is invalid: it must be a finite number > 0\.$"):
            stochastic_top_k([0.1, 0.2], 1, temperature=bad)
    with pytest.raises(ValueError, match="temperature='hot' is invalid: it must be a finite number > 0"):
        stochastic_top_k([0.1, 0.2], 1, temperature="hot")
    with pytest.raises(ValueError, match="NaN"):
        stochastic_top_k([0.1, np.nan], 1)
    with pytest.raises(ValueError, match="1-D"):
        stochastic_top_k(np.zeros((3, 2)), 1)
    for bad in ("seed", -3, 1.5, np.random.RandomState(0)):
        with pytest.raises(ValueError, match="rng=.* is invalid: it must be None, a whole number >= 0 or a numpy Generator"):
            stochastic_top_k([0.1, 0.2], 1, rng=bad)
