"""The compiled trainer: its own Adam step computes what Keras' ``apply_gradients`` computes, and
its XLA path trains as the graph path does (to rounding, where no dropout makes them differ)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from al_experiments.wrapper import training
from _keras_forms import APIS, build
from al_experiments.wrapper.sampling import nested_layers
from al_experiments.wrapper.training import Trainer, adam_step


def trained(monkeypatch, optimizer, own_step: bool):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.5),
                            keras.layers.Dense(3, activation="softmax")])
    net.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with monkeypatch.context() as patch:
        if not own_step:
            patch.setattr(training, "adam_step", lambda *args: None)
        trainer = Trainer(net, "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(45, 6)).astype(np.float32), rng.integers(0, 3, 45)
    history = trainer.fit(x, y, epochs=7, batch_size=8, seed=3)  # 6 steps an epoch, the last short
    return ([np.array(w) for w in net.get_weights()], [np.array(v) for v in net.optimizer.variables], history)


def test_the_own_adam_step_gives_keras_weights_optimizer_state_and_history_bit_for_bit(monkeypatch):
    ours = trained(monkeypatch, keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8), own_step=True)
    theirs = trained(monkeypatch, keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8), own_step=False)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        np.testing.assert_array_equal(a, b)
    assert ours[2] == theirs[2]
    assert int(ours[1][0]) == 7 * 6  # the step count advanced as by Keras


def test_adam_s_slots_are_found_by_their_public_names_and_hold_what_keras_adam_wrote():
    """The own step finds Adam's moments among ``optimizer.variables`` by the names Keras gives
    them: if a Keras upgrade renames or reorders them, this fails (the trainer would quietly fall
    back to Keras' slower ``apply_gradients``)."""
    net = network(keras.layers.Dense(5))
    optimizer = keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.9)
    variables = net.trainable_variables
    optimizer.build(variables)
    assert adam_step(optimizer, variables) is not None
    gradients = [np.random.default_rng(i).normal(size=v.shape).astype(np.float32) for i, v in enumerate(variables)]
    optimizer.apply_gradients(zip([tf.constant(g) for g in gradients], variables))
    momentums, velocities = training.adam_slots(optimizer, variables)
    assert len(momentums) == len(velocities) == len(variables) == 6
    for gradient, momentum, velocity in zip(gradients, momentums, velocities):
        np.testing.assert_allclose(np.array(momentum), 0.2 * gradient, rtol=1e-6)
        np.testing.assert_allclose(np.array(velocity), 0.1 * gradient ** 2, rtol=1e-5)


@pytest.mark.parametrize("optimizer", [
    keras.optimizers.Adam(weight_decay=0.01), keras.optimizers.Adam(clipnorm=1.0), keras.optimizers.Adam(amsgrad=True),
    keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
    keras.optimizers.AdamW(), keras.optimizers.SGD(),
])
def test_anything_but_plain_adam_goes_through_keras(optimizer):
    variables = [keras.Variable(np.zeros(3, np.float32))]
    optimizer.build(variables)
    assert adam_step(optimizer, variables) is None


# ---------------------------------------------------------------- against Keras' own fit


@pytest.mark.parametrize("xla", [False, True])
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", keras.losses.SparseCategoricalCrossentropy()])
def test_the_trainer_trains_as_keras_fit_does(loss, xla):
    """The compiled trainer (graph and XLA paths, own Adam step) ends with the weights Keras'
    own ``fit`` gives the same network from the same initial weights, on the same batches in the
    same order (each epoch's order fed to ``fit`` without its shuffle), with Adam, a regulariser
    and a short last batch in every epoch. Run on the installed Keras: the pins in
    pyproject.toml allow the versions this was run on, and this test is what to run on a new one.
    """
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(45, 6)).astype(np.float32), rng.integers(0, 3, 45)
    epochs, batch_size, seed = 4, 8, 3
    results = []
    for ours in (True, False):
        net = network(regularizer=keras.regularizers.l2(0.01))
        net.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
        if ours:
            trainer = Trainer(net, loss, ["accuracy"], xla=xla)
            assert trainer.uses_xla is xla
            history = trainer.fit(x, y, epochs=epochs, batch_size=batch_size, seed=seed)["loss"]
        else:
            orders = training._epoch_orders(tf.constant(len(x)), tf.constant(epochs), tf.constant(seed)).numpy()
            history = [net.fit(x[order], y[order], batch_size=batch_size, epochs=1, shuffle=False,
                               verbose=0).history["loss"][0] for order in orders]
        results.append(([np.array(w) for w in net.get_weights()], history, int(net.optimizer.iterations)))
    (ours_weights, ours_loss, ours_steps), (keras_weights, keras_loss, keras_steps) = results
    assert ours_steps == keras_steps == epochs * 6
    for a, b in zip(ours_weights, keras_weights):  # XLA fuses some arithmetic: rounding apart
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert not np.allclose(keras_weights[0], network().get_weights()[0])  # it did train
    # Each epoch's loss as Keras reports it: the regularisation penalty included, batches
    # weighted by their rows.
    np.testing.assert_allclose(ours_loss, keras_loss, rtol=1e-6)


