"""Any model behind the wrapper (wrapper/object_backend.py): scikit-learn estimators and plain numpy
models in Model / McDropout, driven by the loop, with the selections, samples, resets, fit
keywords, errors and saved state checked against values computed here by hand."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from al_experiments import AcquisitionFunction, ActiveLearningLoop, Config, Dataset
from al_experiments.resume.checkpoint import Checkpoint, CheckpointStore
from al_experiments.utils.seeding import derive_seed
from al_experiments.wrapper import DeepEnsemble, McDropout, Model
from al_experiments.wrapper.interface import (
    CAPABILITIES,
    CONSISTENT_SAMPLES,
    DECISION_VALUES,
    EMBEDDINGS,
    INDEPENDENT_SAMPLES,
    OWN_SCORER,
    REDUCED_SCORES,
    QueryModel,
)
from al_experiments.wrapper.object_backend import ObjectBackend

CLASSES = 3


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:500], order[500:800]
    return x[train], y[train], x[test], y[test]


def entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def blobs(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = np.eye(CLASSES, 4)[y] * 3.0 + rng.normal(size=(n, 4))
    return x, y


class DropoutSoftmax:
    """A linear softmax classifier in numpy, with Bernoulli dropout on its inputs when
    ``training=True`` drawn from its own seeded Generator, and a plain gradient-descent fit."""

    def __init__(self, features: int = 4, classes: int = CLASSES, rate: float = 0.5, seed: int = 0) -> None:
        init = np.random.default_rng(seed)
        self.w = init.normal(scale=0.1, size=(features, classes))
        self.b = np.zeros(classes)
        self.rate = rate
        self.rng = np.random.default_rng(seed + 1)

    def __call__(self, x, training=False):
        x = np.asarray(x, dtype=np.float64)
        if training:
            x = x * (self.rng.random(x.shape) >= self.rate) / (1.0 - self.rate)
        z = x @ self.w + self.b
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def fit(self, x, y, epochs=1, learning_rate=0.5):
        x, onehot = np.asarray(x, dtype=np.float64), np.eye(self.w.shape[1])[np.asarray(y, dtype=int)]
        for _ in range(int(epochs)):
            grad = self(x) - onehot
            self.w -= learning_rate * x.T @ grad / len(x)
            self.b -= learning_rate * grad.mean(axis=0)
        return self


# ---------------------------------------------------------------------- which path
def test_keras_models_keep_the_compiled_path_and_other_objects_get_the_object_backend():
    import keras

    from al_experiments.wrapper.keras_backend import KerasBackend

    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    assert type(McDropout(net)) is McDropout and type(Model(net)) is Model
    assert isinstance(Model(net).backend, KerasBackend)
    mc, plain = McDropout(DropoutSoftmax()), Model(LogisticRegression())
    assert type(mc) is McDropout and isinstance(mc.backend, ObjectBackend)
    assert type(plain) is Model and isinstance(plain.backend, ObjectBackend) and not isinstance(plain, McDropout)
    assert mc.stochastic() and not plain.stochastic()
    assert mc.get_model_name() == "mc_dropout" and plain.get_model_name() == "model"
    assert type(DeepEnsemble(net, members=2)) is DeepEnsemble


def test_a_user_subclass_of_model_wraps_a_generic_object_too():
    class Named(Model):
        def __init__(self, model, config=None, label="x", **kwargs):
            super().__init__(model, config, model_type="named", **kwargs)
            self.label = label

        def stochastic(self):
            return True

    wrapper = Named(DropoutSoftmax(), label="y")
    assert isinstance(wrapper, Named) and wrapper.label == "y" and wrapper.get_model_name() == "named"
    samples = wrapper.predictive_samples(blobs(5)[0], 3)
    assert samples.shape == (5, 3, CLASSES) and not np.allclose(samples[:, 0], samples[:, 1])
    with pytest.raises(TypeError, match="^Named got an unexpected keyword argument 'lable'; .* Did you mean 'label'"):
        Named(DropoutSoftmax(), lable="y")


def test_the_generic_path_does_not_import_tensorflow():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from al_experiments import ActiveLearningLoop, Dataset
        from al_experiments.wrapper import Model
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(60, 3)), np.arange(60) % 3
        loop = ActiveLearningLoop(Model(LogisticRegression()), Dataset(x, y, test=(x, y), init_size=6),
                                  "max_entropy", step_size=4, max_rounds=2, seed=0)
        history = loop.run()
        assert len(history) == 2 and "accuracy" in history[0]["eval"]
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------- (a) sklearn in the loop
def test_logistic_regression_in_the_loop_selects_the_hand_computed_max_entropy_top_k(digits):
    xtr, ytr, xte, yte = digits
    dataset = Dataset(xtr, ytr, test=(xte, yte), init_size=20)
    wrapper = Model(LogisticRegression(max_iter=2000), Config(fit={"epochs": 5, "batch_size": 16}))
    loop = ActiveLearningLoop(wrapper, dataset, AcquisitionFunction("max_entropy"), step_size=7, max_rounds=3, seed=5)
    assert wrapper.num_outputs() is None  # unfitted: the label check waits for a prediction
    labelled = set(loop.pool.get_labeled_indices().tolist())
    for step in loop:
        before = np.array(sorted(labelled))
        candidates = np.setdiff1d(np.arange(len(xtr)), before)
        clf = LogisticRegression(max_iter=2000).fit(xtr[before], ytr[before])  # by hand, independently
        scores = entropy(clf.predict_proba(xtr[candidates]))
        expected = candidates[np.argsort(scores)[-7:]]  # top 7, best last (tf_al's order)
        assert step["indices_selected"] == expected.tolist()
        assert step["train"] == {}
        assert step["eval"] == {"accuracy": pytest.approx(np.mean(clf.predict(xte) == yte), abs=1e-12)}
        labelled |= set(expected.tolist())
    assert loop.pool.get_length_labeled() == 20 + 3 * 7
    assert wrapper.num_outputs() == 10


def test_compile_records_the_loss_and_metrics_that_evaluate_reports(digits):
    xtr, ytr, xte, yte = digits
    wrapper = Model(LogisticRegression(max_iter=2000))
    wrapper.fit(xtr[:100], ytr[:100], verbose=False, epochs=3)
    assert wrapper.evaluate(xte, yte) == {"accuracy": pytest.approx(np.mean(wrapper.get_model().predict(xte) == yte))}
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert wrapper.get_metric_names() == ["sparse_categorical_crossentropy", "accuracy"]
    result = wrapper.evaluate(xte, yte)
    probs = np.clip(wrapper.get_model().predict_proba(xte), 1e-7, 1.0)
    assert result["sparse_categorical_crossentropy"] == pytest.approx(-np.mean(np.log(probs[np.arange(len(yte)), yte])),
                                                                      rel=1e-4)
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == yte))
    with pytest.raises(ValueError, match="keyword arguments only"):
        wrapper.compile("adam")


def test_one_probability_column_is_one_sigmoid_unit():
    class Sigmoid:
        def predict_proba(self, x):
            return 1.0 / (1.0 + np.exp(-np.asarray(x)[:, :1]))

    wrapper = Model(Sigmoid())
    x = np.array([[-2.0], [0.5], [3.0]])
    p = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(wrapper.predictive_samples(x, 2), np.repeat(np.hstack([1 - p, p])[:, None], 2, axis=1))
    assert wrapper.num_outputs() == 1
    assert wrapper.evaluate(x, np.array([0, 1, 0])) == {"accuracy": pytest.approx(2 / 3)}


def test_outputs_that_are_not_probabilities_raise_a_clear_error():
    class Labels:  # a classifier without probabilities: its labels count as certainties
        def predict(self, x):
            return np.arange(len(x)) % 2

    np.testing.assert_array_equal(Model(Labels()).predict(np.zeros((4, 2))), [[1, 0], [0, 1], [1, 0], [0, 1]])

    class Grid:
        def predict(self, x):
            return np.zeros((len(x), 2, 2))

    with pytest.raises(ValueError, match=r"Grid.predict returned an array of shape \(4, 2, 2\) for 4 inputs; .*\(N, C\)"):
        Model(Grid()).predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="cannot predict: give it predict_proba"):
        Model(object()).predictive_samples(np.zeros((2, 2)))


# ---------------------------------------------------------------------- (b) numpy MC dropout
def test_mc_dropout_samples_are_one_training_call_each():
    x, _ = blobs(7)
    model = DropoutSoftmax(seed=3)
    reference = copy.deepcopy(model)
    wrapper = McDropout(model)
    samples = wrapper.predictive_samples(x, 5)
    expected = np.stack([reference(x, training=True) for _ in range(5)], axis=1)
    np.testing.assert_array_equal(samples, expected)
    assert samples.shape == (7, 5, CLASSES)
    assert not np.allclose(samples[:, 0], samples[:, 1])  # the samples differ across T
    np.testing.assert_allclose(samples.sum(-1), 1.0)
    # __call__, predict, sample_chunks (chunk by chunk, the object's stream continues)
    assert wrapper(x, sample_size=3).shape == (7, 3, CLASSES)
    np.testing.assert_allclose(wrapper.predict(x, sample_size=4),
                               np.mean([reference(x, training=True) for _ in range(3 + 4)][3:], axis=0))
    chunks = list(wrapper.sample_chunks(x, 2, batch_size=3))
    assert [(a, b, p.shape) for a, b, p in chunks] == [(0, 3, (3, 2, 3)), (3, 6, (3, 2, 3)), (6, 7, (1, 2, 3))]
    assert not wrapper.supports(REDUCED_SCORES)  # no compiled sampler: scores come from sample_chunks
    deterministic = Model(copy.deepcopy(reference)).predictive_samples(x, 3)
    np.testing.assert_array_equal(deterministic, np.repeat(reference(x)[:, None], 3, axis=1))


def test_mc_dropout_without_a_training_keyword_relies_on_the_objects_own_randomness():
    class Noisy:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def predict_proba(self, x):
            logits = self.rng.normal(size=(len(x), 2))
            return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    reference = Noisy()
    samples = McDropout(Noisy()).predictive_samples(np.zeros((4, 1)), 3)
    np.testing.assert_array_equal(samples, np.stack([reference.predict_proba(np.zeros((4, 1))) for _ in range(3)], 1))


def test_bald_with_a_numpy_mc_dropout_model_runs_through_the_loop_as_computed_by_hand():
    x, y = blobs(90, seed=1)
    xte, yte = blobs(30, seed=2)
    initial_model = DropoutSoftmax(seed=4)
    cfg = Config(fit={"epochs": 20, "batch_size": 16}, query={"sample_size": 6}, eval={"sample_size": 6})
    wrapper = McDropout(copy.deepcopy(initial_model), cfg)
    loop = ActiveLearningLoop(wrapper, Dataset(x, y, test=(xte, yte), init_size=6), "bald", step_size=4,
                              max_rounds=2, seed=0)
    labelled = loop.pool.get_labeled_indices()
    for step in loop:
        candidates = np.setdiff1d(np.arange(len(x)), labelled)
        by_hand = copy.deepcopy(initial_model).fit(x[labelled], y[labelled], epochs=20)  # reinit: a fresh copy
        samples = np.stack([by_hand(x[candidates], training=True) for _ in range(6)], axis=1)
        bald = entropy(samples.mean(1)) - entropy(samples).mean(1)
        expected = candidates[np.argsort(bald)[-4:]]
        assert step["indices_selected"] == expected.tolist()
        mean = np.mean([by_hand(xte, training=True) for _ in range(6)], axis=0)
        assert step["eval"] == {"accuracy": pytest.approx(np.mean(mean.argmax(1) == yte))}
        labelled = np.union1d(labelled, expected)


def test_the_label_check_probes_a_model_that_can_predict_before_training():
    x, y = blobs(20)
    with pytest.raises(ValueError, match="outside the model's 3 classes"):
        ActiveLearningLoop(McDropout(DropoutSoftmax()), Dataset(x, y + 2), "random")


# ---------------------------------------------------------------------- (c) reset policies
def test_reinit_sets_a_random_state_derived_from_seed_and_round():
    original = LogisticRegression(random_state=7)
    wrapper = Model(original, reset="reinit")
    states = {}
    for seed in (3, 4):
        wrapper.set_seed(seed)
        for round_index in (1, 2):
            wrapper.reset(round_index=round_index)
            copy_ = wrapper.get_model()
            assert copy_ is not original and not hasattr(copy_, "coef_")
            states[seed, round_index] = copy_.get_params()["random_state"]
            assert states[seed, round_index] == derive_seed(seed, round_index, "weights")
    assert len(set(states.values())) == 4  # rounds and seeds differ
    assert original.get_params()["random_state"] == 7  # the wrapped object is never touched

    pipeline = Model(make_pipeline(StandardScaler(), LogisticRegression(random_state=1)))
    pipeline.set_seed(2)
    pipeline.reset(round_index=3)
    assert pipeline.get_model().get_params()["logisticregression__random_state"] == derive_seed(2, 3, "weights")


def test_reinit_changes_a_random_estimator_between_rounds_initial_does_not():
    x, y = blobs(60)
    fitted = {}
    for policy in ("reinit", "initial"):
        wrapper = Model(RandomForestClassifier(n_estimators=3, random_state=0), reset=policy)
        wrapper.set_seed(0)
        for round_index in (1, 2):
            wrapper.reset(round_index=round_index)
            assert wrapper.get_model().get_params()["random_state"] == (
                derive_seed(0, round_index, "weights") if policy == "reinit" else 0)
            wrapper.fit(x, y)
            fitted[policy, round_index] = wrapper.predictive_samples(x, 1)[:, 0]
    assert not np.array_equal(fitted["reinit", 1], fitted["reinit", 2])
    np.testing.assert_array_equal(fitted["initial", 1], fitted["initial", 2])
    np.testing.assert_array_equal(
        fitted["initial", 1], RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y).predict_proba(x))


def test_initial_starts_each_round_from_an_unfitted_copy_and_warm_keeps_the_trained_object():
    x, y = blobs(30)
    initial = Model(LogisticRegression(random_state=7), reset="initial")
    initial.reset(round_index=1)
    initial.fit(x, y)
    first = initial.get_model()
    initial.reset(round_index=2)
    assert initial.get_model() is not first and not hasattr(initial.get_model(), "coef_")
    assert initial.get_model().get_params()["random_state"] == 7

    warm = Model(LogisticRegression(random_state=7), reset="warm")
    warm.set_seed(5)
    warm.reset(round_index=1)
    assert warm.get_model().get_params()["random_state"] == derive_seed(5, 1, "weights")
    warm.fit(x, y)
    trained, coef = warm.get_model(), warm.get_model().coef_.copy()
    warm.reset(round_index=2)
    assert warm.get_model() is trained
    np.testing.assert_array_equal(warm.get_model().coef_, coef)


def test_an_object_that_cannot_be_copied_needs_reset_warm():
    class Uncopyable(DropoutSoftmax):
        def __deepcopy__(self, memo):
            raise TypeError("no copies")

    with pytest.raises(ValueError, match=r"reset='reinit' starts every round from a copy .* cannot be deep-copied "
                                         r"\(TypeError: no copies\); make it copyable or pass reset='warm'"):
        McDropout(Uncopyable()).reset(round_index=1)
    model = Uncopyable()
    warm = McDropout(model, reset="warm")
    warm.reset(round_index=1)
    assert warm.get_model() is model


# ---------------------------------------------------------------------- (d) fit keywords
def test_fit_passes_only_the_keywords_the_objects_fit_accepts():
    calls = []

    class Narrow(DropoutSoftmax):
        def fit(self, x, y, epochs=1):
            calls.append(("narrow", len(x), epochs))
            return self

    class Wide(DropoutSoftmax):
        def fit(self, x, y, **kwargs):
            calls.append(("wide", len(x), kwargs))

            return SimpleNamespace(history={"loss": [0.5, 0.25]})

    x, y = blobs(12)
    cfg = Config(fit={"epochs": 4, "batch_size": 16})
    assert Model(Narrow(), cfg).fit(x, y, verbose=False).history == {}
    assert Model(Wide(), cfg).fit(x, y, verbose=False, epochs=2).history == {"loss": [0.5, 0.25]}
    assert calls == [("narrow", 12, 4), ("wide", 12, {"epochs": 2, "batch_size": 16, "verbose": False})]
    sklearn = Model(LogisticRegression(), cfg)
    sklearn.fit(x, y, verbose=False)  # LogisticRegression.fit(X, y, sample_weight=None): nothing passed on
    assert sklearn.num_outputs() == CLASSES


def test_fit_without_a_fit_method_raises_when_training_is_asked_for():
    class Fixed:
        def predict_proba(self, x):
            return np.full((len(x), 2), 0.5)

    wrapper = Model(Fixed())
    assert wrapper.predict(np.zeros((3, 1))).tolist() == [[0.5, 0.5]] * 3  # prediction needs no fit
    with pytest.raises(ValueError, match=r"^The wrapped Fixed has no fit\(x, y\) method, so it cannot be trained"):
        wrapper.fit(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="needs inputs and targets"):
        wrapper.fit(np.zeros((3, 1)))


# ---------------------------------------------------------------------- (e) embeddings, joint samples
def test_embeddings_are_the_input_features_and_consistent_samples_need_the_objects_own_method():
    x, y = blobs(5)
    np.testing.assert_array_equal(Model(LogisticRegression()).embeddings(x), x.reshape(len(x), -1))
    features, probs = Model(LogisticRegression().fit(x, y)).embeddings(x, return_probs=True)
    np.testing.assert_array_equal(features, x.reshape(len(x), -1))
    assert probs.shape[0] == len(x)
    with pytest.raises(ValueError, match=r"^BatchBALD and EPIG need consistent samples, which the wrapped "
                                         r"DropoutSoftmax does not give: add a method consistent_samples\("):
        McDropout(DropoutSoftmax()).consistent_samples(x, 4, seed=0)
    model = DropoutSoftmax()
    repeated = Model(model).consistent_samples(x, 3, seed=0)  # deterministic: the prediction repeated
    np.testing.assert_array_equal(repeated, np.repeat(model(x)[:, None], 3, axis=1))


def test_batch_strategies_fail_clearly_in_the_loop_without_them():
    x, y = blobs(30)
    for query, message in (("batch_bald", "BatchBALD and EPIG"),):
        loop = ActiveLearningLoop(McDropout(DropoutSoftmax()), Dataset(x, y, init_size=6), query, step_size=3,
                                  max_rounds=1, seed=0)
        with pytest.raises(ValueError, match=message):
            next(loop)


class WithBlocks(DropoutSoftmax):
    """Gives embeddings (its inputs, scaled) and consistent samples: the masks of sample t come
    from (seed, t) and the feature index alone, so every input shares them."""

    def embeddings(self, x):
        return 2.0 * np.asarray(x)

    def consistent_samples(self, x, sample_size, seed):
        x = np.asarray(x, dtype=np.float64)
        out = []
        for t in range(sample_size):
            keep = np.random.default_rng([seed, t]).random(x.shape[1]) >= self.rate
            z = (x * keep / (1 - self.rate)) @ self.w + self.b
            z = np.exp(z - z.max(1, keepdims=True))
            out.append(z / z.sum(1, keepdims=True))
        return np.stack(out, axis=1)


def test_the_objects_own_embeddings_and_consistent_samples_are_used():
    x, y = blobs(30)
    model = WithBlocks()
    wrapper = McDropout(model)
    features, probs = wrapper.embeddings(x, batch_size=7, return_probs=True)
    np.testing.assert_array_equal(features, 2.0 * x)
    np.testing.assert_allclose(probs, model(x))  # deterministic: training=False
    joint = wrapper.consistent_samples(x, 4, seed=3, batch_size=8)  # chunked: still consistent
    np.testing.assert_allclose(joint, model.consistent_samples(x, 4, 3))
    for query in ("batch_bald", "coreset", "badge"):
        loop = ActiveLearningLoop(McDropout(WithBlocks(), Config(query={"sample_size": 4})),
                                  Dataset(x, y, init_size=6), query, step_size=3, max_rounds=1, seed=0)
        step = next(loop)
        assert len(set(step["indices_selected"])) == 3


# ---------------------------------------------------------------------- (f) state on disk
def test_save_and_load_weights_round_trip(tmp_path):
    x, y = blobs(30)
    wrapper = Model(LogisticRegression(), checkpoint_path=str(tmp_path))
    assert not wrapper.has_save_state()
    wrapper.fit(x, y)
    path = wrapper.save_weights()
    assert path == os.path.join(str(tmp_path), "model.pkl") and wrapper.has_save_state()
    assert sorted(os.listdir(tmp_path)) == ["model.pkl"]  # no temporary file left behind
    restored = Model(LogisticRegression(), checkpoint_path=str(tmp_path))
    restored.load_weights()
    np.testing.assert_array_equal(restored.predict(x), wrapper.get_model().predict_proba(x))


def test_warm_resume_state_goes_through_the_checkpoint_store(tmp_path):
    x, y = blobs(30)
    warm = McDropout(DropoutSoftmax(), reset="warm")
    assert warm.resume_state() is None  # nothing trained yet
    warm.reset(round_index=1)
    warm.fit(x, y, epochs=5)
    store = CheckpointStore(tmp_path)
    checkpoint = Checkpoint(identity="job", run_id="r", tracking_uri="u", experiment_id="e", metrics_dir="m",
                            experiment="x", loop={"round": 1})
    store.save(checkpoint, warm.resume_state())
    resumed = McDropout(DropoutSoftmax(seed=9), reset="warm")
    resumed.restore_resume_state(store.load_model_state(store.load("job")))
    resumed.reset(round_index=2)  # warm: keeps the restored object
    np.testing.assert_array_equal(resumed.get_model().w, warm.get_model().w)
    np.testing.assert_array_equal(resumed.predictive_samples(x, 3), warm.predictive_samples(x, 3))
    assert McDropout(DropoutSoftmax(), reset="reinit").resume_state() is None
    with pytest.raises(ValueError, match="saved by a Keras wrapper"):
        resumed.restore_resume_state({"weights": [np.zeros(2)]})


def test_warm_resume_of_an_unpicklable_object_raises_a_clear_error():
    class Unpicklable(DropoutSoftmax):
        def __reduce__(self):
            raise TypeError("no pickles")

        def __deepcopy__(self, memo):
            return self

    wrapper = McDropout(Unpicklable(), reset="warm")
    wrapper.reset(round_index=1)
    with pytest.raises(ValueError, match=r"pickle, which fails \(TypeError: no pickles\); make it picklable, "
                                         r"use reset='reinit', or run without resume"):
        wrapper.resume_state()


def test_the_wrapper_itself_pickles_and_deep_copies():
    x, _ = blobs(6)
    wrapper = McDropout(DropoutSoftmax(), Config(query={"sample_size": 3}), name="np")
    assert "__reduce_ex__" not in vars(type(wrapper)) and "__reduce__" not in vars(type(wrapper))
    for clone in (pickle.loads(pickle.dumps(wrapper)), copy.deepcopy(wrapper)):
        assert type(clone) is type(wrapper) and clone.get_model_name() == "mc_dropout_np"
        np.testing.assert_array_equal(clone.predictive_samples(x, 2), copy.deepcopy(wrapper).predictive_samples(x, 2))


def test_a_fitted_sklearn_wrapper_round_trips_through_pickle():
    x, y = blobs(30)
    wrapper = Model(LogisticRegression(), Config(fit={}), name="lr", reset="warm")
    wrapper.set_seed(4)
    wrapper.reset(round_index=1)
    wrapper.fit(x, y)
    clone = pickle.loads(pickle.dumps(wrapper))
    assert type(clone) is Model and isinstance(clone, Model) and clone.get_model_name() == "lr"
    assert clone.reset_policy == "warm" and clone.resume_state()["pickle"][0].dtype == np.uint8
    np.testing.assert_array_equal(clone.predict(x), wrapper.predict(x))
    np.testing.assert_array_equal(clone.get_model().coef_, wrapper.get_model().coef_)
    clone.reset(round_index=2)  # warm: the trained object is kept, in the clone too
    np.testing.assert_array_equal(clone.predict(x), wrapper.predict(x))


def test_an_object_wrapper_declares_what_its_object_gives():
    from sklearn.svm import SVC

    x, y = blobs(30)
    svc, mc, proba = Model(SVC().fit(x, y)), McDropout(DropoutSoftmax()), Model(LogisticRegression())
    for wrapper in (svc, mc, proba):
        assert isinstance(wrapper, QueryModel)
        assert wrapper.supports(INDEPENDENT_SAMPLES) and wrapper.supports(EMBEDDINGS)
        assert not wrapper.supports(REDUCED_SCORES) and not wrapper.supports(OWN_SCORER)
    assert [w.supports(DECISION_VALUES) for w in (svc, mc, proba)] == [True, False, False]
    # Consistent samples: a deterministic wrapper repeats its prediction; a stochastic one needs
    # the object's own method.
    assert proba.supports(CONSISTENT_SAMPLES) and not mc.supports(CONSISTENT_SAMPLES)
    assert McDropout(WithBlocks()).supports(CONSISTENT_SAMPLES)
    np.testing.assert_array_equal(svc.decision_values(x), svc.get_model().decision_function(x))
    with pytest.raises(ValueError, match="McDropout does not support reduced_scores"):
        list(mc.reduced_score_chunks(x, 3, reduction=None))
    with pytest.raises(ValueError, match="is not a model capability"):
        from al_experiments.wrapper.interface import supports

        supports(mc, "telepathy")
    assert set(CAPABILITIES) == {INDEPENDENT_SAMPLES, CONSISTENT_SAMPLES, REDUCED_SCORES, EMBEDDINGS,
                                 DECISION_VALUES, OWN_SCORER}
