"""Model / McDropout wrappers: the sample axis is always kept (B7), dropout is stochastic while
BatchNorm statistics are left alone (B18), evaluate returns plain, stateless floats (B10),
integer and one-hot targets both work on Keras 3, and the reset policies behave as documented."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from al_experiments import Config
from al_experiments.wrapper import McDropout, Model
from al_experiments.wrapper.training_protocol import epochs_for_steps

CLASSES = 3
FEATURES = 4


def blobs(n: int = 90, seed: int = 0):
    """Three well separated Gaussian blobs: a tiny network learns them in a few epochs."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    centres = np.eye(CLASSES, FEATURES) * 4.0
    x = (centres[y] + rng.normal(size=(n, FEATURES))).astype(np.float32)
    return x, y


def network(seed: int = 0, dropout: float = 0.5, batchnorm: bool = False):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu")]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Dropout(dropout), keras.layers.Dense(CLASSES, activation="softmax")]
    return keras.Sequential(layers)


def compiled(cls=McDropout, loss="sparse_categorical_crossentropy", metrics=None, seed=0, config=None, **kwargs):
    wrapper = cls(network(seed, batchnorm=kwargs.pop("batchnorm", False)), config, **kwargs)
    if metrics is None:
        metrics = [keras.metrics.SparseCategoricalAccuracy()] if "sparse" in loss else ["accuracy"]
    wrapper.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss, metrics=metrics)
    return wrapper


def weights(wrapper) -> list[np.ndarray]:
    return [np.array(w) for w in wrapper.get_model().get_weights()]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def data():
    return blobs()


@pytest.fixture(scope="module")
def mc(data):
    """A trained McDropout model shared by the read-only tests."""
    wrapper = compiled(seed=1)
    wrapper.reset(round_index=1)
    wrapper.fit(*data, epochs=10, batch_size=16)
    return wrapper


# ---------------------------------------------------------------------- sampling
@pytest.mark.parametrize("samples", [1, 2, 7])
def test_mc_samples_keep_the_sample_axis(mc, data, samples):
    x, _ = data
    probs = mc(x[:11], sample_size=samples)
    assert probs.shape == (11, samples, CLASSES)  # tf_al dropped the T axis for T=1
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert mc.predictive_samples(x[:11], samples, batch_size=4).shape == (11, samples, CLASSES)


def test_mc_samples_chunking_keeps_order(mc, data):
    # A deterministic network (no dropout in the call) must give the same rows whatever the chunk.
    x, _ = data
    plain = Model(mc.get_model())
    whole = plain.predictive_samples(x, 1)
    chunked = plain.predictive_samples(x, 1, batch_size=7)
    np.testing.assert_allclose(whole, chunked, rtol=1e-6, atol=1e-7)