# ---------------------------------------------------------------- the XLA path


def chain(api):
    """A builder of ``*middle`` then two dense layers, as the benchmarks' ``protocol.build`` builds
    a network with Keras' API ``api`` (Sequential, functional or subclassed)."""
    def make(*middle, features=6, classes=3, regularizer=None):
        keras.utils.set_random_seed(0)
        return build(api, (features,), [*middle, *top_layers(classes, regularizer)])
    return make


def top_layers(classes, regularizer=None):
    return [keras.layers.Dense(16, activation="relu", kernel_regularizer=regularizer),
            keras.layers.Dense(classes, activation="softmax")]


network, functional_network, subclassed_network = (chain(api) for api in APIS)


def residual_network(*middle, features=6, classes=3, regularizer=None):
    """A functional graph that is no chain: a residual addition, and a concatenation with a
    branch from the input."""
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((features,))
    for layer in middle:
        x = layer(x)
    hidden, output = top_layers(classes, regularizer)
    hidden = hidden(x)
    residual = keras.layers.Add()([hidden, keras.layers.Dense(16, activation="tanh")(hidden)])
    joined = keras.layers.Concatenate()([residual, keras.layers.Dense(4)(inputs)])
    return keras.Model(inputs, output(joined))


BUILDERS = {"sequential": network, "functional": functional_network, "residual": residual_network,
            "subclassed": subclassed_network}


def fit_both_ways(make, loss, y, monkeypatch, epochs=7, batch_size=8, x=None):
    x = np.random.default_rng(1).normal(size=(len(y), 6)).astype(np.float32) if x is None else x
    results = []
    for xla in (False, True):
        net = make()
        net.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
        trainer = Trainer(net, loss, ["accuracy"], xla=xla)
        assert trainer.uses_xla is xla
        history = trainer.fit(x, y, epochs=epochs, batch_size=batch_size, seed=3)
        results.append(([np.array(w) for w in net.get_weights()], history, net))
    return results


@pytest.mark.parametrize("loss, targets", [
    ("sparse_categorical_crossentropy", "ids"),
    (keras.losses.SparseCategoricalCrossentropy(), "ids"),
    ("categorical_crossentropy", "one_hot"),
])
def test_without_dropout_the_xla_path_trains_as_the_graph_path(monkeypatch, loss, targets):
    # 45 rows in batches of 8: every epoch ends on a batch of 5, padded to 8 under XLA; chunks of
    # 4 steps end mid-epoch, and the last of the 11 is short.
    monkeypatch.setattr(training, "XLA_CHUNK_STEPS", 4)
    y = np.random.default_rng(2).integers(0, 3, 45)
    if targets == "one_hot":
        y = np.eye(3, dtype=np.float32)[y]
    assert_trained_alike(*fit_both_ways(lambda: network(regularizer=keras.regularizers.l2(0.01)), loss, y, monkeypatch))


