"""``Dataset``: the train pool, test and validation splits, and the initial labelled set."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np

from al_experiments.pool import INIT_STRATEGIES
from al_experiments.utils.seeding import seed_or_global
from al_experiments.validation import (
    SEED,
    WHOLE_AT_LEAST_0,
    AnyOf,
    Interval,
    Options,
    as_index_array,
    check_pair,
    class_labels,
    optional,
    validate_params,
)

Split = tuple[Any, Any]


class Dataset:
    """Inputs and targets split into a train pool, a test set and a validation set.

    Either pass the splits (``test=(x, y)``, ``val=(x, y)``) or let the dataset split the
    inputs itself with ``test_size`` / ``val_size`` (and optionally ``train_size``), each a
    fraction in (0, 1) or an absolute count, stratified by class where the targets allow.

    Args:
        inputs: Inputs of the train pool (or of all data when splitting).
        targets: Their targets: class ids, one-hot rows, or None for real annotation.
        test: Optional ``(inputs, targets)`` test split.
        val: Optional ``(inputs, targets)`` validation split (tf_al overwrote the test set with it).
        init_size: Size of the initial labelled set (class-balanced where possible).
        init_indices: Explicit pool indices of the initial labelled set (overrides ``init_size``).
        train_size, test_size, val_size: Split sizes when splitting ``inputs`` here.
        seed: Seed of the split; by default drawn from NumPy's global RNG.
        init_strategy: How an ``init_size`` initial set is drawn (``INIT_STRATEGIES``):
            ``"balanced"`` (the same number of points per class where the targets allow, as
            tf_al did), ``"random"`` (uniformly from the pool), or a cold-start strategy on the
            flattened inputs, ``"typiclust"`` or ``"probcover"`` (see ``Pool.choose_initial``).
            All but ``balanced`` look at no label, so a class may be missing until a query picks
            it (see ``loop.init_strategy`` in the README).
        target: Optional ``(inputs, targets)`` target set for EPIG, drawn from the test
            distribution and kept apart from the pool and from evaluation.
        copy_of: For a pool that holds copies of points (repeated data): one id per pool point,
            equal for copies of one original. The loop then counts the copies in each selected
            batch (``copies_selected``). None: no copies known.
    """

    @validate_params({"init_size": WHOLE_AT_LEAST_0, "seed": optional(SEED),
                      "init_strategy": Options(INIT_STRATEGIES)})
    def __init__(
        self,
        inputs: Any,
        targets: Any,
        test: Split | None = None,
        val: Split | None = None,
        init_size: int = 0,
        init_indices: Any = None,
        train_size: float | int | None = None,
        test_size: float | int | None = None,
        val_size: float | int | None = None,
        seed: int | None = None,
        copy_of: Any = None,
        init_strategy: str = "balanced",
        target: Split | None = None,
    ) -> None:
        if targets is not None:
            check_pair("Train", inputs, targets)
        x_train, y_train = inputs, targets
        self.pseudo = targets is not None
        if test is not None and test_size is not None:
            raise ValueError("Pass either test=(x, y) or test_size, not both.")
        if val is not None and val_size is not None:
            raise ValueError("Pass either val=(x, y) or val_size, not both.")
        if test_size is not None or val_size is not None or train_size is not None:
            if targets is None:
                raise ValueError("Splitting by test_size/val_size needs targets.")
            x_train, y_train, test_split, val_split = _split(
                inputs, targets, train_size, test_size, val_size, seed
            )
            test = test if test is not None else test_split
            val = val if val is not None else val_split
        self.x_train, self.y_train = x_train, y_train
        self.x_test = self.y_test = None
        self.x_val = self.y_val = None
        if test is not None:
            self.x_test, self.y_test = _unpack("test", test, x_train)
        if val is not None:
            self.x_val, self.y_val = _unpack("val", val, x_train)
        self.x_target = self.y_target = None
        if target is not None:
            self.x_target, self.y_target = _unpack("target", target, x_train)

        if init_size > len(x_train):
            raise ValueError(
                f"init_size={init_size} is larger than the train pool ({len(x_train)} points); "
                "lower init_size or add data."
            )
        self.init_size = int(init_size)
        self.init_strategy = init_strategy
        self.copy_of = None
        if copy_of is not None:
            groups = np.asarray(copy_of)
            if groups.shape != (len(x_train),) or groups.dtype.kind not in "iu":
                raise ValueError(
                    f"copy_of must hold one integer id per train-pool point ({len(x_train)}); got an array "
                    f"of shape {groups.shape} and dtype {groups.dtype}."
                )
            self.copy_of = groups
        self.init_indices = None
        if init_indices is not None:
            idx = as_index_array(init_indices, len(x_train))
            if len(np.unique(idx)) != len(idx):
                raise ValueError("init_indices contains duplicates; list each pool index once.")
            self.init_indices = idx
            self.init_size = len(idx)

    # ---------------------------------------------------------------- tf_al accessors
    def is_pseudo(self) -> bool:
        return self.pseudo

    def has_test_set(self) -> bool:
        return self.x_test is not None

    def has_eval_set(self) -> bool:
        """Is there a validation split? (tf_al's name for it.)"""
        return self.x_val is not None

    has_val_set = has_eval_set

    def get_init_size(self) -> int:
        return self.init_size

    def copies_in(self, indices: Any) -> int | None:
        """How many of the pool ``indices`` are copies of another one among them (a batch of
        10 holding three copies of one image counts 2); None where the pool's copies are unknown."""
        if self.copy_of is None:
            return None
        groups = self.copy_of[np.asarray(indices, dtype=np.int64)]
        return int(len(groups) - len(np.unique(groups)))

    def get_init_indices(self) -> np.ndarray | None:
        return self.init_indices

    def get_train_split(self) -> Split:
        return self.x_train, self.y_train

    def get_train_inputs(self) -> Any:
        return self.x_train

    def get_train_targets(self) -> Any:
        return self.y_train

    def get_test_split(self) -> Split:
        return self.x_test, self.y_test

    def get_eval_split(self) -> Split:
        return self.x_val, self.y_val

    get_val_split = get_eval_split

    def get_target_split(self) -> Split:
        """The target set (EPIG's targets from the test distribution), ``(None, None)`` if none."""
        return self.x_target, self.y_target

    def get_split_ratio(self) -> tuple[int, int, int]:
        """Sizes of (train, test, validation)."""
        return (
            len(self.x_train),
            0 if self.x_test is None else len(self.x_test),
            0 if self.x_val is None else len(self.x_val),
        )

    def percentage_of(self, total_number: int, part: int) -> float:
        return part / total_number

    def check_float_range(self, value: float) -> bool:
        return 0 < value < 1

    def check_int_in_range(self, value: int) -> bool:
        return 0 < value < len(self.x_train)

    def num_classes(self) -> int | None:
        """Number of classes seen in the targets, for class-label data."""
        parts = [t for t in (self.y_train, self.y_test, self.y_val) if t is not None]
        if not parts:
            return None
        first = np.asarray(parts[0])
        if first.ndim == 2 and first.shape[1] > 1:
            return int(first.shape[1])
        labels = [class_labels(p) for p in parts]
        if any(lab is None for lab in labels):
            return None
        return int(max(int(lab.max()) for lab in labels if lab.size) + 1)


def _unpack(name: str, split: Any, x_train: Any) -> Split:
    try:
        x, y = split
    except (TypeError, ValueError):
        raise ValueError(f"{name}= must be a pair (inputs, targets).") from None
    check_pair(name.capitalize(), x, y)
    if np.shape(x)[1:] != np.shape(x_train)[1:]:
        raise ValueError(
            f"The {name} inputs have shape {np.shape(x)[1:]} per point but the train inputs "
            f"{np.shape(x_train)[1:]}; all splits must share one input shape."
        )
    return x, y


def _count(size: float | int | None, total: int, name: str) -> int:
    if size is None:
        return 0
    count = Interval(Integral, 0, total, closed="left")
    AnyOf(Interval(Real, 0, 1, closed="neither"), count).check(name, size)
    return int(size) if count.accepts(size) else int(round(size * total))


def _split(inputs, targets, train_size, test_size, val_size, seed):
    from sklearn.model_selection import train_test_split  # scikit-learn is slow to import: loaded on use

    total = len(inputs)
    n_test = _count(test_size, total, "test_size")
    n_val = _count(val_size, total, "val_size")
    n_train = _count(train_size, total, "train_size") if train_size is not None else total - n_test - n_val
    if n_train <= 0 or n_train + n_test + n_val > total:
        raise ValueError(
            f"Split sizes train={n_train}, test={n_test}, val={n_val} do not fit {total} points."
        )
    seed = seed_or_global(seed)
    def take(x, y, n, state):
        strat = class_labels(y)
        if strat is not None:
            _, per_class = np.unique(strat, return_counts=True)
            # Too few points per class (or in either part) to stratify: fall back to a plain split.
            # (np.bincount(...).min(initial=0) was always 0, so nothing was ever stratified.)
            if per_class.min() < 2 or min(n, len(y) - n) < len(per_class):
                strat = None
        return train_test_split(x, y, test_size=n, random_state=state, stratify=strat)

    x, y = inputs, targets
    test = val = None
    if n_test:
        x, x_te, y, y_te = take(x, y, n_test, seed)
        test = (x_te, y_te)
    if n_val:
        x, x_va, y, y_va = take(x, y, n_val, (seed + 1) % 2**32)
        val = (x_va, y_va)
    if n_train < len(x):
        x, _, y, _ = take(x, y, len(x) - n_train, (seed + 2) % 2**32)
    return x, y, test, val
