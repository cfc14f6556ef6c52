"""Input checks shared by the pool, the dataset and the loop: one clear sentence per problem."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def as_index_array(indices: Any, length: int) -> np.ndarray:
    """``indices`` as a 1-D int64 array of valid positions in ``range(length)``."""
    idx = np.asarray(indices)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.size == 0:
        return np.empty(0, dtype=np.int64)
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and np.all(np.mod(idx, 1) == 0):
            idx = idx.astype(np.int64)
        else:
            raise ValueError(f"Indices must be integers, got dtype {idx.dtype}.")
    if idx.ndim != 1:
        raise ValueError(f"Indices must be a 1-D list, got shape {idx.shape}.")
    if idx.min() < 0 or idx.max() >= length:
        raise IndexError(
            f"Index out of range: indices must lie in [0, {length - 1}], got {idx.min()}..{idx.max()}."
        )
    return idx.astype(np.int64, copy=False)


def check_whole(name: str, value: Any, minimum: int, optional: bool = False,
                none_word: str = "None") -> None:
    """Raise ``ValueError`` unless ``value`` is a whole number >= ``minimum`` (or, where
    ``optional``, None). The one range check of counts: the config schema, the Python API and
    strategy options all say it with this sentence."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        allowed = f"a whole number >= {minimum}" + (f" or {none_word}" if optional else "")
        raise ValueError(f"{name}={value!r} is invalid: it must be {allowed}.")


def class_labels(targets: np.ndarray) -> np.ndarray | None:
    """Integer class labels from integer or one-hot targets; None for regression targets."""
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] > 1:
        return np.argmax(targets, axis=1)
    # Explicit width: reshape(0, -1) fails on an empty selection (e.g. a fully labelled pool).
    flat = targets.reshape(len(targets), int(np.prod(targets.shape[1:], dtype=np.int64)))
    if flat.shape[1] != 1:
        return None
    flat = flat[:, 0]
    if flat.dtype.kind in "iub":
        return flat.astype(np.int64)
    if flat.dtype.kind == "f" and np.all(np.isfinite(flat)) and np.all(np.mod(flat, 1) == 0):
        return flat.astype(np.int64)
    return None


def check_finite(name: str, array: Any) -> None:
    """Raise if a float array holds NaN or infinite values."""
    arr = np.asarray(array)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        raise ValueError(
            f"{name} contain {bad} NaN or infinite value(s); clean or impute them before the experiment."
        )


def check_pair(name: str, inputs: Any, targets: Any) -> None:
    """Inputs and targets of one split: same length, finite values."""
    if len(inputs) != len(targets):
        raise ValueError(
            f"{name} inputs and targets differ in length ({len(inputs)} vs {len(targets)}); "
            "pass one target per input."
        )
    check_finite(f"{name} inputs", inputs)
    check_finite(f"{name} targets", targets)


def check_labels(name: str, targets: Any, num_classes: int | None) -> None:
    """Class labels must lie in ``[0, num_classes)``; one-hot rows must have ``num_classes`` columns."""
    if num_classes is None:
        return
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] > 1:
        if targets.shape[1] != num_classes:
            raise ValueError(
                f"{name} targets are one-hot with {targets.shape[1]} columns but the model has "
                f"{num_classes} outputs."
            )
        return
    labels = class_labels(targets)
    if labels is None:
        return
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name} targets hold labels {labels.min()}..{labels.max()}, outside the model's "
            f"{num_classes} classes [0, {num_classes - 1}]; remap the labels or change the output layer."
        )


def closest_match(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (difflib's ratio >= ``cutoff``), for a did-you-mean."""
    matches = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def reject_empty_indices(owner: str, size: Any) -> None:
    """IndexError for an empty list of initial indices (tf_al raised one too); 0 labels none."""
    if isinstance(size, (list, tuple, np.ndarray)) and np.size(size) == 0:
        raise IndexError(
            f"{owner} got an empty list of indices; pass the pool indices to label, or a "
            "number of points (0 labels none)."
        )


def reject_unknown_kwargs(owner: str, kwargs: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Raise TypeError if ``kwargs`` holds a name outside ``accepted``; do nothing otherwise.

    The message names the unknown argument(s), lists every accepted name sorted (pass the
    explicit parameters of the signature too, not only the ones read from ``**kwargs``) and
    suggests the closest accepted name where one is close (``difflib``), e.g.
    ``McDropout got an unexpected keyword argument 'rest'; it accepts: checkpoint, ..., verbose.
    Did you mean 'reset'?``. TypeError, like Python's own error for an unknown keyword.
    """
    allowed = sorted(set(accepted))
    unknown = [name for name in kwargs if name not in allowed]
    if not unknown:
        return
    if len(unknown) == 1:
        head = f"{owner} got an unexpected keyword argument {unknown[0]!r}"
    else:
        head = f"{owner} got unexpected keyword arguments {', '.join(repr(n) for n in unknown)}"
    message = f"{head}; it accepts: {', '.join(allowed)}."
    hints = {name: closest_match(name, allowed) for name in unknown}
    hints = {name: match for name, match in hints.items() if match}
    if len(unknown) == 1 and hints:
        message += f" Did you mean {hints[unknown[0]]!r}?"
    elif hints:
        message += " Did you mean " + ", ".join(f"{m!r} for {n!r}" for n, m in hints.items()) + "?"
    raise TypeError(message)


def signature_names(*functions: Any) -> set[str]:
    """The names that can be passed by keyword to any of ``functions`` (``self`` excluded)."""
    names: set[str] = set()
    for function in functions:
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                names.add(parameter.name)
    names.discard("self")
    return names