@pytest.mark.parametrize("form, middle", [
    ("functional", "dense"), ("residual", "dense"), ("subclassed", "dense"),
    ("sequential", "batch_norm"), ("residual", "batch_norm"), ("subclassed", "batch_norm"),
])
def test_without_dropout_the_xla_path_trains_every_form_of_network_as_the_graph_path(monkeypatch, form, middle):
    """Functional chains and graphs, subclassed models and batch normalisation train through XLA
    to the graph path's weights, batch normalisation's moving statistics included: its batch
    statistics are over the real rows of each padded last batch, as the graph path's are over
    the short batch itself."""
    monkeypatch.setattr(training, "XLA_CHUNK_STEPS", 4)
    y = np.random.default_rng(2).integers(0, 3, 45)
    middle_layers = {"dense": lambda: [], "batch_norm": lambda: [keras.layers.BatchNormalization(momentum=0.5)]}

    def make():
        return BUILDERS[form](*middle_layers[middle](), regularizer=keras.regularizers.l2(0.01))
    graph, xla = fit_both_ways(make, "sparse_categorical_crossentropy", y, monkeypatch)
    assert_trained_alike(graph, xla)
    for layer in nested_layers(xla[2]):  # batch normalisation's moving statistics moved
        if isinstance(layer, keras.layers.BatchNormalization):
            assert not np.allclose(np.array(layer.moving_variance), 1.0)


def assert_trained_alike(graph, xla):
    """The XLA path's weights and history are the graph path's, to rounding, after training."""
    for a, b in zip(graph[0], xla[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5)
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(xla[1][name], graph[1][name], rtol=2e-4, atol=2e-5)
    assert len(xla[1]["loss"]) == 7 and graph[1]["loss"][-1] < graph[1]["loss"][0]


def test_a_chunk_longer_than_the_whole_training_and_a_set_smaller_than_a_batch(monkeypatch):
    y = np.random.default_rng(2).integers(0, 3, 5)  # one padded step an epoch, 3 steps, 1 chunk of 64
    graph, xla = fit_both_ways(network, "sparse_categorical_crossentropy", y, monkeypatch, epochs=3)
    for a, b in zip(graph[0], xla[0]):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(xla[1]["loss"], graph[1]["loss"], rtol=2e-4)


@pytest.mark.parametrize("rate", [0.5, 0.3])
def test_dropout_under_xla_keeps_at_its_rate_scales_the_kept_and_draws_anew_each_call(rate):
    inputs = keras.Input((100,))
    dropout = keras.layers.Dropout(rate, seed=5)
    net = keras.Model(inputs, dropout(inputs))

    def forward(x):
        with training.xla_layer_calls(net, tf.ones([200])):
            return net(x, training=True)
    forward = tf.function(forward, jit_compile=True)
    ones = tf.ones([200, 100])
    first, second = forward(ones).numpy(), forward(ones).numpy()
    kept = first != 0
    # 20,000 independent keeps: the share lies within 5 standard deviations of 1 - rate.
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / kept.size)
    np.testing.assert_allclose(first[kept], 1 / (1 - rate), rtol=1e-6)
    assert (second != 0).mean() > 0 and not np.array_equal(kept, second != 0)
    # Outside the scope the layer is Keras' own again.
    assert "call" not in vars(dropout) and np.array_equal(net(ones, training=False).numpy(), ones.numpy())


