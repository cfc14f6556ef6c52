"""Data scenarios: a pool that differs from the test distribution, as the EPIG and BatchBALD
papers built them. Pure array functions, each seeded by the caller's generator; they touch the
split they are applied to and nothing else.

* ``repeat_pool``: every pool point several times, each copy with its own noise (Repeated-MNIST).
* ``thin_classes``: keep a fraction of some classes' pool points (a class-imbalanced pool
  against a balanced test set: EPIG's "unbalanced" MNIST).
* ``relabel_other``: keep some classes and map every other one to one "other" class, whose
  points the test set then drops (EPIG's "redundant" MNIST: the test holds only the classes
  of interest, the pool everything).
* ``split_off``: set aside a class-stratified part of a split (a target set drawn from the test
  distribution, kept apart from the pool and from evaluation).
"""

from __future__ import annotations

import numpy as np

__all__ = ["repeat_pool", "thin_classes", "relabel_other", "split_off"]


def repeat_pool(x: np.ndarray, y: np.ndarray, repeat: int, noise: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The pool with every point ``repeat`` times (copies follow the originals as blocks), each
    copy, the first included, plus its own Gaussian noise of standard deviation ``noise``; and
    each pool point's original (None for a plain pool)."""
    if repeat == 1 and noise == 0:
        return x, y, None
    x_rep = np.concatenate([x] * int(repeat), axis=0)
    y_rep = np.concatenate([np.asarray(y)] * int(repeat), axis=0)
    if noise > 0:
        x_rep = (x_rep + rng.normal(0.0, float(noise), size=x_rep.shape)).astype(x.dtype, copy=False)
    return x_rep, y_rep, np.tile(np.arange(len(x), dtype=np.int64), int(repeat))


def thin_classes(x: np.ndarray, y: np.ndarray, classes: list[int], keep: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` with only a random ``keep`` fraction (at least one point) of each class in
    ``classes``; the other classes and the order of what is kept are unchanged."""
    y = np.asarray(y)
    kept = np.ones(len(y), dtype=bool)
    for label in classes:
        members = np.flatnonzero(y == label)
        if len(members) == 0:
            continue
        count = max(1, int(round(keep * len(members))))
        kept[members] = False
        kept[rng.choice(members, count, replace=False)] = True
    return x[kept], y[kept]


def relabel_other(y: np.ndarray, classes: list[int]) -> np.ndarray:
    """Class ids ``classes[i] -> i``, every other class -> ``len(classes)`` ("other")."""
    y = np.asarray(y).astype(np.int64)
    mapped = np.full(len(y), len(classes), dtype=np.int64)
    for new, old in enumerate(classes):
        mapped[y == old] = new
    return mapped


def split_off(x: np.ndarray, y: np.ndarray, size: int,
              rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(rest, part)``: ``size`` points of ``x, y`` set aside, stratified by class (each class
    in proportion, the remainder to the largest shares), in their original order."""
    y = np.asarray(y)
    if not 0 < size < len(y):
        raise ValueError(f"cannot set aside {size} of {len(y)} points; choose a size between 1 and {len(y) - 1}.")
    labels, counts = np.unique(y, return_counts=True)
    share = counts * size / len(y)
    quota = np.floor(share).astype(int)
    for i in np.argsort(-(share - quota))[: size - quota.sum()]:
        quota[i] += 1
    part = np.zeros(len(y), dtype=bool)
    for label, count in zip(labels, quota):
        part[rng.choice(np.flatnonzero(y == label), count, replace=False)] = True
    return (x[~part], y[~part]), (x[part], y[part])
