"""The built-in query functions as TensorFlow ops, for scoring inside the compiled sampler.

Scoring inside the graph means a chunk's ``(B, T, C)`` samples never reach the host: the
compiled function returns B scores. Each op mirrors its numpy original in ``scores.py`` (in
float64, so scores agree to round-off; the compiled-scoring tests hold each op to it) and is
keyed by that original, so a user who re-registers a name with their own function gets their
own function. Importing this module imports TensorFlow.
"""

from __future__ import annotations

from typing import Callable

from al_experiments.acquisition import scores as _f
from al_experiments.acquisition.strategy import QueryStrategy
from al_experiments.utils.quiet_tensorflow import import_tensorflow

tf = import_tensorflow()

GraphReduction = Callable[["tf.Tensor"], "tf.Tensor"]


def _entropy(p):
    return -tf.reduce_sum(tf.math.xlogy(p, p), axis=-1)


def _least_confidence(p):
    return 1.0 - tf.reduce_max(tf.reduce_mean(p, axis=1), axis=-1)


def _max_entropy(p):
    return _entropy(tf.reduce_mean(p, axis=1))


def _bald(p):
    return tf.maximum(_entropy(tf.reduce_mean(p, axis=1)) - tf.reduce_mean(_entropy(p), axis=1), 0.0)


def _std_mean(p):
    return tf.reduce_mean(tf.math.reduce_std(p, axis=1), axis=-1)


def _variation_ratio(p):
    votes = tf.one_hot(tf.argmax(p, axis=-1), tf.shape(p)[-1], dtype=p.dtype)  # (B, T, C)
    return 1.0 - tf.reduce_max(tf.reduce_sum(votes, axis=1), axis=-1) / tf.cast(tf.shape(p)[1], p.dtype)


def _margin(p):
    top2 = tf.math.top_k(tf.reduce_mean(p, axis=1), k=2).values
    return 1.0 - (top2[:, 0] - top2[:, 1])


_BY_NUMPY_FUNCTION: dict[Callable, GraphReduction] = {
    _f.max_entropy: _max_entropy,
    _f.bald: _bald,
    _f.max_var_ratio: _least_confidence,
    _f.least_confidence: _least_confidence,
    _f.std_mean: _std_mean,
    _f.variation_ratio: _variation_ratio,
    _f.margin: _margin,
}


def graph_reduction(strategy: QueryStrategy, num_classes: int) -> GraphReduction | None:
    """The in-graph version of a strategy's scores, or None where only numpy can score it
    (user functions, sample-free strategies, and ``margin`` with one class, which must raise)."""
    if not strategy.needs_samples or (strategy.fn is _f.margin and num_classes < 2):
        return None
    return _BY_NUMPY_FUNCTION.get(strategy.fn)


def reduce_with_checks(probs, reduction: GraphReduction):
    """``(scores (B,), checks (3,))``: the scores in float64, and the number of non-finite
    entries, the minimum and the maximum of ``probs``, for ``scores.check_probs``'s errors."""
    p = tf.cast(probs, tf.float64)
    finite = tf.math.is_finite(p)
    checks = tf.stack([
        tf.reduce_sum(tf.cast(tf.logical_not(finite), tf.float64)),
        tf.reduce_min(tf.where(finite, p, 0.0)),
        tf.reduce_max(tf.where(finite, p, 0.0)),
    ])
    return reduction(tf.clip_by_value(p, 0.0, 1.0)), checks
