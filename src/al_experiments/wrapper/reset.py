"""Between rounds: fresh weights drawn from the layers' own initialisers, and a fresh optimizer.

Re-drawing in place (instead of tf_al's ``clone_model`` + recompile) keeps the compiled training
and sampling functions valid, so nothing retraces, and a seed per round makes the draw
reproducible however the job reached that round.
"""

from __future__ import annotations

import logging

import numpy as np

from al_experiments.wrapper.sampling import compiled_function, nested_layers, tf

import keras  # noqa: E402  (after sampling's quiet TensorFlow import)

log = logging.getLogger(__name__)

# (initialiser attribute, weight attribute) pairs of Keras' built-in layers.
_INITIALISED = [
    ("kernel_initializer", "kernel"),
    ("bias_initializer", "bias"),
    ("depthwise_initializer", "depthwise_kernel"),
    ("pointwise_initializer", "pointwise_kernel"),
    ("recurrent_initializer", "recurrent_kernel"),
    ("embeddings_initializer", "embeddings"),
    ("gamma_initializer", "gamma"),
    ("beta_initializer", "beta"),
    ("moving_mean_initializer", "moving_mean"),
    ("moving_variance_initializer", "moving_variance"),
]


class WeightResetter:
    """Restores a model and its optimizer to a freshly initialised state."""

    def __init__(self, model) -> None:
        self._model = model
        self._initial_weights = [np.array(w) for w in model.get_weights()]
        self._optimizer_state = None
        self._pairs = self._initialised_weights()
        covered = {id(v) for _, v, _ in self._pairs}
        self.can_redraw = all(id(v) in covered for v in model.weights) and bool(self._pairs)
        if not self.can_redraw:
            log.info("Some weights have no known initialiser; rounds restart from the initial weights.")

    def _initialised_weights(self):
        pairs = []
        for layer in nested_layers(self._model):
            for init_attr, weight_attr in _INITIALISED:
                initializer = getattr(layer, init_attr, None)
                variable = getattr(layer, weight_attr, None)
                if initializer is not None and variable is not None and hasattr(variable, "assign"):
                    pairs.append((initializer, variable, f"{layer.name}/{weight_attr}"))
        return pairs

    def snapshot_optimizer(self) -> None:
        optimizer = getattr(self._model, "optimizer", None)
        if optimizer is not None and optimizer.built:
            self._optimizer_state = [np.array(v) for v in optimizer.variables]
            self._reset_optimizer_fn = self._fresh_start_fn = None

    def reset_optimizer(self) -> None:
        optimizer = getattr(self._model, "optimizer", None)
        if optimizer is None or self._optimizer_state is None:
            return
        if getattr(self, "_reset_optimizer_fn", None) is None:
            pairs = list(zip(optimizer.variables, self._optimizer_state))

            @compiled_function(input_signature=[])
            def reset():
                for variable, value in pairs:
                    variable.assign(value)

            self._reset_optimizer_fn = reset
        self._reset_optimizer_fn()

    def restore_initial(self) -> None:
        self._model.set_weights(self._initial_weights)

    def fresh_start(self, seed: int) -> None:
        """``redraw(seed)`` and ``reset_optimizer()`` in one compiled call (a round's reset)."""
        if not self.can_redraw:
            self.redraw(seed)
            self.reset_optimizer()
            return
        if getattr(self, "_fresh_start_fn", None) is None:
            self._fresh_start_fn = self._compile(with_weights=True, with_optimizer=True)
        self._fresh_start_fn(np.int64(seed))

    def redraw(self, seed: int) -> None:
        """New weights from each layer's initialiser, seeded by ``seed`` and the weight's position.

        One compiled call: every initialiser draws from its own seed generator, whose state is
        set to ``[seed * 1000003 + position, 0]`` first, the very draw an integer seed of that
        value gives (a round's weights do not depend on how many rounds ran before it). The
        random layers are reseeded as by ``reseed_layers``.
        """
        if not self.can_redraw:
            self.restore_initial()
            self.reseed_layers(seed)
            return
        if getattr(self, "_redraw_fn", None) is None:
            self._redraw_fn = self._compile(with_weights=True)
        self._redraw_fn(np.int64(seed))

    def reseed_layers(self, seed: int) -> None:
        """Restart dropout and other random layers from ``seed``, so a round's masks do not
        depend on how many rounds ran before it (a resumed job draws the same ones)."""
        if getattr(self, "_reseed_fn", None) is None:
            self._reseed_fn = self._compile(with_weights=False)
        self._reseed_fn(np.int64(seed))

    def _compile(self, with_weights: bool, with_optimizer: bool = False):
        draws = []  # (seed generator or None, initialiser, variable, position)
        for position, (initializer, variable, _) in enumerate(self._pairs if with_weights else []):
            config = initializer.get_config()
            generator = None
            if "seed" in config:
                generator = keras.random.SeedGenerator(0)
                config["seed"] = generator
            draws.append((generator, initializer.__class__.from_config(config), variable, position))
        layer_generators = [
            (position, generator)
            for position, layer in enumerate(nested_layers(self._model, include_self=True))
            if isinstance(generator := getattr(layer, "seed_generator", None), keras.random.SeedGenerator)
        ]

        optimizer = getattr(self._model, "optimizer", None)
        optimizer_values = (list(zip(optimizer.variables, self._optimizer_state))
                            if with_optimizer and optimizer is not None and self._optimizer_state is not None else [])

        def state(generator, value):
            return tf.cast(tf.stack([value % 2**31, tf.constant(0, tf.int64)]), generator.state.dtype)

        @compiled_function(input_signature=[tf.TensorSpec([], tf.int64)])
        def redraw(seed):
            for generator, initializer, variable, position in draws:
                if generator is not None:
                    generator.state.assign(state(generator, seed * 1_000_003 + position))
                variable.assign(initializer(tuple(variable.shape), dtype=variable.dtype))
            for position, generator in layer_generators:
                generator.state.assign(state(generator, seed * 7919 + position))
            for variable, value in optimizer_values:
                variable.assign(value)

        return redraw
