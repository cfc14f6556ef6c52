"""Input checks shared by the config schema, the Python API and the strategies: one clear
sentence per problem.

Ranges and choices of parameters are declared once, as data (``Interval``, ``Options``,
``AnyOf``, ...), and checked by one function, so every refusal reads the same:
``<name>=<value> is invalid: it must be <what the constraint accepts>.`` A function declares its
parameters with ``@validate_params({...})``; the declarations can be read back
(``declared_parameters``), which is how the tests try an invalid value for every one.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from numbers import Integral, Real
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


# ----------------------------------------------------------------------------- the vocabulary
class InvalidParameterError(ValueError):
    """A parameter outside its declared constraint (a ValueError, as every bad argument here)."""


# How ``None`` and the booleans are spelt in a message: Python's words for the Python API, YAML's
# for the config an al-run user writes.
PYTHON_WORDS = {"none": "None", "true": "True", "false": "False"}
YAML_WORDS = {"none": "null", "true": "true", "false": "false"}


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_integer(value: Any) -> bool:
    """An int or a numpy integer, never a bool (True is not a count)."""
    return isinstance(value, (int, np.integer)) and not _is_bool(value)


def _is_real(value: Any) -> bool:
    """A finite int or float (numpy's included), never a bool."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not _is_bool(value)
            and math.isfinite(value))


class Constraint:
    """A set of accepted values, with the words that describe it."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        raise NotImplementedError

    def invalid_values(self) -> list[Any]:
        """Values this constraint refuses, out of range and of a wrong type (for the tests that
        try every declaration)."""
        raise NotImplementedError

    def check(self, name: str, value: Any, words: Mapping[str, str] = PYTHON_WORDS) -> None:
        """Do nothing if ``value`` is accepted; else raise ``InvalidParameterError`` in the one
        message form."""
        if not self.accepts(value):
            raise InvalidParameterError(invalid_message(name, value, self, words))


def invalid_message(name: str, value: Any, constraint: Constraint,
                    words: Mapping[str, str] = PYTHON_WORDS) -> str:
    """The one sentence for a refused parameter."""
    return f"{name}={value!r} is invalid: it must be {constraint.describe(words)}."


_BRACKETS = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}


class Interval(Constraint):
    """Numbers of a ``kind`` (``Integral``: whole numbers, bool excluded; ``Real``: finite
    numbers) between ``low`` and ``high`` (None: unbounded), ``closed`` on "both", "left",
    "right" or "neither" side."""

    def __init__(self, kind: type, low: float | None, high: float | None, closed: str = "both"):
        if kind not in (Integral, Real):
            raise TypeError(f"Interval kind must be numbers.Integral or numbers.Real; got {kind!r}.")
        if closed not in _BRACKETS:
            raise ValueError(f"closed must be one of {', '.join(_BRACKETS)}; got {closed!r}.")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def _low_closed(self) -> bool:
        return self.closed in ("both", "left")

    def _high_closed(self) -> bool:
        return self.closed in ("both", "right")

    def accepts(self, value: Any) -> bool:
        if not (_is_integer(value) if self.kind is Integral else _is_real(value)):
            return False
        if self.low is not None and (value < self.low or (value == self.low and not self._low_closed())):
            return False
        return self.high is None or not (value > self.high or (value == self.high and not self._high_closed()))

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        noun = "a whole number" if self.kind is Integral else "a number"
        if self.kind is Real and (self.low is None or self.high is None):
            noun = "a finite number"  # infinity is refused: no setting here means "unbounded"
        if self.low is not None and self.high is not None:
            left, right = _BRACKETS[self.closed]
            return f"{noun} in {left}{self.low}, {self.high}{right}"
        if self.low is not None:
            return f"{noun} {'>=' if self._low_closed() else '>'} {self.low}"
        if self.high is not None:
            return f"{noun} {'<=' if self._high_closed() else '<'} {self.high}"
        return noun

    def invalid_values(self) -> list[Any]:
        values: list[Any] = ["1"]  # a string, even of a number
        if self.low is not None:
            values.append(self.low if not self._low_closed() else self.low - 1)
        if self.high is not None:
            values.append(self.high if not self._high_closed() else self.high + 1)
        if self.kind is Integral:
            values += [1.5, float(self.low if self.low is not None else 0) + 1.0, True]
        else:
            values += [float("nan"), True]
        return [value for value in values if not self.accepts(value)]


def _equal(value: Any, option: Any) -> bool:
    try:
        return bool(value == option)
    except (TypeError, ValueError):  # a value whose == is not a plain answer is no option
        return False


class Options(Constraint):
    """One of a fixed set of values (compared with ``==``, bools never standing for numbers)."""

    def __init__(self, options: Iterable[Any]):
        self.options = tuple(options)

    def accepts(self, value: Any) -> bool:
        if isinstance(value, np.ndarray):
            return False  # an array compares element by element, never as one option
        return any(_is_bool(value) == _is_bool(option) and _equal(value, option) for option in self.options)

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        return "one of " + ", ".join(repr(option) for option in self.options)

    def invalid_values(self) -> list[Any]:
        return ["not-an-option", None]


class IsNone(Constraint):
    """None only: combined with another constraint by ``AnyOf`` for an optional parameter."""

    def accepts(self, value: Any) -> bool:
        return value is None

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        return words["none"]

    def invalid_values(self) -> list[Any]:
        return ["not-none"]


class Boolean(Constraint):
    """True or False (numpy's bool included; 0 and 1 are not booleans)."""

    def accepts(self, value: Any) -> bool:
        return _is_bool(value)

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        return f"{words['true']} or {words['false']}"

    def invalid_values(self) -> list[Any]:
        return ["yes", 1]


class WholeCount(Constraint):
    """A number without a fractional part, >= ``low``: a count a config may hold as a float
    (``300.0``), where ``Interval(Integral, ...)`` would refuse it."""

    def __init__(self, low: int):
        self.low = low

    def accepts(self, value: Any) -> bool:
        return _is_real(value) and value >= self.low and float(value).is_integer()

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        return f"a whole count >= {self.low}"

    def invalid_values(self) -> list[Any]:
        return [self.low + 0.5, self.low - 1, True]


class RandomSource(Constraint):
    """What ``numpy.random.default_rng`` takes as a seed: None (fresh entropy), a whole number
    >= 0, a ``SeedSequence``, a ``BitGenerator`` or a ``Generator``."""

    def accepts(self, value: Any) -> bool:
        if value is None or isinstance(value, (np.random.SeedSequence, np.random.BitGenerator,
                                               np.random.Generator)):
            return True
        return _is_integer(value) and value >= 0

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        return f"{words['none']}, a whole number >= 0 or a numpy Generator (or SeedSequence)"

    def invalid_values(self) -> list[Any]:
        return [-1, 1.5, "0", np.random.RandomState(0)]


class AnyOf(Constraint):
    """A value any of ``constraints`` accepts."""

    def __init__(self, *constraints: Constraint):
        self.constraints = constraints

    def accepts(self, value: Any) -> bool:
        return any(constraint.accepts(value) for constraint in self.constraints)

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        parts = [constraint.describe(words) for constraint in self.constraints]
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]

    def invalid_values(self) -> list[Any]:
        candidates = [value for constraint in self.constraints for value in constraint.invalid_values()]
        return [value for value in [*candidates, "invalid"] if not self.accepts(value)]


