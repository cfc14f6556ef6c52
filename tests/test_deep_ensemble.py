"""DeepEnsemble: M differently initialised members give the (N, M, C) samples every query
function scores; training is deterministic per (seed, round, member); it runs in the loop and
through ``al-run model=ensemble_mlp``."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from al_experiments import ActiveLearningLoop, Config, Dataset
from al_experiments.acquisition import AcquisitionFunction, available_queries
from al_experiments.pool import Pool
from al_experiments.wrapper import DeepEnsemble, Model

CLASSES, FEATURES, MEMBERS = 3, 4, 2


def blobs(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = (np.eye(CLASSES, FEATURES)[y] * 3.0 + rng.normal(size=(n, FEATURES))).astype(np.float32)
    return x, y


def network() -> keras.Model:
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(CLASSES, activation="softmax")])


def ensemble(seed: int = 0, members: int = MEMBERS, model=None, **kwargs) -> DeepEnsemble:
    keras.utils.set_random_seed(seed)
    wrapper = DeepEnsemble(network() if model is None else model, Config(fit={"epochs": 3, "batch_size": 16}),
                           members=members, **kwargs)
    wrapper.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    wrapper.set_seed(seed)
    return wrapper


def trained(seed: int = 0, **kwargs) -> DeepEnsemble:
    wrapper = ensemble(seed, **kwargs)
    x, y = blobs()
    wrapper.reset(round_index=1)
    wrapper.fit(x[:30], y[:30])
    return wrapper


@pytest.fixture(scope="module")
def model() -> DeepEnsemble:
    return trained()


def test_samples_are_the_members_stacked(model):
    x, _ = blobs(10, seed=1)
    probs = model.predictive_samples(x, sample_size=50)  # sample_size is ignored: T = M
    assert probs.shape == (10, MEMBERS, CLASSES)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    for index, member in enumerate(model.members):
        np.testing.assert_allclose(probs[:, index], member.predict(x), atol=1e-6)
    np.testing.assert_allclose(model(x), probs)
    chunked = np.concatenate([p for _, _, p in model.sample_chunks(x, batch_size=3)])
    np.testing.assert_allclose(chunked, probs, atol=1e-6)
    assert model.predictive_samples(x[:0]).shape == (0, MEMBERS, CLASSES)


def test_members_are_initialised_differently(model):
    kernels = [member.get_model().layers[0].get_weights()[0] for member in model.members]
    assert all(not np.allclose(kernels[0], k) for k in kernels[1:])
    probs = model.predictive_samples(blobs(10, seed=1)[0])
    assert np.abs(probs[:, 0] - probs[:, 1]).max() > 1e-3


def test_same_seed_same_ensemble_other_seed_another():
    x, _ = blobs(10, seed=1)
    first, again, other = trained(0), trained(0), trained(1)
    np.testing.assert_array_equal(first.predictive_samples(x), again.predictive_samples(x))
    assert not np.allclose(first.predictive_samples(x), other.predictive_samples(x))


def test_evaluate_scores_the_ensemble_mean(model):
    x, y = blobs(30, seed=2)
    scores = model.evaluate(x, y, sample_size=3)
    mean = model.predictive_samples(x).mean(axis=1)
    assert scores["sparse_categorical_accuracy"] == pytest.approx(float(np.mean(mean.argmax(1) == y)))
    assert isinstance(scores["sparse_categorical_crossentropy"], float)


def test_fit_history_is_the_member_mean():
    wrapper = ensemble()
    wrapper.reset(round_index=1)
    history = wrapper.fit(*blobs()).history
    assert set(history) == {"loss", "sparse_categorical_accuracy"} and len(history["loss"]) == 3


@pytest.mark.parametrize("name", sorted(available_queries()))
def test_every_query_function_runs(model, name):
    x, y = blobs(40, seed=3)
    pool = Pool(x, y)
    pool.annotate(np.arange(5))
    indices, scores = AcquisitionFunction(name)(model, pool, step_size=4, rng=np.random.default_rng(0))
    assert len(indices) == 4 and not set(indices.tolist()) & set(range(5))
    assert np.all(np.isfinite(scores))


def test_reset_policy_reaches_every_member():
    wrapper = ensemble(reset="initial")
    assert {m.reset_policy for m in wrapper.members} == {"initial"}
    wrapper.reset_policy = "warm"
    assert {m.reset_policy for m in wrapper.members} == {"warm"}


def test_builder_and_list_of_networks():
    assert len(ensemble(members=3, model=network).members) == 3
    assert len(ensemble(members=2, model=[network(), network()]).members) == 2
    with pytest.raises(ValueError, match="members=0 is invalid: it must be a whole number >= 1"):
        DeepEnsemble(network(), members=0)
    with pytest.raises(ValueError, match="one network per member"):
        DeepEnsemble([network()], members=2)


def test_unknown_keyword_raises_before_members_are_built_and_members_keep_the_settings(tmp_path):
    with pytest.raises(TypeError, match=r"^DeepEnsemble got an unexpected keyword argument 'member'; it accepts: "
                                        r"checkpoint, .*, members, model, .*\. Did you mean 'members'\?$"):
        DeepEnsemble(network(), member=2)
    wrapper = DeepEnsemble(network(), members=2, reset="initial", fast_fit=False, xla=False, name="e",
                           checkpoint_path=str(tmp_path))
    assert wrapper.get_model_name() == "ensemble_e"
    assert [(m.reset_policy, m.fast_fit, m.xla, m.checkpoint_path) for m in wrapper.members] == [
        ("initial", False, False, str(tmp_path / f"member_{i}")) for i in range(2)]
    assert all(type(m) is Model for m in wrapper.members)  # Keras members: the compiled path


def test_a_short_loop_runs():
    x, y = blobs(80)
    dataset = Dataset(x[:60], y[:60], test=(x[60:], y[60:]), init_size=6)
    loop = ActiveLearningLoop(ensemble(), dataset, "bald", step_size=5, max_rounds=2, seed=0)
    history = loop.run(progress=False)
    assert len(history) == 2 and loop.get_model_name() == "ensemble"
    assert 0.0 <= history[-1]["eval"]["sparse_categorical_accuracy"] <= 1.0
    assert loop.pool.get_length_labeled() == 16


def test_is_a_model():
    assert isinstance(ensemble(members=1), Model)


def test_a_compiled_network_compiles_every_member():
    net = network()
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    wrapper = DeepEnsemble(net, Config(fit={"epochs": 1}), members=2)
    wrapper.reset(round_index=1)
    x, y = blobs(12)
    assert set(wrapper.fit(x, y).history) == {"loss", "accuracy"}
    assert wrapper.members[0].get_model().optimizer is not wrapper.members[1].get_model().optimizer


def test_the_ensemble_preset_runs_as_a_job(job_config, folder):
    """``model=ensemble_mlp`` composed by Hydra and run by ``run_job``: one FINISHED run of 5
    members, and its tf_al CSV."""
    from _app_helpers import mlflow_runs

    from al_experiments.app.job import JobContext, run_job

    result = run_job(job_config("model=ensemble_mlp"), JobContext())
    [run] = mlflow_runs(folder)
    assert run.info.status == "FINISHED" and run.data.params["model.wrapper.members"] == "5"
    assert Path(result["csv"]).name == "0_0_ensemble_mlp_bald.csv" and Path(result["csv"]).is_file()


@pytest.mark.parametrize("reset", ["reinit", "warm"])
def test_a_restored_ensemble_loop_continues_exactly(reset):
    x, y = blobs(80)

    def build():
        dataset = Dataset(x[:60], y[:60], test=(x[60:], y[60:]), init_size=6)
        return ActiveLearningLoop(ensemble(reset=reset), dataset, "bald", step_size=5, max_rounds=3, seed=0)

    def without_times(history):
        return [{k: v for k, v in step.items() if not k.endswith("_time")} for step in history]

    uninterrupted = without_times(build().run(progress=False))
    first = build()
    next(first.rounds())
    state = first.state()
    assert (state["model"] is not None) == (reset == "warm")
    resumed = build()
    resumed.restore(state)
    assert without_times(resumed.run(progress=False)) == uninterrupted


class PublicOnly:
    """A member wrapper seen through its public surface only: any name starting with an
    underscore is refused, so the ensemble cannot reach a member's internals."""

    def __init__(self, member):
        object.__setattr__(self, "member", member)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(f"the ensemble reached the private member attribute {name!r}")
        return getattr(self.member, name)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            raise AttributeError(f"the ensemble set the private member attribute {name!r}")
        setattr(self.member, name, value)


