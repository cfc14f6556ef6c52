"""epig_scores: expected predictive information gain from consistent samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import traced_peak

from al_experiments.acquisition.batch import epig as epig_module
from al_experiments.acquisition.batch.epig import epig_scores


def samples(n, t, c, seed, concentration=0.5):
    return np.random.default_rng(seed).dirichlet(np.ones(c) * concentration, size=(n, t))


def _h(ps):
    return -sum(p * math.log(p) for p in ps if p > 0)


def direct_epig(pool, target):
    """Explicit loops over points, targets, classes and samples (two forms of the same MI)."""
    n, t, c = pool.shape
    m = target.shape[0]
    via_entropies, via_kl = [], []
    for i in range(n):
        py = [sum(pool[i, s, a] for s in range(t)) / t for a in range(c)]
        total_h = total_kl = 0.0
        for j in range(m):
            qy = [sum(target[j, s, b] for s in range(t)) / t for b in range(c)]
            joint = [
                [sum(pool[i, s, a] * target[j, s, b] for s in range(t)) / t for b in range(c)]
                for a in range(c)
            ]
            flat = [x for row in joint for x in row]
            total_h += _h(py) + _h(qy) - _h(flat)
            total_kl += sum(
                joint[a][b] * math.log(joint[a][b] / (py[a] * qy[b]))
                for a in range(c)
                for b in range(c)
                if joint[a][b] > 0
            )
        via_entropies.append(total_h / m)
        via_kl.append(total_kl / m)
    return np.array(via_entropies), np.array(via_kl)


def test_matches_direct_loops():
    pool, target = samples(4, 5, 3, seed=0), samples(3, 5, 3, seed=1)
    by_h, by_kl = direct_epig(pool, target)
    np.testing.assert_allclose(by_h, by_kl, atol=1e-12)
    np.testing.assert_allclose(epig_scores(pool, target), by_h, rtol=1e-10, atol=1e-13)


def test_hand_worked_maximum():
    # Two classes, two equally likely parameter draws that each predict one class for sure,
    # the same for pool and target: knowing y reveals the draw and so y*, EPIG = log 2.
    pool = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    np.testing.assert_allclose(epig_scores(pool, pool), [math.log(2)])


def test_zero_without_epistemic_uncertainty():
    rng = np.random.default_rng(2)
    same = np.repeat(rng.dirichlet(np.ones(4), size=(6, 1)), 8, axis=1)  # all T samples equal
    varied = samples(5, 8, 4, seed=3)
    np.testing.assert_allclose(epig_scores(same, varied), 0.0, atol=1e-12)
    np.testing.assert_allclose(epig_scores(varied, same[:2]), 0.0, atol=1e-12)
    assert (epig_scores(same, varied) >= 0).all()


@pytest.mark.parametrize("concentration", [0.05, 0.5, 5.0])
def test_within_bounds(concentration):
    c = 5
    pool, target = samples(200, 20, c, 4, concentration), samples(30, 20, c, 5, concentration)
    got = epig_scores(pool, target)
    assert got.dtype == np.float64 and got.shape == (200,)
    # Mutual information between two C-class labels: at most log C, so within [0, log C^2].
    assert (got >= 0).all() and (got <= math.log(c) + 1e-12).all()
    assert got.max() > 0


def test_chunking_does_not_change_the_result():
    pool, target = samples(23, 6, 3, seed=6), samples(9, 6, 3, seed=7)
    reference = epig_scores(pool, target)
    for chunk in (1, 2, 7, 23, 1000):
        np.testing.assert_allclose(epig_scores(pool, target, chunk_size=chunk), reference,
                                   rtol=1e-12, atol=1e-15)


def test_float32_accuracy():
    pool, target = samples(300, 50, 10, seed=8), samples(40, 50, 10, seed=9)
    exact = epig_scores(pool, target)
    fast = epig_scores(pool.astype(np.float32), target.astype(np.float32), dtype=np.float32)
    assert fast.dtype == np.float64
    assert np.abs(fast - exact).max() < 2e-5
    np.testing.assert_array_equal(np.argsort(-fast)[:5], np.argsort(-exact)[:5])


def test_default_chunk_bounds_memory(monkeypatch):
    pool, target = samples(2000, 10, 10, seed=10), samples(50, 10, 10, seed=11)
    reference = epig_scores(pool, target, chunk_size=2000)
    monkeypatch.setattr(epig_module, "DEFAULT_MAX_BYTES", 2**20)
    got, peak = traced_peak(lambda: epig_scores(pool, target))
    np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-15)
    # One chunk holding all 2000 joint tables would be 2000 * 10 * 50 * 10 * 8 B = 80 MB.
    assert peak < 10 * 2**20


def test_empty_pool():
    out = epig_scores(np.empty((0, 4, 3)), samples(2, 4, 3, seed=0))
    assert out.shape == (0,) and out.dtype == np.float64


def test_errors():
    pool, target = samples(3, 4, 3, seed=0), samples(2, 5, 3, seed=1)
    with pytest.raises(ValueError, match="T=4 samples per point but probs_target has T=5"):
        epig_scores(pool, target)
    with pytest.raises(ValueError, match="C=3 classes but probs_target has C=2"):
        epig_scores(pool, samples(2, 4, 2, seed=1))
    with pytest.raises(ValueError, match="M=0"):
        epig_scores(pool, np.empty((0, 4, 3)))
    with pytest.raises(ValueError, match=r"\(N, T, C\)"):
        epig_scores(pool[:, 0, :], target)
    with pytest.raises(ValueError, match="logits"):
        epig_scores(pool * 3, samples(2, 4, 3, seed=1))
    with pytest.raises(ValueError, match="float32 or float64"):
        epig_scores(pool, samples(2, 4, 3, seed=1), dtype=np.int32)
    with pytest.raises(ValueError, match=r"^chunk_size=0 is invalid: it must be a whole number >= 1 or None\.$"):
        epig_scores(pool, samples(2, 4, 3, seed=1), chunk_size=0)
