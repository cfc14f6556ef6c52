"""The strategies on real wrapped networks: score strategies select what the model's own scores
select, every batch strategy runs with MC dropout and with a deep ensemble, BatchBALD on a pool
of exact copies never labels one image twice in a batch, and a restored loop continues every
strategy bit for bit."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from al_experiments import AcquisitionFunction, ActiveLearningLoop, Config, Dataset, Pool
from al_experiments.acquisition import RoundView, batch_bald, bald, get_query, top_k
from al_experiments.wrapper import DeepEnsemble, McDropout

BATCH = ["batch_bald", "power_bald", "power_entropy", "coreset", "badge", "epig"]
SCORE = ["bald", "max_entropy", "max_var_ratio", "std_mean", "variation_ratio", "margin", "least_confidence"]


def mlp(seed: int = 0, dropout: float = 0.5):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])


def compiled(wrapper):
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return wrapper


def settings(epochs: int = 5) -> Config:
    return Config(fit={"epochs": epochs, "batch_size": 16}, query={"sample_size": 6}, eval={"sample_size": 4})


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


@pytest.fixture(scope="module")
def mc():
    return compiled(McDropout(mlp(0), settings()))


@pytest.fixture(scope="module")
def ensemble():
    return compiled(DeepEnsemble(lambda: mlp(0, dropout=0.0), settings(), members=3))


def test_score_strategies_select_the_top_k_of_the_models_own_samples(digits, mc):
    """The same weights and dropout seeds give the same samples to the acquisition side's in-graph
    scoring and to a plain predictive_samples call, so the picks equal top k of numpy scores."""
    x, y = digits
    pool = Pool(x[:300], y[:300])
    pool.annotate(np.arange(20))
    candidates = pool.get_unlabeled_indices()
    for name in SCORE:
        mc.reset(round_index=1)
        indices, _ = AcquisitionFunction(name)(mc, pool, step_size=10, rng=np.random.default_rng(0), sample_size=6)
        mc.reset(round_index=1)
        samples = mc.predictive_samples(x[candidates], 6)
        expected = candidates[top_k(get_query(name).scores(samples), 10)][::-1]
        assert indices.tolist() == expected.tolist(), name


@pytest.mark.parametrize("wrapper", ["mc", "ensemble"])
@pytest.mark.parametrize("name", BATCH)
def test_every_batch_strategy_runs_in_the_loop(digits, request, wrapper, name):
    x, y = digits
    model = request.getfixturevalue(wrapper)
    dataset = Dataset(x[:200], y[:200], test=(x[1500:1600], y[1500:1600]), init_size=20)
    loop = ActiveLearningLoop(model, dataset, AcquisitionFunction(name, options={"target_size": 30}
                                                                    if name == "epig" else None),
                              step_size=10, max_rounds=2, seed=1)
    history = loop.run(progress=False)
    picked = [i for step in history for i in step["indices_selected"]]
    assert len(picked) == 20 and len(set(picked)) == 20
    assert set(picked).isdisjoint(loop.initial_indices.tolist())


def test_batch_bald_spreads_a_batch_over_more_images_than_top_k_bald_on_copies(digits, mc):
    """Exact copies get identical consistent samples, so a copy adds only what the model's own
    noise leaves unexplained; BatchBALD then prefers other images, top-k BALD takes every copy.
    (A copy still carries information while each sample's prediction is soft, so BatchBALD may
    take a second copy here; the strict no-copy property for confident samples is tested on
    arrays in test_batch_bald.py.)"""
    x, y = digits
    originals = 40
    pool = Pool(np.concatenate([x[:originals]] * 3), np.concatenate([y[:originals]] * 3))
    pool.annotate([])
    mc.reset(round_index=1)
    mc.fit(x[200:500], y[200:500], epochs=100)
    view = RoundView(mc, pool, pool.get_unlabeled_indices(), np.random.default_rng(0), sample_size=30)
    joint = view.joint_samples()
    np.testing.assert_allclose(joint[:originals], joint[originals:2 * originals], atol=1e-6)  # copies agree at every t
    images = len(set((batch_bald(joint, 8, num_samples=2000, rng=0) % originals).tolist()))
    by_bald = len(set((top_k(bald(joint), 8) % originals).tolist()))
    assert by_bald <= 3 and images > by_bald


@pytest.mark.parametrize("name", ["batch_bald", "power_bald", "epig", "badge", "coreset"])
def test_restored_loop_continues_every_batch_strategy_exactly(digits, name):
    x, y = digits

    def build():
        model = compiled(McDropout(mlp(0), settings(epochs=3)))
        query = AcquisitionFunction(name, options={"target_size": 20} if name == "epig" else None)
        return ActiveLearningLoop(model, Dataset(x[:160], y[:160], test=(x[1500:1560], y[1500:1560]), init_size=10),
                                  query, step_size=5, max_rounds=3, seed=7)

    uninterrupted = [step["indices_selected"] for step in build().run(progress=False)]
    first = build()
    for _ in first.rounds():
        if first.i == 1:
            break
    state = json.loads(json.dumps({k: v for k, v in first.state().items() if k != "model"}))
    resumed = build()
    resumed.restore({**state, "model": None})
    assert len(resumed) - resumed.i == 2
    assert [step["indices_selected"] for step in resumed.run(progress=False)] == uninterrupted


def test_experiment_suit_runs_batch_strategies_with_their_options(digits, mc):
    from al_experiments import ExperimentSuit

    x, y = digits
    dataset = Dataset(x[:150], y[:150], test=(x[1500:1550], y[1500:1550]), init_size=10)
    cold = AcquisitionFunction("power_bald", temperature=1e-9)
    results = ExperimentSuit(mc, [cold, "coreset"], dataset, step_size=5, max_rounds=1, seed=2).start()
    assert list(results) == ["0_2_mc_dropout_power_bald", "0_2_mc_dropout_coreset"]
    (step,) = results["0_2_mc_dropout_power_bald"]
    # temperature -> 0 is top-k BALD: the same picks as a bald loop of the same seed
    (bald_step,) = ExperimentSuit(mc, "bald", dataset, step_size=5, max_rounds=1, seed=2).start().values()
    assert sorted(step["indices_selected"]) == sorted(bald_step[0]["indices_selected"])
