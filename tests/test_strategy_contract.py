"""The strategy contract: both kinds select from a per-round view, best first; the view computes
each building block once; options are checked by name and range; user strategies of either
kind plug in. A numpy stand-in model keeps these tests free of TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from al_experiments import AcquisitionFunction, Dataset, Pool
from al_experiments.acquisition import (
    BatchStrategy,
    QueryStrategy,
    RoundView,
    available_queries,
    get_query,
    register_batch_query,
    top_k,
)
from al_experiments.acquisition import scores as f
from al_experiments.acquisition.strategy import check_options

BATCH_BUILTINS = ["badge", "batch_bald", "coreset", "epig", "power_bald", "power_entropy"]


class ArrayModel:
    """Predictive samples that depend only on the input and, for joint samples, on (seed, t):
    identical inputs get identical samples, as a consistent sampler must give them."""

    classes = 3

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"consistent": 0, "embeddings": 0, "samples": 0}

    def num_outputs(self) -> int:
        return self.classes

    @staticmethod
    def _probs(x: np.ndarray, noise: np.ndarray) -> np.ndarray:
        logits = x[:, None, :] * np.array([1.0, -1.0, 0.5]) + noise[None, :, :]
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def consistent_samples(self, inputs, sample_size, seed, batch_size=None):
        self.calls["consistent"] += 1
        x = np.asarray(inputs)[:, :1]
        noise = np.random.default_rng(seed).normal(size=(sample_size, self.classes))
        return self._probs(x, noise)

    def predictive_samples(self, inputs, sample_size=1, batch_size=None):
        self.calls["samples"] += 1
        x = np.asarray(inputs)[:, :1]
        noise = np.random.default_rng(len(x)).normal(size=(sample_size, self.classes))
        return self._probs(x, noise)

    def embeddings(self, inputs, batch_size=None, return_probs=False):
        self.calls["embeddings"] += 1
        x = np.asarray(inputs, dtype=np.float64)
        probs = self._probs(x[:, :1], np.zeros((1, self.classes)))[:, 0]
        return (x, probs) if return_probs else x


def pool_of(n: int = 60, labelled: int = 10) -> Pool:
    inputs = np.stack([np.linspace(-2, 2, n), np.cos(np.arange(n))], axis=1)
    pool = Pool(inputs, np.arange(n) % 3)
    pool.annotate(np.arange(labelled))
    return pool


def test_batch_builtins_are_registered_with_their_options():
    assert set(BATCH_BUILTINS) <= set(available_queries())
    assert get_query("batch_bald").options() == {"num_samples": 10_000, "prefilter": 10_000, "lazy": True}
    assert get_query("power_bald").options() == {"temperature": 1.0}
    assert get_query("epig").options() == {"target_size": 100, "target": "pool", "stochastic": None,
                                           "temperature": 1.0, "prefilter": 10_000}
    assert get_query("coreset").options() == {} and get_query("badge").options() == {}
    for name in BATCH_BUILTINS:
        assert isinstance(get_query(name), BatchStrategy) and get_query(name).description
    assert get_query("bald").options() == {"stochastic": None, "temperature": 1.0}
    assert get_query("random").options() == {}


@pytest.mark.parametrize("name, options, match", [
    ("batch_bald", {"num_samples": 0}, "num_samples=0 is invalid"),
    ("batch_bald", {"prefilter": 2.5}, "prefilter=2.5 is invalid"),
    ("batch_bald", {"prefilter": 0}, "prefilter=0 is invalid"),
    ("epig", {"prefilter": -3}, "prefilter=-3 is invalid"),
    ("epig", {"target": "test"}, "target='test' is invalid: it must be one of 'pool', 'validation', 'test_distribution'"),
    ("epig", {"target_size": 0}, "target_size=0"),
    ("power_bald", {"temperature": 0}, "temperature=0 is invalid: it must be a finite number > 0"),
    ("bald", {"stochastic": "gumbel"}, "stochastic='gumbel' is invalid: it must be one of 'power', 'softmax', 'softrank' or null"),
    ("bald", {"stochastic": "power", "temperature": float("nan")}, "temperature"),
])
def test_option_values_out_of_range_are_one_sentence_errors(name, options, match):
    with pytest.raises(ValueError, match=match):
        AcquisitionFunction(name, options=options)


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"'coreset' got unknown option\(s\) 'temperature'; it takes: no options"):
        AcquisitionFunction("coreset", temperature=1.0)
    with pytest.raises(TypeError, match="'num_sample'; it takes: lazy, num_samples, prefilter"):
        AcquisitionFunction("batch_bald", options={"num_sample": 10})


@pytest.mark.parametrize("name", BATCH_BUILTINS)
def test_every_batch_builtin_selects_distinct_unlabelled_points_reproducibly(name):
    pool = pool_of()
    unlabelled = set(pool.get_unlabeled_indices().tolist())
    runs = []
    for seed in (3, 3):
        indices, scores = AcquisitionFunction(name, options={"target_size": 20} if name == "epig" else None)(
            ArrayModel(), pool, step_size=5, rng=np.random.default_rng(seed), sample_size=8)
        assert len(indices) == 5 and len(set(indices.tolist())) == 5 and set(indices.tolist()) <= unlabelled
        if name == "epig":  # top k of its scores: best last, as tf_al returned them
            assert np.all(np.diff(scores) >= 0)
        runs.append(indices.tolist())
    assert runs[0] == runs[1]


def test_score_strategies_select_the_top_k_of_their_scores_best_last():
    pool, model = pool_of(), ArrayModel()
    candidates = pool.get_unlabeled_indices()
    for name in ("bald", "max_entropy", "margin"):
        indices, scores = AcquisitionFunction(name)(model, pool, step_size=4, rng=np.random.default_rng(0),
                                                    sample_size=6)
        expected = get_query(name).scores(model.predictive_samples(pool.get_inputs_by(candidates), 6))
        chosen = top_k(expected, 4)
        assert indices.tolist() == candidates[chosen][::-1].tolist()
        np.testing.assert_allclose(scores, expected[chosen][::-1])


def test_random_selects_what_it_always_selected():
    """The view's own draws come from a child generator: a strategy's rng stream is untouched."""
    pool = pool_of()
    candidates = pool.get_unlabeled_indices()
    indices, _ = AcquisitionFunction("random")(None, pool, step_size=7, rng=np.random.default_rng(11))
    expected = candidates[top_k(np.random.default_rng(11).random(len(candidates)), 7)][::-1]
    assert indices.tolist() == expected.tolist()


def test_stochastic_option_on_a_score_strategy_is_a_seeded_draw():
    pool, model = pool_of(), ArrayModel()
    plain, _ = AcquisitionFunction("bald")(model, pool, step_size=5, rng=np.random.default_rng(1), sample_size=6)
    cold, _ = AcquisitionFunction("bald", stochastic="power", temperature=1e-9)(
        model, pool, step_size=5, rng=np.random.default_rng(1), sample_size=6)
    assert sorted(cold.tolist()) == sorted(plain.tolist())  # temperature -> 0 is the top k
    draws = {tuple(AcquisitionFunction("bald", stochastic="softrank")(
        model, pool, step_size=5, rng=np.random.default_rng(seed), sample_size=6)[0]) for seed in range(6)}
    assert len(draws) > 1


def test_view_computes_each_building_block_once_per_round():
    pool, model = pool_of(), ArrayModel()
    view = RoundView(model, pool, pool.get_unlabeled_indices(), np.random.default_rng(0), sample_size=4)
    first = view.joint_samples()
    assert view.joint_samples() is first
    view.embeddings(), view.predictive(), view.embeddings()
    assert model.calls == {"consistent": 1, "embeddings": 1, "samples": 0}
    view.labelled_embeddings()
    assert model.calls["embeddings"] == 2
    assert first.shape == (50, 4, 3) and view.labelled_embeddings().shape == (10, 2)


def test_target_samples_share_the_joint_draws_and_come_from_the_unlabelled_pool():
    pool, model = pool_of(), ArrayModel()
    candidates = pool.get_unlabeled_indices()
    view = RoundView(model, pool, candidates, np.random.default_rng(5), sample_size=4)
    joint, target = view.joint_samples(), view.target_samples(12)
    assert target.shape == (12, 4, 3)
    # Consistency: every target is one of the candidates here, and its samples are that
    # candidate's samples at every t (same parameter draws).
    matches = [np.where(np.all(np.isclose(joint, row), axis=(1, 2)))[0] for row in target]
    assert all(len(m) == 1 for m in matches)
    assert view.target_samples(12) is target
    other = RoundView(model, pool, candidates, np.random.default_rng(6), sample_size=4).target_samples(12)
    assert not np.array_equal(other, target)  # drawn afresh each round


def test_validation_target_needs_a_validation_split():
    pool, model = pool_of(), ArrayModel()
    view = RoundView(model, pool, pool.get_unlabeled_indices(), np.random.default_rng(0), sample_size=4)
    with pytest.raises(ValueError, match="target=validation needs a validation split"):
        view.target_samples(5, source="validation")
    x = np.stack([np.linspace(0, 1, 40), np.zeros(40)], axis=1)
    dataset = Dataset(x, np.arange(40) % 3, val=(x[:8], np.arange(8) % 3))
    view = RoundView(model, pool, pool.get_unlabeled_indices(), np.random.default_rng(0), sample_size=4,
                     dataset=dataset)
    assert view.target_samples(5, source="validation").shape == (5, 4, 3)
    assert view.target_samples(50, source="validation").shape == (8, 4, 3)


def test_view_scores_refuses_a_batch_strategy():
    pool = pool_of()
    view = RoundView(ArrayModel(), pool, pool.get_unlabeled_indices(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="per-point score strategy"):
        view.scores("coreset")


def test_user_batch_strategy_with_options(cleanup):
    cleanup.append("farthest_first")

    @register_batch_query("farthest_first")
    def farthest_first(view, batch_size, rng, power: float = 1.0):
        """Farthest from the origin first."""
        distance = np.linalg.norm(view.embeddings(), axis=1) ** power
        chosen = top_k(distance, batch_size)
        return chosen, distance[chosen]

    strategy = get_query("farthest_first")
    assert strategy.options() == {"power": 1.0} and strategy.description == "Farthest from the origin first."
    pool = pool_of()
    indices, scores = AcquisitionFunction("farthest_first", power=2.0)(
        ArrayModel(), pool, step_size=3, rng=np.random.default_rng(0))
    norms = np.linalg.norm(pool.get_inputs_by(indices), axis=1)
    assert np.all(np.diff(norms) >= 0) and np.allclose(scores, norms ** 2)


def test_user_batch_strategy_results_are_checked(cleanup):
    cleanup.extend(["twice", "outside", "short"])
    register_batch_query("twice", lambda view, batch_size, rng: np.zeros(batch_size, dtype=int))
    register_batch_query("outside", lambda view, batch_size, rng: np.arange(batch_size) + len(view))
    register_batch_query("short", lambda view, batch_size, rng: np.arange(batch_size - 1))
    pool = pool_of()
    for name, match in (("twice", "same candidate twice"), ("outside", "outside 0..49"),
                        ("short", "returned 2 positions; expected 3")):
        with pytest.raises(ValueError, match=match):
            AcquisitionFunction(name)(ArrayModel(), pool, step_size=3, rng=np.random.default_rng(0))


def test_selector_options_need_defaults(cleanup):
    with pytest.raises(TypeError, match="option 'k' needs a default value"):
        register_batch_query("no_default", lambda view, batch_size, rng, k: np.arange(batch_size))
    assert "no_default" not in available_queries()


def test_check_options_fills_defaults():
    assert check_options(get_query("epig"), {"target_size": 7}) == {
        "target_size": 7, "target": "pool", "stochastic": None, "temperature": 1.0, "prefilter": 10_000}
    assert isinstance(get_query("bald"), QueryStrategy)
    np.testing.assert_allclose(get_query("bald").scores(np.full((2, 3, 2), 0.5)), f.bald(np.full((2, 3, 2), 0.5)))


def test_copy_keeps_name_and_settings():
    original = AcquisitionFunction("epig", pool_subset=30, batch_size=7, target_size=9)
    copy = original.copy()
    assert (copy.name, copy.pool_subset, copy.batch_size, copy.settings) == (
        "epig", 30, 7, original.settings)
    assert copy is not original
