"""What a Keras network answers between training and evaluation, through compiled functions:
predictive samples (independent or jointly consistent), mean predictions, embeddings and
scores reduced inside the sampler. One compiled function per kind is kept, so nothing retraces
between rounds. Imports TensorFlow (only a Keras backend uses it).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from al_experiments.validation import WHOLE_AT_LEAST_1
from al_experiments.wrapper.sampling import Sampler
from al_experiments.wrapper.consistent import ConsistentSampler
from al_experiments.wrapper.embedding import Embedder
from al_experiments.wrapper.keras_metrics import class_probabilities


class KerasPredictions:
    """The compiled samplers and embedders of one network, made on first use.

    ``logits`` in every call says whether the network outputs logits (its loss was compiled
    with ``from_logits=True``): the compiled functions then apply the softmax (or sigmoid).
    """

    def __init__(self, network: Any) -> None:
        self.network = network
        self._samplers: dict[tuple[bool, bool], Any] = {}  # by (stochastic, logits)
        self._consistent: dict[bool, Any] = {}  # by logits
        self._embedders: dict[tuple, Any] = {}  # by (layer name, logits)

    def sampler(self, stochastic: bool, logits: bool):
        """The compiled independent sampler (``sampling.Sampler``)."""
        key = (bool(stochastic), bool(logits))
        sampler = self._samplers.get(key)
        if sampler is None:
            sampler = self._samplers[key] = Sampler(self.network, stochastic=key[0], softmax_outputs=key[1])
        return sampler

    def consistent_sampler(self, logits: bool):
        """The compiled consistent sampler (``consistent.ConsistentSampler``)."""
        sampler = self._consistent.get(bool(logits))
        if sampler is None:
            sampler = self._consistent[bool(logits)] = ConsistentSampler(self.network, softmax_outputs=bool(logits))
        return sampler

    def sample_chunks(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool, logits: bool):
        for start, stop, probs in self.sampler(stochastic, logits).chunks(inputs, int(sample_size), batch_size):
            yield start, stop, class_probabilities(probs)

    def predictive_samples(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool,
                           logits: bool) -> np.ndarray:
        return class_probabilities(self.sampler(stochastic, logits).sample(inputs, int(sample_size), batch_size))

    def predict(self, inputs: Any, sample_size: int, batch_size: int | None, stochastic: bool,
                logits: bool) -> np.ndarray:
        """Mean class probabilities ``(N, C)``, averaged inside the compiled call (the
        ``(N, T, C)`` samples never reach the host)."""
        WHOLE_AT_LEAST_1.check("sample_size", sample_size)
        sampler = self.sampler(stochastic, logits)
        parts = [mean for _, _, mean in sampler.mean_chunks(inputs, sample_size, batch_size)]
        if parts:
            return np.concatenate(parts, axis=0)
        return self.predictive_samples(inputs, sample_size, batch_size, stochastic, logits).mean(axis=1)

    def consistent_samples(self, inputs: Any, sample_size: int, seed: int, batch_size: int | None,
                           stochastic: bool, logits: bool) -> np.ndarray:
        """Jointly consistent class probabilities ``(N, T, C)`` (see ``Model.consistent_samples``);
        a deterministic network repeats its single prediction T times."""
        if not stochastic:
            return self.predictive_samples(inputs, sample_size, batch_size, False, logits)
        return class_probabilities(self.consistent_sampler(logits).sample(inputs, sample_size, int(seed), batch_size))

    def reduced_score_chunks(self, inputs: Any, sample_size: int, reduction: Callable, classes: int,
                             batch_size: int | None, stochastic: bool, logits: bool):
        return self.sampler(stochastic, logits).score_chunks(inputs, int(sample_size), reduction, classes, batch_size)

    def consistent_score_chunks(self, inputs: Any, sample_size: int, seed: int, reduction: Callable, classes: int,
                                batch_size: int | None, stochastic: bool, logits: bool):
        if not stochastic:
            return self.reduced_score_chunks(inputs, sample_size, reduction, classes, batch_size, False, logits)
        return self.consistent_sampler(logits).score_chunks(inputs, int(sample_size), int(seed), reduction, classes,
                                                            batch_size)

    def embeddings(self, inputs: Any, batch_size: int | None, return_probs: bool, layer_name: str | None,
                   logits: bool):
        key = (layer_name, bool(logits))
        embedder = self._embedders.get(key)
        if embedder is None:
            embedder = self._embedders[key] = Embedder(self.network, layer_name, softmax_outputs=key[1])
        return embedder.embed(inputs, batch_size, return_probs)
