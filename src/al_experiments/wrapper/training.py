"""Training's hot loop as one compiled TensorFlow function: all epochs of minibatch training
over the in-memory labelled set in one graph call (no per-epoch ``fit`` machinery, which
dominates on a few dozen points). ``Model.fit`` uses it where it applies
(``fast_path_supported``) and Keras' ``fit`` everywhere else.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from al_experiments.wrapper.compiled import compiled_function, input_signature, tf
from al_experiments.wrapper.keras_metrics import is_accuracy, metric_name


class Trainer:
    """Minibatch training of all epochs in one compiled call.

    Matches ``Model.fit`` in distribution: the labelled set is reshuffled every epoch, the
    last batch may be smaller, regularisation losses are added, and the per-epoch mean loss and
    accuracy-type metrics are returned as a ``History``-like dict.
    """

    def __init__(self, model, loss: Any, metrics: list[Any]) -> None:
        import keras

        self._model = model
        self._loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        self.metric_names = [metric_name(m) for m in metrics]
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)
        signature = input_signature(model)
        if signature is None:
            raise ValueError(
                "Cannot tell the input shape of this subclassed Keras model: call it once on a "
                "batch (or build it) before wrapping it."
            )
        self._x_dtype = tf.as_dtype(signature[1]).as_numpy_dtype
        loss_fn = self._loss_fn
        n_metrics = len(self.metric_names)
        variables = model.trainable_variables

        def train(x, y, epochs, batch_size, seed):
            # One flat loop over every step of every epoch: with a few dozen labels an epoch is
            # one to three steps, and a loop per epoch cost as much again as its steps. The
            # loops are tf.while_loop, traced without autograph (whose conversion of Keras'
            # layer code cost seconds per process).
            n = tf.shape(x)[0]
            steps = (n + batch_size - 1) // batch_size

            def shuffle(epoch, orders):
                order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, epoch]))
                return epoch + 1, orders.write(epoch, order)

            _, orders = tf.while_loop(lambda epoch, _: epoch < epochs, shuffle,
                                      (tf.constant(0), tf.TensorArray(tf.int32, size=epochs)))
            orders = orders.stack()

            def one_step(step, losses, corrects):
                epoch, within = step // steps, step % steps
                idx = orders[epoch, within * batch_size: tf.minimum(n, (within + 1) * batch_size)]
                xb = tf.gather(x, idx)
                yb = tf.gather(y, idx)
                with tf.GradientTape() as tape:
                    pred = model(xb, training=True)
                    batch_loss = tf.reduce_mean(loss_fn(yb, pred))
                    reg = tf.add_n(model.losses) if model.losses else 0.0
                    objective = batch_loss + reg
                grads = tape.gradient(objective, variables)
                optimizer.apply_gradients(zip(grads, variables))
                count = tf.cast(tf.shape(idx)[0], tf.float32)
                losses = losses.write(step, tf.cast(batch_loss, tf.float32) * count)
                if n_metrics:
                    corrects = corrects.write(step, _correct(yb, pred))
                return step + 1, losses, corrects

            total = epochs * steps
            _, losses, corrects = tf.while_loop(
                lambda step, *_: step < total, one_step,
                (tf.constant(0), tf.TensorArray(tf.float32, size=total),
                 tf.TensorArray(tf.float32, size=total if n_metrics else 0)))
            nf = tf.cast(n, tf.float32)
            per_epoch_loss = tf.reduce_sum(tf.reshape(losses.stack(), [epochs, steps]), axis=1) / nf
            if not n_metrics:
                return per_epoch_loss, tf.zeros([epochs])
            return per_epoch_loss, tf.reduce_sum(tf.reshape(corrects.stack(), [epochs, steps]), axis=1) / nf

        self._train_py = train
        self._train_fns: dict[tuple, Callable] = {}
        self._x_shape = tuple(signature[0])

    def _compiled_train(self, y: np.ndarray) -> Callable:
        # One trace per target layout: a None batch axis means a labelled set that grows every
        # round reuses the graph (without a signature the second size retraces once).
        key = (y.dtype.str, y.shape[1:])
        fn = self._train_fns.get(key)
        if fn is None:
            scalar = tf.TensorSpec([], tf.int32)
            fn = compiled_function(self._train_py, input_signature=[
                tf.TensorSpec([None, *self._x_shape], tf.as_dtype(self._x_dtype)),
                tf.TensorSpec([None, *y.shape[1:]], tf.as_dtype(y.dtype)), scalar, scalar, scalar])
            self._train_fns[key] = fn
        return fn

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, seed: int) -> dict[str, list[float]]:
        if len(x) == 0:
            raise ValueError("Cannot fit on an empty labelled set.")
        y = np.asarray(y)
        y = y.astype(np.float32) if y.dtype.kind == "f" else y.astype(np.int64)
        losses, accs = self._compiled_train(y)(
            tf.constant(np.asarray(x, dtype=self._x_dtype)), tf.constant(y),
            tf.constant(int(epochs), tf.int32), tf.constant(int(batch_size), tf.int32),
            tf.constant(int(seed) % 2**31, tf.int32),
        )
        history = {"loss": [float(v) for v in losses.numpy()]}
        for name in self.metric_names:
            history[name] = [float(v) for v in accs.numpy()]
        return history


def _correct(y, pred):
    """Number of correct argmax predictions in a batch (class ids or one-hot targets)."""
    pred = tf.cast(pred, tf.float32)
    if pred.shape[-1] == 1:
        predicted = tf.cast(pred[:, 0] > 0.5, tf.int64)
    else:
        predicted = tf.argmax(pred, axis=-1)
    if y.shape.rank == 2 and y.shape[-1] is not None and y.shape[-1] > 1:
        truth = tf.argmax(y, axis=-1)
    else:
        truth = tf.cast(tf.reshape(y, [-1]), tf.int64)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, truth), tf.float32))


def fast_path_supported(metrics: list[Any]) -> bool:
    """The compiled trainer reports accuracy-type metrics only; others go through ``fit``."""
    return all(is_accuracy(m) for m in metrics)
