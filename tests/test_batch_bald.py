"""BatchBALD against brute-force enumeration of every joint label configuration, plus its
contracts (BALD first pick, no copies, zeros, seeds, prefilter, errors, bounded memory)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import traced_peak

import al_experiments.acquisition.batch.batch_bald as bb_module
from al_experiments.acquisition import bald, top_k
from al_experiments.acquisition.batch.batch_bald import (
    batch_bald,
    batch_bald_with_scores,
    joint_entropy_exact,
    joint_mutual_information,
)


def _probs(n, t, c, seed, concentration=0.5):
    """Consistent-looking samples: each point has its own Dirichlet around which T draws vary."""
    rng = np.random.default_rng(seed)
    centre = rng.dirichlet(np.full(c, concentration), size=(n, 1))
    return rng.dirichlet(np.ones(c), size=(n, t)) * 0.5 + centre * 0.5


def _brute_joint_entropy(sub):
    """H(y_1..y_n) by looping over all C**n configurations (independent of the module)."""
    n, t, c = sub.shape
    h = 0.0
    for cfg in itertools.product(range(c), repeat=n):
        joint = np.ones(t)
        for i, label in enumerate(cfg):
            joint = joint * sub[i, :, label]
        q = joint.mean()
        if q > 0:
            h -= q * np.log(q)
    return h


def _brute_conditional(sub):
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(sub > 0, -sub * np.log(sub), 0.0)
    return terms.sum(axis=2).mean(axis=1)


def _brute_mi(probs, idx):
    sub = probs[list(idx)]
    return _brute_joint_entropy(sub) - _brute_conditional(sub).sum()


def _brute_greedy(probs, b):
    chosen, scores = [], []
    for _ in range(b):
        best, best_val = None, -np.inf
        for x in range(probs.shape[0]):
            if x in chosen:
                continue
            val = _brute_mi(probs, chosen + [x])
            if val > best_val:  # strict: lowest position wins ties
                best, best_val = x, val
        chosen.append(best)
        scores.append(best_val)
    return chosen, scores


# --- the objective --------------------------------------------------------------------------


@pytest.mark.parametrize("n_sel", [0, 1, 2])
def test_joint_mi_exact_regime_equals_enumeration(n_sel):
    p = _probs(6, 5, 3, seed=n_sel)
    sel = [4, 1][:n_sel]
    expected = np.array([_brute_mi(p, sel + [x]) for x in range(6)])
    got64 = joint_mutual_information(p[sel], p, num_samples=27)
    np.testing.assert_allclose(got64, expected, rtol=0, atol=1e-9)
    got32 = joint_mutual_information(p[sel], p, num_samples=27, dtype=np.float32)
    np.testing.assert_allclose(got32, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n_sel, num_samples", [(2, 5), (3, 10)])
def test_joint_mi_sampled_regime_unbiased_over_seeds(n_sel, num_samples):
    # C**n_sel = 9 or 27 > num_samples forces sampling: 1 or 2 configurations per sample.
    p = _probs(6, 5, 3, seed=10 + n_sel)
    sel = [0, 3, 5][:n_sel]
    expected = np.array([_brute_mi(p, sel + [x]) for x in range(6)])
    runs = np.array(
        [joint_mutual_information(p[sel], p, num_samples=num_samples, rng=s) for s in range(400)]
    )
    assert runs.std(axis=0).min() > 1e-3  # really the sampled path, not the exact one
    # Unbiased estimator: the mean over 400 seeds lies within 5 standard errors, i.e. within
    # about 0.05 nats of MI values of 0.15 to 0.35 (5,000 seeds: bias below 0.003, in noise).
    stderr = runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(runs.mean(axis=0) - expected) < 5 * stderr)
    assert np.all(np.abs(runs.mean(axis=0) - expected) < 0.05)


def test_joint_entropy_exact_equals_enumeration():
    p = _probs(4, 7, 3, seed=3)
    assert joint_entropy_exact(p) == pytest.approx(_brute_joint_entropy(p), abs=1e-12)
    assert joint_entropy_exact(p[:0]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_batch_equals_brute_force_greedy_in_exact_regime(seed):
    p = _probs(6, 5, 3, seed=100 + seed)
    want_idx, want_scores = _brute_greedy(p, 3)
    idx, scores = batch_bald_with_scores(p, 3, num_samples=27, dtype=np.float64)
    assert idx.tolist() == want_idx
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-9)
    idx32, scores32 = batch_bald_with_scores(p, 3, num_samples=27)
    assert idx32.tolist() == want_idx
    np.testing.assert_allclose(scores32, want_scores, rtol=0, atol=1e-5)


def test_sampled_greedy_tracks_true_mi():
    # Step 3 has C**3 = 27 > num_samples = 20 configurations, so it samples 4 per draw.
    p = _probs(6, 5, 3, seed=7)
    errors = []
    for s in range(60):
        idx, scores = batch_bald_with_scores(p, 4, num_samples=20, rng=s, dtype=np.float64)
        assert len(set(idx.tolist())) == 4
        np.testing.assert_allclose(scores[:3], [_brute_mi(p, idx[: i + 1]) for i in range(3)],
                                   atol=1e-9)
        errors.append(scores[3] - _brute_mi(p, idx))
    # The maximum of noisy estimates is biased upwards a little; 0.05 nats of about 1.2.
    assert abs(np.mean(errors)) < 0.05


def test_float32_matches_float64_on_a_larger_pool():
    p = _probs(300, 20, 6, seed=5)
    i64, s64 = batch_bald_with_scores(p, 6, num_samples=500, rng=1, dtype=np.float64)
    i32, s32 = batch_bald_with_scores(p, 6, num_samples=500, rng=1, dtype=np.float32)
    assert i32.tolist() == i64.tolist()
    np.testing.assert_allclose(s32, s64, rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("seed", range(4))
def test_lazy_equals_full_greedy_in_exact_regime(seed, dtype, atol, monkeypatch):
    p = _probs(400, 20, 4, seed=200 + seed, concentration=0.3)
    p = np.concatenate([p, p[:40]])  # exact ties must still go to the lowest position
    full = batch_bald_with_scores(p, 5, num_samples=256, dtype=dtype)  # 4**4: exact throughout
    scored = []
    real = bb_module._joint_entropies
    monkeypatch.setattr(bb_module, "_joint_entropies",
                        lambda op, xt, *a: scored.append(xt.shape[0] // 4) or real(op, xt, *a))
    lazy = batch_bald_with_scores(p, 5, num_samples=256, dtype=dtype, lazy=True)
    assert lazy[0].tolist() == full[0].tolist()
    np.testing.assert_allclose(lazy[1], full[1], rtol=0, atol=atol)
    assert sum(scored) < 4 * p.shape[0]  # it skipped candidates (full: 4 steps x all points)


def test_lazy_equals_full_greedy_in_sampled_regime_here():
    # Not guaranteed (a noisy estimate may beat its bound), but it holds on this fixed problem.
    p = _probs(300, 30, 5, seed=9, concentration=0.3)
    full = batch_bald_with_scores(p, 6, num_samples=300, rng=3)
    lazy = batch_bald_with_scores(p, 6, num_samples=300, rng=3, lazy=True)
    assert lazy[0].tolist() == full[0].tolist()
    np.testing.assert_allclose(lazy[1], full[1], rtol=0, atol=1e-9)


# --- contracts ------------------------------------------------------------------------------


def test_first_pick_is_bald_argmax():
    p = _probs(200, 20, 4, seed=1)
    assert batch_bald(p, 3, rng=0)[0] == np.argmax(bald(p))
    # Ties go to the lowest position, as in BALD's argmax.
    tied = np.concatenate([p[:50], p[:50]])
    assert batch_bald(tied, 1)[0] == np.argmax(bald(tied)) < 50


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("num_samples", [10_000, 20])  # exact throughout / sampled from step 3
@pytest.mark.parametrize("seed", range(3))
def test_exact_copies_are_never_picked_twice(num_samples, seed, lazy):
    # Each draw theta_t is confident (0.96) but the draws disagree on the class, as for an
    # ensemble on ambiguous digits. A copy's label is then (almost) fixed by theta and the
    # original's label, so it adds (almost) nothing. (With soft samples, or with T so small that
    # a few labels pin theta down, a second copy can truly be worth more than a new point.)
    rng = np.random.default_rng(seed)
    t, c = 100, 3
    base = np.full((5, t, c), 0.02)
    base[np.arange(5)[:, None], np.arange(t), rng.integers(0, c, size=(5, t))] = 0.96
    order = rng.permutation(15)
    pool = np.repeat(base, 3, axis=0)[order]  # copies share every sample t
    source = np.repeat(np.arange(5), 3)[order]

    picked = batch_bald(pool, 5, num_samples=num_samples, rng=seed, lazy=lazy)
    assert sorted(source[picked].tolist()) == [0, 1, 2, 3, 4]
    naive = top_k(bald(pool), 5)
    assert len(set(source[naive].tolist())) < 5  # top-k BALD takes copies of the best point


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("num_samples", [10_000, 4])
def test_exact_zero_probabilities(num_samples, lazy):
    rng = np.random.default_rng(0)
    n, t, c = 40, 6, 4
    p = _probs(n, t, c, seed=2)
    p[: n // 2] = np.eye(c)[rng.integers(0, c, size=(n // 2, t))]  # one-hot samples
    p[n // 2 :, :, 0] = 0.0  # a class with no mass anywhere
    p /= p.sum(axis=2, keepdims=True)
    p[-1] = 0.0  # rows that are not distributions at all still must not give NaN
    idx, scores = batch_bald_with_scores(p, 8, num_samples=num_samples, rng=1, lazy=lazy)
    assert np.all(np.isfinite(scores))
    assert len(set(idx.tolist())) == 8 and idx.min() >= 0 and idx.max() < n


def test_reproducible_from_seed_in_sampled_regime():
    p = _probs(50, 10, 4, seed=4)
    a = batch_bald_with_scores(p, 6, num_samples=30, rng=123)
    b = batch_bald_with_scores(p, 6, num_samples=30, rng=123)
    c = batch_bald_with_scores(p, 6, num_samples=30, rng=np.random.default_rng(123))
    assert a[0].tolist() == b[0].tolist() == c[0].tolist()
    np.testing.assert_array_equal(a[1], b[1])
    other = batch_bald_with_scores(p, 6, num_samples=30, rng=124)
    assert not np.array_equal(other[1], a[1])  # the seed really drives the sampling


def test_prefilter_keeps_positions_into_full_pool():
    p = _probs(100, 10, 4, seed=6)
    scores = bald(p)
    top = set(top_k(scores, 20).tolist())
    idx = batch_bald(p, 5, prefilter=20, rng=0)
    assert set(idx.tolist()) <= top
    assert idx[0] == np.argmax(scores)
    # Same result as running on the subset and mapping positions back.
    sub = np.sort(list(top))
    assert idx.tolist() == sub[batch_bald(p[sub], 5, rng=0)].tolist()
    assert batch_bald(p, 5, prefilter=1000, rng=0).tolist() == batch_bald(p, 5, rng=0).tolist()
    with pytest.raises(ValueError, match="prefilter=3"):
        batch_bald(p, 5, prefilter=3)


@pytest.mark.parametrize("bad", [-1, 2.5, "3", None, True])
def test_bad_batch_size_raises(bad):
    with pytest.raises(ValueError, match="batch_size"):
        batch_bald(_probs(5, 3, 2, seed=0), bad)


def test_degenerate_sizes():
    p = _probs(7, 4, 3, seed=8)
    empty = batch_bald(p, 0)
    assert empty.dtype == np.int64 and empty.size == 0
    whole = batch_bald(p, 50, rng=0)
    assert whole.dtype == np.int64 and sorted(whole.tolist()) == list(range(7))
    assert batch_bald(p[:0], 3).size == 0
    # num_samples < T: still one configuration per sample, no division down to zero.
    small = batch_bald(_probs(20, 10, 3, seed=9), 5, num_samples=1, rng=0)
    assert len(set(small.tolist())) == 5
    # T = 1: nothing to learn about theta, but still a valid batch.
    assert len(set(batch_bald(p[:, :1], 4).tolist())) == 4
    with pytest.raises(ValueError, match="num_samples"):
        batch_bald(p, 2, num_samples=0)
    with pytest.raises(ValueError, match="dtype"):
        batch_bald(p, 2, dtype=np.int32)


def test_memory_stays_far_below_the_full_joint_tensor():
    # The (N, num_samples, C) float32 tensor would take 400 MB; chunking keeps the extra
    # memory near the float32 copy of the pool (N*C*(T+1)*4 bytes = 0.8 MB) plus blocks.
    p = _probs(1000, 20, 10, seed=11)
    idx, peak = traced_peak(lambda: batch_bald(p, 6, num_samples=10_000, rng=0))
    assert len(set(idx.tolist())) == 6
    assert peak < 64 * 2**20
