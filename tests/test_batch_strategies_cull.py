"""The joint strategies' cull (query.options.prefilter): only the candidates of highest BALD on the
round's consistent samples get joint samples and a joint score. It keeps exactly the top-BALD
candidates, gives the array function's prefiltered batch on the whole set's samples, changes
nothing where it keeps every candidate, and refuses sizes below the batch in one sentence."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from al_experiments import Config, Pool
from al_experiments.acquisition import RoundView, bald
from al_experiments.acquisition.batch.batch_bald import batch_bald_with_scores
from al_experiments.acquisition.batch.epig import epig_scores
from al_experiments.acquisition.builtin_batch import BUILTINS, kept_candidates
from al_experiments.wrapper import McDropout

SAMPLES = 8


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                            keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")])
    wrapped = McDropout(net, Config(fit={"epochs": 3, "batch_size": 16}, query={"sample_size": SAMPLES}))
    wrapped.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    wrapped.fit(x[:100], y[:100], epochs=3)
    return wrapped, x[:400], y[:400]


def view_of(model, seed: int = 0) -> RoundView:
    wrapped, x, y = model
    pool = Pool(x, y)
    pool.annotate(np.arange(20))
    return RoundView(wrapped, pool, pool.get_unlabeled_indices(), np.random.default_rng(seed), sample_size=SAMPLES)


def brute_force_top(scores: np.ndarray, m: int) -> np.ndarray:
    """The m highest scores' positions, ties to the lower position, by a full sort."""
    order = sorted(range(scores.size), key=lambda i: (-scores[i], i))
    return np.sort(np.array(order[:m]))


@pytest.mark.parametrize("m", [10, 57, 379])
def test_the_cull_keeps_the_candidates_of_highest_bald_on_the_consistent_samples(model, m):
    view = view_of(model)
    expected = brute_force_top(bald(view_of(model).joint_samples()), m)
    kept = kept_candidates(view, m, 10)
    # In-graph and numpy BALD agree to float32 round-off: compare the sets, allowing swaps only
    # between candidates within that round-off of the cut.
    full = bald(view_of(model).joint_samples())
    cut = np.sort(full)[::-1][m - 1]
    differ = np.setxor1d(kept, expected)
    assert np.all(np.abs(full[differ] - cut) < 1e-5)
    assert kept.size == m and np.all(np.diff(kept) > 0)


def test_culled_candidates_get_the_rows_of_the_whole_sets_consistent_samples(model):
    kept = kept_candidates(view_of(model), 50, 10)
    np.testing.assert_allclose(view_of(model).joint_samples(kept), view_of(model).joint_samples()[kept], atol=1e-6)


def test_culled_batch_bald_is_the_array_functions_prefiltered_batch(model):
    chosen, _ = BUILTINS["batch_bald"](view_of(model), 10, np.random.default_rng(1), num_samples=1000, prefilter=40)
    whole = view_of(model).joint_samples()
    expected, _ = batch_bald_with_scores(whole, 10, num_samples=1000, rng=np.random.default_rng(1), prefilter=40)
    view = view_of(model)
    np.testing.assert_array_equal(view.candidates[chosen], view.candidates[expected])


@pytest.mark.parametrize("name", ["batch_bald", "epig"])
@pytest.mark.parametrize("prefilter", [380, 10_000, None])
def test_a_cull_of_at_least_the_pool_gives_the_uncull_selection_exactly(model, name, prefilter):
    options = {"target_size": 20} if name == "epig" else {"num_samples": 1000}
    uncull = BUILTINS[name](view_of(model), 10, np.random.default_rng(2), **options, prefilter=None)
    culled = BUILTINS[name](view_of(model), 10, np.random.default_rng(2), **options, prefilter=prefilter)
    np.testing.assert_array_equal(culled[0], uncull[0])
    np.testing.assert_array_equal(culled[1], uncull[1])


def test_culled_epig_ranks_the_kept_candidates_by_their_own_epig(model):
    view = view_of(model)
    chosen, scores = BUILTINS["epig"](view, 5, np.random.default_rng(3), target_size=20, prefilter=30)
    assert set(chosen.tolist()) <= set(kept_candidates(view_of(model), 30, 5).tolist())
    assert np.all(np.diff(scores) <= 0)


def test_epig_never_exceeds_bald_on_the_same_draws():
    """What makes BALD a sound cull for EPIG: y and y* depend on each other only through the
    parameter draw, so I(y; y*) <= I(y; theta) on any set of consistent samples."""
    rng = np.random.default_rng(4)
    pool = rng.dirichlet(np.full(4, 0.4), size=(300, 12))
    target = rng.dirichlet(np.full(4, 0.4), size=(25, 12))
    assert np.all(epig_scores(pool, target) <= bald(pool) + 1e-12)


@pytest.mark.parametrize("name", ["batch_bald", "epig"])
def test_a_cull_smaller_than_the_batch_is_one_sentence(model, name):
    with pytest.raises(ValueError, match=r"^prefilter=5 keeps fewer candidates than the batch of 10: set "
                                         r"query.options.prefilter to at least the batch size, or null to keep "
                                         r"every candidate\.$"):
        BUILTINS[name](view_of(model), 10, np.random.default_rng(0), prefilter=5)


@pytest.mark.parametrize("query", ["batch_bald", "epig"])
def test_the_config_check_refuses_a_cull_smaller_than_the_step(query):
    from hydra import compose, initialize_config_module

    from al_experiments.app.errors import ConfigError
    from al_experiments.app.schema import register_configs, validate

    register_configs()
    with initialize_config_module("al_experiments.conf", version_base=None):
        cfg = compose("config", overrides=[f"query={query}", "loop.step_size=20", "query.options.prefilter=12"])
        validate(compose("config", overrides=[f"query={query}", "loop.step_size=20", "query.options.prefilter=20"]))
    with pytest.raises(ConfigError, match=r"^query.options.prefilter=12 keeps fewer candidates than a batch of "
                                          r"loop.step_size=20: set it to at least the batch size, or null to keep "
                                          r"every candidate\.$"):
        validate(cfg)
