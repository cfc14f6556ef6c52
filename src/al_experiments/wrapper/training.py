"""Training's hot loop as one compiled TensorFlow function: all epochs of minibatch training
over the in-memory labelled set in one graph call (no per-epoch ``fit`` machinery, which
dominates on a few dozen points). ``Model.fit`` uses it where it applies
(``fast_path_supported``) and Keras' ``fit`` everywhere else.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np

from al_experiments.utils.compile_cache import first_compile
from al_experiments.wrapper.sampling import (compiled_function, dropout_rate, input_signature, nested_layers,
                                             own_dropout_call, swapped_calls, tf)
from al_experiments.wrapper.keras_metrics import is_accuracy, metric_name

import keras  # noqa: E402  (after sampling's quiet TensorFlow import)

log = logging.getLogger(__name__)

# Layers whose training step XLA compiles, on CPU, into a few fused kernels instead of about 200
# executor operations, whose dispatch dominates a small dense network's step. Exact types, each
# computing every example on its own (padded batch rows change nothing) except
# BatchNormalization, whose batch statistics are taken over the real rows (``xla_layer_calls``);
# no convolution or pooling: XLA's CPU convolutions are far slower than TensorFlow's own kernels
# (Gal et al.'s CNN). Dropout is applied by ``xla_layer_calls`` too. A model (Sequential,
# functional or subclassed) is a container: its own layers are what is checked.
XLA_LAYERS = (
    "Dense EinsumDense Flatten Reshape Permute RepeatVector Activation ReLU LeakyReLU PReLU ELU "
    "Softmax LayerNormalization UnitNormalization Rescaling Identity Dropout BatchNormalization "
    "InputLayer Add Subtract Multiply Average Maximum Minimum Concatenate Dot"
).split()
# Steps per XLA call: a call from the graph has a fixed cost, so several steps share one; the
# gathered minibatches of one call stay within this many bytes.
XLA_CHUNK_STEPS = 64
# How TensorFlow's error begins when XLA has no kernel for an operation of the program.
XLA_UNSUPPORTED = "Detected unsupported operations when trying to compile graph"
XLA_CHUNK_BYTES = 64 * 2**20


class Trainer:
    """Minibatch training of all epochs in one compiled call.

    Matches ``Model.fit`` in distribution: the labelled set is reshuffled every epoch, the
    last batch may be smaller, regularisation losses are added, and the per-epoch mean loss and
    accuracy-type metrics are returned as a ``History``-like dict.

    A network of the layers in ``XLA_LAYERS`` (``xla_trainable``), built with any of Keras' APIs,
    trains through XLA: chunks of up to ``XLA_CHUNK_STEPS`` steps, one compiled program each,
    over minibatches padded to the batch size with zero-weighted rows (XLA needs one shape; the
    mean loss, its gradient and batch normalisation's statistics are over the real rows only).
    ``xla=False`` keeps every network on the graph path.
    """

    def __init__(self, model, loss: Any, metrics: list[Any], xla: bool = True) -> None:

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
        self._x_shape = tuple(signature[0])
        self._n_metrics = len(self.metric_names)
        variables = model.trainable_variables
        self._apply_gradients = adam_step(optimizer, variables) or \
            (lambda grads: optimizer.apply_gradients(zip(grads, variables)))
        per_example = per_example_loss(self._loss_fn)
        self.uses_xla = bool(xla) and per_example is not None and xla_trainable(model)
        self._per_example_loss = per_example
        self._train_fns: dict[tuple, Callable] = {}

    def _step(self, xb, yb, weights=None):
        """One gradient step on a minibatch: ``(the batch's loss, regularisation included, times
        its rows; correct predictions)``: the loss that Keras' ``fit`` reports, weighted by rows.

        With ``weights`` (1 for a real row, 0 for padding) the loss is the mean over the real
        rows and the network runs with the layer calls of ``xla_layer_calls``.
        """
        model, variables = self._model, self._model.trainable_variables
        with tf.GradientTape() as tape:
            if weights is None:
                pred = model(xb, training=True)
                count = tf.cast(tf.shape(xb)[0], tf.float32)
                batch_loss = tf.cast(tf.reduce_mean(self._loss_fn(yb, pred)), tf.float32)
            else:
                with xla_layer_calls(model, weights):
                    pred = model(xb, training=True)
                per_row = tf.cast(self._per_example_loss(yb, pred), tf.float32)
                per_row = tf.reduce_mean(tf.reshape(per_row, [tf.shape(per_row)[0], -1]), axis=1)
                count = tf.reduce_sum(weights)
                batch_loss = tf.reduce_sum(per_row * weights) / count
            reg = tf.add_n(model.losses) if model.losses else 0.0
            objective = tf.cast(batch_loss, variables[0].dtype) + tf.cast(reg, variables[0].dtype)
        self._apply_gradients(tape.gradient(objective, variables))
        correct = _correct(yb, pred, weights) if self._n_metrics else tf.constant(0.0)
        return tf.cast(objective, tf.float32) * count, correct

    def _train_graph(self, x, y, epochs, batch_size, seed):
        # One flat loop over every step of every epoch: with a few dozen labels an epoch is
        # one to three steps, and a loop per epoch cost as much again as its steps. The
        # loops are tf.while_loop, traced without autograph (whose conversion of Keras'
        # layer code is slow, and paid again in every process).
        n = tf.shape(x)[0]
        steps = (n + batch_size - 1) // batch_size
        orders = _epoch_orders(n, epochs, seed)

        def one_step(step, losses, corrects):
            epoch, within = step // steps, step % steps
            idx = orders[epoch, within * batch_size: tf.minimum(n, (within + 1) * batch_size)]
            loss_sum, correct = self._step(tf.gather(x, idx), tf.gather(y, idx))
            return step + 1, losses.write(step, loss_sum), corrects.write(step, correct)

        total = epochs * steps
        _, losses, corrects = tf.while_loop(
            lambda step, *_: step < total, one_step,
            (tf.constant(0), tf.TensorArray(tf.float32, size=total), tf.TensorArray(tf.float32, size=total)))
        return _per_epoch(losses.stack(), corrects.stack(), epochs, steps, n)

    def _xla_train(self, batch_size: int, y_spec) -> Callable:
        """The XLA path for one batch size: a graph loop over chunks of steps, each chunk one
        XLA program over its padded minibatches (shapes fixed by the batch size alone, so a
        growing labelled set compiles nothing new)."""
        row_bytes = int(np.prod(self._x_shape, dtype=np.int64)) * np.dtype(self._x_dtype).itemsize
        chunk = int(max(1, min(XLA_CHUNK_STEPS, XLA_CHUNK_BYTES // max(1, batch_size * row_bytes))))

        def run_chunk(xb, yb, wb, active):
            def one_step(i, losses, corrects):
                loss_sum, correct = self._step(xb[i], yb[i], wb[i])
                return i + 1, losses.write(i, loss_sum), corrects.write(i, correct)

            _, losses, corrects = tf.while_loop(
                lambda i, *_: i < active, one_step,
                (tf.constant(0), tf.TensorArray(tf.float32, size=chunk, element_shape=[]),
                 tf.TensorArray(tf.float32, size=chunk, element_shape=[])))
            return losses.stack(), corrects.stack()

        run_chunk = compiled_function(run_chunk, jit_compile=True)
        self._xla_chunk = run_chunk

        def train(x, y, epochs, _batch_size, seed):  # the batch size is this function's constant
            n = tf.shape(x)[0]
            steps = (n + batch_size - 1) // batch_size
            total = epochs * steps
            chunks = (total + chunk - 1) // chunk
            pad = steps * batch_size - n
            # Every step's row indices, padded with row 0 to whole batches and whole chunks.
            orders = tf.reshape(tf.pad(_epoch_orders(n, epochs, seed), [[0, 0], [0, pad]]), [total, batch_size])
            orders = tf.pad(orders, [[0, chunks * chunk - total], [0, 0]])
            row_weights = tf.reshape(tf.pad(tf.ones([n]), [[0, pad]]), [steps, batch_size])
            weights = tf.gather(row_weights, tf.range(chunks * chunk) % steps)

            def one_chunk(c, losses, corrects):
                rows = orders[c * chunk:(c + 1) * chunk]
                loss_sums, correct = run_chunk(tf.gather(x, rows), tf.gather(y, rows),
                                               weights[c * chunk:(c + 1) * chunk],
                                               tf.minimum(chunk, total - c * chunk))
                return c + 1, losses.write(c, loss_sums), corrects.write(c, correct)

            _, losses, corrects = tf.while_loop(
                lambda c, *_: c < chunks, one_chunk,
                (tf.constant(0), tf.TensorArray(tf.float32, size=chunks, element_shape=[chunk]),
                 tf.TensorArray(tf.float32, size=chunks, element_shape=[chunk])))
            return _per_epoch(losses.concat()[:total], corrects.concat()[:total], epochs, steps, n)

        scalar = tf.TensorSpec([], tf.int32)
        return compiled_function(train, input_signature=[self._x_spec(), y_spec, scalar, scalar, scalar])

    def _x_spec(self):
        return tf.TensorSpec([None, *self._x_shape], tf.as_dtype(self._x_dtype))

    def _compiled_train(self, y: np.ndarray, batch_size: int) -> Callable:
        # One trace per target layout (and, through XLA, per batch size): a None batch axis
        # means a labelled set that grows every round reuses the graph.
        y_spec = tf.TensorSpec([None, *y.shape[1:]], tf.as_dtype(y.dtype))
        key = (y.dtype.str, y.shape[1:], batch_size if self.uses_xla else None)
        fn = self._train_fns.get(key)
        if fn is None:
            if self.uses_xla:
                fn = self._xla_train(batch_size, y_spec)
            else:
                scalar = tf.TensorSpec([], tf.int32)
                fn = compiled_function(self._train_graph,
                                       input_signature=[self._x_spec(), y_spec, scalar, scalar, scalar])
            self._train_fns[key] = fn
        return fn

    def _program_name(self, y: np.ndarray, batch_size: int) -> str:
        """What the XLA training program depends on, as a name equal in every process that
        trains this network's kind: its layers, optimizer, input and target layout, batch size."""
        layers = [(type(layer).__name__, [tuple(w.shape) for w in layer.weights]) for layer in nested_layers(self._model)]
        return repr(("train", layers, type(self._model.optimizer).__name__, self._x_shape, self._x_dtype.__name__,
                     y.dtype.str, y.shape[1:], int(batch_size)))

    def _first_or_later_call(self, y: np.ndarray, batch_size: int, args: tuple):
        """The training program's call; a new XLA program compiles on its first call, one
        process of a sweep at a time, while the others wait and load it from the compile cache."""
        programs = len(self._train_fns)
        train = self._compiled_train(y, batch_size)
        first_call = first_compile(self._program_name(y, batch_size)) \
            if self.uses_xla and len(self._train_fns) > programs else nullcontext()
        with first_call:
            return train(*args)

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, seed: int) -> dict[str, list[float]]:
        if len(x) == 0:
            raise ValueError("Cannot fit on an empty labelled set.")
        y = np.asarray(y)
        y = y.astype(np.float32) if y.dtype.kind == "f" else y.astype(np.int64)
        args = (tf.constant(np.asarray(x, dtype=self._x_dtype)), tf.constant(y), tf.constant(int(epochs), tf.int32),
                tf.constant(int(batch_size), tf.int32), tf.constant(int(seed) % 2**31, tf.int32))
        try:
            losses, accs = self._first_or_later_call(y, int(batch_size), args)
        except tf.errors.InvalidArgumentError as error:
            # A subclassed model's own ``call`` may hold an operation XLA has no kernel for,
            # which only compiling finds out; the program fails before its first step, so
            # nothing has trained yet and the graph path starts from the same state.
            if not self.uses_xla or XLA_UNSUPPORTED not in str(error):
                raise
            log.debug("%s trains on the graph path, not through XLA: XLA cannot compile its %s's call (%s).",
                      self._model.name, type(self._model).__name__,
                      str(error).split(XLA_UNSUPPORTED, 1)[1].strip().split("\n", 1)[0][:200])
            self.uses_xla = False
            self._train_fns.clear()
            losses, accs = self._first_or_later_call(y, int(batch_size), args)
        history = {"loss": [float(v) for v in losses.numpy()]}
        for name in self.metric_names:
            history[name] = [float(v) for v in accs.numpy()]
        return history


