"""``Pool``: which inputs are labelled, and with which targets (tf_al's API, index-based).

The pool never copies the inputs to track state: it keeps a boolean mask and an index array
(tf_al's ``indices`` convention: -1 marks a labelled entry). The copies that tf_al's getters
return are still available for compatibility, but the loop works on indices.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np

from al_experiments.acquisition.batch.features import flat_features
from al_experiments.acquisition.batch.probcover import probcover
from al_experiments.acquisition.batch.typiclust import typiclust
from al_experiments.utils.seeding import generator_or_global
from al_experiments.validation import (
    WHOLE_AT_LEAST_0,
    Options,
    as_index_array,
    class_labels,
    reject_empty_indices,
    validate_params,
)

# How an initial set is drawn: ``balanced`` over classes where the targets allow, uniformly
# ``random``, or by a cold-start strategy on the raw inputs (no model exists yet), which looks at
# no label: ``typiclust`` or ``probcover``. The last three may miss a class.
INIT_STRATEGIES = ("balanced", "random", "typiclust", "probcover")
COLD_START = ("typiclust", "probcover")


class Pool:
    """Labelled and unlabelled state over a fixed array of inputs.

    Args:
        inputs: The inputs, first axis indexes datapoints.
        targets: Known targets (pseudo mode: experiments with existing labels). None when labels
            come from an oracle callback.
        target_shape: Shape of the target array to allocate when ``targets`` is None; inferred
            from the first annotation otherwise.
    """

    def __init__(self, inputs: Any, targets: Any = None, target_shape: tuple | None = None) -> None:
        self._inputs = inputs
        n = len(inputs)
        if targets is not None and len(targets) != n:
            raise ValueError(
                f"Pool got {n} inputs but {len(targets)} targets; pass one target per input."
            )
        self._true_targets = None if targets is None else np.asarray(targets)
        self._labelled = np.zeros(n, dtype=bool)
        # Order in which points were labelled: the initial set first, then each round's picks.
        self._labelling_order: list[int] = []
        if self._true_targets is not None:
            self._targets = np.zeros_like(self._true_targets)
        elif target_shape is not None:
            self._targets = np.zeros(target_shape)
        else:
            self._targets = None

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self._labelled)

    @property
    def inputs(self) -> Any:
        """All pool inputs, labelled or not, as given (not copied): index it lazily."""
        return self._inputs

    def is_pseudo(self) -> bool:
        """Are the true targets known (experiments that simulate the annotator)?"""
        return self._true_targets is not None

    def get_indices(self) -> np.ndarray:
        """tf_al's state array: the pool index for unlabelled entries, -1 for labelled ones."""
        return np.where(self._labelled, -1, np.arange(len(self._labelled)))

    def get_labeled_indices(self) -> np.ndarray:
        """Pool indices of labelled points, ascending."""
        return np.flatnonzero(self._labelled)

    def get_unlabeled_indices(self) -> np.ndarray:
        """Pool indices of unlabelled points, ascending."""
        return np.flatnonzero(~self._labelled)

    def get_labelling_order(self) -> np.ndarray:
        """Pool indices in the order they were labelled."""
        return np.asarray(self._labelling_order, dtype=np.int64)

    def get_length_labeled(self) -> int:
        return int(self._labelled.sum())

    def get_length_unlabeled(self) -> int:
        return int(len(self._labelled) - self._labelled.sum())

    def has_labeled(self) -> bool:
        return bool(self._labelled.any())

    def has_unlabeled(self) -> bool:
        return not bool(self._labelled.all())

    # ------------------------------------------------------------------ data access
    # The getters index like numpy (and tf_al): a list of indices gives one row per index, a
    # single index gives that point's row without the leading axis. Both are range-checked.
    def _take(self, array: Any, indices: Any) -> Any:
        idx = as_index_array(indices, len(self))
        return array[idx[0]] if np.ndim(indices) == 0 else array[idx]

    def get_inputs_by(self, indices: Any) -> Any:
        return self._take(self._inputs, indices)

    def get_targets_by(self, indices: Any) -> np.ndarray:
        """Targets as annotated (for unlabelled points these are placeholders)."""
        if self._targets is None:
            raise ValueError("This pool has no targets yet: annotate some points first.")
        return self._take(self._targets, indices)

    def get_true_targets_by(self, indices: Any) -> np.ndarray:
        if self._true_targets is None:
            raise ValueError("This pool has no known targets (it is not in pseudo mode).")
        return self._take(self._true_targets, indices)

    def get_labeled_data(self) -> tuple[Any, np.ndarray]:
        """``(inputs, targets)`` of the labelled points (copies)."""
        idx = self.get_labeled_indices()
        targets = self._targets[idx] if self._targets is not None else np.empty((0,))
        return self._inputs[idx], targets

    def get_unlabeled_data(self) -> tuple[Any, np.ndarray]:
        """``(inputs, pool_indices)`` of the unlabelled points (copies of the inputs)."""
        idx = self.get_unlabeled_indices()
        return self._inputs[idx], idx

    # ------------------------------------------------------------------ labelling
    def annotate(self, indices: Any, targets: Any = None) -> None:
        """Mark ``indices`` as labelled with ``targets`` (the true targets when None).

        ``indices`` is a list/array of pool indices (empty: nothing happens) or a single index;
        ``targets`` holds one target per index, or, for a single index (``annotate(3, 5)``,
        ``annotate([3], 5)``), that point's target alone.
        """
        idx = as_index_array(indices, len(self))
        if targets is None:
            if self._true_targets is None:
                raise ValueError(
                    "Pool.annotate needs targets: this pool has no known labels, so pass "
                    "the annotations (or use an Oracle with a callback)."
                )
            values = self._true_targets[idx]
        else:
            values = np.asarray(targets)
            if values.shape[:1] != (len(idx),) and len(idx) == 1 and (values.ndim == 0 or np.ndim(indices) == 0):
                values = values[None]  # one index with that point's target, e.g. annotate(3, 5)
            if values.shape[:1] != (len(idx),):
                raise ValueError(
                    f"Pool.annotate got {len(idx)} indices but targets of shape {values.shape}; "
                    "pass one target per index."
                )
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise ValueError("Pool.annotate got NaN or infinite targets; pass finite labels.")
        if self._targets is None:
            self._targets = np.zeros((len(self),) + values.shape[1:], dtype=values.dtype)
        elif values.shape[1:] != self._targets.shape[1:]:
            raise ValueError(
                f"Pool.annotate got targets of shape {values.shape[1:]} per point, but the pool "
                f"holds targets of shape {self._targets.shape[1:]}."
            )
        self._targets[idx] = values
        new = idx[~self._labelled[idx]]
        self._labelled[idx] = True
        self._labelling_order.extend(int(i) for i in dict.fromkeys(new.tolist()))

    def __setitem__(self, indices: Any, targets: Any) -> None:
        self.annotate(indices, targets)

    def init(self, size: int | Sequence[int] | np.ndarray, rng: np.random.Generator | None = None,
             strategy: str = "balanced") -> np.ndarray:
        """Label an initial set, in pseudo mode only; returns the pool indices labelled.

        Args:
            size: A number of points to label (exactly that many, drawn by ``strategy``), or
                explicit pool indices to label (out of range or an empty list: IndexError, as in
                tf_al).
            rng: Random generator; by default one drawn from NumPy's global RNG, so
                ``np.random.seed`` makes the choice reproducible as in tf_al.
            strategy: How a number of points is drawn (``INIT_STRATEGIES``, see
                ``choose_initial``).
        """
        if not self.is_pseudo():
            raise ValueError(
                "Pool.init needs known targets; for real annotation use Oracle(callback=...).init(pool, size)."
            )
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            chosen = self.choose_initial(int(size), rng, strategy=strategy)
        elif isinstance(size, (list, tuple, np.ndarray)):
            reject_empty_indices("Pool.init", size)
            chosen = as_index_array(size, len(self))
            if len(np.unique(chosen)) != len(chosen):
                raise ValueError("Pool.init got duplicate indices; list each point once.")
            if self._labelled[chosen].any():
                raise ValueError("Pool.init got indices that are already labelled.")
        else:
            raise ValueError(
                f"Pool.init takes a number of points or a list of pool indices, got {type(size).__name__}."
            )
        self.annotate(chosen)
        return chosen

    @validate_params({"size": WHOLE_AT_LEAST_0, "strategy": Options(INIT_STRATEGIES)})
    def choose_initial(self, size: int, rng: np.random.Generator | None = None,
                       strategy: str = "balanced") -> np.ndarray:
        """Pick ``size`` unlabelled indices (ascending) by ``strategy``: ``balanced`` over classes
        where the targets allow (else uniformly), ``random`` uniformly, or ``typiclust`` /
        ``probcover`` on the flattened inputs, with the labelled points as the labelled set.
        The cold-start ones look at no label; ProbCover's ball radius uses the number of classes.
        """
        available = self.get_unlabeled_indices()
        if size > len(available):
            raise ValueError(
                f"Cannot label {size} initial points: only {len(available)} are unlabelled; "
                "lower the initial size."
            )
        rng = generator_or_global(rng)
        if strategy in COLD_START:
            return np.sort(available[self._cold_start(strategy, available, size, rng)])
        balanced = strategy == "balanced" and self._true_targets is not None
        labels = class_labels(self._true_targets[available]) if balanced else None
        if labels is None:
            return np.sort(rng.choice(available, size, replace=False))
        classes, counts = np.unique(labels, return_counts=True)
        quota = balanced_quota(size, counts, rng)
        chosen = [
            rng.choice(available[labels == cls], q, replace=False)
            for cls, q in zip(classes, quota)
            if q > 0
        ]
        return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)

    def _cold_start(self, strategy: str, available: np.ndarray, size: int,
                    rng: np.random.Generator) -> np.ndarray:
        """Positions in ``available`` that TypiClust or ProbCover picks on the raw inputs."""
        candidates = flat_features(self._inputs[available])
        labelled = flat_features(self._inputs[self.get_labeled_indices()])
        if strategy == "typiclust":
            return typiclust(candidates, labelled, size, rng=rng)
        return probcover(candidates, labelled, size, rng=rng, num_classes=self._class_count())

    def _class_count(self) -> int:
        """How many classes the known targets hold (the count only), for ProbCover's radius."""
        labels = None if self._true_targets is None else class_labels(self._true_targets)
        if labels is None:
            raise ValueError(
                "The probcover initial set takes its ball radius from the number of classes, which "
                "this pool does not know (no class-label targets): draw it with typiclust or random."
            )
        one_hot = self._true_targets.ndim == 2 and self._true_targets.shape[1] > 1
        return int(self._true_targets.shape[1]) if one_hot else len(np.unique(labels))

    def __deepcopy__(self, memo: dict) -> "Pool":
        # tf_al returned a fresh unlabelled pool here; a copy keeps the labelling state.
        clone = Pool.__new__(Pool)
        clone._inputs = self._inputs
        clone._true_targets = self._true_targets
        clone._labelled = self._labelled.copy()
        clone._labelling_order = list(self._labelling_order)
        clone._targets = None if self._targets is None else self._targets.copy()
        return clone

    def copy(self) -> "Pool":
        return copy.deepcopy(self)


def balanced_quota(size: int, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``size`` over classes as evenly as their ``counts`` allow, summing to exactly ``size``.

    Water-filling: every class gets ``min(count, level)`` for the highest level that fits, and
    the remainder (fewer points than classes with more than ``level`` points) goes one each to
    randomly chosen such classes (no bias towards low class ids). A class with too few points
    thus gives its surplus to the others, and the shares of classes that did not run out differ
    by at most one.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if size > int(counts.sum()):
        raise ValueError(f"Cannot label {size} initial points: only {int(counts.sum())} are unlabelled.")
    low, high = 0, int(counts.max(initial=0))
    while low < high:
        mid = (low + high + 1) // 2
        if int(np.minimum(counts, mid).sum()) <= size:
            low = mid
        else:
            high = mid - 1
    quota = np.minimum(counts, low)
    extra = size - int(quota.sum())
    if extra > 0:
        eligible = np.flatnonzero(counts > low)
        quota[eligible[rng.choice(len(eligible), extra, replace=False)]] += 1
    return quota
