"""Consistent joint MC samples: one parameter draw per sample index for every input.

``ConsistentSampler`` runs a twin of the network in which every Keras noise layer (Dropout,
SpatialDropout1D/2D/3D, AlphaDropout, GaussianDropout, GaussianNoise) is replaced by a layer
that applies a precomputed noise tensor of shape (T, 1, *noise shape per point) to the tiled
(T*B, ...) activations viewed as (T, B, ...): sample t of every point of the chunk uses the
same mask. The masks are drawn once per call with a stateless RNG from (seed, noise layer,
t) only, so they are the same in every chunk, in every call with the same seed, and for any T
(sample t of T=5 is sample t of T=100). Every other layer is the network's own (shared
weights, no copy) and runs in inference mode: BatchNormalization uses its moving statistics
and never updates them. The twin is built with ``keras.models.clone_model(view,
clone_function=identity, call_function=...)`` over a functional view of the network; while it
is built, layers whose inputs do not depend on the sample yet (a deterministic prefix, in any
branch of a functional graph) stay untiled and run once per input, and the activations are
tiled T times just before the first layer that needs it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from al_experiments.acquisition.graph_scores import reduce_with_checks
from al_experiments.acquisition.scores import check_value_range
from al_experiments.utils.quiet_tensorflow import import_tensorflow
from al_experiments.validation import WHOLE_AT_LEAST_1, optional

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow's quiet import, which Keras would otherwise do loudly)
from al_experiments.wrapper.sampling import (  # noqa: E402
    DETERMINISTIC_LAYERS,
    compiled_function,
    functional_view,
    nested_layers,
    input_signature,
    output_width,
    rows_per_pass,
)

# Keras layers outside ``DETERMINISTIC_LAYERS`` that are deterministic too (merge layers): they
# may run before tiling when none of their inputs is tiled yet.
_DETERMINISTIC_MERGE_LAYERS = "Add Subtract Multiply Average Maximum Minimum Concatenate Dot".split()


def _noise_layer_types():
    """The Keras layer types that draw noise in training mode, most specific first."""

    layers = keras.layers
    types = [layers.SpatialDropout1D, layers.SpatialDropout2D, layers.SpatialDropout3D]
    if hasattr(layers, "AlphaDropout"):
        types.append(layers.AlphaDropout)
    types += [layers.Dropout, layers.GaussianDropout, layers.GaussianNoise]
    return tuple(types)


def _is_noise_layer(layer) -> bool:
    return isinstance(layer, _noise_layer_types())


class _NoiseSpec:
    """How one noise layer draws the noise of one sample: ``draw(seed)`` gives a
    ``(K, *shape)`` float32 tensor (K=1: a multiplier or an addend; K=2 for AlphaDropout:
    multiplier and addend), broadcast over the batch and over the axes where ``shape`` is 1."""

    def __init__(self, layer, point_shape: tuple) -> None:

        layers = keras.layers
        self.layer_name = layer.name
        rank = len(point_shape)
        self.kind = "multiply"
        self.rate = float(getattr(layer, "rate", 0.0))
        channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
        if isinstance(layer, (layers.SpatialDropout1D, layers.SpatialDropout2D, layers.SpatialDropout3D)):
            # One draw per feature map (Keras' ``_get_noise_shape``): all spatial axes share it.
            if isinstance(layer, layers.SpatialDropout1D) or not channels_first:
                shape = (1,) * (rank - 1) + (point_shape[-1],)
            else:
                shape = (point_shape[0],) + (1,) * (rank - 1)
            self.draw_kind = "dropout"
        elif hasattr(layers, "AlphaDropout") and isinstance(layer, layers.AlphaDropout):
            shape = self._noise_shape(layer, point_shape)
            self.draw_kind = "alpha"
            self.kind = "affine"
        elif isinstance(layer, layers.Dropout):
            shape = self._noise_shape(layer, point_shape)
            self.draw_kind = "dropout"
        elif isinstance(layer, layers.GaussianDropout):
            shape = tuple(point_shape)
            self.draw_kind = "gaussian_dropout"
        else:  # GaussianNoise
            shape = tuple(point_shape)
            self.rate = float(layer.stddev)
            self.draw_kind = "gaussian_noise"
            self.kind = "add"
        if any(d is None for d in shape):
            raise ValueError(
                f"Consistent samples need the full input shape of noise layer {layer.name!r} "
                f"(got {tuple(point_shape)}); give the network an Input with fixed feature sizes."
            )
        self.shape = tuple(int(d) for d in shape)

    @staticmethod
    def _noise_shape(layer, point_shape: tuple) -> tuple:
        noise_shape = getattr(layer, "noise_shape", None)
        if noise_shape is None:
            return tuple(point_shape)
        # Keras' concrete noise shape: None takes the input's size; the batch entry is the
        # batch axis, over which one sample's mask is shared anyway.
        return tuple(d if n is None else n for n, d in zip(tuple(noise_shape)[1:], point_shape))

    @property
    def active(self) -> bool:
        return self.rate > 0

    @property
    def width(self) -> int:
        return 2 if self.kind == "affine" else 1

    def draw(self, seed):
        """The noise of one sample from a stateless ``seed`` (Keras' semantics exactly)."""
        shape = self.shape
        rate = self.rate
        if self.draw_kind == "dropout":  # keep with probability 1 - rate, scale by 1/(1 - rate)
            if rate >= 1.0:
                return tf.zeros((1, *shape), tf.float32)
            keep = tf.random.stateless_uniform(shape, seed, dtype=tf.float32) >= rate
            return tf.expand_dims(tf.cast(keep, tf.float32) * (1.0 / (1.0 - rate)), 0)
        if self.draw_kind == "gaussian_dropout":
            stddev = (rate / (1.0 - rate)) ** 0.5
            return tf.expand_dims(tf.random.stateless_normal(shape, seed, mean=1.0, stddev=stddev), 0)
        if self.draw_kind == "gaussian_noise":
            return tf.expand_dims(tf.random.stateless_normal(shape, seed, mean=0.0, stddev=rate), 0)
        # AlphaDropout: x -> a * (x * kept + alpha_p * (1 - kept)) + b, as multiplier and addend.
        alpha = 1.6732632423543772848170429916717
        scale = 1.0507009873554804934193349852946
        alpha_p = -alpha * scale
        a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        kept = tf.cast(tf.random.stateless_uniform(shape, seed, dtype=tf.float32) >= rate, tf.float32)
        return tf.stack([a * kept, a * alpha_p * (1.0 - kept) + b], 0)


class _NoiseContext:
    """What the twin's layers read while the chunk function is traced: the number of samples
    T and the noise tensors (the traced function's own inputs, so nothing is baked in)."""

    def __init__(self) -> None:
        self.samples = None
        self.noise = None

    def bind(self, samples, noise):
        @contextlib.contextmanager
        def bound():
            self.samples, self.noise = samples, noise
            try:
                yield
            finally:
                self.samples, self.noise = None, None

        return bound()

    def require(self):
        if self.samples is None:
            raise RuntimeError("The consistent twin of a network runs only inside ConsistentSampler.")
        return self.samples, self.noise


_TWIN_LAYERS = None


def _twin_layers():
    """The two layer classes of the twin (defined on first use: Keras is imported lazily)."""
    global _TWIN_LAYERS
    if _TWIN_LAYERS is not None:
        return _TWIN_LAYERS

    class TileSamples(keras.layers.Layer):
        """(B, ...) -> (T*B, ...): T copies of the chunk, sample-major as the Sampler tiles."""

        def __init__(self, context, **kwargs):
            super().__init__(autocast=False, **kwargs)
            self._context = context

        def call(self, x):
            samples, _ = self._context.require()
            return tf.tile(x, tf.concat([[samples], tf.ones(tf.rank(x) - 1, tf.int32)], 0))

        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape, dtype=x.dtype)

    class ConsistentNoise(keras.layers.Layer):
        """Applies sample t's noise of one noise layer to every point of sample t."""

        def __init__(self, context, slot: int, spec: _NoiseSpec, **kwargs):
            super().__init__(autocast=False, **kwargs)
            self._context = context
            self._slot = slot
            self._spec = spec

        def call(self, x):
            samples, noise = self._context.require()
            noise = tf.cast(noise[self._slot], x.dtype)  # (T, K, *noise shape)
            shape = tf.shape(x)
            y = tf.reshape(x, tf.concat([[samples, shape[0] // samples], shape[1:]], 0))
            kind = self._spec.kind
            if kind == "multiply":
                y = y * noise
            elif kind == "add":
                y = y + noise
            else:
                y = y * noise[:, :1] + noise[:, 1:]
            return tf.reshape(y, shape)

        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape, dtype=x.dtype)

    _TWIN_LAYERS = (TileSamples, ConsistentNoise)
    return _TWIN_LAYERS


def _noise_level(layer) -> float:
    """A noise layer's rate (stddev for GaussianNoise): 0 means it passes its input through."""
    return float(getattr(layer, "rate", getattr(layer, "stddev", 0.0)) or 0.0)


def _hidden_noise(layer) -> str | None:
    """Why a layer that is not replaced would still draw noise (nested dropout layers, RNN
    dropout), or None."""
    inner = nested_layers(layer)
    noisy = [sub.name for sub in inner if _is_noise_layer(sub) and _noise_level(sub) > 0]
    if noisy:
        return f"contains the noise layer(s) {', '.join(noisy)}"
    for owner in (layer, getattr(layer, "cell", None)):
        for attribute in ("dropout", "recurrent_dropout"):
            value = getattr(owner, attribute, None) if owner is not None else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return f"applies {attribute}={value} inside itself"
    return None


class _TwinBuilder:
    """``call_function`` of ``clone_model``: swaps noise layers, tracks which symbolic tensors
    are tiled (depend on the sample) and tiles an untiled one where a consumer needs it."""

    def __init__(self, context: _NoiseContext) -> None:

        self._keras = keras
        self._context = context
        self._tile_cls, self._noise_cls = _twin_layers()
        self.specs: list[_NoiseSpec] = []
        self._tiled: dict[int, Any] = {}  # id -> tensor (kept alive so ids stay unique)
        self._tiled_copy: dict[int, Any] = {}  # id of an untiled tensor -> its tiled copy
        self._keep: list[Any] = []
        names = DETERMINISTIC_LAYERS + _DETERMINISTIC_MERGE_LAYERS
        self._deterministic = tuple(getattr(keras.layers, name) for name in names if hasattr(keras.layers, name))

    def is_tiled(self, tensor) -> bool:
        return id(tensor) in self._tiled

    def _mark(self, outputs) -> None:
        for tensor in self._keras.tree.flatten(outputs):
            if isinstance(tensor, self._keras.KerasTensor):
                self._tiled[id(tensor)] = tensor

    def tile(self, tensor):
        if self.is_tiled(tensor) or not isinstance(tensor, self._keras.KerasTensor):
            return tensor
        copy = self._tiled_copy.get(id(tensor))
        if copy is None:
            copy = self._tile_cls(self._context)(tensor)
            self._tiled_copy[id(tensor)] = copy
            self._keep.append(tensor)
            self._mark(copy)
        return copy

    def __call__(self, op, *args, **kwargs):
        keras = self._keras
        tensors = [v for v in keras.tree.flatten((args, kwargs)) if isinstance(v, keras.KerasTensor)]
        if _is_noise_layer(op):
            x = args[0] if args else kwargs.get("inputs")
            spec = _NoiseSpec(op, tuple(x.shape[1:]))
            if not spec.active:  # rate 0 / stddev 0: Keras passes the input through
                return x
            self.specs.append(spec)
            slot = len(self.specs) - 1
            noise = self._noise_cls(self._context, slot, spec, name=f"consistent_{slot}_{op.name}")
            out = noise(self.tile(x))
            self._mark(out)
            return out
        if isinstance(op, keras.Model) and any(_is_noise_layer(sub) and _noise_level(sub) > 0
                                               for sub in nested_layers(op)):
            raise ValueError(
                f"Consistent samples need a Sequential or functional Keras model whose noise layers "
                f"sit at its top level, but the nested model {op.name!r} contains some; build the "
                "network without nesting (or use predictive_samples for independent samples)."
            )
        reason = _hidden_noise(op) if isinstance(op, keras.layers.Layer) else None
        if reason is not None:
            raise ValueError(
                f"Consistent samples cannot share the noise of layer {op.name!r}, which {reason}; "
                "use top-level Keras Dropout-family layers instead (or predictive_samples)."
            )
        if "training" in kwargs:  # a training flag baked into the graph: inference mode here
            kwargs["training"] = False
        deterministic = type(op) in self._deterministic or not isinstance(op, keras.layers.Layer)
        if not any(self.is_tiled(t) for t in tensors) and deterministic:
            return op(*args, **kwargs)  # the same in every sample: runs once per input
        args, kwargs = keras.tree.map_structure(self.tile, (args, kwargs))
        out = op(*args, **kwargs)
        self._mark(out)
        return out


def stateless_key(seed: int) -> np.ndarray:
    """The two-word stateless RNG key of an integer seed (any Python int; distinct mod 2**64)."""
    value = int(seed) % 2**64
    return np.array([value >> 32, value & 0xFFFFFFFF], dtype=np.int64)


class ConsistentSampler:
    """Compiled consistent MC sampling: sample t of every input is one draw of all noise layers,
    fixed by ``(seed, t)`` (see the section comment above)."""

    def __init__(self, model, softmax_outputs: bool = False) -> None:

        what = "Consistent samples"
        view = functional_view(model, what)
        self._model = model
        self._softmax = softmax_outputs
        self._context = _NoiseContext()
        builder = _TwinBuilder(self._context)
        self.twin = keras.models.clone_model(view, clone_function=lambda layer: layer, call_function=builder)
        self.specs = builder.specs
        self._output_tiled = builder.is_tiled(self.twin.outputs[0])
        signature = input_signature(model)
        self._x_spec = tf.TensorSpec([None, *signature[0]], signature[1])
        noise_specs = tuple(tf.TensorSpec([None, spec.width, *spec.shape], tf.float32) for spec in self.specs)
        self._noise_fn = compiled_function(self._draw_noise, input_signature=[
            tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.int32)])
        self._noise_specs = noise_specs
        self._forward_fn = compiled_function(self._forward, input_signature=[
            self._x_spec, tf.TensorSpec([], tf.int32), noise_specs])
        self._score_fns: dict[Any, Any] = {}
        self._rows_per_pass = rows_per_pass(model)
        self.forward_seconds = 0.0

    def _draw_noise(self, key, samples):
        noise = []
        for slot, spec in enumerate(self.specs):
            layer_key = tf.random.experimental.stateless_fold_in(key, slot)

            def draw(t, spec=spec, layer_key=layer_key):
                return spec.draw(tf.random.experimental.stateless_fold_in(layer_key, t))

            noise.append(tf.map_fn(draw, tf.range(samples), fn_output_signature=tf.TensorSpec(
                [spec.width, *spec.shape], tf.float32)))
        return tuple(noise)

    def _forward(self, x, samples, noise):
        n = tf.shape(x)[0]
        with self._context.bind(samples, noise):
            out = self.twin(x, training=False)
        out = tf.cast(out, tf.float32)
        if not self._output_tiled:  # no noise on the way to the output: T equal samples
            out = tf.tile(out, tf.concat([[samples], tf.ones(tf.rank(out) - 1, tf.int32)], 0))
        if self._softmax:  # logits: one unit is a sigmoid's, several a softmax's
            out = tf.sigmoid(out) if out.shape[-1] == 1 else tf.nn.softmax(out, axis=-1)
        out = tf.reshape(out, tf.concat([[samples, n], tf.shape(out)[1:]], 0))
        return tf.transpose(out, tf.concat([[1, 0], tf.range(2, tf.rank(out))], 0))

    def noise(self, samples: int, seed: int):
        """The noise tensors of samples 0..T-1 under ``seed``, one ``(T, K, *shape)`` per layer."""
        return self._noise_fn(tf.constant(stateless_key(seed)), tf.constant(int(samples), tf.int32))

    def _score_fn(self, reduction):
        """The chunk function followed by ``reduction`` (``acquisition.graph_scores``), so a
        chunk's ``(B, T, C)`` samples never leave the graph; one per reduction."""
        fn = self._score_fns.get(reduction)
        if fn is None:
            def scored(x, samples, noise):
                out = self._forward(x, samples, noise)
                if out.shape[-1] == 1:  # one sigmoid unit: the two class probabilities [1 - p, p]
                    out = tf.concat([1.0 - out, out], axis=-1)
                return reduce_with_checks(out, reduction)

            fn = self._score_fns[reduction] = compiled_function(scored, input_signature=[
                self._x_spec, tf.TensorSpec([], tf.int32), self._noise_specs])
        return fn

    def score_chunks(self, inputs: Any, samples: int, seed: int, reduction, classes: int,
                     batch_size: int | None = None):
        """Yield ``(start, stop, scores)``: each chunk's consistent samples reduced inside the
        compiled call (checked as ``scores.check_probs`` checks them on the host)."""
        for start, stop, (scores, (nonfinite, lo, hi)) in self.chunks(inputs, samples, seed, batch_size,
                                                                       self._score_fn(reduction)):
            check_value_range(int(nonfinite), float(lo), float(hi), (stop - start, samples, classes))
            yield start, stop, scores

    def chunks(self, inputs: Any, samples: int, seed: int, batch_size: int | None = None, fn=None):
        """Yield ``(start, stop, probs)`` with probs ``(stop - start, T, C)`` (or what ``fn``, a
        compiled function of the same arguments, returns); the noise is drawn once for all
        chunks."""
        WHOLE_AT_LEAST_1.check("sample_size", samples)
        optional(WHOLE_AT_LEAST_1).check("batch_size", batch_size)
        size = int(batch_size) if batch_size is not None else max(1, self._rows_per_pass // samples)
        noise = self.noise(samples, seed)
        t = tf.constant(int(samples), tf.int32)
        dtype = self._x_spec.dtype.as_numpy_dtype
        n = len(inputs)
        for start in range(0, n, size):
            stop = min(n, start + size)
            began = time.perf_counter()
            out = (fn or self._forward_fn)(np.asarray(inputs[start:stop], dtype=dtype), t, noise)
            out = out.numpy() if not isinstance(out, tuple) else tuple(part.numpy() for part in out)
            self.forward_seconds += time.perf_counter() - began
            yield start, stop, out

    def sample(self, inputs: Any, samples: int, seed: int, batch_size: int | None = None) -> np.ndarray:
        parts = [out for _, _, out in self.chunks(inputs, samples, seed, batch_size)]
        if not parts:
            return np.zeros((0, samples, output_width(self._model)), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def tracing_count(self) -> int:
        """How often the chunk function was traced (1 after any number of calls)."""
        return self._forward_fn.experimental_get_tracing_count()
