"""``Model.embeddings``: deterministic inference-mode features (the input of the last Dense
layer by default, or a named layer's output), with the class probabilities of the same pass;
chunked results equal unchunked ones; a deep ensemble concatenates its members' features."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from al_experiments.wrapper import DeepEnsemble, McDropout, Model

FEATURES = 4
CLASSES = 3


def mlp(seed=0, classes=CLASSES, activation="softmax", batchnorm=True):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((FEATURES,)), keras.layers.Dense(12, activation="relu")]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Dropout(0.5), keras.layers.Dense(classes, activation=activation)]
    return keras.Sequential(layers)


def points(n=9, seed=0):
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def net():
    network = mlp()
    bn = network.layers[1]
    bn.moving_mean.assign(np.linspace(-1, 1, 12).astype(np.float32))  # inference mode shows
    bn.moving_variance.assign(np.full(12, 2.0, np.float32))
    return network


def test_default_embeddings_are_the_input_of_the_last_dense_layer(net):
    x = points()
    embeddings = McDropout(net).embeddings(x)
    expected = keras.Model(net.inputs, net.layers[-1].input).predict(x, verbose=0)
    assert embeddings.shape == (9, 12) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, rtol=1e-6, atol=1e-6)


def test_embedding_layer_selects_the_named_layers_output(net):
    x = points()
    hidden = net.layers[0].name  # "dense" in a fresh session
    wrapper = McDropout(net, embedding_layer=hidden)
    expected = keras.Model(net.inputs, net.get_layer(hidden).output).predict(x, verbose=0)
    np.testing.assert_allclose(wrapper.embeddings(x), expected, rtol=1e-6, atol=1e-6)
    names = [layer.name for layer in net.layers]
    with pytest.raises(ValueError, match="embedding_layer='nope'") as error:
        McDropout(net, embedding_layer="nope").embeddings(x)
    assert str(names) in str(error.value)


def test_return_probs_are_the_inference_mode_probabilities(net):
    x = points()
    embeddings, probs = Model(net).embeddings(x, return_probs=True)
    np.testing.assert_allclose(probs, np.asarray(net(x, training=False)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embeddings, Model(net).embeddings(x), rtol=1e-6, atol=1e-6)


def test_chunked_embeddings_equal_unchunked(net):
    x = points(11, seed=3)
    wrapper = McDropout(net)
    whole, whole_probs = wrapper.embeddings(x, return_probs=True)
    chunked, chunked_probs = wrapper.embeddings(x, batch_size=4, return_probs=True)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(chunked_probs, whole_probs, rtol=1e-6, atol=1e-6)
    assert wrapper.embeddings(x[:0]).shape == (0, 12)


def test_logits_get_a_softmax_and_one_sigmoid_unit_two_columns():
    x = points()
    logits = Model(mlp(activation=None, batchnorm=False))
    logits.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _, probs = logits.embeddings(x, return_probs=True)
    np.testing.assert_allclose(probs, keras.ops.softmax(logits.get_model()(x)), rtol=1e-5, atol=1e-6)
    binary = mlp(classes=1, activation="sigmoid", batchnorm=False)
    _, probs = Model(binary).embeddings(x, return_probs=True)
    p = np.asarray(binary(x, training=False))
    np.testing.assert_allclose(probs, np.concatenate([1 - p, p], axis=1), rtol=1e-5, atol=1e-6)


def test_a_deep_ensemble_concatenates_its_members_embeddings():
    x = points()
    ensemble = DeepEnsemble(lambda: mlp(seed=np.random.randint(1000), batchnorm=False), members=3)
    embeddings, probs = ensemble.embeddings(x, batch_size=4, return_probs=True)
    assert embeddings.shape == (9, 3 * 12)
    parts = [member.embeddings(x, return_probs=True) for member in ensemble.members]
    np.testing.assert_allclose(embeddings, np.concatenate([p[0] for p in parts], axis=1), rtol=1e-6)
    np.testing.assert_allclose(probs, np.mean([p[1] for p in parts], axis=0), rtol=1e-6)
    # Builder networks name their layers differently: a name picks the same position in each.
    first = ensemble.get_model().layers[0].name
    named = DeepEnsemble([m.get_model() for m in ensemble.members], embedding_layer=first)
    np.testing.assert_allclose(named.embeddings(x).shape, (9, 3 * 12))


def test_a_subclassed_network_raises_a_clear_error():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(CLASSES, activation="softmax")

        def call(self, x):
            return self.dense(x)

    net = Subclassed()
    net(points(2))
    with pytest.raises(ValueError, match="Embeddings need a Sequential or functional Keras model"):
        Model(net).embeddings(points(2))
