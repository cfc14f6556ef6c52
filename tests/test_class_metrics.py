"""Balanced accuracy and macro-F1 of class predictions, against scikit-learn's, and their place
in what a job logs every round."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from al_experiments.wrapper.keras_metrics import balanced_accuracy, macro_f1, metric_value


def _probabilities(predicted: np.ndarray, classes: int) -> np.ndarray:
    probs = np.full((len(predicted), classes), 0.1 / classes)
    probs[np.arange(len(predicted)), predicted] += 0.9
    return probs


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # on purpose: class 5
@pytest.mark.parametrize("seed", range(5))
def test_balanced_accuracy_and_macro_f1_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    truth = rng.choice(5, 200, p=[0.6, 0.2, 0.1, 0.07, 0.03])
    predicted = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 6, 200))  # class 5 only predicted
    probs = _probabilities(predicted, 6)
    assert balanced_accuracy(truth, probs) == pytest.approx(balanced_accuracy_score(truth, predicted))
    assert macro_f1(truth, probs) == pytest.approx(f1_score(truth, predicted, average="macro"))
    one_hot = np.eye(6)[truth]
    assert metric_value("balanced_accuracy", one_hot, probs) == pytest.approx(balanced_accuracy(truth, probs))
    assert metric_value("macro_f1", truth, probs) == pytest.approx(macro_f1(truth, probs))


def test_a_majority_guess_has_high_accuracy_and_low_balanced_scores():
    truth = np.array([0] * 9 + [1])
    probs = _probabilities(np.zeros(10, int), 2)
    assert metric_value("accuracy", truth, probs) == 0.9
    assert balanced_accuracy(truth, probs) == 0.5  # recall 1 and 0
    assert macro_f1(truth, probs) == pytest.approx((2 * 9 / 19 + 0) / 2)
    one_sigmoid = np.full((10, 1), 0.2)  # one unit: p(class 1) = 0.2, always class 0
    assert balanced_accuracy(truth, one_sigmoid) == 0.5


def test_the_wrapper_reports_them_without_handing_them_to_keras():
    import keras

    from al_experiments.wrapper import McDropout

    network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="softmax")])
    model = McDropout(network)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", "balanced_accuracy", "macro_f1"])
    x = np.random.default_rng(0).normal(size=(30, 4)).astype("float32")
    y = np.arange(30) % 3
    model.fit(x, y, epochs=1, verbose=0)
    scores = model.evaluate(x, y, sample_size=3)
    assert {"balanced_accuracy", "macro_f1", "accuracy"} <= set(scores)
    assert all(0 <= scores[k] <= 1 for k in ("balanced_accuracy", "macro_f1"))
