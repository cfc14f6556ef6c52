"""The model interface: three required methods, the optional ones with their defaults, and
hand-written tf_al-style models adapted instead of probed."""

from __future__ import annotations

import numpy as np
import pytest

from al_experiments import ActiveLearningLoop, Dataset
from al_experiments.wrapper.interface import OPTIONAL_METHODS, ActiveModel, as_active_model


class HandWritten:
    """A tf_al-style model: the required methods with tf_al's reset signature, and a name."""

    def __init__(self):
        self.calls = []

    def reset(self, pool, dataset):
        self.calls.append("reset")

    def fit(self, x, y, **kwargs):
        self.calls.append("fit")
        return {"loss": [1.0, 0.5]}

    def evaluate(self, x, y, **kwargs):
        self.calls.append("evaluate")
        return {"accuracy": 0.5}

    def get_model_name(self):
        return "Hand"


class WithValidation(HandWritten):
    def reset(self, pool, dataset, round_index=None):
        self.calls.append(("reset", round_index))

    def optimize(self, x, y):
        return {"accuracy": 0.25}


def data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), rng.integers(0, 2, size=n)


def test_a_hand_written_model_runs_with_the_defaults_for_what_it_lacks():
    x, y = data()
    model = HandWritten()
    loop = ActiveLearningLoop(model, Dataset(x, y, test=(x[:5], y[:5]), init_size=4), "random",
                              step_size=4, max_rounds=2, seed=0)
    history = loop.run()
    assert model.calls == ["reset", "fit", "evaluate"] * 2
    assert [row["eval"] for row in history] == [{"accuracy": 0.5}] * 2
    assert history[0]["optim"] is None and history[0]["optim_time"] is None
    assert loop.get_experiment_name() == "hand_random"
    assert loop.state()["model"] is None  # default resume_state: nothing beyond the labels
    assert loop.model.model is model  # the adapter keeps the user's object


def test_optional_methods_a_model_has_are_its_own():
    x, y = data()
    model = WithValidation()
    step = ActiveLearningLoop(model, Dataset(x, y, val=(x[:5], y[:5]), init_size=4), "random",
                              step_size=4, max_rounds=1, seed=0).step()
    assert step["optim"] == {"accuracy": 0.25} and step["optim_time"] >= 0
    assert model.calls[0] == ("reset", 1)  # a reset that takes round_index is given it


def test_a_model_without_a_required_method_is_refused_with_what_it_lacks():
    class NoEvaluate:
        def reset(self, pool, dataset):
            pass

        def fit(self, x, y, **kwargs):
            return {}

    x, y = data()
    with pytest.raises(TypeError, match="NoEvaluate cannot be run by the loop: it has no evaluate method"):
        ActiveLearningLoop(NoEvaluate(), Dataset(x, y, init_size=4), "random")
    with pytest.raises(TypeError, match="no reset, fit, evaluate method"):
        as_active_model(object())


def test_the_wrappers_inherit_the_interface_and_are_not_adapted():
    from al_experiments.wrapper import DeepEnsemble, McDropout, Model

    for cls in (Model, McDropout, DeepEnsemble):
        assert issubclass(cls, ActiveModel)
    adapted = as_active_model(HandWritten())
    assert isinstance(adapted, ActiveModel)
    # every optional method answers on an adapted object, with the interface's default
    assert adapted.num_outputs() is None and adapted.get_config_for("query") == {}
    assert adapted.resume_state() is None and adapted.optimize(None, None) is None
    assert set(OPTIONAL_METHODS) <= set(dir(adapted))
    with pytest.raises(ValueError, match="keeps no resume state"):
        adapted.restore_resume_state({"weights": []})


def test_keras_wrappers_declare_their_capabilities_and_a_subclass_changes_them():
    import keras

    from al_experiments.wrapper import McDropout, Model
    from al_experiments.wrapper.interface import (
        CONSISTENT_SAMPLES,
        DECISION_VALUES,
        EMBEDDINGS,
        INDEPENDENT_SAMPLES,
        OWN_SCORER,
        REDUCED_SCORES,
        QueryModel,
        supports,
    )

    def net():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                 keras.layers.Dropout(0.5), keras.layers.Dense(2, activation="softmax")])

    compiled = (INDEPENDENT_SAMPLES, CONSISTENT_SAMPLES, REDUCED_SCORES, EMBEDDINGS)
    for wrapper in (McDropout(net()), Model(net())):  # MC dropout and the deterministic network
        assert isinstance(wrapper, QueryModel)
        assert all(wrapper.supports(c) for c in compiled)
        assert not wrapper.supports(DECISION_VALUES) and not wrapper.supports(OWN_SCORER)

    class OwnSamples(McDropout):
        def predictive_samples(self, inputs, sample_size=1, batch_size=None):
            return np.full((len(inputs), sample_size, 2), 0.5)

    class OwnScorer(McDropout):
        def get_query_fn(self, name):
            return lambda inputs, **kwargs: np.zeros(len(inputs))

    own = OwnSamples(net())
    assert own.supports(INDEPENDENT_SAMPLES) and own.supports(EMBEDDINGS)
    assert not own.supports(CONSISTENT_SAMPLES) and not own.supports(REDUCED_SCORES)
    assert OwnScorer(net()).supports(OWN_SCORER)
    # A hand-written model declares nothing: what it has a method for is what it gives.
    assert not supports(HandWritten(), INDEPENDENT_SAMPLES) and not supports(HandWritten(), OWN_SCORER)

    class WithSamples(HandWritten):
        def predictive_samples(self, inputs, sample_size=1, batch_size=None):
            return np.full((len(inputs), sample_size, 2), 0.5)

    adapted = as_active_model(WithSamples())
    assert supports(adapted, INDEPENDENT_SAMPLES) and not supports(adapted, CONSISTENT_SAMPLES)


def test_no_wrapper_module_reads_another_objects_private_attributes():
    """Each backend keeps its own state: a wrapper, an ensemble or a backend reaches another
    object only through its public names (``self._x`` is its own)."""
    import ast
    from pathlib import Path

    import al_experiments.wrapper as package

    reached = []
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    reached.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert reached == []
