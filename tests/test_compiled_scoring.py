"""The compiled hot paths of issue 4: query scores reduced inside the sampler agree with the
numpy query functions, Sequential networks share their deterministic leading layers across MC
samples without changing what is sampled, the trainer traces once however the labelled set
grows, and the compiled weight redraw is the draw an integer seed gives."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _keras_forms import APIS, build

from al_experiments.acquisition import get_query, register_query, scores, unregister_query
from al_experiments.acquisition.graph_scores import graph_reduction, reduce_with_checks
from al_experiments.wrapper import McDropout, Model
from al_experiments.wrapper import sampling
from al_experiments.wrapper.sampling import Sampler, deterministic_prefix, keep_mask
from al_experiments.wrapper.training import Trainer
from al_experiments.wrapper.reset import WeightResetter

BUILTINS = ["max_entropy", "bald", "max_var_ratio", "std_mean", "variation_ratio", "margin", "least_confidence"]


def dirichlet_samples(n=200, t=7, c=4, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, 0.5), size=(n, t))
    probs[:5] = np.eye(c)[rng.integers(0, c, size=(5, 1))]  # exact zeros and ones: 0 log 0
    probs[5:10] = 1.0 / c  # ties everywhere
    return probs.astype(np.float32)


@pytest.mark.parametrize("name", BUILTINS)
def test_graph_reduction_matches_the_numpy_query_function(name):
    probs = dirichlet_samples()
    strategy = get_query(name)
    reduction = graph_reduction(strategy, probs.shape[-1])
    assert reduction is not None
    scores, checks = reduce_with_checks(probs, reduction)
    np.testing.assert_allclose(scores.numpy(), strategy.scores(probs), rtol=0, atol=1e-12)
    assert checks.numpy()[0] == 0


def test_graph_reduction_is_not_used_where_numpy_must_answer():
    assert graph_reduction(get_query("random"), 3) is None
    assert graph_reduction(get_query("margin"), 1) is None  # numpy raises a clear error there

    def my_scores(probs):
        return probs.mean(axis=(1, 2))

    register_query("bald", my_scores, overwrite=True)
    try:
        assert graph_reduction(get_query("bald"), 3) is None
    finally:
        unregister_query("bald")
        register_query("bald", scores.bald)
    assert graph_reduction(get_query("bald"), 3) is not None


def mlp(dropout=0.5, seed=0, classes=3, features=4, first=None):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((features,))]
    if first is not None:
        layers.append(first)
    layers += [keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(dropout),
               keras.layers.Dense(classes, activation="softmax")]
    return keras.Sequential(layers)


def gal_cnn():
    return keras.Sequential([
        keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Dropout(0.25), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
        keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="softmax"),
    ])


class Doubling(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def test_deterministic_prefix_stops_at_the_first_layer_it_cannot_vouch_for():
    assert deterministic_prefix(gal_cnn()) == 3
    assert deterministic_prefix(mlp()) == 1
    assert deterministic_prefix(mlp(first=keras.layers.Dropout(0.1))) == 0
    assert deterministic_prefix(mlp(first=Doubling())) == 0
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dropout(0.5)(inputs)))
    assert deterministic_prefix(functional) == 0
    # A functional graph that is a chain has the Sequential network's prefix; one that branches
    # (a residual addition) has none, and neither has a subclassed network.
    assert deterministic_prefix(functional_chain(gal_cnn())) == 3
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    residual = keras.layers.Add()([inputs, keras.layers.Dropout(0.5)(hidden)])
    assert deterministic_prefix(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(residual))) == 0
    assert sampling.chain_layers(build("subclassed", (4,), [keras.layers.Dense(3, activation="softmax")])) is None


def functional_chain(net: keras.Sequential) -> keras.Model:
    """The layers of ``net`` (the same objects, so the same weights and seed generators) called
    one after the other in a functional graph."""
    inputs = keras.Input(net.inputs[0].shape[1:])
    x = inputs
    for layer in net.layers:
        x = layer(x)
    return keras.Model(inputs, x)


def test_a_functional_chain_samples_exactly_as_its_sequential_network():
    """Same layers, same dropout generators: the chain runs the Sequential path, shared prefix
    and one pass of masks over it, so it draws the very same samples."""
    net = gal_cnn()
    chain = functional_chain(net)
    x = np.random.default_rng(1).random((30, 12, 12, 1), dtype=np.float32)
    generators = [layer.seed_generator for layer in net.layers if isinstance(layer, keras.layers.Dropout)]
    states = [np.array(g.state) for g in generators]
    sequential = Sampler(net, stochastic=True).sample(x, 6)
    for generator, state in zip(generators, states):
        generator.state.assign(state)
    functional = Sampler(chain, stochastic=True)
    assert functional.prefix_layers == 3
    np.testing.assert_array_equal(functional.sample(x, 6), sequential)


def test_shared_prefix_without_dropout_gives_the_deterministic_prediction():
    net = gal_cnn()
    for layer in net.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    x = np.random.default_rng(1).random((30, 12, 12, 1), dtype=np.float32)
    shared = Sampler(net, stochastic=True)
    assert shared.prefix_layers == 3
    samples = shared.sample(x, 5)
    expected = np.asarray(net(x, training=False))
    np.testing.assert_allclose(samples, np.repeat(expected[:, None], 5, axis=1), atol=1e-6)


def test_shared_prefix_samples_the_same_distribution_as_full_passes():
    net = mlp(seed=3)
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    shared = Sampler(net, stochastic=True).sample(x, 4000)
    full = Sampler(net, stochastic=True, share_prefix=False).sample(x, 4000)
    assert Sampler(net, stochastic=True, share_prefix=False).prefix_layers == 0
    # Independent masks per sample: the T samples of one point differ.
    assert np.unique(shared[0].round(6), axis=0).shape[0] > 100
    # Same mean and spread per point and class (4000 samples: standard errors below 0.01).
    np.testing.assert_allclose(shared.mean(axis=1), full.mean(axis=1), atol=0.03)
    np.testing.assert_allclose(shared.std(axis=1), full.std(axis=1), atol=0.03)


def compiled_wrapper(cls=Model, net=None):
    wrapper = cls(net if net is not None else mlp(seed=5))
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return wrapper


@pytest.mark.parametrize("name", BUILTINS)
def test_model_query_fn_scores_equal_numpy_scores_of_the_same_samples(name):
    wrapper = compiled_wrapper()  # deterministic: both paths see the same probabilities
    x = np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)
    scores = wrapper.get_query_fn(name)(x, sample_size=3, batch_size=16)
    expected = get_query(name).scores(wrapper.predictive_samples(x, 3))
    np.testing.assert_allclose(scores, expected, atol=1e-9)


def test_compiled_scoring_reports_non_finite_outputs_like_the_numpy_check():
    wrapper = compiled_wrapper(McDropout)
    net = wrapper.get_model()
    net.set_weights([np.full_like(w, np.nan) for w in net.get_weights()])
    x = np.ones((10, 4), dtype=np.float32)
    classes = net.outputs[0].shape[-1]
    with pytest.raises(ValueError, match=rf"non-finite probabilities.*shape \(10, 4, {classes}\)"):
        wrapper.get_query_fn("bald")(x, sample_size=4)


def test_one_logit_unit_is_read_through_a_sigmoid():
    """A binary network with one logit and from_logits=True: its probability is the sigmoid of
    the logit (a softmax over one column would be 1 everywhere)."""
    keras.utils.set_random_seed(4)
    logits_net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    sigmoid_net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    sigmoid_net.set_weights(logits_net.get_weights())
    with_logits, with_sigmoid = Model(logits_net), Model(sigmoid_net)
    with_logits.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    with_sigmoid.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.random.default_rng(5).normal(size=(30, 4)).astype(np.float32)
    expected = 1.0 / (1.0 + np.exp(-np.asarray(logits_net(x), dtype=np.float64)))
    assert np.ptp(expected) > 0.1  # the check below could not pass by a constant
    np.testing.assert_allclose(with_sigmoid.predict(x), with_logits.predict(x), rtol=1e-5)
    np.testing.assert_allclose(with_logits.predict(x)[..., -1].reshape(-1), expected.reshape(-1), rtol=1e-5)
    np.testing.assert_allclose(with_logits.get_query_fn("max_entropy")(x, sample_size=1),
                               with_sigmoid.get_query_fn("max_entropy")(x, sample_size=1), rtol=1e-5)


def test_a_user_query_function_is_scored_from_the_samples():
    seen = []

    def first_class(probs):
        seen.append(probs.shape)
        return probs[:, :, 0].mean(axis=1)

    register_query("first_class_test", first_class)
    try:
        wrapper = compiled_wrapper(McDropout)
        x = np.zeros((12, 4), dtype=np.float32)
        scores = wrapper.get_query_fn("first_class_test")(x, sample_size=3, batch_size=5)
    finally:
        unregister_query("first_class_test")
    assert scores.shape == (12,) and seen == [(5, 3, 3), (5, 3, 3), (2, 3, 3)]


def test_trainer_traces_once_while_the_labelled_set_grows():
    net = mlp(seed=4)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trainer = Trainer(net, "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    for n in (20, 30, 41):
        trainer.fit(rng.normal(size=(n, 4)).astype(np.float32), rng.integers(0, 3, n), epochs=2, batch_size=8, seed=n)
    (fn,) = trainer._train_fns.values()
    assert trainer.uses_xla
    assert fn.experimental_get_tracing_count() == 1
    assert trainer._xla_chunk.experimental_get_tracing_count() == 1


def test_compiled_redraw_is_the_integer_seed_draw_and_reseeds_dropout():
    net = mlp(seed=6)
    resetter = WeightResetter(net)
    resetter.redraw(12345)
    resetter.redraw(777)  # a second call reuses the compiled function
    kernel_init = net.layers[0].kernel_initializer
    expected = kernel_init.__class__.from_config({**kernel_init.get_config(), "seed": 777 * 1_000_003 % 2**31})
    np.testing.assert_array_equal(np.asarray(net.layers[0].kernel), np.asarray(expected((4, 16))))
    np.testing.assert_array_equal(np.asarray(net.layers[0].bias), 0.0)
    state = np.asarray(net.layers[1].seed_generator.state)
    positions = list(net._flatten_layers(include_self=True))
    assert state[0] == (777 * 7919 + positions.index(net.layers[1])) % 2**31 and state[1] == 0


def test_a_round_samples_each_set_once():
    """Validation, pool and test are each passed through the network once per round (the scores
    and the reported metrics come from those samples); nothing is sampled twice."""
    from al_experiments import ActiveLearningLoop, Config, Dataset

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(260, 4)).astype(np.float32), np.arange(260) % 3
    dataset = Dataset(x[:200], y[:200], test=(x[200:240], y[200:240]), val=(x[240:], y[240:]), init_size=15)
    config = Config(fit={"epochs": 2, "batch_size": 8}, query={"sample_size": 4}, eval={"sample_size": 4})
    wrapper = McDropout(mlp(seed=7), config)
    wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loop = ActiveLearningLoop(wrapper, dataset, "bald", step_size=5, max_rounds=2, seed=0)
    sampler = wrapper.backend.sampler(True)
    passes = []
    original = sampler._chunked

    def counting(inputs, *args, **kwargs):
        passes.append(len(inputs))
        yield from original(inputs, *args, **kwargs)

    sampler._chunked = counting
    loop.step()
    assert sorted(passes) == sorted([20, 200 - 15, 40])
    passes.clear()
    loop.step()
    assert sorted(passes) == sorted([20, 200 - 20, 40])


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("rate", [0.5, 0.25, 0.1])  # random bytes (k / 256) and random floats
def test_sampled_dropout_keeps_what_keras_dropout_keeps_and_scales_it_alike(rate, api, monkeypatch):
    """The sampler applies a plain Dropout layer itself (its masks from random bytes where the
    rate allows), whichever Keras API built the network; every element must be kept
    independently with probability 1 - rate and scaled by 1 / (1 - rate), as Keras' own
    training pass does."""
    net = build(api, (400,), [keras.layers.Dropout(rate), keras.layers.Dropout(rate)])
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(5, 400)).astype(np.float32)
    own_masks = []
    monkeypatch.setattr(sampling, "keep_mask", lambda *args: own_masks.append(args) or keep_mask(*args))
    ours = Sampler(net, stochastic=True).sample(x, 400)  # (5, 400 samples, 400 features)
    assert len(own_masks) == 2  # both layers' masks are the sampler's own, drawn while tracing
    # Keras' own training pass, once over every row repeated 400 times: each row of a batch gets
    # its own mask, so the batch holds 400 independent samples of each input
    theirs = np.asarray(net(np.repeat(x, 400, axis=0), training=True)).reshape(5, 400, 400)
    kept = 1 - (1 - (1 - rate) ** 2)
    scale = 1 / (1 - rate) ** 2
    for samples in (ours, theirs):
        # 800,000 elements: the kept fraction within 0.005 (over 8 standard errors).
        assert abs(np.mean(samples != 0) - kept) < 0.005
        np.testing.assert_allclose(np.unique(samples[0, :, 0]), [0, x[0, 0] * scale], rtol=1e-6)
    # Independent decisions: the masks of two features, and of two samples, are uncorrelated.
    on = ours[0] != 0
    assert abs(np.corrcoef(on[:, 0], on[:, 1])[0, 1]) < 0.15
    assert abs(np.corrcoef(on[0], on[1])[0, 1]) < 0.15


def test_sampled_dropout_follows_the_layer_seed_generators():
    """Reseeding the dropout layers (what a round's reset does) repeats the same samples."""
    net = mlp(seed=3)
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    sampler = Sampler(net, stochastic=True)
    generators = [layer.seed_generator for layer in net.layers if isinstance(layer, keras.layers.Dropout)]
    states = [np.array(g.state) for g in generators]
    first, second = sampler.sample(x, 8), sampler.sample(x, 8)
    assert not np.array_equal(first, second)
    for generator, state in zip(generators, states):
        generator.state.assign(state)
    np.testing.assert_array_equal(sampler.sample(x, 8), first)


@pytest.mark.parametrize("layers, shape, widest", [
    (lambda: [keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.5),
              keras.layers.Dense(10, activation="softmax")], (64,), 128),
    (lambda: [keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dropout(0.5),
              keras.layers.Dense(10, activation="softmax")], (12, 12, 1), 10 * 10 * 4),
], ids=["mlp", "cnn"])
def test_rows_per_pass_is_the_same_whichever_api_built_the_network(layers, shape, widest):
    """The sampler's rows a pass follow the network's widest activation, read from the layers'
    outputs or, for a subclassed network (whose layers have none), from a trace of its call."""
    expected = sampling.PASS_BYTES // (4 * widest)
    assert expected > sampling.DEFAULT_ROWS_PER_PASS  # so the default cannot pass for it
    rows = {api: sampling.rows_per_pass(build(api, shape, layers())) for api in APIS}
    assert rows == {api: min(sampling.MAX_ROWS_PER_PASS, expected) for api in APIS}
    # The consistent sampler's chunks hold as many rows: T = 20 samples of the points of two passes.
    from al_experiments.wrapper.consistent import ConsistentSampler

    per_pass = min(sampling.MAX_ROWS_PER_PASS, expected) // 20
    x = np.zeros((2 * per_pass, *shape), dtype=np.float32)
    chunks = [(start, stop) for start, stop, _ in ConsistentSampler(build("functional", shape, layers())).chunks(
        x, 20, seed=0)]
    assert chunks == [(0, per_pass), (per_pass, 2 * per_pass)]