def _epoch_orders(n, epochs, seed):
    """``(epochs, n)``: each epoch's shuffle of the row indices, fixed by (seed, epoch)."""
    def shuffle(epoch, orders):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed, epoch]))
        return epoch + 1, orders.write(epoch, order)

    _, orders = tf.while_loop(lambda epoch, _: epoch < epochs, shuffle,
                              (tf.constant(0), tf.TensorArray(tf.int32, size=epochs)))
    return tf.reshape(orders.stack(), [epochs, n])


def _per_epoch(loss_sums, corrects, epochs, steps, n):
    """Per-epoch mean loss and accuracy from per-step sums over ``n`` rows an epoch."""
    nf = tf.cast(n, tf.float32)
    return (tf.reduce_sum(tf.reshape(loss_sums, [epochs, steps]), axis=1) / nf,
            tf.reduce_sum(tf.reshape(corrects, [epochs, steps]), axis=1) / nf)


def per_example_loss(loss_fn) -> Callable | None:
    """The loss per example (not reduced over the batch), or None when that cannot be had.

    A loss given by name or as a function returns one value per example already; a Keras
    ``Loss`` object reduces in ``__call__``, and for its default mean reduction its ``call`` is
    the per-example part.
    """

    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn.call if loss_fn.reduction == "sum_over_batch_size" else None
    return loss_fn if callable(loss_fn) else None


