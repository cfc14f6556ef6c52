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
        apply_gradients = adam_step(optimizer, variables) or \
            (lambda grads: optimizer.apply_gradients(zip(grads, variables)))

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
                apply_gradients(grads)
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


def adam_step(optimizer, variables: list) -> Callable | None:
    """Keras' Adam update as Keras computes it, with the step's bias correction computed once
    instead of once per variable; None for any optimizer but a plain ``keras.optimizers.Adam``.

    Keras' ``apply_gradients`` is about a third of a small network's step, much of it
    per-variable bookkeeping (the step count cast and the two powers again for every weight). This is its
    arithmetic for the plain case, operation for operation, so the weights come out the same:
    no weight decay, clipping, moving average, AMSGrad, accumulation, loss scaling, learning-
    rate schedule or weight constraint, each of which goes through ``apply_gradients``.
    """
    import keras

    if type(optimizer) is not keras.optimizers.Adam:
        return None
    config = optimizer.get_config()
    plain = (not isinstance(config.get("learning_rate"), dict) and not config.get("amsgrad")
             and not config.get("use_ema") and not config.get("gradient_accumulation_steps")
             and not config.get("loss_scale_factor") and not config.get("weight_decay")
             and all(config.get(key) is None for key in ("clipnorm", "clipvalue", "global_clipnorm"))
             and all(getattr(variable, "constraint", None) is None for variable in variables))
    slots = getattr(optimizer, "_momentums", None), getattr(optimizer, "_velocities", None)
    if not plain or slots[0] is None or slots[1] is None or len(slots[0]) != len(variables):
        return None
    momentums, velocities = slots
    # Built for these weights in this order, all of one dtype (the correction is computed in it).
    if any(tuple(m.shape) != tuple(w.shape) or tuple(v.shape) != tuple(w.shape) or w.dtype != variables[0].dtype
           for m, v, w in zip(momentums, velocities, variables)):
        return None
    beta_1, beta_2, epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon

    def step(grads):
        dtype = variables[0].dtype
        lr = tf.cast(optimizer.learning_rate, dtype)
        local_step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(beta_1, dtype), local_step)
        beta_2_power = tf.pow(tf.cast(beta_2, dtype), local_step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        for gradient, variable, m, v in zip(grads, variables, momentums, velocities):
            gradient = tf.cast(gradient, variable.dtype)
            m.assign_add(tf.multiply(tf.subtract(gradient, m), 1 - beta_1))
            v.assign_add(tf.multiply(tf.subtract(tf.square(gradient), v), 1 - beta_2))
            variable.assign_sub(tf.divide(tf.multiply(m, alpha), tf.add(tf.sqrt(v), epsilon)))
        optimizer.iterations.assign_add(1)
    return step


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
