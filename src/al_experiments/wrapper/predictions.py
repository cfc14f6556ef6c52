"""What a wrapped Keras network answers between training and evaluation: predictive samples
(independent or jointly consistent), mean predictions, embeddings, and in-graph scores.

A mixin of ``Model``: it reads the network (``_model``), its loss (``_loss``) and its output
width, and keeps one compiled sampler per kind so nothing retraces between rounds.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from al_experiments.validation import WHOLE_AT_LEAST_1
from al_experiments.wrapper.keras_metrics import class_probabilities


class PredictionMixin:
    """Predictions of ``Model``; subclasses change ``stochastic`` or draw samples their own way."""

    # ------------------------------------------------------------------ prediction
    def _sampler(self, stochastic: bool):
        sampler = self._samplers.get(stochastic)
        if sampler is None:
            from al_experiments.wrapper.compiled import Sampler

            sampler = Sampler(self._model, stochastic=stochastic, softmax_outputs=self._outputs_logits())
            self._samplers[stochastic] = sampler
        return sampler

    def _outputs_logits(self) -> bool:
        return bool(getattr(self._loss, "from_logits", False)) if self._loss is not None else False

    def stochastic(self) -> bool:
        """Does this wrapper draw different predictions per sample?"""
        return False

    def predictive_samples(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities of shape ``(N, T, C)``: always with the sample axis.

        A deterministic model repeats its single prediction T times.
        """
        sampler = self._sampler(self.stochastic())
        return class_probabilities(sampler.sample(inputs, int(sample_size), batch_size))

    def sample_chunks(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None):
        """Like ``predictive_samples`` but yields ``(start, stop, probs)`` chunk by chunk."""
        sampler = self._sampler(self.stochastic())
        for start, stop, probs in sampler.chunks(inputs, int(sample_size), batch_size):
            yield start, stop, class_probabilities(probs)

    def predict(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        """Mean predicted class probabilities ``(N, C)``."""
        sample_size = int(kwargs.pop("sample_size", 1))
        batch_size = kwargs.pop("batch_size", None)
        if not self._draws_samples_itself():
            # Averaged inside the compiled call: the (N, T, C) samples never reach the host.
            WHOLE_AT_LEAST_1.check("sample_size", sample_size)
            sampler = self._sampler(self.stochastic())
            parts = [mean for _, _, mean in sampler.mean_chunks(inputs, sample_size, batch_size)]
            if parts:
                return np.concatenate(parts, axis=0)
        return self.predictive_samples(inputs, sample_size, batch_size).mean(axis=1)

    def _draws_samples_itself(self) -> bool:
        """Does a subclass produce its samples its own way? Then every shortcut through the
        compiled sampler is skipped and its ``sample_chunks``/``predictive_samples`` are used."""
        cls = type(self)
        return cls.sample_chunks is not PredictionMixin.sample_chunks or \
            cls.predictive_samples is not PredictionMixin.predictive_samples

    def consistent_samples(self, inputs: Any, sample_size: int, seed: int,
                           batch_size: int | None = None) -> np.ndarray:
        """Jointly consistent class probabilities ``(N, T, C)`` float32.

        Sample t of *every* input is the same parameter draw (the same dropout masks), fixed by
        ``(seed, t)`` alone: whatever the chunking (``batch_size``), in separate calls with the
        same seed (pool candidates and a target set may be sampled apart), and for any
        ``sample_size`` (sample t of T=5 is sample t of T=100). Different seeds give different
        draws. This is what joint scores (BatchBALD, EPIG) need; per-point scores may use the
        cheaper independent ``predictive_samples``. Each noise layer keeps Keras' semantics
        (Dropout keeps a unit with probability 1 - rate and scales it by 1/(1 - rate)), so the
        samples have the distribution of the independent ones; every other layer runs in
        inference mode (BatchNormalization uses its moving statistics). One sigmoid unit gives
        the two columns ``[1 - p, p]``, as ``predictive_samples`` does.

        A deterministic ``Model`` repeats its single prediction T times (``seed`` is unused).
        Needs a Sequential or functional network whose noise layers sit at its top level; a
        subclass that draws its samples its own way raises ValueError.
        """
        sample_size = int(sample_size)
        WHOLE_AT_LEAST_1.check("sample_size", sample_size)
        if self._draws_samples_itself():
            raise ValueError(
                f"Consistent samples are not available for {type(self).__name__}, which draws its "
                "samples its own way; override consistent_samples there or use predictive_samples."
            )
        if not self.stochastic():
            return self.predictive_samples(inputs, sample_size, batch_size)
        return class_probabilities(self._consistent_sampler().sample(inputs, sample_size, int(seed), batch_size))

    def _consistent_sampler(self):
        samplers = self._consistent_samplers
        logits = self._outputs_logits()
        sampler = samplers.get(logits)
        if sampler is None:
            from al_experiments.wrapper.consistent import ConsistentSampler

            sampler = samplers[logits] = ConsistentSampler(self._model, softmax_outputs=logits)
        return sampler

    def embeddings(self, inputs: Any, batch_size: int | None = None, return_probs: bool = False):
        """Deterministic (inference-mode) embeddings ``(N, D)`` float32 of the inputs.

        By default the input of the network's last top-level Dense layer (for
        ``Dense(128) -> Dropout -> Dense(10)`` the 128 hidden activations); with the wrapper's
        ``embedding_layer=<layer name>`` the output of that layer instead (flattened). With
        ``return_probs=True`` also the class probabilities ``(N, C)`` of the same pass
        (softmax applied to logits; one sigmoid unit gives ``[1 - p, p]``). Compiled and
        chunked (``batch_size`` inputs per pass); needs a Sequential or functional network.
        """
        return self._embed(inputs, batch_size, return_probs, self.embedding_layer)

    def _embed(self, inputs: Any, batch_size: int | None, return_probs: bool, layer_name: str | None):
        embedders = self._embedders
        key = (layer_name, self._outputs_logits())
        embedder = embedders.get(key)
        if embedder is None:
            from al_experiments.wrapper.embedding import Embedder

            embedder = embedders[key] = Embedder(self._model, layer_name, softmax_outputs=key[1])
        return embedder.embed(inputs, batch_size, return_probs)

    def batch_prediction(self, inputs: Any, batch_size: int = 1, **kwargs: Any) -> np.ndarray:
        return self.predict(inputs, batch_size=batch_size, **kwargs)

    # ------------------------------------------------------------------ queries
    def scores_in_graph(self) -> bool:
        """Can ``reduced_score_chunks`` reduce scores inside the compiled sampler? Not where a
        subclass (or a wrapped non-Keras object) draws its samples its own way."""
        return not self._draws_samples_itself()

    def reduced_score_chunks(self, inputs: Any, sample_size: int, reduction: Callable,
                             batch_size: int | None = None):
        """Yield ``(start, stop, values)``: independent predictive samples of each chunk reduced
        inside the compiled sampler by ``reduction`` (a TensorFlow function of ``(B, T, C)``
        probabilities, see ``acquisition.graph_scores``), so the samples never reach the host.
        Only where ``scores_in_graph()``.
        """
        classes = max(2, self.num_outputs())  # one sigmoid unit is scored as two classes
        sampler = self._sampler(self.stochastic())
        return sampler.score_chunks(inputs, int(sample_size), reduction, classes, batch_size)

    def consistent_score_chunks(self, inputs: Any, sample_size: int, seed: int, reduction: Callable,
                                batch_size: int | None = None):
        """Yield ``(start, stop, values)``: ``consistent_samples(inputs, sample_size, seed)`` of
        each chunk reduced inside the compiled consistent sampler (the samples never reach the
        host). Only where ``scores_in_graph()``; a deterministic network repeats its prediction."""
        classes = max(2, self.num_outputs())
        if not self.stochastic():
            return self.reduced_score_chunks(inputs, sample_size, reduction, batch_size)
        return self._consistent_sampler().score_chunks(inputs, int(sample_size), int(seed), reduction, classes,
                                                       batch_size)

    def get_query_fn(self, name: str) -> Callable[..., np.ndarray] | None:
        """tf_al's scorer: ``fn(inputs, sample_size=..., batch_size=...) -> scores`` for a
        per-point query function, chunk by chunk. None for ``random``; a batch strategy has no
        per-point scores (run it through ``AcquisitionFunction``)."""
        from al_experiments.acquisition import get_query
        from al_experiments.acquisition.round import point_scores

        strategy = get_query(name)
        if strategy.kind == "batch":
            raise ValueError(
                f"{strategy.name!r} selects whole batches and has no per-point scores: run it "
                f"through AcquisitionFunction({strategy.name!r}) or ActiveLearningLoop."
            )
        if not strategy.needs_samples:
            return None

        def score(inputs: Any, sample_size: int = 10, batch_size: int | None = None, **_: Any) -> np.ndarray:
            return point_scores(self, inputs, strategy, sample_size, batch_size)

        return score

    # The acquisition side scores through the building blocks directly; a subclass (or object)
    # that defines its own get_query_fn, as tf_al models did, is asked through it instead.
    get_query_fn.acquisition_dispatch = True
