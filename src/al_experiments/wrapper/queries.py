"""What a wrapper answers between training and evaluation (``interface.QueryModel``): predictive
samples (independent or jointly consistent), mean predictions, embeddings, scores reduced inside
a compiled sampler and decision values, each asked of the wrapper's backend with whether the
wrapper samples stochastically; and which of these it supports.

A subclass may draw its samples its own way by overriding ``predictive_samples`` or
``sample_chunks`` (tf_al's models did): every shortcut through a compiled sampler is then
skipped, and it declares no consistent samples and no reduced scores.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from al_experiments.validation import WHOLE_AT_LEAST_1
from al_experiments.wrapper.interface import CONSISTENT_SAMPLES, OWN_SCORER, REDUCED_SCORES, ActiveModel


class QueryMethods(ActiveModel):
    """The ``QueryModel`` side of ``Model``; reads only ``self.backend`` and ``stochastic()``."""

    backend: Any

    def stochastic(self) -> bool:
        """Does this wrapper draw different predictions per sample?"""
        return False

    def supports(self, capability: str) -> bool:
        """Does this wrapper give ``capability`` (one of ``interface.CAPABILITIES``)?"""
        if capability == OWN_SCORER:  # a get_query_fn of a subclass's (or set on the wrapper)
            return getattr(self.get_query_fn, "__func__", None) is not QueryMethods.get_query_fn
        if capability in (CONSISTENT_SAMPLES, REDUCED_SCORES) and self._draws_samples_itself():
            return False
        return self.backend.supports(capability, self.stochastic())

    def _draws_samples_itself(self) -> bool:
        """Does a subclass produce its samples its own way?"""
        cls = type(self)
        return cls.sample_chunks is not QueryMethods.sample_chunks or \
            cls.predictive_samples is not QueryMethods.predictive_samples

    # ------------------------------------------------------------------ samples
    def predictive_samples(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities of shape ``(N, T, C)``: always with the sample axis.

        A deterministic model repeats its single prediction T times; a ``DeepEnsemble``'s T is
        its number of members, whatever ``sample_size``.
        """
        return self.backend.predictive_samples(inputs, _samples(sample_size), batch_size, self.stochastic())

    def sample_chunks(self, inputs: Any, sample_size: int = 1, batch_size: int | None = None):
        """Like ``predictive_samples`` but yields ``(start, stop, probs)`` chunk by chunk."""
        yield from self.backend.sample_chunks(inputs, _samples(sample_size), batch_size, self.stochastic())

    def predict(self, inputs: Any, **kwargs: Any) -> np.ndarray:
        """Mean predicted class probabilities ``(N, C)``."""
        sample_size = int(kwargs.pop("sample_size", 1))
        batch_size = kwargs.pop("batch_size", None)
        if self._draws_samples_itself():
            return self.predictive_samples(inputs, sample_size, batch_size).mean(axis=1)
        return self.backend.predict(inputs, sample_size, batch_size, self.stochastic())

    def batch_prediction(self, inputs: Any, batch_size: int = 1, **kwargs: Any) -> np.ndarray:
        return self.predict(inputs, batch_size=batch_size, **kwargs)

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
        return self.backend.consistent_samples(inputs, sample_size, seed, batch_size, self.stochastic())

    # ------------------------------------------------------------------ scores in the sampler
    def reduced_score_chunks(self, inputs: Any, sample_size: int, reduction: Callable,
                             batch_size: int | None = None):
        """Yield ``(start, stop, values)``: independent predictive samples of each chunk reduced
        inside the compiled sampler by ``reduction`` (a TensorFlow function of ``(B, T, C)``
        probabilities, see ``acquisition.graph_scores``), so the samples never reach the host.
        Only where ``supports(REDUCED_SCORES)``.
        """
        self._require(REDUCED_SCORES)
        return self.backend.reduced_score_chunks(inputs, int(sample_size), reduction, batch_size, self.stochastic())

    def consistent_score_chunks(self, inputs: Any, sample_size: int, seed: int, reduction: Callable,
                                batch_size: int | None = None):
        """Yield ``(start, stop, values)``: ``consistent_samples(inputs, sample_size, seed)`` of
        each chunk reduced inside the compiled consistent sampler (the samples never reach the
        host). Only where ``supports(REDUCED_SCORES)``; a deterministic network repeats its
        prediction."""
        self._require(REDUCED_SCORES)
        return self.backend.consistent_score_chunks(inputs, int(sample_size), int(seed), reduction, batch_size,
                                                    self.stochastic())

    def _require(self, capability: str) -> None:
        if not self.supports(capability):
            raise ValueError(f"{type(self).__name__} does not support {capability}; check "
                             f"supports({capability!r}) before asking for it.")

    # ------------------------------------------------------------------ deterministic views
    def embeddings(self, inputs: Any, batch_size: int | None = None, return_probs: bool = False):
        """Deterministic (inference-mode) embeddings ``(N, D)`` float32 of the inputs.

        By default the input of the network's last top-level Dense layer (for
        ``Dense(128) -> Dropout -> Dense(10)`` the 128 hidden activations); with the wrapper's
        ``embedding_layer=<layer name>`` the output of that layer instead (flattened). With
        ``return_probs=True`` also the class probabilities ``(N, C)`` of the same pass
        (softmax applied to logits; one sigmoid unit gives ``[1 - p, p]``). Compiled and
        chunked (``batch_size`` inputs per pass); needs a Sequential or functional network.
        Another object gives its own ``embeddings(x)``, else its input features.
        """
        return self.backend.embeddings(inputs, batch_size, return_probs, self.embedding_layer)

    def decision_values(self, inputs: Any, batch_size: int | None = None) -> np.ndarray:
        """The wrapped classifier's ``decision_function``: ``(N,)`` for a binary classifier,
        ``(N, C)`` for several classes (only objects that have one)."""
        return self.backend.decision_values(inputs, batch_size)

    # ------------------------------------------------------------------ queries
    def get_query_fn(self, name: str) -> Callable[..., np.ndarray] | None:
        """tf_al's scorer: ``fn(inputs, sample_size=..., batch_size=...) -> scores`` for a
        per-point query function, chunk by chunk. None for ``random``; a batch strategy has no
        per-point scores (run it through ``AcquisitionFunction``). A subclass that defines its
        own, as tf_al models did, declares ``OWN_SCORER`` and is asked through it."""
        # Imported on use: acquisition depends on the wrappers; only tf_al's scorer reaches back.
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


def _samples(sample_size: Any) -> Any:
    return None if sample_size is None else int(sample_size)
