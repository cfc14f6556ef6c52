"""Between rounds: fresh weights drawn from the layers' own initialisers, and a fresh optimizer.

Re-drawing in place (instead of tf_al's ``clone_model`` + recompile) keeps the compiled training
and sampling functions valid, so nothing retraces, and a seed per round makes the draw
reproducible however the job reached that round.
"""

from __future__ import annotations

import logging

import numpy as np

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
        for layer in self._model._flatten_layers(include_self=False):
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

    def reset_optimizer(self) -> None:
        optimizer = getattr(self._model, "optimizer", None)
        if optimizer is None or self._optimizer_state is None:
            return
        for variable, value in zip(optimizer.variables, self._optimizer_state):
            variable.assign(value)

    def restore_initial(self) -> None:
        self._model.set_weights(self._initial_weights)

    def redraw(self, seed: int) -> None:
        """New weights from each layer's initialiser, seeded by ``seed`` and the weight's position."""
        import keras

        if not self.can_redraw:
            self.restore_initial()
            return
        for position, (initializer, variable, _) in enumerate(self._pairs):
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = int((seed * 1_000_003 + position) % 2**31)
            fresh = initializer.__class__.from_config(config)
            variable.assign(fresh(tuple(variable.shape), dtype=variable.dtype))
        # Dropout and other random layers: restart their generators from the round's seed too,
        # so a round's masks do not depend on how many rounds ran before it.
        for position, layer in enumerate(self._model._flatten_layers(include_self=True)):
            generator = getattr(layer, "seed_generator", None)
            if isinstance(generator, keras.random.SeedGenerator):
                generator.state.assign(
                    np.array([(seed * 7919 + position) % 2**31, 0], dtype=generator.state.dtype)
                )
