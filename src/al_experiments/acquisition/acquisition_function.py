"""``AcquisitionFunction``: picks the next points to label (tf_al's API, stateless per call).

Nothing is cached across models (tf_al kept the first model's scorer and chunk size for every
later one), and an unknown name is an error, never random selection. Here the name and the strategy's
options are checked when the object is made, and every call builds a fresh ``RoundView`` of the
given model and pool for the strategy to select from.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from al_experiments.acquisition.builtin_batch import samples_used
from al_experiments.acquisition.registry import canonical_query_name, get_query
from al_experiments.acquisition.round import IndexedInputs, RoundView, check_samples
from al_experiments.acquisition.strategy import check_options
from al_experiments.utils.seeding import generator_or_global
from al_experiments.validation import WHOLE_AT_LEAST_1, optional, validate_params
from al_experiments.wrapper.interface import DECISION_VALUES, supports

log = logging.getLogger(__name__)

__all__ = ["AcquisitionFunction", "IndexedInputs"]


class AcquisitionFunction:
    """A named query strategy applied to a model and a pool.

    Args:
        fn_name: A registered strategy name: a per-point score (``random``, ``max_entropy``,
            ``bald``, ``max_var_ratio``, ``std_mean`` / ``mean_std``, ``variation_ratio``,
            ``margin``, ``least_confidence``), a batch strategy (``batch_bald``,
            ``power_bald``, ``power_entropy``, ``coreset``, ``badge``, ``epig``, ``typiclust``,
            ``probcover``), or one added with ``register_query`` / ``register_batch_query``.
        batch_size: Pool points per compiled forward chunk (None: chosen from the sample count).
        pool_subset: Choose only from a random subset of this many unlabelled points per round
            (Gal et al.'s released code scored 2,000 of the pool); None uses the whole pool.
        options: The strategy's settings, e.g. ``stochastic="power", temperature=1.0`` for a
            score strategy or ``num_samples=10000`` for ``batch_bald`` (``options()`` lists
            them with their defaults); an unknown name is a ``TypeError``.
        samples: Which predictive samples per-point scores (and ``power_*``) are computed on:
            ``"independent"`` (a fresh dropout draw per point and sample) or ``"consistent"``
            (one draw per sample for the whole round, as the BatchBALD authors scored BALD:
            copies of a point tie). ``samples_used()`` says what the strategy runs on.
    """

    @validate_params({"batch_size": optional(WHOLE_AT_LEAST_1), "pool_subset": optional(WHOLE_AT_LEAST_1)})
    def __init__(self, fn_name: str, batch_size: int | None = None, verbose: bool = False,
                 pool_subset: int | None = None, options: dict[str, Any] | None = None,
                 samples: str = "independent", **kwargs: Any) -> None:
        self.name = canonical_query_name(fn_name)
        self.strategy = get_query(self.name)
        self.batch_size = batch_size
        self.pool_subset = pool_subset
        self.samples = check_samples(samples)
        self.verbose = verbose
        self.options = dict(options or {})
        self.options.update(kwargs)
        self.settings = check_options(self.strategy, self.options)
        self.fn = None
        # The pool indices of the last call's target set where it was drawn from the pool (EPIG's
        # target=pool), else None: the loop counts how many picks were target points.
        self.last_target_indices: np.ndarray | None = None

    def get_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def samples_used(self, model: Any = None) -> str:
        """What the strategy's choice rests on: ``independent`` or ``consistent`` samples,
        ``deterministic`` predictions (Core-set, BADGE, or any strategy on a model that draws
        no samples), a ``decision function`` (a classifier without probabilities) or ``none``
        (random, or TypiClust / ProbCover on the raw inputs)."""
        used = samples_used(self.strategy, self.samples, self.settings)
        if model is None or used in ("none", "deterministic"):
            return used
        if self.strategy.kind == "score" and supports(model, DECISION_VALUES):
            return "decision function"
        stochastic = getattr(model, "stochastic", None)
        return "deterministic" if stochastic is not None and not stochastic() else used

    def set_fn(self, fn) -> None:
        """Score points with ``fn(inputs, **kwargs) -> scores`` instead of the model's scorer."""
        self.fn = fn

    def copy(self) -> "AcquisitionFunction":
        """A new object with the same name and settings (and no per-model state)."""
        fresh = AcquisitionFunction(self.name, batch_size=self.batch_size, verbose=self.verbose,
                                    pool_subset=self.pool_subset, options=self.options,
                                    samples=self.samples)
        fresh.fn = self.fn
        return fresh

    @validate_params({"step_size": WHOLE_AT_LEAST_1})
    def __call__(self, model: Any, pool: Any, step_size: int = 20,
                 rng: np.random.Generator | None = None, dataset: Any = None,
                 **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Choose up to ``step_size`` unlabelled pool indices.

        Returns ``(indices, scores)`` in ascending score order, best last, as tf_al did (a batch
        strategy without scores of its own reports its pick order, first pick highest).
        """
        rng = generator_or_global(rng)
        candidates = pool.get_unlabeled_indices()
        if len(candidates) == 0:
            raise ValueError("The pool has no unlabelled points left to query.")
        if self.pool_subset is not None and self.pool_subset < len(candidates):
            candidates = np.sort(rng.choice(candidates, self.pool_subset, replace=False))
        kwargs.pop("step_size", None)
        sample_size = int(kwargs.pop("sample_size", 10))
        view = RoundView(model, pool, candidates, rng, sample_size=sample_size,
                         chunk_size=kwargs.pop("batch_size", self.batch_size), dataset=dataset,
                         scorer=self.fn, score_kwargs=kwargs, samples=self.samples)
        chosen, scores = self.strategy.select(view, min(int(step_size), len(candidates)), rng,
                                              **self.settings)
        self.last_target_indices = view.target_pool_indices
        return candidates[chosen][::-1].copy(), scores[::-1].copy()