def test_mc_samples_differ_across_t_while_plain_model_is_deterministic(mc, data):
    x, _ = data
    probs = mc(x[:20], sample_size=10)
    spread = probs.std(axis=1).max(axis=-1)
    assert np.all(spread > 0), "every point should see different dropout masks across T"
    # Same network, no dropout: all T copies identical, and identical to Keras' inference output.
    plain = Model(mc.get_model())
    det = plain.predictive_samples(x[:20], 5)
    assert det.shape == (20, 5, CLASSES)
    np.testing.assert_array_equal(det, det[:, :1].repeat(5, axis=1))
    expected = np.asarray(mc.get_model()(x[:20], training=False))
    np.testing.assert_allclose(det[:, 0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(plain.predictive_samples(x[:20], 1), det[:, :1])


def test_query_functions_score_with_one_sample(mc, data):
    x, _ = data
    for name in ("max_entropy", "bald", "max_var_ratio", "std_mean"):
        scores = mc.get_query_fn(name)(x, sample_size=1)
        assert scores.shape == (len(x),) and np.all(np.isfinite(scores))
    # With one sample there is no disagreement between passes: BALD and std_mean are 0.
    np.testing.assert_allclose(mc.get_query_fn("bald")(x, sample_size=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(mc.get_query_fn("std_mean")(x, sample_size=1), 0.0, atol=1e-7)
    assert mc.get_query_fn("random") is None


def test_bad_sample_size_raises(mc, data):
    with pytest.raises(ValueError, match="sample_size"):
        mc(data[0], sample_size=0)


def test_uncompiled_network_can_be_sampled(data):
    wrapper = McDropout(network(3))
    assert wrapper(data[0][:5], sample_size=3).shape == (5, 3, CLASSES)
    with pytest.raises(ValueError, match="not compiled"):
        wrapper.fit(*data)


def test_batchnorm_statistics_untouched_by_mc_sampling(data):
    x, y = data
    wrapper = compiled(seed=2, batchnorm=True)
    wrapper.reset(round_index=1)
    bn = next(l for l in wrapper.get_model().layers if isinstance(l, keras.layers.BatchNormalization))
    before_fit = [np.array(bn.moving_mean), np.array(bn.moving_variance)]
    wrapper.fit(x, y, epochs=3, batch_size=16)
    trained = [np.array(bn.moving_mean), np.array(bn.moving_variance)]
    assert not np.allclose(before_fit[0], trained[0]), "training must move the statistics"

    probs = wrapper(x * 3.0 + 5.0, sample_size=10)  # shifted inputs: batch stats would differ
    wrapper.get_query_fn("bald")(x * 3.0 + 5.0, sample_size=5)
    wrapper.evaluate(x, y, sample_size=5)
    np.testing.assert_array_equal(np.array(bn.moving_mean), trained[0])  # tf_al: updated (B18)
    np.testing.assert_array_equal(np.array(bn.moving_variance), trained[1])
    assert bn.trainable, "the BatchNorm layer must be trainable again after sampling"
    assert np.all(probs.std(axis=1).max(-1) > 0), "dropout must still vary the output"

    # And BatchNorm ran in inference mode: with dropout off (plain Model over the same network)
    # the samples equal Keras' training=False output.
    det = Model(wrapper.get_model()).predictive_samples(x[:10], 1)[:, 0]
    np.testing.assert_allclose(det, np.asarray(wrapper.get_model()(x[:10], training=False)), rtol=1e-5, atol=1e-6)


def test_batchnorm_runs_in_inference_mode_during_mc_sampling(data):
    x, y = data
    keras.utils.set_random_seed(12)
    net = keras.Sequential([
        keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.BatchNormalization(), keras.layers.Dropout(0.0),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ])
    wrapper = McDropout(net)
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    wrapper.reset(round_index=1)
    wrapper.fit(x, y, epochs=2)
    # No dropout, so the only thing training=True could change is BatchNorm: with batch
    # statistics the output would depend on the batch; in inference mode it equals Keras' output.
    shifted = x * 2.0 + 1.0
    probs = wrapper(shifted, sample_size=3)
    expected = np.asarray(net(shifted, training=False))
    for t in range(3):
        np.testing.assert_allclose(probs[:, t], expected, rtol=1e-5, atol=1e-6)
    batch_stats = np.asarray(net(shifted, training=True))
    assert not np.allclose(batch_stats, expected, atol=1e-3)  # the test would notice training mode


# ---------------------------------------------------------------------- evaluate
def test_evaluate_gives_plain_floats_matching_hand_computation_and_is_stateless(data):
    x, y = data
    wrapper = compiled(cls=Model, seed=4)
    wrapper.reset(round_index=1)
    wrapper.fit(x[:30], y[:30], epochs=2, batch_size=8)

    def by_hand(xs, ys):
        probs = np.asarray(wrapper.get_model()(xs, training=False), dtype=np.float64)
        loss = -np.mean(np.log(np.clip(probs[np.arange(len(ys)), ys], 1e-7, 1.0)))
        return loss, np.mean(probs.argmax(1) == ys)

    first = wrapper.evaluate(x[:40], y[:40])
    assert list(first) == ["sparse_categorical_crossentropy", "sparse_categorical_accuracy"]
    assert all(type(v) is float for v in first.values())
    loss, acc = by_hand(x[:40], y[:40])
    assert first["sparse_categorical_crossentropy"] == pytest.approx(loss, rel=1e-4)
    assert first["sparse_categorical_accuracy"] == pytest.approx(acc, abs=1e-9)

    # A second data set, then the first again: nothing accumulates between calls (B10).
    other = wrapper.evaluate(x[40:], y[40:], sample_size=3, batch_size=7)  # eval keys accepted
    loss_b, acc_b = by_hand(x[40:], y[40:])
    assert other["sparse_categorical_accuracy"] == pytest.approx(acc_b, abs=1e-9)
    assert other["sparse_categorical_crossentropy"] == pytest.approx(loss_b, rel=1e-4)
    assert wrapper.evaluate(x[:40], y[:40]) == pytest.approx(first)


def test_mc_evaluate_reports_loss_and_metrics(mc, data):
    x, y = data
    result = mc.evaluate(x, y, sample_size=4)
    assert list(result) == ["sparse_categorical_crossentropy", "sparse_categorical_accuracy"]
    assert all(type(v) is float for v in result.values())
    assert 0.0 <= result["sparse_categorical_accuracy"] <= 1.0
    assert result["sparse_categorical_crossentropy"] > 0.0
    assert mc.get_metric_names() == list(result)
    with pytest.raises(ValueError, match="one target per input"):
        mc.evaluate(x, y[:-1])


# ---------------------------------------------------------------------- target formats
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
@pytest.mark.parametrize("one_hot", [False, True], ids=["int", "onehot"])
@pytest.mark.parametrize("keras_fit", [False, True], ids=["compiled", "kerasfit"])
def test_integer_and_one_hot_targets_train_and_evaluate(data, loss, one_hot, keras_fit):
    x, y = data
    targets = np.eye(CLASSES, dtype=np.float32)[y] if one_hot else y
    wrapper = compiled(loss=loss, seed=5)
    wrapper.reset(round_index=1)
    extra = {"callbacks": [keras.callbacks.History()]} if keras_fit else {}
    history = wrapper.fit(x, targets, epochs=15, batch_size=16, **extra)
    assert (wrapper.backend.trainer is None) == keras_fit
    losses = history.history["loss"]
    assert len(losses) == 15 and losses[-1] < losses[0]
    result = wrapper.evaluate(x, targets, sample_size=5)
    assert list(result)[0] == loss
    accuracy = list(result.values())[1]
    assert accuracy > 0.8, result  # separable blobs; chance is 1/3


# ---------------------------------------------------------------------- training paths
def test_compiled_trainer_reduces_loss_and_reports_per_epoch_lists(data):
    x, y = data
    wrapper = compiled(seed=6, config=Config(fit={"epochs": 12, "batch_size": 16}))
    wrapper.reset(round_index=1)
    history = wrapper.fit(x, y)  # epochs and batch size from the config
    assert wrapper.backend.trainer is not None, "the compiled trainer should handle a plain fit"
    assert set(history.history) == {"loss", "sparse_categorical_accuracy"}
    assert all(len(v) == 12 for v in history.history.values())
    assert all(type(v) is float for v in history.history["loss"])
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["sparse_categorical_accuracy"][-1] > 0.8
    # Explicit arguments win over the config.
    assert len(wrapper.fit(x, y, epochs=2).history["loss"]) == 2


def test_fit_with_keras_callback_falls_back_to_keras_fit(data):
    x, y = data

    class CountEpochs(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            CountEpochs.epochs += 1

    wrapper = compiled(seed=7, config=Config(fit={"epochs": 4, "batch_size": 16}))
    wrapper.reset(round_index=1)
    history = wrapper.fit(x, y, callbacks=[CountEpochs()])
    assert CountEpochs.epochs == 4
    assert wrapper.backend.trainer is None
    assert len(history.history["loss"]) == 4
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert wrapper.evaluate(x, y)["sparse_categorical_accuracy"] > 0.6


@pytest.mark.parametrize(("size", "batch", "epochs", "min_steps", "expected"), [
    (20, 32, 50, 500, 500),   # one step an epoch: 500 epochs
    (40, 32, 50, 500, 250),   # two steps an epoch
    (100, 32, 50, 500, 125),  # four (the last one partial)
    (2000, 32, 50, 500, 50),  # 63 steps an epoch: the epochs already give 3150 steps
])
def test_epochs_for_a_step_budget(size, batch, epochs, min_steps, expected):
    assert epochs_for_steps(size, batch, epochs, min_steps) == expected
    assert epochs_for_steps(size, batch, epochs, min_steps) * math.ceil(size / batch) >= min_steps


def test_min_steps_sets_the_epochs_of_both_training_paths(data):
    x, y = data[0][:20], data[1][:20]
    wrapper = compiled(seed=6, config=Config(fit={"epochs": 3, "batch_size": 8, "min_steps": 15}))
    wrapper.reset(round_index=1)
    assert len(wrapper.fit(x, y).history["loss"]) == 5  # 3 steps an epoch, at least 15 steps
    assert len(wrapper.fit(x, y, min_steps=None).history["loss"]) == 3

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.count = epoch + 1

    counter = CountEpochs()
    wrapper.fit(x, y, callbacks=[counter])  # Keras' own fit: the same budget
    assert counter.count == 5


def test_fit_argument_errors(mc, data):
    with pytest.raises(ValueError, match="inputs and targets"):
        mc.fit(data[0])
    with pytest.raises(ValueError, match="keyword arguments only"):
        mc.compile("adam")


# ---------------------------------------------------------------------- reset policies
def test_reinit_gives_new_weights_per_round_and_same_weights_per_seed_and_round():
    a = compiled(seed=8)
    a.set_seed(3)
    a.reset(round_index=1)
    w1 = weights(a)
    a.reset(round_index=2)
    w2 = weights(a)
    assert not same(w1, w2)
    a.reset(round_index=1)
    assert same(weights(a), w1)

    b = compiled(seed=99)  # another object, other Keras initial weights: same (seed, round)
    b.set_seed(3)
    b.reset(round_index=2)
    assert same(weights(b), w2)
    b.set_seed(4)
    b.reset(round_index=2)
    assert not same(weights(b), w2)


def test_warm_keeps_weights_after_round_one(data):
    x, y = data
    wrapper = compiled(seed=9, reset="warm")
    wrapper.set_seed(1)
    wrapper.reset(round_index=1)
    wrapper.fit(x, y, epochs=2)
    trained = weights(wrapper)
    iterations = int(wrapper.get_model().optimizer.iterations)
    assert iterations > 0
    wrapper.reset(round_index=2)
    assert same(weights(wrapper), trained)
    assert int(wrapper.get_model().optimizer.iterations) == iterations


def test_initial_policy_restores_the_first_weights(data):
    x, y = data
    wrapper = compiled(seed=10, reset="initial")
    start = weights(wrapper)
    wrapper.reset(round_index=1)
    wrapper.fit(x, y, epochs=2)
    assert not same(weights(wrapper), start)
    wrapper.reset(round_index=2)
    assert same(weights(wrapper), start)


def test_unknown_reset_policy_raises():
    with pytest.raises(ValueError, match=r"^reset='sometimes' is invalid: it must be one of 'reinit', 'initial', 'warm'\.$"):
        McDropout(network(), reset="sometimes")


MODEL_ACCEPTS = ("checkpoint, checkpoint_path, classification, config, embedding_layer, fast_fit, "
                 "is_binary, model, model_type, name, reset, verbose, xla")


@pytest.mark.parametrize("cls", [Model, McDropout])
def test_unknown_keyword_raises_type_error_naming_it_and_the_accepted_ones(cls):
    """tf_al (and this wrapper until now) dropped unknown keywords: reset="warm" misspelt ran
    as reinit. Now it is a TypeError that names the argument, lists every accepted keyword
    (the signature's and those read from **kwargs) sorted, and suggests the closest one."""
    with pytest.raises(TypeError) as err:
        cls(network(), rest="warm")
    assert str(err.value) == (
        f"{cls.__name__} got an unexpected keyword argument 'rest'; it accepts: {MODEL_ACCEPTS}. "
        "Did you mean 'reset'?"
    )
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'zzz'; it accepts: checkpoint, .*, verbose, xla\.$"):
        cls(network(), zzz=1)  # nothing close: no suggestion


def test_every_documented_keyword_is_still_accepted(tmp_path):
    wrapper = McDropout(network(), Config(), name="n", model_type="mc", checkpoint=None, verbose=False,
                        checkpoint_path=str(tmp_path), classification=True, is_binary=False,
                        reset="warm", fast_fit=False, xla=False, embedding_layer=None)
    assert (wrapper.reset_policy, wrapper.fast_fit, wrapper.xla, wrapper.get_model_name()) == ("warm", False, False, "mc_n")


def test_a_user_subclass_lists_its_own_keywords():
    class Tempered(McDropout):
        def __init__(self, model, config=None, temperature=1.0, **kwargs):
            super().__init__(model, config, **kwargs)
            self.temperature = temperature

    assert Tempered(network(), temperature=2.0, reset="initial").temperature == 2.0
    with pytest.raises(TypeError, match=r"Tempered got an unexpected keyword argument 'temperture'; "
                                        r"it accepts: .*, reset, temperature, verbose, xla\. Did you mean 'temperature'\?"):
        Tempered(network(), temperture=2.0)


def test_optimizer_state_is_reset_between_rounds_under_reinit(data):
    x, y = data
    wrapper = compiled(seed=11)
    wrapper.set_seed(2)
    wrapper.reset(round_index=1)
    optimizer = wrapper.get_model().optimizer
    fresh = [np.array(v) for v in optimizer.variables]
    first = wrapper.fit(x, y, epochs=3, batch_size=16).history
    assert int(optimizer.iterations) == 3 * 6
    assert any(not np.array_equal(np.array(v), f) for v, f in zip(optimizer.variables, fresh))

    wrapper.reset(round_index=2)
    assert int(optimizer.iterations) == 0
    assert all(np.array_equal(np.array(v), f) for v, f in zip(optimizer.variables, fresh))

    # Round 1 again: same weights, same optimizer state, same shuffling -> the same training.
    wrapper.fit(x, y, epochs=3, batch_size=16)
    wrapper.reset(round_index=1)
    again = wrapper.fit(x, y, epochs=3, batch_size=16).history
    np.testing.assert_allclose(again["loss"], first["loss"], rtol=1e-5)


def test_model_names_and_config_sections():
    cfg = Config(fit={"epochs": 3}, query={"sample_size": 4})
    wrapper = McDropout(network(), cfg, name="small")
    assert wrapper.get_model_name() == "mc_dropout_small"
    assert wrapper.get_model_name(prefix=False) == "mc_dropout"
    assert Model(network()).get_model_name() == "model"
    section = wrapper.get_config_for("query")
    section["step_size"] = 10
    assert cfg["query"] == {"sample_size": 4}  # a copy: the user's Config is never mutated
    assert wrapper.get_config_for("eval") == {}
    with pytest.raises(ValueError, match="Config"):
        McDropout(network(), {"fit": {}})


def test_evaluate_with_a_from_logits_loss_is_on_probabilities(data):
    """A logits network with from_logits=True: evaluation works on softmax probabilities, so the
    loss must not apply a second softmax."""
    x, y = data
    keras.utils.set_random_seed(13)
    net = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
    wrapper = Model(net)
    wrapper.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent")])
    logits = np.asarray(net(x), dtype=np.float64)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[np.arange(len(y)), y]))
    np.testing.assert_allclose(wrapper.predict(x), probs, rtol=1e-5)
    result = wrapper.evaluate(x, y)
    assert result["sparse_categorical_crossentropy"] == pytest.approx(expected, rel=1e-4)
    assert result["xent"] == pytest.approx(expected, rel=1e-4)
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))


def test_config_defaults_and_access():
    cfg = Config(fit=None, eval={"sample_size": 3}, defaults={"fit": {"epochs": 5}, "query": {"sample_size": 2}})
    assert cfg["fit"] == {"epochs": 5} and cfg["query"] == {"sample_size": 2}
    assert cfg["eval"] == {"sample_size": 3}  # given values win over defaults
    assert "fit" in cfg and "optim" not in cfg
    cfg["fit"]["epochs"] = 9
    assert cfg["defaults"]["fit"] == {"epochs": 5}  # defaults are copied, not shared
    assert cfg.section("missing") == {}
    with pytest.raises(KeyError):
        cfg["missing"]
    with pytest.raises(ValueError, match="defaults"):
        Config(defaults=[1, 2])


class SubclassedNet(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.dropout = keras.layers.Dropout(0.5)
        self.out = keras.layers.Dense(CLASSES, activation="softmax")

    def call(self, x, training=False):
        return self.out(self.dropout(self.hidden(x), training=training))


def test_subclassed_keras_model_trains_samples_and_resets(data):
    """tf_al's clone_model could not handle subclassed models; the wrapper needs no clone."""
    from al_experiments import ActiveLearningLoop, Dataset

    x, y = data
    keras.utils.set_random_seed(14)
    net = SubclassedNet()
    net(x[:1])  # built once, as Keras requires before weights exist
    wrapper = McDropout(net, Config(fit={"epochs": 10, "batch_size": 16}, query={"sample_size": 3}))
    wrapper.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    assert wrapper.num_outputs() == CLASSES
    assert wrapper(x[:5], sample_size=4).shape == (5, 4, CLASSES)
    loop = ActiveLearningLoop(wrapper, Dataset(x, y, test=(x, y), init_size=30), "bald",
                              step_size=5, max_rounds=2, seed=0)
    history = loop.run()
    assert [len(s["indices_selected"]) for s in history] == [5, 5]
    assert history[-1]["eval"]["accuracy"] > 0.6
    wrapper.reset(round_index=1)
    first = weights(wrapper)
    wrapper.reset(round_index=2)
    assert not same(first, weights(wrapper))


def test_an_unbuilt_subclassed_model_is_built_from_the_data_and_trained_for_a_round(data):
    """As Keras' own fit does (and tf_al's tests relied on): a network never called is built
    on first use, from the pool's inputs at the first reset."""
    from al_experiments import ActiveLearningLoop, Dataset

    x, y = data
    keras.utils.set_random_seed(15)
    net = SubclassedNet()
    wrapper = McDropout(net, Config(fit={"epochs": 5, "batch_size": 16}, query={"sample_size": 3}))
    wrapper.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    assert not net.built and wrapper.num_outputs() is None  # not known before any data
    loop = ActiveLearningLoop(wrapper, Dataset(x, y, test=(x, y), init_size=30), "bald",
                              step_size=5, max_rounds=1, seed=0)
    (step,) = list(loop)
    assert net.built and wrapper.num_outputs() == CLASSES
    assert len(step["indices_selected"]) == 5 and 0.0 <= step["eval"]["accuracy"] <= 1.0
    assert step["train"]["loss"][-1] < step["train"]["loss"][0]  # it trained


def test_an_unbuilt_network_is_built_by_predicting_before_any_round(data):
    x, _ = data
    net = SubclassedNet()
    wrapper = Model(net)
    with pytest.raises(ValueError, match="not compiled"):
        wrapper.evaluate(x[:4], np.zeros(4))
    assert wrapper.predict(x[:6]).shape == (6, CLASSES) and net.built
    np.testing.assert_allclose(wrapper.predict(x[:6]), np.asarray(net(x[:6], training=False)), rtol=1e-5, atol=1e-6)


def test_one_unbounded_number_per_input_is_refused_for_bald(data):
    """tf_al scored BALD on whatever predict returned; a network with one linear output unit
    gives numbers that are no probabilities, and the scores would be garbage: refused."""
    from al_experiments import ActiveLearningLoop, Dataset

    x, y = data
    keras.utils.set_random_seed(16)
    net = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dropout(0.5),
                            keras.layers.Dense(1, bias_initializer=keras.initializers.Constant(5.0))])  # unbounded
    wrapper = McDropout(net, Config(fit={"epochs": 1, "batch_size": 16}, query={"sample_size": 3}))
    wrapper.compile(optimizer=keras.optimizers.SGD(1e-9), loss="mse")  # outputs stay near 5
    loop = ActiveLearningLoop(wrapper, Dataset(x, y % 2, init_size=20), "bald",
                              step_size=5, max_rounds=1, seed=0)
    with pytest.raises(ValueError, match=r"query functions need probabilities in \[0, 1\]; got values in"):
        next(loop)


def test_a_warm_state_resumed_into_an_unbuilt_network_is_restored_once_the_data_builds_it(data):
    from al_experiments import Pool

    x, y = data
    pool = Pool(x, y)

    def warm_wrapper():
        wrapper = McDropout(SubclassedNet(), Config(fit={"epochs": 2, "batch_size": 16}), reset="warm")
        wrapper.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
        return wrapper

    trained = warm_wrapper()
    trained.reset(pool, round_index=1)
    trained.fit(x[:30], y[:30])
    state = trained.resume_state()
    resumed = warm_wrapper()
    resumed.restore_resume_state(state)  # nothing to put the weights in yet
    assert not resumed.get_model().built
    resumed.reset(pool, round_index=2)  # built from the pool, then restored; warm keeps them
    assert same(weights(resumed), [np.array(w) for w in state["weights"]])