@pytest.mark.parametrize("form", sorted(BUILDERS))
def test_with_dropout_every_form_of_network_trains_through_xla_and_learns(form):
    """A separable task: after training through XLA with dropout the training accuracy is far
    above chance and the loss has fallen, whichever API built the network."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    net = BUILDERS[form](keras.layers.Dropout(0.3), keras.layers.Dense(32, activation="relu"), keras.layers.Dropout(0.3))
    net.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    trainer = Trainer(net, "sparse_categorical_crossentropy", ["accuracy"])
    assert trainer.uses_xla
    history = trainer.fit(x, y, epochs=40, batch_size=16, seed=1)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert np.mean(np.argmax(net(x, training=False), axis=1) == y) > 0.8


def test_the_xla_path_is_deterministic_for_a_seed():
    def weights():
        net = network(keras.layers.Dropout(0.5))
        net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        trainer = Trainer(net, "sparse_categorical_crossentropy", [])
        rng = np.random.default_rng(1)
        trainer.fit(rng.normal(size=(30, 6)).astype(np.float32), rng.integers(0, 3, 30), epochs=5, batch_size=8, seed=9)
        assert trainer.uses_xla
        return net.get_weights()

    for a, b in zip(weights(), weights()):
        np.testing.assert_array_equal(a, b)


def conv_middle():
    return keras.layers.Reshape((6, 1)), keras.layers.Conv1D(4, 3), keras.layers.Flatten()


@pytest.mark.parametrize("make, loss, expected", [
    (lambda: network(keras.layers.Dropout(0.5), keras.layers.LayerNormalization()), "sparse_categorical_crossentropy", True),
    (lambda: network(keras.layers.BatchNormalization()), "sparse_categorical_crossentropy", True),
    (lambda: residual_network(keras.layers.Dropout(0.5)), "sparse_categorical_crossentropy", True),
    (lambda: subclassed_network(keras.layers.Dropout(0.5)), "sparse_categorical_crossentropy", True),
    (lambda: network(keras.Sequential([keras.layers.Dense(4), keras.layers.Dropout(0.5)])),
     "sparse_categorical_crossentropy", True),
    (lambda: network(keras.layers.Dropout(0.5, noise_shape=(None, 1))), "sparse_categorical_crossentropy", False),
    (lambda: network(keras.layers.GaussianNoise(0.1)), "sparse_categorical_crossentropy", False),
    (lambda: network(*conv_middle()), "sparse_categorical_crossentropy", False),
    (lambda: functional_network(*conv_middle()), "sparse_categorical_crossentropy", False),
    (lambda: subclassed_network(*conv_middle()), "sparse_categorical_crossentropy", False),
    (lambda: network(keras.Sequential([keras.layers.Dense(4), keras.layers.GaussianDropout(0.1)])),
     "sparse_categorical_crossentropy", False),
    (network, keras.losses.SparseCategoricalCrossentropy(reduction="sum"), False),
])
def test_which_networks_train_through_xla(make, loss, expected):
    net = make()
    net.compile(optimizer="adam", loss=loss)
    assert Trainer(net, loss, []).uses_xla is expected


@pytest.mark.parametrize("form", sorted(BUILDERS))
def test_a_layer_xla_does_not_train_sends_the_network_to_the_graph_path_with_one_debug_line(form, caplog):
    net = BUILDERS[form](keras.layers.Reshape((6, 1), name="column"), keras.layers.Conv1D(4, 3, name="conv"),
                         keras.layers.Flatten())
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with caplog.at_level("DEBUG", logger=training.__name__):
        assert not Trainer(net, "sparse_categorical_crossentropy", []).uses_xla
    lines = [record.getMessage() for record in caplog.records if record.name == training.__name__]
    assert len(lines) == 1 and "'conv' (Conv1D)" in lines[0] and "graph path" in lines[0], lines


class WithHostCall(keras.Model):
    """Supported layers, but the model's own ``call`` runs an operation XLA has no kernel for."""

    def __init__(self):
        super().__init__()
        self.hidden, self.output_layer = top_layers(3)

    def call(self, x, training=False):
        hidden = tf.py_function(lambda h: h * 1.0, [self.hidden(x)], tf.float32)
        return self.output_layer(tf.ensure_shape(hidden, [None, 16]))


def test_a_call_xla_cannot_compile_trains_on_the_graph_path_from_the_same_state(caplog):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 6)).astype(np.float32), rng.integers(0, 3, 30)
    results = []
    for xla in (True, False):
        keras.utils.set_random_seed(0)
        net = WithHostCall()
        net(x[:1])
        net.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        trainer = Trainer(net, "sparse_categorical_crossentropy", ["accuracy"], xla=xla)
        assert trainer.uses_xla is xla  # only compiling finds the operation out
        with caplog.at_level("DEBUG", logger=training.__name__):
            history = trainer.fit(x, y, epochs=3, batch_size=8, seed=3)
        assert not trainer.uses_xla
        results.append(([np.array(w) for w in net.get_weights()], history))
    lines = [record.getMessage() for record in caplog.records if record.name == training.__name__]
    assert len(lines) == 1 and "graph path" in lines[0] and "EagerPyFunc" in lines[0], lines
    for a, b in zip(results[0][0], results[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert results[0][1] == results[1][1]


def test_the_wrapper_trains_through_xla_unless_told_not_to():
    from al_experiments.wrapper import McDropout

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 6)).astype(np.float32), rng.integers(0, 3, 30)
    for xla in (True, False):
        wrapper = McDropout(network(keras.layers.Dropout(0.5)), xla=xla)
        wrapper.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        wrapper.fit(x, y, epochs=2, batch_size=8)
        assert wrapper.backend.trainer.uses_xla is xla
