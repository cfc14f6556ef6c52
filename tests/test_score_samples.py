"""Which samples per-point scores use (``query.samples``): consistent (one dropout draw per
sample for the whole round) or independent (a fresh draw per point). Both give a point the same
score distribution; on copies of one input, consistent scores tie exactly and top-k takes the
copies together, independent scores do not."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import stats

from al_experiments.acquisition import AcquisitionFunction, get_query
from al_experiments.acquisition.round import RoundView
from al_experiments.pool import Pool
from al_experiments.wrapper import DeepEnsemble, McDropout

FEATURES = 6
CLASSES = 3


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dropout(0.5), keras.layers.Dense(CLASSES, activation="softmax")])


@pytest.fixture(scope="module")
def mc():
    return McDropout(mlp())


def inputs(n=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def view(model, x, samples, seed=0, sample_size=10, chunk_size=None):
    pool = Pool(x, np.zeros(len(x), dtype=np.int64))
    return RoundView(model, pool, np.arange(len(x)), np.random.default_rng(seed), sample_size=sample_size,
                     chunk_size=chunk_size, samples=samples)


def test_one_point_has_the_same_score_distribution_either_way(mc):
    # 300 rounds' BALD of one point: a fresh draw per point (independent) against one draw per
    # round shared by all points (consistent). A two-sample KS test cannot tell them apart...
    x = inputs(4)
    independent = [view(mc, x, "independent", seed=s).scores("bald")[0] for s in range(300)]
    consistent = [view(mc, x, "consistent", seed=s).scores("bald")[0] for s in range(300)]
    assert stats.ks_2samp(independent, consistent).pvalue > 0.001
    # ... while it does tell them from scores of another point (the test has power).
    other = [view(mc, x, "consistent", seed=s).scores("bald")[1] for s in range(300)]
    assert stats.ks_2samp(independent, other).pvalue < 0.001


def test_copies_tie_on_consistent_samples_and_not_on_independent_ones(mc):
    x = np.repeat(inputs(3), 4, axis=0)  # three points, four exact copies each, in one chunk...
    consistent = view(mc, x, "consistent").scores("bald")
    for group in consistent.reshape(3, 4):
        assert np.all(group == group[0])
    # ... and across chunks of 5 (the round's draws do not depend on the chunking).
    np.testing.assert_array_equal(view(mc, x, "consistent", chunk_size=5).scores("bald"), consistent)
    independent = view(mc, x, "independent").scores("bald").reshape(3, 4)
    assert all(len(np.unique(group)) > 1 for group in independent)


def test_top_k_takes_the_copies_of_the_best_point_together_on_consistent_samples(mc):
    x = np.repeat(inputs(20, seed=3), 3, axis=0)  # 20 points three times: copies of i at 3i..3i+2
    pool = Pool(x, np.zeros(len(x), dtype=np.int64))
    picked, _ = AcquisitionFunction("bald", samples="consistent")(mc, pool, step_size=6,
                                                                  rng=np.random.default_rng(1))
    originals = picked // 3
    assert len(set(originals.tolist())) == 2  # two points, each with its three copies
    picked, _ = AcquisitionFunction("bald", samples="independent")(mc, pool, step_size=6,
                                                                   rng=np.random.default_rng(1))
    assert len(set((picked // 3).tolist())) > 2


@pytest.mark.parametrize("name", ["bald", "max_entropy", "std_mean", "variation_ratio", "margin",
                                  "least_confidence"])
def test_in_graph_consistent_scores_equal_the_numpy_scores_of_the_same_samples(mc, name):
    x = inputs(37, seed=5)
    v = view(mc, x, "consistent", chunk_size=8)
    in_graph = v.scores(name)  # reduced inside the compiled consistent sampler
    samples = v.joint_samples()  # the round's one parameter draw, the in-graph scores' too
    np.testing.assert_allclose(in_graph, get_query(name).scores(samples), rtol=0, atol=1e-6)
    # Once the joint samples are there (a joint strategy asked first), they are reused.
    w = view(mc, x, "consistent", chunk_size=8)
    w.joint_samples()
    np.testing.assert_allclose(w.scores(name), in_graph, rtol=0, atol=1e-6)


def test_power_bald_follows_the_setting(mc):
    x = np.repeat(inputs(4), 2, axis=0)
    v = view(mc, x, "consistent")
    selection = get_query("power_bald").select(v, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(selection.scores, v.scores("bald")[selection.positions])
    assert np.all(v.scores("bald")[0::2] == v.scores("bald")[1::2])


def test_a_deep_ensemble_scores_the_same_either_way():
    ensemble = DeepEnsemble(lambda: mlp(), members=3)
    ensemble.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = inputs(6)
    np.testing.assert_allclose(view(ensemble, x, "consistent").scores("bald"),
                               view(ensemble, x, "independent").scores("bald"), rtol=0, atol=1e-6)


def test_what_each_strategy_runs_on_and_bad_settings():
    assert AcquisitionFunction("bald").samples_used() == "independent"
    assert AcquisitionFunction("bald", samples="consistent").samples_used() == "consistent"
    assert AcquisitionFunction("power_bald", samples="consistent").samples_used() == "consistent"
    assert AcquisitionFunction("batch_bald").samples_used() == "consistent"
    assert AcquisitionFunction("epig", samples="independent").samples_used() == "consistent"
    assert AcquisitionFunction("coreset").samples_used() == "deterministic"
    assert AcquisitionFunction("random", samples="consistent").samples_used() == "none"
    assert AcquisitionFunction("bald", samples="consistent").copy().samples == "consistent"
    with pytest.raises(ValueError, match="samples='joint' is not a kind of predictive samples; use one of "
                                         "independent, consistent"):
        AcquisitionFunction("bald", samples="joint")


def test_consistent_samples_refuse_a_scorer_of_the_models_own(mc):
    af = AcquisitionFunction("bald", samples="consistent")
    af.set_fn(lambda x, **_: np.ones(len(x)))
    pool = Pool(inputs(5), np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="scores points its own way; use samples='independent'"):
        af(mc, pool, step_size=2, rng=np.random.default_rng(0))
