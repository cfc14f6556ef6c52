"""Loss and metric evaluation on predicted probabilities, stateless and as plain floats.

tf_al returned raw tensors, per-sample loss vectors and Keras Metric objects that accumulated
across calls; here every value is one float computed from scratch.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def metric_name(metric: Any) -> str:
    """The key a loss or metric is reported under (Keras' naming)."""
    if isinstance(metric, str):
        return metric
    name = getattr(metric, "name", None) or getattr(metric, "__name__", None)
    if not name:
        raise ValueError(f"Cannot name the metric {metric!r}; give it a .name or pass a string.")
    return str(name)


def is_accuracy(metric: Any) -> bool:
    name = metric_name(metric).lower()
    return name in {"acc", "accuracy"} or name.endswith("categorical_accuracy") or name == "binary_accuracy"


def class_probabilities(probs: np.ndarray) -> np.ndarray:
    """One sigmoid output becomes two class probabilities ``[1 - p, p]`` (class 1 is p)."""
    if probs.shape[-1] == 1:
        return np.concatenate([1.0 - probs, probs], axis=-1)
    return probs


def _truth_and_prediction(targets: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class ids of class-id or one-hot targets, and the argmax of the probabilities (threshold
    0.5 for one sigmoid unit)."""
    predicted = np.argmax(class_probabilities(np.asarray(probs)), axis=-1)
    targets = np.asarray(targets)
    truth = np.argmax(targets, axis=-1) if targets.ndim == 2 and targets.shape[1] > 1 else targets.reshape(-1)
    return truth.astype(np.int64), predicted


def accuracy(targets: np.ndarray, probs: np.ndarray) -> float:
    """Argmax accuracy for class ids or one-hot targets (threshold 0.5 for one sigmoid unit)."""
    truth, predicted = _truth_and_prediction(targets, probs)
    return float(np.mean(predicted == truth))


def balanced_accuracy(targets: np.ndarray, probs: np.ndarray) -> float:
    """The mean over the classes present in the targets of each one's recall: a classifier that
    ignores a rare class loses that class's share, not its few points."""
    truth, predicted = _truth_and_prediction(targets, probs)
    return float(np.mean([np.mean(predicted[truth == c] == c) for c in np.unique(truth)]))


def macro_f1(targets: np.ndarray, probs: np.ndarray) -> float:
    """The unweighted mean F1 over every class that is a target or a prediction (a class only
    predicted scores 0), as scikit-learn's ``f1_score(average="macro")``."""
    truth, predicted = _truth_and_prediction(targets, probs)
    scores = []
    for c in np.union1d(truth, predicted):
        hits = np.sum((predicted == c) & (truth == c))
        scores.append(2.0 * hits / (np.sum(predicted == c) + np.sum(truth == c)))
    return float(np.mean(scores))


# Metrics of class predictions computed here by name, beside Keras' own.
CLASS_METRICS = {"balanced_accuracy": balanced_accuracy, "macro_f1": macro_f1}


def is_class_metric(metric: Any) -> bool:
    return isinstance(metric, str) and metric in CLASS_METRICS


def _on_probabilities(obj: Any) -> Any:
    """A copy of a Keras loss/metric object configured for probabilities, not logits.

    Evaluation always works on (MC-averaged) probabilities; a ``from_logits=True`` object would
    apply a second softmax to them and report a wrong value.
    """
    get_config = getattr(obj, "get_config", None)
    if get_config is None:
        return obj
    config = get_config()
    if config.get("from_logits"):
        return obj.__class__.from_config({**config, "from_logits": False})
    return obj


def loss_value(loss: Any, targets: np.ndarray, probs: np.ndarray) -> float:
    import keras  # here, not at the top: the light wrappers and the MLflow sink import this module

    fn = keras.losses.get(loss) if isinstance(loss, str) else _on_probabilities(loss)
    value = fn(targets, probs)
    return float(np.mean(np.asarray(value)))


def metric_value(metric: Any, targets: np.ndarray, probs: np.ndarray) -> float:
    """Evaluate one metric from scratch (a fresh Metric object, never an accumulated one)."""
    if is_accuracy(metric):
        return accuracy(targets, probs)
    if is_class_metric(metric):
        return CLASS_METRICS[metric](targets, probs)
    import keras  # here, not at the top: the light wrappers and the MLflow sink import this module

    resolved = keras.metrics.get(metric) if isinstance(metric, str) else metric
    if isinstance(resolved, keras.metrics.Metric):
        fresh = _on_probabilities(resolved.__class__.from_config(resolved.get_config()))
        fresh.update_state(targets, probs)
        return float(np.asarray(fresh.result()))
    return float(np.mean(np.asarray(resolved(targets, probs))))


def prepare_targets(targets: Any, loss: Any, num_outputs: int) -> np.ndarray:
    """Match the target format to the loss: class ids for sparse losses, one-hot otherwise.

    tf_al crashed on Keras 3 with class ids and a non-sparse loss; users should not have to care.
    """
    targets = np.asarray(targets)
    name = metric_name(loss).lower() if loss is not None else ""
    one_hot = targets.ndim == 2 and targets.shape[1] > 1
    if "sparse" in name and one_hot:
        return np.argmax(targets, axis=1).astype(np.int64)
    if name in {"categorical_crossentropy", "categorical_focal_crossentropy", "kl_divergence",
                "kld", "categorical_hinge"} and not one_hot and num_outputs > 1:
        return np.eye(num_outputs, dtype=np.float32)[targets.reshape(-1).astype(np.int64)]
    return targets

