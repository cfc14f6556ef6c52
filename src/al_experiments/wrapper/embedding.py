"""Deterministic embeddings of a network's inputs (for Core-set and BADGE), compiled and chunked."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from al_experiments.utils.quiet_tensorflow import import_tensorflow
from al_experiments.validation import WHOLE_AT_LEAST_1, optional

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow's quiet import, which Keras would otherwise do loudly)
from al_experiments.wrapper.sampling import (  # noqa: E402
    DEFAULT_ROWS_PER_PASS,
    compiled_function,
    functional_view,
    input_signature,
    output_width,
)


def _two_columns(probs):
    """One sigmoid unit -> the two class probabilities [1 - p, p]."""
    return tf.concat([1.0 - probs, probs], axis=-1) if probs.shape[-1] == 1 else probs


class Embedder:
    """Compiled, chunked, inference-mode embeddings of a Sequential or functional network.

    The embedding is the input of the network's last top-level Dense layer, or the output of
    the layer named ``layer_name``, flattened to ``(N, D)``; the class probabilities of the same
    pass come with it on request.
    """

    def __init__(self, model, layer_name: str | None = None, softmax_outputs: bool = False) -> None:

        what = "Embeddings"
        view = functional_view(model, what)
        self._model = model
        self._softmax = softmax_outputs
        names = [layer.name for layer in model.layers]
        if layer_name is None:
            dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
            if not dense:
                raise ValueError(
                    f"Embeddings default to the input of the last Dense layer, but {model.name!r} has "
                    f"none at its top level; pass embedding_layer=<one of {names}>."
                )
            self.layer_name = dense[-1].name
            features = dense[-1].input
        else:
            if layer_name not in names:
                raise ValueError(
                    f"embedding_layer={layer_name!r} is not a layer of {model.name!r}; "
                    f"its layers are {names}."
                )
            self.layer_name = layer_name
            features = model.get_layer(layer_name).output
        if isinstance(features, (list, tuple)):
            raise ValueError(
                f"The embedding layer {self.layer_name!r} has several inputs or outputs; "
                f"pass embedding_layer=<a layer with one output, one of {names}>."
            )
        self.features_model = keras.Model(view.inputs, features)
        self.joint_model = keras.Model(view.inputs, [features, view.outputs[0]])
        signature = input_signature(model)
        self._x_spec = tf.TensorSpec([None, *signature[0]], signature[1])
        self._fns: dict[bool, Callable] = {}

    def _function(self, return_probs: bool) -> Callable:
        fn = self._fns.get(return_probs)
        if fn is not None:
            return fn
        features_model, joint_model, softmax = self.features_model, self.joint_model, self._softmax

        def flat(features):
            features = tf.cast(features, tf.float32)
            return tf.reshape(features, [tf.shape(features)[0], -1])

        def embed(x):
            return flat(features_model(x, training=False))

        def embed_with_probs(x):
            features, probs = joint_model(x, training=False)
            probs = tf.cast(probs, tf.float32)
            if softmax:
                probs = tf.sigmoid(probs) if probs.shape[-1] == 1 else tf.nn.softmax(probs, axis=-1)
            return flat(features), _two_columns(probs)

        fn = compiled_function(embed_with_probs if return_probs else embed, input_signature=[self._x_spec])
        self._fns[return_probs] = fn
        return fn

    def embed(self, inputs: Any, batch_size: int | None = None, return_probs: bool = False):
        """``(N, D)`` embeddings, with ``(N, C)`` probabilities when ``return_probs``."""
        optional(WHOLE_AT_LEAST_1).check("batch_size", batch_size)
        size = int(batch_size) if batch_size is not None else DEFAULT_ROWS_PER_PASS
        fn = self._function(bool(return_probs))
        dtype = self._x_spec.dtype.as_numpy_dtype
        n = len(inputs)
        # Filled in place, chunk by chunk: a list of chunks joined at the end would hold a large
        # pool's embeddings twice at once.
        outputs: list[np.ndarray] = []
        for start in range(0, n, size):
            stop = min(n, start + size)
            out = fn(np.asarray(inputs[start:stop], dtype=dtype))
            chunks = [part.numpy() for part in out] if return_probs else [out.numpy()]
            if not outputs:
                outputs = [np.empty((n, *chunk.shape[1:]), dtype=chunk.dtype) for chunk in chunks]
            for whole, chunk in zip(outputs, chunks):
                whole[start:stop] = chunk
        if not outputs:
            width = int(np.prod(self.features_model.outputs[0].shape[1:]))
            empty = np.zeros((0, width), dtype=np.float32)
            return (empty, np.zeros((0, max(2, output_width(self._model))), dtype=np.float32)) if return_probs \
                else empty
        return tuple(outputs) if return_probs else outputs[0]