def xla_blocker(model):
    """The first layer inside ``model`` that keeps it off the XLA path, or None.

    A model (Sequential, functional or subclassed) passes as a container of layers; every other
    layer must be of a type in ``XLA_LAYERS``, exactly (a subclass may compute anything), and a
    ``Dropout`` a plain one that ``xla_layer_calls`` applies (Keras' own dropout compiles, under
    XLA, to a random generator as slow as the rest of the step).
    """
    allowed = tuple(getattr(keras.layers, name) for name in XLA_LAYERS)
    for layer in nested_layers(model):
        if isinstance(layer, keras.Model):
            continue
        if type(layer) not in allowed:
            return layer
        if type(layer) is keras.layers.Dropout and layer.rate > 0 and dropout_rate(layer) is None:
            return layer
    return None


def xla_trainable(model) -> bool:
    """Whether the XLA path trains this network (see ``xla_blocker``); if not, one debug line
    names the layer that sends it to the graph path."""
    blocker = xla_blocker(model)
    if blocker is not None:
        log.debug("%s trains on the graph path, not through XLA: its layer %r (%s) is not one the XLA "
                  "trainer compiles (training.XLA_LAYERS).", model.name, blocker.name, type(blocker).__name__)
    return blocker is None


def xla_layer_calls(model, row_weights):
    """Within it (``sampling.swapped_calls``), calling ``model`` runs its plain ``Dropout``
    layers and its ``BatchNormalization`` layers as the XLA path needs them, whichever Keras API
    built it:

    * dropout by ``sampling.keep_mask`` with the Philox generator, seeded by the layer's own seed
      generator (Keras' dropout asks for the platform's default generator, which under XLA
      compiles to one many times slower than the rest of a small network's step);
    * batch normalisation with its batch statistics, and so its moving averages, over the rows
      whose ``row_weights`` are non-zero: Keras' own ``mask`` argument of the layer, given the
      rows' weights, so the padded rows of a minibatch change nothing.
    """

    def real_rows_batch_norm(layer):
        if type(layer) is not keras.layers.BatchNormalization:
            return None
        keras_call = layer.call

        def call(inputs, training=None, mask=None):
            # The mask Keras' layer takes has the input's shape less its last axis.
            rank = len(inputs.shape)
            weights = tf.reshape(tf.cast(row_weights, inputs.dtype), [-1] + [1] * (rank - 2))
            return keras_call(inputs, training=training, mask=tf.broadcast_to(weights, tf.shape(inputs)[:-1]))
        return call

    return swapped_calls(model, lambda layer: own_dropout_call(layer, "philox") or real_rows_batch_norm(layer))


