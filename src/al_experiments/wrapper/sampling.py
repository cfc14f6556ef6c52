"""Compiled predictions (the hot loop of scoring) and the helpers every compiled function here
shares; training's compiled loop is ``training.Trainer``.

* ``Sampler``: T stochastic forward passes over a chunk of inputs in one graph call, by tiling the
  chunk T times along the batch axis (dropout masks are drawn per element, so the copies are
  independent samples); BatchNormalization stays in inference mode. In a chain of layers (a
  Sequential network, or a functional one without branches: ``chain_layers``) the layers before
  the first stochastic one give the same output in every pass, so they run once per input and
  only their output is tiled (for Gal et al.'s CNN that skips T-1 of the T passes
  through both convolutions).
* ``ConsistentSampler``: jointly consistent samples (sample t of every input is one set of
  dropout masks, fixed by (seed, t)) through a twin of the network that shares its layers and
  applies masks drawn once per call (see the section comment below).
* ``Embedder``: inference-mode embeddings (and the probabilities of the same pass).

All take inputs of any batch length through a ``None`` batch dimension, so a growing labelled
set or a shrinking pool does not retrace.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any, Callable, Iterator

import numpy as np

from al_experiments.acquisition.graph_scores import reduce_with_checks
from al_experiments.acquisition.scores import check_value_range
from al_experiments.utils.quiet_tensorflow import import_tensorflow
from al_experiments.validation import WHOLE_AT_LEAST_1

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow's quiet import, which Keras would otherwise do loudly)

# Rows (inputs x samples) per forward pass when the caller gives no chunk size: large enough to
# keep the cores busy, small enough to bound memory (a 28x28 CNN at 8192 rows needs ~1 GB).
DEFAULT_ROWS_PER_PASS = 8192
# A narrow network's sampler takes more rows per pass, up to this many, while each activation of
# the pass stays within PASS_BYTES: each call has a fixed cost beyond its arithmetic, which for a
# small MLP is a large share of scoring its pool.
MAX_ROWS_PER_PASS = 65536
PASS_BYTES = 64 * 2**20



def compiled_function(fn: Callable | None = None, **options: Any):
    """``tf.function`` without autograph, as a call or a decorator.

    Every compiled function here is plain graph code (its loops are ``tf.while_loop`` or run
    over Python lists while tracing), and autograph's conversion of the Keras layer code it
    calls took seconds per process for nothing.
    """
    if fn is None:
        return lambda inner: tf.function(inner, autograph=False, **options)
    return tf.function(fn, autograph=False, **options)


def input_signature(model) -> tuple[tuple, Any] | None:
    """``(shape per point, dtype)`` of a model's input, or None when it is not known yet.

    Sequential and functional models have ``inputs``; a subclassed model has none, so its
    recorded build shape is used (it must have been called or built once).
    """
    try:
        first = model.inputs[0]
        return tuple(first.shape[1:]), first.dtype
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    shape = (model.get_build_config() or {}).get("input_shape")
    if shape is None:
        return None
    return tuple(shape[1:]), "float32"


def output_width(model) -> int:
    """Number of output units (classes) of a single-output model."""
    try:
        return int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        pass

    signature = input_signature(model)
    if signature is None:
        raise ValueError(
            "Cannot tell the output size of this subclassed Keras model before it has seen data: "
            "the wrapper builds it on first use (fit, predict or the loop's first round); call it "
            "on a batch first to ask before that."
        )
    shape, dtype = signature
    return int(model.compute_output_spec(keras.KerasTensor((None, *shape), dtype=dtype)).shape[-1])


# Keras layers whose output does not depend on ``training`` once BatchNormalization is frozen.
# Exact types only: a user subclass may override ``call`` and use ``training``.
DETERMINISTIC_LAYERS = (
    "Dense EinsumDense Conv1D Conv2D Conv3D SeparableConv1D SeparableConv2D DepthwiseConv1D "
    "DepthwiseConv2D Conv1DTranspose Conv2DTranspose Conv3DTranspose MaxPooling1D MaxPooling2D "
    "MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D GlobalAveragePooling1D "
    "GlobalAveragePooling2D GlobalAveragePooling3D GlobalMaxPooling1D GlobalMaxPooling2D "
    "GlobalMaxPooling3D Flatten Reshape Permute RepeatVector Activation ReLU LeakyReLU PReLU ELU "
    "Softmax BatchNormalization LayerNormalization GroupNormalization UnitNormalization "
    "ZeroPadding1D ZeroPadding2D ZeroPadding3D Cropping1D Cropping2D Cropping3D UpSampling1D "
    "UpSampling2D UpSampling3D Embedding Rescaling Normalization Identity"
).split()


def chain_layers(model) -> list | None:
    """The layers of a network whose layers each feed the next alone, in call order: a
    Sequential model's, or a functional graph's that is such a chain (one input, every layer
    called once, on the previous layer's output only, the last one's output the model's);
    None for any other network (a branching graph, a subclassed ``call``)."""
    if type(model) is keras.Sequential:
        return list(model.layers)
    if type(model) is not _functional_type():  # a subclass may override call
        return None
    try:
        config = model.get_config()
    except Exception:  # a layer whose config cannot be written: the graph is not read
        return None
    inputs, outputs = config.get("input_layers"), config.get("output_layers")
    if not inputs or not outputs or len(config["layers"]) != len(model.layers):
        return None
    inputs = [inputs] if isinstance(inputs[0], str) else inputs  # one input is written unnested
    outputs = [outputs] if isinstance(outputs[0], str) else outputs
    if len(inputs) != 1 or len(outputs) != 1 or config["layers"][0]["name"] != inputs[0][0]:
        return None
    previous = inputs[0][0]
    for entry in config["layers"][1:]:
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) != 1 or len(nodes[0].get("args", [])) != 1 or set(nodes[0].get("kwargs", {})) - {"training"}:
            return None
        argument = nodes[0]["args"][0]
        history = argument.get("config", {}).get("keras_history") if isinstance(argument, dict) else None
        if history is None or list(history) != [previous, 0, 0]:
            return None
        previous = entry["name"]
    return list(model.layers[1:]) if list(outputs[0]) == [previous, 0, 0] else None


@functools.cache
def _functional_type() -> type:
    """The class ``keras.Model(inputs, outputs)`` makes (Keras names it only privately)."""
    inputs = keras.Input((1,))
    return type(keras.Model(inputs, inputs))


def deterministic_prefix(model) -> int:
    """How many leading layers of a chain (``chain_layers``: a Sequential model, or a functional
    graph without branches) run the same in every stochastic pass.

    0 for any other model (a branching graph may route around a dropout layer), and at the
    first layer that is not a known deterministic Keras layer (dropout, noise, augmentation,
    nested models, user layers).
    """
    return _deterministic_count(chain_layers(model))


def _deterministic_count(layers: list | None) -> int:
    """``deterministic_prefix`` of a chain's layers (None: not a chain)."""
    if layers is None:
        return 0
    deterministic = tuple(getattr(keras.layers, name) for name in DETERMINISTIC_LAYERS)
    count = 0
    for layer in layers:
        if type(layer) not in deterministic:
            break
        count += 1
    return count


def mean_over_samples(probs):
    """The predictive distribution: class probabilities averaged over the sample axis."""
    return tf.reduce_mean(probs, axis=1)


def nested_layers(model, include_self: bool = False) -> list:
    """Every layer inside ``model``, recursively. Keras 3 has no public recursive walk; its own
    ``_flatten_layers`` (what weight tracking uses) is the one place this reaches inside, and an
    object without it gives its public top-level ``layers``. The Keras versions it was tested on
    bound the project's pins; tests/test_private_names.py checks what it returns."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=include_self, recursive=True))
    return ([model] if include_self else []) + list(getattr(model, "layers", []))


def _batch_norm_layers(model) -> list:

    return [layer for layer in nested_layers(model, include_self=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def rows_per_pass(model) -> int:
    """Rows (inputs x samples) per sampling pass: DEFAULT_ROWS_PER_PASS, or more for a network
    whose widest activation is narrow (see MAX_ROWS_PER_PASS)."""
    widths = []
    for layer in getattr(model, "layers", []):
        try:
            shape = layer.output.shape[1:]
        except (AttributeError, ValueError):
            # a subclassed network's layers have no symbolic output: read its activations
            # from a trace of its call instead
            widths = _traced_widths(model)
            break
        widths.append(int(np.prod([int(d) for d in shape])) if all(d is not None for d in shape) else 0)
    if not widths or 0 in widths:
        return DEFAULT_ROWS_PER_PASS
    return int(min(MAX_ROWS_PER_PASS, max(DEFAULT_ROWS_PER_PASS, PASS_BYTES // (4 * max(widths)))))


def _traced_widths(model) -> list[int]:
    """Values per input of every tensor of a traced inference call that has the batch axis
    (a 0 where one of its other axes is not known); [] when the input shape is not known or the
    call cannot be traced."""
    signature = input_signature(model)
    if signature is None:
        return []
    spec = tf.TensorSpec([None, *signature[0]], signature[1])
    try:
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    except Exception:  # a call that does not trace on an unknown batch size: keep the default
        return []
    widths = []
    for operation in graph.get_operations():
        for tensor in operation.outputs:
            shape = tensor.shape
            if shape.rank and shape.rank > 1 and shape[0] is None:
                widths.append(int(np.prod(shape[1:])) if shape[1:].is_fully_defined() else 0)
    return widths


def dropout_rate(layer) -> float | None:
    """The rate of a plain Keras ``Dropout`` that the sampler may apply itself (no
    ``noise_shape``, 0 < rate < 1); None for any other layer."""

    if type(layer) is not keras.layers.Dropout or layer.noise_shape is not None:
        return None
    rate = float(layer.rate)
    return rate if 0 < rate < 1 else None


def keep_mask(shape, layer, rate: float, alg: str = "auto_select"):
    """Dropout's keep decisions for a tensor of ``shape``: each element independently kept with
    probability 1 - rate, seeded by the layer's own seed generator as Keras' dropout is (so the
    per-round reseeding of the layers governs these masks too).

    A rate that is a multiple of 1/256 (0.5, 0.25, ...) is decided exactly by one random byte
    per element, four to a generated word: drawing a random float per element, as Keras does,
    was most of the cost of sampling. Any other rate compares a uniform float, as Keras does.

    ``alg`` is the generator: on CPU ``auto_select`` is Philox, but inside an XLA program it
    compiles to one that made a small network's training step ten times slower than ``philox``.
    """
    seed = tf.cast(tf.math.floormod(layer.seed_generator.next(), 2**31 - 1), tf.int32)
    if (rate * 256).is_integer():
        size = tf.reduce_prod(shape)
        words = tf.random.stateless_uniform([(size + 3) // 4], seed, minval=None, maxval=None, dtype=tf.uint32, alg=alg)
        random_bytes = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:size]
        return tf.reshape(random_bytes >= int(rate * 256), shape)
    return tf.random.stateless_uniform(shape, seed, alg=alg) >= rate


def dropped(x, keep, rate: float):
    """``x`` with dropout's mask applied and the kept values scaled by 1 / (1 - rate), as Keras'
    dropout computes them (``keep`` may broadcast ``x``)."""
    return tf.where(keep, x * (1.0 / (1.0 - rate)), tf.zeros([], x.dtype))


def training_pass(layers, x, alg: str = "auto_select"):
    """``x`` through ``layers`` in training mode: each plain ``Dropout`` applied by
    ``keep_mask`` (with generator ``alg``), every other layer called as Keras calls it."""
    for layer in layers:
        own = own_dropout_call(layer, alg)
        x = layer(x, training=True) if own is None else own(x, training=True)
    return x


def own_dropout_call(layer, alg: str = "auto_select") -> Callable | None:
    """For a plain ``Dropout`` (``dropout_rate``), a ``call`` that applies ``keep_mask`` (with
    generator ``alg``) in training mode; None for any other layer."""
    rate = dropout_rate(layer)
    if rate is None:
        return None

    def call(inputs, training=False):
        return dropped(inputs, keep_mask(tf.shape(inputs), layer, rate, alg), rate) if training else inputs
    return call


@contextlib.contextmanager
def swapped_calls(model, replacement: Callable) -> Iterator[None]:
    """Within it, every layer inside ``model`` for which ``replacement(layer)`` gives a function
    runs that function as its ``call``, whichever Keras API built the network.

    It sets the public ``call`` on each such instance and removes it afterwards, so the class's
    own is back; a compiled function calls the layers only while tracing, so this is needed
    around the trace alone. Every other layer, and a subclassed model's own ``call``, run as
    written, and the weights are the network's own: a rebuilt copy of the graph (what
    ``keras.models.clone_model`` makes) would not reach a subclassed model's ``call``.
    """
    swapped = [(layer, call, vars(layer).get("call")) for layer in nested_layers(model)
               if (call := replacement(layer)) is not None]
    try:
        for layer, call, _ in swapped:
            layer.call = call
        yield
    finally:
        for layer, _, own in swapped:
            if own is not None:  # one the instance had before
                layer.call = own
            elif "call" in vars(layer):
                del layer.call


class Sampler:
    """Compiled predictive sampling of a Keras model."""

    def __init__(self, model, stochastic: bool, softmax_outputs: bool = False, share_prefix: bool = True) -> None:
        self._model = model
        self._stochastic = stochastic
        self._softmax = softmax_outputs
        # Leading layers run once per input rather than once per sample (see module docstring).
        # The chain is read once (a functional model's config is written out to read it).
        self._chain = chain_layers(model) if stochastic else None
        self.prefix_layers = _deterministic_count(self._chain) if share_prefix else 0
        signature = input_signature(model)
        self._spec = tf.TensorSpec([None, *signature[0]], signature[1]) if signature is not None else None
        self._fns: dict[tuple, Callable] = {}
        self._checked: dict[Callable, Callable] = {}
        self._rows_per_pass = rows_per_pass(model)
        # Seconds spent inside compiled forward passes (read by benchmarks/ for the overhead share).
        self.forward_seconds = 0.0

    def _function(self, samples: int, reduction: Callable | None = None) -> Callable:
        """The compiled call for ``samples`` passes: ``(B, T, C)`` probabilities, or with a
        ``reduction`` (see ``acquisition.graph_scores``) the B scores and their input checks."""
        key = (samples, reduction)
        fn = self._fns.get(key)
        if fn is not None:
            return fn

        model, stochastic, softmax = self._model, self._stochastic, self._softmax
        bn_layers = _batch_norm_layers(model)
        chain = self._chain
        prefix = chain[:self.prefix_layers] if chain is not None else []
        suffix = chain[self.prefix_layers:] if chain is not None else []

        def copies(x):  # T copies along the batch axis, sample-major
            return tf.tile(x, tf.concat([[samples], tf.ones(tf.rank(x) - 1, tf.int32)], 0))

        def stochastic_passes(x):
            for layer in prefix:
                x = layer(x, training=False)
            if chain is None:  # any other network: its plain dropout is the same masks' too
                with swapped_calls(model, own_dropout_call):
                    return model(copies(x), training=True)
            rest = list(suffix)
            rate = dropout_rate(rest[0]) if rest else None
            if rate is not None:
                # The copies and the first dropout in one pass: masks of shape (T, B, ...) over
                # the shared output, instead of tiling it T times and masking the tiles.
                shape = tf.concat([[samples], tf.shape(x)], 0)
                tiled = dropped(x[None], keep_mask(shape, rest.pop(0), rate), rate)
                tiled = tf.reshape(tiled, tf.concat([[-1], tf.shape(x)[1:]], 0))
            else:
                tiled = copies(x)
            return training_pass(rest, tiled)

        def forward(x):
            n = tf.shape(x)[0]
            if stochastic:
                out = stochastic_passes(x)
            else:
                out = model(x, training=False)
            out = tf.cast(out, tf.float32)
            if softmax:  # logits: one unit is a sigmoid's, several a softmax's
                out = tf.sigmoid(out) if out.shape[-1] == 1 else tf.nn.softmax(out, axis=-1)
            if stochastic:
                out = tf.reshape(out, tf.concat([[samples, n], tf.shape(out)[1:]], 0))
                out = tf.transpose(out, tf.concat([[1, 0], tf.range(2, tf.rank(out))], 0))
            else:
                out = tf.expand_dims(out, 1)
            if reduction is None:
                return out
            if out.shape[-1] == 1:  # one sigmoid unit: the two class probabilities [1 - p, p]
                out = tf.concat([1.0 - out, out], axis=-1)
            return reduction(out)

        compiled = compiled_function(forward, input_signature=[self._spec]) if self._spec is not None else \
            compiled_function(forward, reduce_retracing=True)

        def call(x):
            # Freeze BatchNormalization while tracing: with trainable=False, Keras 3 runs it in
            # inference mode even under training=True, so only dropout is stochastic and the
            # moving statistics are never touched by sampling.
            previous = [layer.trainable for layer in bn_layers]
            for layer in bn_layers:
                layer.trainable = False
            try:
                return compiled(x)
            finally:
                for layer, flag in zip(bn_layers, previous):
                    layer.trainable = flag

        self._fns[key] = call
        return call

    def chunk_size(self, samples: int, batch_size: int | None) -> int:
        if batch_size is not None:
            WHOLE_AT_LEAST_1.check("batch_size", batch_size)
            return int(batch_size)
        return max(1, self._rows_per_pass // max(1, samples if self._stochastic else 1))

    def mean_chunks(self, inputs: Any, samples: int, batch_size: int | None = None):
        """Yield ``(start, stop, mean)``: the class probabilities averaged over the T samples
        inside the compiled call, shape ``(stop - start, C)`` (two columns for one sigmoid)."""
        yield from self._chunked(inputs, samples, batch_size, mean_over_samples)

    def _chunked(self, inputs: Any, samples: int, batch_size: int | None, reduction: Callable | None):
        WHOLE_AT_LEAST_1.check("sample_size", samples)
        fn = self._function(samples if self._stochastic else 1, reduction)
        size = self.chunk_size(samples, batch_size)
        n = len(inputs)
        for start in range(0, n, size):
            stop = min(n, start + size)
            chunk = np.asarray(inputs[start:stop], dtype=self._dtype())
            began = time.perf_counter()
            out = fn(chunk)
            out = out.numpy() if not isinstance(out, tuple) else tuple(part.numpy() for part in out)
            self.forward_seconds += time.perf_counter() - began
            yield start, stop, out

    def chunks(self, inputs: Any, samples: int, batch_size: int | None = None):
        """Yield ``(start, stop, probs)`` per chunk, probs of shape ``(stop - start, T, C)``."""
        for start, stop, out in self._chunked(inputs, samples, batch_size, None):
            if not self._stochastic and samples > 1:
                out = np.repeat(out, samples, axis=1)
            yield start, stop, out

    def score_chunks(self, inputs: Any, samples: int, reduction: Callable, classes: int,
                     batch_size: int | None = None):
        """Yield ``(start, stop, scores)`` per chunk, reduced inside the compiled call.

        The samples are checked as ``scores.check_probs`` would check them on the host;
        ``classes`` (the width the reduction was built for) names their shape in its errors.
        """
        checked = self._checked.get(reduction)
        if checked is None:  # one wrapper per reduction: the compiled function is cached by it
            checked = self._checked[reduction] = lambda probs: reduce_with_checks(probs, reduction)
        passes = samples if self._stochastic else 1  # the sample axis inside the call
        for start, stop, (scores, (nonfinite, lo, hi)) in self._chunked(inputs, samples, batch_size, checked):
            check_value_range(int(nonfinite), float(lo), float(hi), (stop - start, passes, classes))
            yield start, stop, scores

    def _dtype(self):
        if self._spec is not None:
            return self._spec.dtype.as_numpy_dtype
        return np.float32

    def sample(self, inputs: Any, samples: int, batch_size: int | None = None) -> np.ndarray:
        parts = [out for _, _, out in self.chunks(inputs, samples, batch_size)]
        if not parts:
            return np.zeros((0, samples, output_width(self._model)), dtype=np.float32)
        return np.concatenate(parts, axis=0)


def _subclassed_error(model, what: str) -> ValueError:
    return ValueError(
        f"{what} need a Sequential or functional Keras model, but {model.name!r} is a subclassed "
        f"{type(model).__name__}; rebuild it with keras.Sequential or keras.Model(inputs, outputs)."
    )


def functional_view(model, what: str):
    """The network as a functional graph over its own layers (a Sequential model's graph as a
    ``keras.Model(inputs, outputs)``), checked to have one input and one output."""

    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        if isinstance(model, keras.Sequential):
            raise ValueError(
                f"{what} need the input shape of the Sequential model {model.name!r}: start it "
                "with keras.Input(shape) or call it once on a batch before wrapping it."
            )
        raise _subclassed_error(model, what)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"{what} need a network with one input and one output; {model.name!r} has "
            f"{len(inputs)} inputs and {len(outputs)} outputs."
        )
    if isinstance(model, keras.Sequential):
        return keras.Model(inputs, outputs, name=f"{model.name}_graph")
    return model