def test_the_ensemble_backend_uses_only_its_members_public_methods(tmp_path):
    from al_experiments.wrapper.ensemble_backend import EnsembleBackend

    x, y = blobs()
    reference = ensemble(seed=3, checkpoint_path=str(tmp_path / "a"), reset="warm")
    guarded = ensemble(seed=3, checkpoint_path=str(tmp_path / "b"), reset="warm")
    backend = EnsembleBackend([PublicOnly(member) for member in guarded.members])
    backend.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    reference.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    backend.ensure_ready(x)
    backend.reset("warm", 3, 1)
    reference.reset(round_index=1)
    history = backend.fit(x[:30], y[:30], {"epochs": 3, "batch_size": 16}, seed=3, round_index=1)
    expected = reference.fit(x[:30], y[:30])
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-6)
    samples = backend.predictive_samples(x, None, 7)
    np.testing.assert_array_equal(samples, reference.predictive_samples(x, batch_size=7))
    np.testing.assert_array_equal(backend.consistent_samples(x, 4, 1, None), samples)
    features, probs = backend.embeddings(x, None, True, None)
    ref_features, ref_probs = reference.embeddings(x, return_probs=True)
    np.testing.assert_array_equal(features, ref_features)
    np.testing.assert_allclose(probs, ref_probs)
    state = backend.resume_state("warm", 1)
    assert sorted(state) == sorted(reference.resume_state())
    backend.restore_resume_state(state)
    assert backend.save_weights(str(tmp_path / "b")) == str(tmp_path / "b") and backend.has_save_state("")
    backend.load_weights("")
    np.testing.assert_array_equal(backend.predictive_samples(x, None, None), samples)
    assert backend.renewable("warm") and backend.num_outputs() == CLASSES


def test_the_ensemble_declares_its_capabilities():
    from al_experiments.wrapper.interface import (
        CONSISTENT_SAMPLES,
        DECISION_VALUES,
        EMBEDDINGS,
        INDEPENDENT_SAMPLES,
        OWN_SCORER,
        REDUCED_SCORES,
    )

    wrapper = ensemble(members=2)
    assert [wrapper.supports(c) for c in (INDEPENDENT_SAMPLES, CONSISTENT_SAMPLES, EMBEDDINGS)] == [True] * 3
    # Its samples come from separate networks: no single compiled sampler reduces them.
    assert not any(wrapper.supports(c) for c in (REDUCED_SCORES, DECISION_VALUES, OWN_SCORER))
    with pytest.raises(ValueError, match="DeepEnsemble does not support reduced_scores"):
        wrapper.reduced_score_chunks(blobs()[0], 2, reduction=None)
