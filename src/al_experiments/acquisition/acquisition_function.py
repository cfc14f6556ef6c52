"""``AcquisitionFunction``: picks the next points to label (tf_al's API, stateless per call).

tf_al cached the first model's scoring function and its chunk size forever (bugs B4, B19) and
silently turned unknown names into random selection (B3). Here the name is checked when the
object is made, and every call asks the given model for its scorer afresh.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from al_experiments.acquisition.registry import canonical_query_name, get_query
from al_experiments.acquisition.selection import top_k

log = logging.getLogger(__name__)


class IndexedInputs:
    """A lazy view ``inputs[indices]``: slicing gathers only the requested chunk.

    Scoring a pool chunk by chunk through this view never copies the whole unlabelled pool.
    """

    def __init__(self, inputs: Any, indices: np.ndarray) -> None:
        self._inputs = inputs
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, item: Any) -> Any:
        return self._inputs[self._indices[item]]

    def __array__(self, dtype=None, copy=None):
        array = np.asarray(self._inputs[self._indices])
        return array if dtype is None else array.astype(dtype)

    @property
    def shape(self) -> tuple:
        return (len(self._indices),) + tuple(np.shape(self._inputs)[1:])


class AcquisitionFunction:
    """A named query function applied to a model and a pool.

    Args:
        fn_name: A registered query function name (``random``, ``max_entropy``, ``bald``,
            ``max_var_ratio``, ``std_mean`` / ``mean_std``, ``variation_ratio``, ``margin``,
            ``least_confidence``, or one added with ``register_query``).
        batch_size: Pool points per compiled forward chunk (None: chosen from the sample count).
        pool_subset: Score only a random subset of this many unlabelled points per round
            (Gal et al.'s released code scored 2,000 of the pool); None scores the whole pool.
    """

    def __init__(self, fn_name: str, batch_size: int | None = None, verbose: bool = False,
                 pool_subset: int | None = None, **kwargs: Any) -> None:
        self.name = canonical_query_name(fn_name)
        self.strategy = get_query(self.name)
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if pool_subset is not None and int(pool_subset) < 1:
            raise ValueError(f"pool_subset must be >= 1 or None, got {pool_subset}.")
        self.batch_size = batch_size
        self.pool_subset = pool_subset
        self.verbose = verbose
        self.kwargs = kwargs
        self.fn = None

    def get_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def set_fn(self, fn) -> None:
        self.fn = fn

    def __call__(self, model: Any, pool: Any, step_size: int = 20,
                 rng: np.random.Generator | None = None, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Choose up to ``step_size`` unlabelled pool indices.

        Returns ``(indices, scores)`` in ascending score order, best last, as tf_al did.
        """
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}.")
        if rng is None:
            rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        candidates = pool.get_unlabeled_indices()
        if len(candidates) == 0:
            raise ValueError("The pool has no unlabelled points left to query.")
        if self.pool_subset is not None and self.pool_subset < len(candidates):
            candidates = np.sort(rng.choice(candidates, self.pool_subset, replace=False))
        kwargs.pop("step_size", None)
        if not self.strategy.needs_samples:
            scores = self.strategy.scores(n=len(candidates), rng=rng)
        else:
            scores = self._score(model, pool, candidates, kwargs)
        chosen = top_k(scores, min(int(step_size), len(candidates)))
        return candidates[chosen][::-1].copy(), scores[chosen][::-1].copy()

    def _score(self, model: Any, pool: Any, candidates: np.ndarray, kwargs: dict) -> np.ndarray:
        fn = self.fn or model.get_query_fn(self.name)
        if fn is None:
            raise ValueError(
                f"The model {model} cannot score the query function '{self.name}'; "
                "wrap the network in McDropout (or another Bayesian wrapper) or use 'random'."
            )
        if self.batch_size is not None:
            kwargs.setdefault("batch_size", self.batch_size)
        view = IndexedInputs(pool._inputs, candidates)
        scores = np.asarray(fn(view, **kwargs), dtype=np.float64).reshape(-1)
        if scores.shape != (len(candidates),):
            raise ValueError(
                f"The query function '{self.name}' returned {scores.size} scores for "
                f"{len(candidates)} pool points; it must return one score per point."
            )
        return scores
