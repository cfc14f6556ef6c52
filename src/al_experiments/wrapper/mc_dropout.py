"""``McDropout``: Monte-Carlo dropout (Gal & Ghahramani) over a Keras network with dropout layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from al_experiments.config import Config
from al_experiments.validation import WHOLE_AT_LEAST_1
from al_experiments.wrapper.model import Model


class McDropout(Model):
    """Predictive samples are T forward passes with dropout active (BatchNorm in inference mode).

    ``__call__(inputs, sample_size=10, batch_size=None)`` returns ``(N, T, C)`` probabilities,
    also for ``sample_size=1`` (tf_al dropped the axis then). These samples are
    independent across points; ``consistent_samples(inputs, T, seed)`` gives jointly consistent
    ones (sample t of every input is one set of dropout masks), as BatchBALD and EPIG need.
    """

    def __init__(self, model: Any, config: Config | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("model_type", "mc_dropout")
        super().__init__(model, config, **kwargs)

    def stochastic(self) -> bool:
        return True

    def __call__(self, inputs: Any, sample_size: int = 10, batch_size: int | None = None, **kwargs: Any) -> np.ndarray:
        WHOLE_AT_LEAST_1.check("sample_size", sample_size)
        return self.predictive_samples(inputs, sample_size, batch_size)

    def evaluate(self, inputs: Any, targets: Any, sample_size: int = 10, **kwargs: Any) -> dict[str, float]:
        """Loss and metrics of the MC-averaged predictive distribution over ``sample_size`` passes."""
        return super().evaluate(inputs, targets, sample_size=sample_size, **kwargs)

    def expectation(self, predictions: np.ndarray) -> np.ndarray:
        return np.mean(predictions, axis=1)

    def variance(self, predictions: np.ndarray) -> np.ndarray:
        return np.var(predictions, axis=1)

    def std(self, predictions: np.ndarray) -> np.ndarray:
        return np.std(predictions, axis=1)
