"""The papers' training protocols on the wrapper: early stopping on the validation split with the
best epoch's weights restored, and epochs of labelled points drawn with replacement; through
XLA (dense networks), the graph path and Keras' own ``fit``."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from al_experiments import Config, Dataset
from al_experiments.pool import Pool
from al_experiments.wrapper import McDropout

PATHS = {"xla": {}, "graph": {"xla": False}, "keras fit": {"fast_fit": False}}


def wrapper(**options):
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(0.5),
                            keras.layers.Dense(10, activation="softmax")])
    model = McDropout(net, Config(fit={"batch_size": 16}), **options)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    return model


@pytest.fixture(scope="module")
def data():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:60], y[:60], x[1000:1300], y[1000:1300]  # 60 labels, 300 for validation


def validation_scores(model, x_val, y_val):
    """Accuracy and mean negative log-likelihood of the network with dropout off, as the
    protocol scores the validation split."""
    probs = np.asarray(model.get_model()(x_val, training=False), dtype=np.float64)
    picked = probs[np.arange(len(y_val)), y_val]
    return {"accuracy": float(np.mean(probs.argmax(axis=-1) == y_val)),
            "loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))}


def weights(model):
    return [np.array(w) for w in model.get_model().get_weights()]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("monitor", ["accuracy", "loss"])
def test_early_stopping_restores_the_weights_of_the_best_epoch(data, path, monitor):
    x, y, x_val, y_val = data
    model = wrapper(**PATHS[path])
    model.reset(round_index=1)
    history = model.fit(x, y, epochs=100, patience=3, monitor=monitor, epoch_samples=48,
                        validation_data=(x_val, y_val)).history
    scores = history[f"val_{monitor}"]
    best = int(history["best_epoch"][0])
    ran = int(history["epochs_run"][0])
    assert len(scores) == ran == len(history["loss"])
    # The best epoch is the first best score, and training stopped `patience` epochs after it.
    values = np.asarray(scores) if monitor == "accuracy" else -np.asarray(scores)
    assert best == int(np.argmax(values)) + 1
    assert ran == best + 3
    assert ran > best  # the test needs weights that moved on after the best epoch
    restored = weights(model)
    assert model.backend.validation_scores(x_val, y_val)[monitor] == pytest.approx(scores[best - 1], abs=1e-6)
    # The same round trained for exactly `best` epochs without early stopping ends at those weights.
    model.reset(round_index=1)
    model.fit(x, y, epochs=best, epoch_samples=48)
    for a, b in zip(restored, weights(model)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_an_epoch_is_epoch_samples_points_drawn_with_replacement(data):
    x, y, _, _ = data
    model = wrapper()
    model.reset(round_index=1)
    history = model.fit(x[:20], y[:20], epochs=5, epoch_samples=100).history  # 20 labels, 100 a epoch
    assert int(model.get_model().optimizer.iterations) == 5 * 7  # ceil(100 / 16) steps an epoch
    assert len(history["loss"]) == 5 and history["epochs_run"] == [5.0] and "best_epoch" not in history


def test_the_validation_split_comes_from_the_rounds_dataset(data):
    x, y, x_val, y_val = data
    model = wrapper()
    model.reset(Pool(x, y), Dataset(x, y, val=(x_val, y_val)), round_index=1)
    history = model.fit(x, y, epochs=3, patience=5).history
    assert len(history["val_accuracy"]) == 3
    model.reset(Pool(x, y), Dataset(x, y), round_index=2)
    with pytest.raises(ValueError, match=r"Early stopping \(patience=5\) needs a validation split"):
        model.fit(x, y, epochs=3, patience=5)


@pytest.mark.parametrize("kwargs, match", [
    ({"patience": 0}, "patience"), ({"epoch_samples": -1}, "epoch_samples"),
    ({"patience": 2, "monitor": "f1", "validation_data": (np.zeros((2, 64)), np.zeros(2))}, "monitor='f1'"),
])
def test_bad_protocol_settings_are_one_sentence(data, kwargs, match):
    x, y, _, _ = data
    model = wrapper()
    model.reset(round_index=1)
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, epochs=2, **kwargs)