def adam_step(optimizer, variables: list) -> Callable | None:
    """Keras' Adam update as Keras computes it, with the step's bias correction computed once
    instead of once per variable; None for any optimizer but a plain ``keras.optimizers.Adam``.

    Keras' ``apply_gradients`` is about a third of a small network's step, much of it
    per-variable bookkeeping (the step count cast and the two powers again for every weight). This is its
    arithmetic for the plain case, operation for operation, so the weights come out the same:
    no weight decay, clipping, moving average, AMSGrad, accumulation, loss scaling, learning-
    rate schedule or weight constraint, each of which goes through ``apply_gradients``.
    """

    if type(optimizer) is not keras.optimizers.Adam:
        return None
    config = optimizer.get_config()
    plain = (not isinstance(config.get("learning_rate"), dict) and not config.get("amsgrad")
             and not config.get("use_ema") and not config.get("gradient_accumulation_steps")
             and not config.get("loss_scale_factor") and not config.get("weight_decay")
             and all(config.get(key) is None for key in ("clipnorm", "clipvalue", "global_clipnorm"))
             and all(getattr(variable, "constraint", None) is None for variable in variables))
    slots = adam_slots(optimizer, variables) if plain else None
    if slots is None:
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


def adam_slots(optimizer, variables: list) -> tuple[list, list] | None:
    """Adam's momentum and velocity of each of ``variables``, in their order, found among the
    optimizer's public ``variables`` by the names Keras gives them (``add_variable_from_reference``:
    the weight's path with ``/`` as ``_``, then ``_momentum`` or ``_velocity``); None unless
    each weight has exactly one of each."""
    by_name: dict[str, list] = {}
    for slot in optimizer.variables:
        by_name.setdefault(slot.name, []).append(slot)
    momentums, velocities = [], []
    for variable in variables:
        stem = variable.path.replace("/", "_")
        momentum, velocity = by_name.get(f"{stem}_momentum", []), by_name.get(f"{stem}_velocity", [])
        if len(momentum) != 1 or len(velocity) != 1:
            return None
        momentums.append(momentum[0])
        velocities.append(velocity[0])
    return momentums, velocities


def _correct(y, pred, weights=None):
    """Number of correct argmax predictions in a batch (class ids or one-hot targets), rows
    counted by ``weights`` when given."""
    pred = tf.cast(pred, tf.float32)
    if pred.shape[-1] == 1:
        predicted = tf.cast(pred[:, 0] > 0.5, tf.int64)
    else:
        predicted = tf.argmax(pred, axis=-1)
    if y.shape.rank == 2 and y.shape[-1] is not None and y.shape[-1] > 1:
        truth = tf.argmax(y, axis=-1)
    else:
        truth = tf.cast(tf.reshape(y, [-1]), tf.int64)
    hits = tf.cast(tf.equal(predicted, truth), tf.float32)
    return tf.reduce_sum(hits if weights is None else hits * weights)


def fast_path_supported(metrics: list[Any]) -> bool:
    """The compiled trainer reports accuracy-type metrics only; others go through ``fit``."""
    return all(is_accuracy(m) for m in metrics)
