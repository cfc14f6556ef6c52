"""A wrapped network between rounds and between processes: the reset policy, the state a
resumed job needs, and weights on disk.

A mixin of ``Model``: it reads the network (``_model``), the seed and round, and the policy
(``reset_policy``); the redraw itself is ``reset.WeightResetter``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from al_experiments.utils.seeding import derive_seed


class WeightsMixin:
    """Reset, resume and save of ``Model``."""

    def _ensure_ready(self):
        if getattr(self._model, "optimizer", None) is None or self._loss is None:
            raise ValueError(
                "The wrapped Keras model is not compiled: call wrapper.compile(optimizer=..., "
                "loss=..., metrics=[...]) before running the loop."
            )
        if self._resetter is None:
            from al_experiments.wrapper.reset import WeightResetter

            self._model.optimizer.build(self._model.trainable_variables)
            self._resetter = WeightResetter(self._model)
            self._resetter.snapshot_optimizer()
        return self._resetter

    def reset(self, pool: Any = None, dataset: Any = None, round_index: int | None = None) -> None:
        """Prepare the network for the next round according to ``reset_policy``.

        ``reinit`` draws fresh weights seeded by (seed, round) and resets the optimizer;
        ``initial`` restores the first weights and resets the optimizer; ``warm`` starts fresh in round 1
        and then keeps training the same weights and optimizer state.
        """
        resetter = self._ensure_ready()
        self._round = self._round + 1 if round_index is None else int(round_index)
        has_validation = dataset is not None and getattr(dataset, "has_eval_set", lambda: False)()
        self._validation = dataset.get_eval_split() if has_validation else None  # for early stopping
        seed = derive_seed(self._seed, self._round, "weights")
        if self.reset_policy == "warm" and self._round > 1:
            resetter.reseed_layers(seed)
            return
        if self.reset_policy in ("reinit", "warm"):
            resetter.fresh_start(seed)
        else:
            resetter.restore_initial()
            resetter.reseed_layers(seed)
            resetter.reset_optimizer()

    def resume_state(self) -> dict[str, list[np.ndarray]] | None:
        """What a resumed job needs from this model to continue after the current round: the
        weights and optimizer state under ``reset="warm"``, nothing otherwise (``reinit`` redraws
        from (seed, round) and ``initial`` restores the weights it was built with)."""
        if self.reset_policy != "warm" or self._resetter is None:
            return None
        optimizer = self._model.optimizer
        return {"weights": [np.array(w) for w in self._model.get_weights()],
                "optimizer": [np.array(v) for v in optimizer.variables]}

    def restore_resume_state(self, state: dict[str, list[np.ndarray]]) -> None:
        """Load what ``resume_state`` returned (before the next round's ``reset``)."""
        self._ensure_ready()
        self._model.set_weights(list(state["weights"]))
        for variable, value in zip(self._model.optimizer.variables, state["optimizer"]):
            variable.assign(value)

    def clear_session(self) -> None:
        """Kept for tf_al compatibility. Nothing to clear: the wrapper reuses one network."""

    # ------------------------------------------------------------------ weights on disk
    def _weights_file(self) -> str:
        return os.path.join(self._checkpoint_path, "model.weights.h5")

    def save_weights(self) -> str:
        from al_experiments.utils.atomic import replacing

        path = self._weights_file()
        with replacing(path, suffix=".weights.h5") as tmp:  # Keras insists on the suffix
            self._model.save_weights(tmp)
        return path

    def load_weights(self) -> None:
        self._model.load_weights(self._weights_file())

    def has_save_state(self) -> bool:
        """Are saved weights on disk? (No side effect: tf_al loaded them while checking.)"""
        return os.path.exists(self._weights_file())

    def disable_batch_norm(self) -> None:
        import keras

        from al_experiments.wrapper.compiled import nested_layers

        for layer in nested_layers(self._model, include_self=True):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
