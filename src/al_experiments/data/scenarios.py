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
* ``long_tail``: a long-tailed pool with a given head-to-tail imbalance ratio.
* ``flip_labels``: the oracle's label noise, symmetric or class-dependent, at an exact rate.
* ``ood_share``: a pool with a given fraction of out-of-distribution points (classes the test set
  does not hold, relabelled as one "other" class by ``relabel_other``).

Every function works on any array ``x`` indexed by rows, so the app runs them on index arrays
and records which source rows each split holds (``data.task``).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from al_experiments.validation import (
    FRACTION_OPEN,
    NON_NEGATIVE,
    WHOLE_AT_LEAST_1,
    Interval,
    Options,
    validate_params,
)

__all__ = ["repeat_pool", "thin_classes", "relabel_other", "split_off", "long_tail", "flip_labels", "ood_share",
           "LABEL_NOISE_KINDS", "KEEP_FRACTION", "IMBALANCE_RATIO", "LABEL_NOISE_RATE"]

LABEL_NOISE_KINDS = ("symmetric", "pairwise")
# The scenarios' settings, declared once for these functions and the config schema.
KEEP_FRACTION = Interval(Real, 0, 1, closed="right")  # of a minority class's pool points
IMBALANCE_RATIO = Interval(Real, 1, None, closed="left")  # head class over tail class; 1: as it is
LABEL_NOISE_RATE = Interval(Real, 0, 1, closed="left")  # the fraction of wrong labels


@validate_params({"repeat": WHOLE_AT_LEAST_1, "noise": NON_NEGATIVE})
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


@validate_params({"keep": KEEP_FRACTION})
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
    Interval(Integral, 1, len(y), closed="left").check("size", size)
    labels, counts = np.unique(y, return_counts=True)
    share = counts * size / len(y)
    quota = np.floor(share).astype(int)
    for i in np.argsort(-(share - quota))[: size - quota.sum()]:
        quota[i] += 1
    part = np.zeros(len(y), dtype=bool)
    for label, count in zip(labels, quota):
        part[rng.choice(np.flatnonzero(y == label), count, replace=False)] = True
    return (x[~part], y[~part]), (x[part], y[part])


@validate_params({"ratio": IMBALANCE_RATIO})
def long_tail(x: np.ndarray, y: np.ndarray, ratio: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A long-tailed pool (the exponential profile of Cui et al. 2019): the class of rank ``r``
    among the ``C`` present (in label order, the lowest label the head) keeps
    ``round(n * ratio ** (-r / (C - 1)))`` random points (at least one), ``n`` the smallest class
    count, so head / tail is ``ratio`` whatever the classes' own sizes; order is kept."""
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    if ratio == 1 or len(labels) < 2:
        return x, y
    base = counts.min()
    kept = np.zeros(len(y), dtype=bool)
    for rank, label in enumerate(labels):
        members = np.flatnonzero(y == label)
        count = max(1, int(round(base * ratio ** (-rank / (len(labels) - 1)))))
        kept[rng.choice(members, count, replace=False)] = True
    return x[kept], y[kept]


@validate_params({"rate": LABEL_NOISE_RATE, "kind": Options(LABEL_NOISE_KINDS),
                  "num_classes": Interval(Integral, 2, None, closed="left")})
def flip_labels(y: np.ndarray, rate: float, kind: str, num_classes: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's answers with exactly ``round(rate * N)`` random labels wrong, and which ones.

    ``symmetric``: a wrong label is any other class, uniformly; ``pairwise`` (class-dependent
    noise, Han et al. 2018): class ``c`` is always mistaken for ``c + 1 mod C``.
    """
    y = np.asarray(y).astype(np.int64)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), int(round(rate * len(y))), replace=False)] = True
    noisy = y.copy()
    if kind == "pairwise":
        noisy[flipped] = (y[flipped] + 1) % num_classes
    else:  # an offset in 1..C-1 never lands on the true class
        noisy[flipped] = (y[flipped] + rng.integers(1, num_classes, flipped.sum())) % num_classes
    return noisy, flipped


@validate_params({"fraction": FRACTION_OPEN})
def ood_share(x: np.ndarray, y: np.ndarray, ood_label: int, fraction: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` subsampled so that points labelled ``ood_label`` are ``fraction`` of them (the
    side in excess is thinned at random, the other kept whole); order is kept."""
    y = np.asarray(y)
    ood = y == ood_label
    n_ood, n_in = int(ood.sum()), int((~ood).sum())
    if n_ood == 0 or n_in == 0:
        raise ValueError(f"the pool holds {n_ood} out-of-distribution and {n_in} other points; both are needed.")
    kept = np.ones(len(y), dtype=bool)
    if n_ood > fraction * (n_in + n_ood):
        want, side = int(round(fraction * n_in / (1 - fraction))), np.flatnonzero(ood)
    else:
        want, side = int(round(n_ood * (1 - fraction) / fraction)), np.flatnonzero(~ood)
    kept[side] = False
    kept[rng.choice(side, max(1, want), replace=False)] = True
    return x[kept], y[kept]