class ListOf(Constraint):
    """A non-empty list whose every item ``item`` accepts."""

    def __init__(self, item: Constraint):
        self.item = item

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(self.item.accepts(v) for v in value)

    def describe(self, words: Mapping[str, str] = PYTHON_WORDS) -> str:
        return f"a non-empty list, each item {self.item.describe(words)}"

    def invalid_values(self) -> list[Any]:
        return [[], [self.item.invalid_values()[0]]]


def optional(constraint: Constraint) -> AnyOf:
    """``constraint`` or None."""
    return AnyOf(constraint, IsNone())


# The constraints most parameters use.
WHOLE_AT_LEAST_0 = Interval(Integral, 0, None, closed="left")
WHOLE_AT_LEAST_1 = Interval(Integral, 1, None, closed="left")
POSITIVE = Interval(Real, 0, None, closed="neither")
NON_NEGATIVE = Interval(Real, 0, None, closed="left")
FRACTION_OPEN = Interval(Real, 0, 1, closed="neither")
RNG = RandomSource()
# A run's seed: a whole number that every consumer takes (scikit-learn's random_state stops at
# 2**32 - 1; splits derive neighbouring seeds modulo 2**32).
SEED = Interval(Integral, 0, 2**32 - 1)


def check_params(constraints: Mapping[str, Constraint], values: Mapping[str, Any],
                 words: Mapping[str, str] = PYTHON_WORDS) -> None:
    """Check every ``values[name]`` that ``constraints`` declares (names without a declaration
    pass); the first refusal raises ``InvalidParameterError``."""
    for name, value in values.items():
        constraint = constraints.get(name)
        if constraint is not None:
            constraint.check(name, value, words)


def rng_from(seed: Any, name: str = "rng") -> np.random.Generator:
    """``numpy.random.default_rng(seed)`` after the one check of the seed's value, so a negative
    or fractional seed reads as every other refusal instead of numpy's own sentence."""
    RNG.check(name, seed)
    return np.random.default_rng(seed)


_DECLARED: list[Callable[..., Any]] = []


def validate_params(constraints: Mapping[str, Constraint]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function (or ``__init__``) so the arguments named in ``constraints`` are
    checked before it runs; the declaration is kept as ``parameter_constraints`` and listed by
    ``declared_parameters``. Arguments are bound partially, so a refused value is reported even
    when others are missing."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function)
        keywords = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]
        unknown = set(constraints) - set(signature.parameters)
        if unknown and not keywords:
            raise TypeError(f"{function.__qualname__} declares constraints for parameters it does not take: "
                            f"{', '.join(sorted(unknown))}.")

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind_partial(*args, **kwargs)
            except TypeError:
                return function(*args, **kwargs)  # let Python's own message name the call error
            values = dict(bound.arguments)
            for name in keywords:  # names passed through **kwargs are checked as their own
                values.update(values.pop(name, {}))
            check_params(constraints, values)
            return function(*args, **kwargs)

        checked.parameter_constraints = dict(constraints)  # type: ignore[attr-defined]
        _DECLARED.append(checked)
        return checked

    return decorate


def declared_parameters() -> list[tuple[Callable[..., Any], str, Constraint]]:
    """``(function, parameter, constraint)`` for every declaration of the modules imported so far."""
    return [(function, name, constraint) for function in _DECLARED
            for name, constraint in function.parameter_constraints.items()]



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


def numeric_array(value: Any, needs: str, fix: str) -> np.ndarray:
    """``value`` as a float64 array, or one sentence (``<needs>; got ...: <fix>.``) where it
    holds something that is not a number or rows of different lengths (numpy's own message
    names neither the argument nor the fix)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{needs}; got a {type(value).__name__} whose values are not all numbers (or whose rows differ "
            f"in length): {fix}."
        ) from None
