"""The compiled trainer's own Adam step computes what Keras' ``apply_gradients`` computes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from al_experiments.wrapper import training
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


@pytest.mark.parametrize("optimizer", [
    keras.optimizers.Adam(weight_decay=0.01), keras.optimizers.Adam(clipnorm=1.0), keras.optimizers.Adam(amsgrad=True),
    keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
    keras.optimizers.AdamW(), keras.optimizers.SGD(),
])
def test_anything_but_plain_adam_goes_through_keras(optimizer):
    variables = [keras.Variable(np.zeros(3, np.float32))]
    optimizer.build(variables)
    assert adam_step(optimizer, variables) is None
