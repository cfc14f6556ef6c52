"""top_k: partial selection, best first, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from al_experiments.acquisition import top_k


def test_ties_broken_by_lower_position():
    np.testing.assert_array_equal(top_k([1, 3, 3, 2], 2), [1, 2])
    np.testing.assert_array_equal(top_k([1, 3, 3, 2], 1), [1])
    np.testing.assert_array_equal(top_k([1, 3, 3, 2], 3), [1, 2, 3])


def test_tie_at_the_cut_keeps_lowest_positions():
    # Three points share the k-th largest score; the lowest positions make the cut.
    np.testing.assert_array_equal(top_k([0.5, 0.9, 0.5, 0.5, 0.1], 3), [1, 0, 2])
    np.testing.assert_array_equal(top_k(np.zeros(6), 4), [0, 1, 2, 3])


def test_best_first_not_tf_al_order():
    np.testing.assert_array_equal(top_k([0.1, 0.7, 0.3, 0.9], 3), [3, 1, 2])


def test_k_clamped_zero_and_negative():
    np.testing.assert_array_equal(top_k([0.2, 0.1], 10), [0, 1])
    out = top_k([0.2, 0.1], 0)
    assert out.shape == (0,) and out.dtype == np.int64
    assert top_k([], 3).shape == (0,)
    with pytest.raises(ValueError, match=r"^k=-1 is invalid: it must be a whole number >= 0\.$"):
        top_k([0.2, 0.1], -1)


def test_k_must_be_integer():
    for bad in (1.5, 2.0, True, "2"):  # a float, even whole, or a bool is not a count
        with pytest.raises(ValueError, match=r"k=.* is invalid: it must be a whole number >= 0\."):
            top_k([0.2, 0.1], bad)
    np.testing.assert_array_equal(top_k([0.2, 0.1], np.int64(1)), [0])


def test_nan_scores_rejected():
    with pytest.raises(ValueError, match="NaN"):
        top_k([0.2, np.nan, 0.1], 1)


def test_scores_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        top_k(np.zeros((3, 2)), 1)


def test_infinite_scores_are_ranked():
    np.testing.assert_array_equal(top_k([-np.inf, 1.0, np.inf, 0.0], 2), [2, 1])
    np.testing.assert_array_equal(top_k([-np.inf, -np.inf, 0.0], 2), [2, 0])


def test_returns_int64():
    assert top_k(np.array([3, 1, 2], dtype=np.uint8), 2).dtype == np.int64
    np.testing.assert_array_equal(top_k(np.array([3, 1, 2], dtype=np.uint8), 2), [0, 2])


def _brute_force(scores: np.ndarray, k: int) -> np.ndarray:
    # Full stable sort on (-score, position): the reference definition of the ordering.
    return np.lexsort((np.arange(scores.size), -scores))[:k]


@pytest.mark.parametrize("seed", range(20))
def test_matches_full_sort_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 500))
    k = int(rng.integers(0, n + 5))
    # Half the cases use few distinct values so ties are common.
    if seed % 2:
        scores = rng.integers(0, 5, size=n).astype(float)
    else:
        scores = rng.random(n)
    np.testing.assert_array_equal(top_k(scores, k), _brute_force(scores, k))


@settings(max_examples=300, deadline=None)
@given(
    arrays(
        np.float64,
        st.integers(0, 60),
        elements=st.floats(allow_nan=False, allow_infinity=True, width=64),
    ),
    st.integers(0, 70),
)
def test_top_k_properties(scores, k):
    out = top_k(scores, k)
    m = min(k, scores.size)
    assert out.shape == (m,) and out.dtype == np.int64
    assert len(set(out.tolist())) == m  # distinct positions
    chosen = scores[out]
    # Best first.
    assert np.all(chosen[:-1] >= chosen[1:])  # not np.diff: inf - inf is NaN
    rest = np.delete(scores, out)
    if m and rest.size:
        assert chosen.min() >= rest.max()  # the chosen dominate everything left
    np.testing.assert_array_equal(out, _brute_force(scores, k))
