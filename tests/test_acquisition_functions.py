"""Score functions against hand-computed values, plus property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from al_experiments.acquisition import (
    bald,
    check_probs,
    least_confidence,
    margin,
    max_entropy,
    max_var_ratio,
    std_mean,
    variation_ratio,
)

ALL_SCORES = [
    max_entropy,
    bald,
    max_var_ratio,
    std_mean,
    variation_ratio,
    margin,
    least_confidence,
]

# N=3 points, T=2 samples, C=2 classes.
#   point 0: both samples undecided                 -> pbar (0.5, 0.5), samples agree
#   point 1: samples confidently disagree            -> pbar (0.5, 0.5), samples disagree
#   point 2: one fairly sure sample, one undecided   -> pbar (0.7, 0.3)
PROBS = np.array(
    [
        [[0.5, 0.5], [0.5, 0.5]],
        [[1.0, 0.0], [0.0, 1.0]],
        [[0.9, 0.1], [0.5, 0.5]],
    ]
)
LOG2 = np.log(2.0)
H_07 = -(0.7 * np.log(0.7) + 0.3 * np.log(0.3))
H_09 = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))


def test_max_entropy_by_hand():
    expected = np.array([LOG2, LOG2, H_07])
    np.testing.assert_allclose(max_entropy(PROBS), expected, rtol=0, atol=1e-12)


def test_bald_by_hand():
    expected = np.array(
        [
            LOG2 - LOG2,  # every sample as uncertain as the mean: nothing to learn about weights
            LOG2 - 0.0,  # each sample is certain, the mean is not: maximal disagreement
            H_07 - 0.5 * (H_09 + LOG2),
        ]
    )
    np.testing.assert_allclose(bald(PROBS), expected, rtol=0, atol=1e-12)


def test_bald_zero_when_samples_agree():
    agree = np.array(
        [
            [[0.2, 0.8], [0.2, 0.8], [0.2, 0.8]],
            [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]],
            [[0.35, 0.65], [0.35, 0.65], [0.35, 0.65]],
        ]
    )
    out = bald(agree)
    assert out.shape == (3,)
    assert np.all(out >= 0.0)  # clipped: no -1e-17 from round-off
    np.testing.assert_allclose(out, 0.0, atol=1e-12)


def test_bald_positive_when_samples_disagree():
    disagree = np.array([[[0.8, 0.2], [0.2, 0.8]]])
    # H[(0.5, 0.5)] - H[(0.8, 0.2)]
    expected = LOG2 + (0.8 * np.log(0.8) + 0.2 * np.log(0.2))
    out = bald(disagree)
    assert out[0] > 0
    np.testing.assert_allclose(out, [expected], rtol=0, atol=1e-12)


def test_bald_zero_for_single_sample():
    p = np.array([[[0.3, 0.7]], [[0.5, 0.5]]])
    np.testing.assert_allclose(bald(p), [0.0, 0.0], atol=1e-15)


def test_max_var_ratio_and_least_confidence_by_hand():
    expected = np.array([1 - 0.5, 1 - 0.5, 1 - 0.7])
    np.testing.assert_allclose(max_var_ratio(PROBS), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(least_confidence(PROBS), expected, rtol=0, atol=1e-12)


def test_std_mean_by_hand():
    # point 1: each class takes the values {1, 0} -> population std 0.5
    # point 2: class 0 takes {0.9, 0.5}, class 1 {0.1, 0.5} -> std 0.2 each
    expected = np.array([0.0, 0.5, 0.2])
    np.testing.assert_allclose(std_mean(PROBS), expected, rtol=0, atol=1e-12)


def test_std_mean_uses_population_std():
    # Three samples of class-0 probability 0, 0.3, 0.6: mean 0.3, population variance
    # (0.09 + 0 + 0.09) / 3 = 0.06 (ddof=1 would give 0.09). Class 1 mirrors it.
    p = np.array([[[0.0, 1.0], [0.3, 0.7], [0.6, 0.4]]])
    np.testing.assert_allclose(std_mean(p), [np.sqrt(0.06)], rtol=0, atol=1e-12)


def test_variation_ratio_by_hand():
    # point 0: both samples tie -> argmax picks class 0 twice -> modal count 2 of 2
    # point 1: votes (0, 1) -> modal count 1 of 2
    # point 2: votes (0, 0 by tie) -> modal count 2 of 2
    expected = np.array([1 - 2 / 2, 1 - 1 / 2, 1 - 2 / 2])
    np.testing.assert_allclose(variation_ratio(PROBS), expected, rtol=0, atol=1e-12)


def test_variation_ratio_modal_counts():
    # T=5, C=3. Point 0 votes (0, 1, 1, 2, 1): modal class 1 with 3 votes.
    # Point 1 votes (2, 2, 2, 2, 2): unanimous. Point 2 votes (0, 1, 2, 0, 1): modal count 2.
    a = [0.6, 0.3, 0.1]
    b = [0.2, 0.5, 0.3]
    c = [0.1, 0.2, 0.7]
    p = np.array(
        [
            [a, b, b, c, b],
            [c, c, c, c, c],
            [a, b, c, a, b],
        ]
    )
    expected = np.array([1 - 3 / 5, 1 - 5 / 5, 1 - 2 / 5])
    np.testing.assert_allclose(variation_ratio(p), expected, rtol=0, atol=1e-12)


def test_variation_ratio_differs_from_max_var_ratio():
    # Gal's ratio counts votes; tf_al's max_var_ratio looks at the mean. Samples (0.6, 0.4) and
    # (0.6, 0.4) vote unanimously (ratio 0) while 1 - max pbar = 0.4.
    p = np.array([[[0.6, 0.4], [0.6, 0.4]]])
    np.testing.assert_allclose(variation_ratio(p), [0.0], atol=1e-15)
    np.testing.assert_allclose(max_var_ratio(p), [0.4], atol=1e-12)


def test_margin_by_hand():
    np.testing.assert_allclose(margin(PROBS), [1 - 0.0, 1 - 0.0, 1 - (0.7 - 0.3)], atol=1e-12)


def test_margin_three_classes_unsorted():
    # pbar = (0.1, 0.6, 0.3): top two are 0.6 and 0.3, wherever they sit.
    p = np.array([[[0.1, 0.6, 0.3]], [[0.3, 0.3, 0.4]]])
    np.testing.assert_allclose(margin(p), [1 - (0.6 - 0.3), 1 - (0.4 - 0.3)], atol=1e-12)


def test_margin_needs_two_classes():
    with pytest.raises(ValueError, match="at least two classes"):
        margin(np.full((4, 3, 1), 0.5))


def test_exact_zero_probability_gives_finite_scores():
    p = np.array(
        [
            [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
            [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        ]
    )
    for fn in ALL_SCORES:
        out = fn(p)
        assert np.all(np.isfinite(out)), fn.__name__
    np.testing.assert_allclose(max_entropy(p), [0.0, LOG2], atol=1e-15)
    np.testing.assert_allclose(bald(p), [0.0, LOG2], atol=1e-15)


def test_uniform_entropy_is_exactly_log_c():
    # tf_al's +0.001 inside the log would give slightly less than log C.
    for c in (2, 3, 10):
        p = np.full((1, 4, c), 1.0 / c)
        np.testing.assert_allclose(max_entropy(p), [np.log(c)], rtol=1e-14)


def test_output_dtype_shape_and_input_untouched():
    p32 = PROBS.astype(np.float32)
    before = p32.copy()
    for fn in ALL_SCORES:
        out = fn(p32)
        assert out.dtype == np.float64 and out.shape == (3,), fn.__name__
    np.testing.assert_array_equal(p32, before)
    # Nested lists are accepted too.
    np.testing.assert_allclose(max_entropy(PROBS.tolist()), max_entropy(PROBS))


def test_empty_pool_gives_empty_scores():
    p = np.zeros((0, 5, 3))
    for fn in ALL_SCORES:
        assert fn(p).shape == (0,), fn.__name__


def test_deterministic_model_t_equals_one():
    p = np.array([[[0.7, 0.3]], [[0.5, 0.5]]])
    np.testing.assert_allclose(max_entropy(p), [H_07, LOG2], atol=1e-12)
    np.testing.assert_allclose(std_mean(p), [0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(variation_ratio(p), [0.0, 0.0], atol=1e-15)


# ---- validation -----------------------------------------------------------------------------


def test_check_probs_rejects_2d_with_fix():
    with pytest.raises(ValueError, match=r"\(N, T, C\).*shape \(N, C\).*T=1"):
        check_probs(np.full((5, 3), 1 / 3))


def test_check_probs_rejects_4d_and_1d():
    with pytest.raises(ValueError, match=r"4-D array of shape \(2, 3, 4, 5\)"):
        check_probs(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"1-D array"):
        check_probs(np.zeros(4))


@pytest.mark.parametrize("fn", ALL_SCORES, ids=lambda f: f.__name__)
def test_every_score_validates_shape(fn):
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        fn(np.full((5, 2), 0.5))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_probabilities_rejected(bad):
    p = PROBS.copy()
    p[1, 0, 1] = bad
    with pytest.raises(ValueError, match="non-finite probabilities"):
        check_probs(p)
    with pytest.raises(ValueError, match="non-finite probabilities"):
        bald(p)


def test_empty_sample_or_class_axis_rejected():
    with pytest.raises(ValueError, match="T=0"):
        check_probs(np.zeros((3, 0, 2)))
    with pytest.raises(ValueError, match="C=0"):
        check_probs(np.zeros((3, 2, 0)))


def test_logits_rejected():
    logits = np.array([[[2.3, -1.0], [0.5, 0.1]]])
    with pytest.raises(ValueError, match=r"\[0, 1\].*softmax"):
        max_entropy(logits)


def test_round_off_outside_unit_interval_is_clipped():
    p = np.array([[[1.0 + 1e-9, -1e-9], [0.5, 0.5]]])
    out = check_probs(p)
    assert out.min() == 0.0 and out.max() == 1.0
    assert p[0, 0, 1] == -1e-9  # caller's array untouched
    assert np.all(np.isfinite(max_entropy(p)))


def test_non_numeric_rejected():
    with pytest.raises(ValueError, match="numeric") as err:
        check_probs([[["a", "b"]]])
    assert "could not convert" not in str(err.value)  # numpy's own sentence stays out
    with pytest.raises(ValueError, match="rows differ in length") as err:
        check_probs([[[0.5, 0.5]], [[1.0]]])
    assert "inhomogeneous" not in str(err.value)


# ---- property tests -------------------------------------------------------------------------


@st.composite
def prob_tensors(draw, max_n=6, max_t=6, max_c=5):
    n = draw(st.integers(1, max_n))
    t = draw(st.integers(1, max_t))
    c = draw(st.integers(1, max_c))
    raw = draw(arrays(np.float64, (n, t, c), elements=st.floats(0.0, 1.0)))
    sums = raw.sum(axis=-1, keepdims=True)
    # An all-zero row cannot be normalised; make it uniform. Exact zeros elsewhere stay.
    raw = np.where(sums == 0, 1.0, raw)
    return raw / raw.sum(axis=-1, keepdims=True)


@settings(max_examples=200, deadline=None)
@given(prob_tensors())
def test_scores_are_finite_and_bounded(p):
    n, t, c = p.shape
    for fn in ALL_SCORES:
        if fn is margin and c == 1:
            continue
        out = fn(p)
        assert out.shape == (n,) and out.dtype == np.float64
        assert np.all(np.isfinite(out)), fn.__name__

    h = max_entropy(p)
    assert np.all(h >= -1e-12) and np.all(h <= np.log(c) + 1e-9)
    mi = bald(p)
    assert np.all(mi >= 0.0) and np.all(mi <= h + 1e-9)
    vr = variation_ratio(p)
    assert np.all(vr >= 0.0) and np.all(vr <= 1.0 - 1.0 / c + 1e-12)
    lc = least_confidence(p)
    np.testing.assert_array_equal(lc, max_var_ratio(p))
    assert np.all(lc >= -1e-12) and np.all(lc <= 1.0 - 1.0 / c + 1e-9)
    assert np.all(std_mean(p) >= 0.0) and np.all(std_mean(p) <= 0.5 + 1e-12)
    if c >= 2:
        m = margin(p)
        assert np.all(m >= -1e-12) and np.all(m <= 1.0 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(prob_tensors(), st.randoms(use_true_random=False))
def test_scores_invariant_to_sample_order(p, rnd):
    # The T samples are exchangeable, so shuffling them must not change any score.
    order = list(range(p.shape[1]))
    rnd.shuffle(order)
    shuffled = p[:, order, :]
    for fn in (max_entropy, bald, max_var_ratio, std_mean, least_confidence):
        np.testing.assert_allclose(fn(shuffled), fn(p), rtol=1e-12, atol=1e-12)
