"""Score functions for acquisition: pure numpy/scipy math on predictive samples.

Every function takes ``probs`` of shape ``(N, T, C)``: for each of N pool points, T stochastic
softmax outputs (MC-dropout passes, ensemble members, ...) over C classes. A deterministic model
passes ``T = 1``. Each returns a float64 vector ``(N,)`` where **higher means more worth
labelling**.

Differences from tf_al 0.1.1 (on purpose):

* tf_al computes ``p * log(p + 0.001)``. The epsilon biases every entropy downwards (by up to
  about ``0.001 * C`` nats) and makes the maximum entropy slightly less than ``log C``. Here we use
  ``scipy.special.entr`` (``-x log x`` with ``0 log 0 = 0``), which is exact and needs no offset.
* tf_al's ``max_var_ratio`` is ``1 - max_c pbar_c`` (least confidence on the MC mean), not Gal's
  variation ratio. We keep that meaning under that name, and add ``variation_ratio`` for Gal's
  ``1 - mode count / T``.
* The sample axis is required, also for ``sample_size=1`` (tf_al dropped it there).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import entr

from al_experiments.validation import numeric_array

__all__ = [
    "check_probs",
    "check_embeddings",
    "float64_row_blocks",
    "check_value_range",
    "max_entropy",
    "bald",
    "max_var_ratio",
    "std_mean",
    "variation_ratio",
    "margin",
    "least_confidence",
    "random_scores",
]

# Softmax outputs computed in float32 can stray a hair outside [0, 1]; anything further out is
# not a probability (most likely logits were passed), so reject it instead of scoring garbage.
_RANGE_TOL = 1e-6

_SHAPE_HINT = "query functions need predictive samples of shape (N, T, C)"


def check_probs(probs: ArrayLike) -> np.ndarray:
    """Validate predictive samples and return them as a float64 array of shape ``(N, T, C)``.

    Raises ``ValueError`` (one sentence naming the problem and the fix) when ``probs`` is not a
    3-D numeric array with ``T >= 1`` and ``C >= 1``, contains NaN/inf, or holds values outside
    ``[0, 1]``. Values within 1e-6 of the interval are clipped into it. Rows are not required to
    sum to 1, so callers may pass e.g. a single sigmoid column (C=1); for binary problems, prefer
    two columns ``[1 - p, p]`` so that entropies mean what they should.
    """
    arr = numeric_array(probs, _SHAPE_HINT, "pass a numeric array of softmax outputs")

    if arr.ndim == 2:
        raise ValueError(
            f"{_SHAPE_HINT}; got shape (N, C) = {arr.shape}: keep the sample axis, use T=1 for "
            "a deterministic model (e.g. probs[:, None, :])."
        )
    if arr.ndim != 3:
        raise ValueError(
            f"{_SHAPE_HINT}; got a {arr.ndim}-D array of shape {arr.shape}: reshape it to "
            "(points, samples, classes), e.g. squeeze extra singleton axes or merge sample axes."
        )
    n, t, c = arr.shape
    if t < 1:
        raise ValueError(
            f"{_SHAPE_HINT}; got shape {arr.shape} with T=0 samples: draw at least one sample "
            "per point (T=1 for a deterministic model)."
        )
    if c < 1:
        raise ValueError(
            f"{_SHAPE_HINT}; got shape {arr.shape} with C=0 classes: pass the model's class "
            "probabilities as the last axis."
        )
    if arr.size == 0:
        return arr

    finite = np.isfinite(arr)
    nonfinite = int(arr.size - np.count_nonzero(finite))
    lo, hi = (float(arr.min()), float(arr.max())) if nonfinite == 0 else (0.0, 1.0)
    check_value_range(nonfinite, lo, hi, arr.shape)
    if lo < 0.0 or hi > 1.0:
        # Only round-off reaches here; clip on a copy so the caller's array is left alone.
        arr = np.clip(arr, 0.0, 1.0)
    return arr


# Rows of a pool's embeddings handled at a time where a whole-array temporary would be as large
# as the pool itself (4,096 x D values: 8 MiB in float64 at D = 256).
ROW_BLOCK = 4096


def float64_row_blocks(x: np.ndarray, rows: int = ROW_BLOCK):
    """Yield ``(start, block)`` over ``x``'s rows, ``rows`` at a time, each block in float64 (a
    copy only where ``x`` is kept in float32: see ``check_embeddings``'s ``keep_float32``)."""
    for start in range(0, x.shape[0], rows):
        yield start, np.asarray(x[start:start + rows], dtype=np.float64)


def check_embeddings(x: ArrayLike, name: str = "embeddings", empty_dim: int | None = None,
                     keep_float32: bool = False) -> np.ndarray:
    """Return ``x`` as a finite float64 matrix ``(rows, D)`` or raise a one-sentence error.

    With ``empty_dim`` set, a 1-D empty input (``[]``) is read as ``(0, empty_dim)``. With
    ``keep_float32`` a float32 array is returned as it is, not copied (for callers that compute
    in float64 block by block: a large pool's float64 copy would double its memory)."""
    if keep_float32 and isinstance(x, np.ndarray) and x.dtype == np.float32:
        arr = x
    else:
        arr = numeric_array(x, f"{name} must be a numeric (rows, D) array",
                            "pass the model's embedding vectors as a float array")
    if empty_dim is not None and arr.ndim == 1 and arr.size == 0:
        return np.empty((0, empty_dim))
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (rows, D), one embedding per row; got shape "
            f"{arr.shape}: flatten each point's features (e.g. x.reshape(len(x), -1))."
        )
    # a block of rows at a time: a whole boolean copy of a large pool is a quarter of its size
    if not all(np.isfinite(arr[start:start + ROW_BLOCK]).all() for start in range(0, len(arr), ROW_BLOCK)):
        raise ValueError(
            f"{name} contains {int(arr.size - np.count_nonzero(np.isfinite(arr)))} NaN/inf "
            "value(s): check the model's embedding layer (a diverged loss gives NaN)."
        )
    return arr


def check_value_range(nonfinite: int, lo: float, hi: float, shape: tuple) -> None:
    """Raise the errors of :func:`check_probs` from summary figures of an array (its count of
    NaN/inf entries and its finite minimum and maximum); the compiled scorer computes them
    without copying the samples to the host."""
    if nonfinite:
        raise ValueError(
            f"the model produced non-finite probabilities ({nonfinite} NaN/inf entries in an array "
            f"of shape {tuple(shape)}): check training for a diverged (NaN) loss and pass softmax "
            "outputs, not logits."
        )
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise ValueError(
            f"query functions need probabilities in [0, 1]; got values in [{lo:.4g}, {hi:.4g}] "
            f"in an array of shape {tuple(shape)}: apply softmax to the model outputs (these look "
            "like logits)."
        )


def _entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis, with 0 log 0 = 0."""
    return entr(p).sum(axis=-1)


def max_entropy(probs: ArrayLike) -> np.ndarray:
    """Predictive entropy ``H[pbar] = -sum_c pbar_c log pbar_c`` with ``pbar`` the mean over T."""
    p = check_probs(probs)
    return _entropy(p.mean(axis=1))


def bald(probs: ArrayLike) -> np.ndarray:
    """BALD: mutual information ``H[pbar] - mean_t H[p_t]`` between prediction and weights.

    Mathematically >= 0 (entropy is concave); clipped at 0 so round-off never yields tiny
    negative scores. It is exactly 0 for T=1 or when all samples agree.
    """
    p = check_probs(probs)
    mi = _entropy(p.mean(axis=1)) - _entropy(p).mean(axis=1)
    return np.maximum(mi, 0.0)


def max_var_ratio(probs: ArrayLike) -> np.ndarray:
    """tf_al's ``max_var_ratio``: ``1 - max_c pbar_c`` (least confidence of the MC mean).

    Not Gal's variation ratio; see :func:`variation_ratio` for that.
    """
    p = check_probs(probs)
    return 1.0 - p.mean(axis=1).max(axis=-1)


def std_mean(probs: ArrayLike) -> np.ndarray:
    """Mean over classes of the population standard deviation (ddof=0) over samples."""
    p = check_probs(probs)
    return p.std(axis=1, ddof=0).mean(axis=-1)


def variation_ratio(probs: ArrayLike) -> np.ndarray:
    """Gal et al.'s variation ratio: ``1 - (count of the modal class among T argmax labels) / T``.

    Each sample votes for its argmax class; ties within one sample go to the lowest class
    index (``np.argmax``). Lies in ``[0, 1 - 1/C]``.
    """
    p = check_probs(probs)
    n, t, c = p.shape
    votes = p.argmax(axis=-1)  # (N, T)
    # One flat bincount over (point, class) pairs counts votes for all points at once.
    flat = (np.arange(n)[:, None] * c + votes).ravel()
    counts = np.bincount(flat, minlength=n * c).reshape(n, c)
    return 1.0 - counts.max(axis=-1) / t


def margin(probs: ArrayLike) -> np.ndarray:
    """Margin score ``1 - (pbar_top1 - pbar_top2)``: higher means a smaller margin.

    Needs at least two classes; with C == 1 there is no runner-up, so it raises ``ValueError``.
    """
    p = check_probs(probs)
    c = p.shape[-1]
    if c < 2:
        raise ValueError(
            f"margin needs at least two classes; got probabilities of shape {p.shape} (C=1): "
            "pass two columns [1 - p, p] for a binary model."
        )
    pbar = p.mean(axis=1)
    # Partial sort: the two largest end up in the last two slots, largest last.
    top2 = np.partition(pbar, c - 2, axis=-1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def least_confidence(probs: ArrayLike) -> np.ndarray:
    """Least confidence ``1 - max_c pbar_c`` (same number as :func:`max_var_ratio`)."""
    p = check_probs(probs)
    return 1.0 - p.mean(axis=1).max(axis=-1)


# ----------------------------------------------------------------------------- decision values
def random_scores(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random scores; the top k of them are a uniform sample without replacement.

    The one score that needs no samples: it is called with the number of points and a generator.
    """
    return rng.random(n)


def decision_margin(values: ArrayLike) -> np.ndarray:
    """Margin from a classifier's decision values (higher = closer to a boundary): ``-|f(x)|``
    for a binary classifier's ``(N,)`` values, ``-(f_top1 - f_top2)`` for ``(N, C)``."""
    f = _decision(values)
    if f.ndim == 1:
        return -np.abs(f)
    top2 = np.sort(f, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def decision_least_confidence(values: ArrayLike) -> np.ndarray:
    """Least confidence from decision values: ``-|f(x)|`` (binary) or ``-max_c f_c(x)``."""
    f = _decision(values)
    return -np.abs(f) if f.ndim == 1 else -f.max(axis=1)


def _decision(values: ArrayLike) -> np.ndarray:
    f = np.asarray(values, dtype=np.float64)
    if f.ndim == 2 and f.shape[1] == 1:
        f = f[:, 0]
    if f.ndim not in (1, 2) or (f.ndim == 2 and f.shape[1] < 2):
        raise ValueError(f"decision values must have shape (N,) or (N, C) with C >= 2; got {f.shape}.")
    if not np.all(np.isfinite(f)):
        raise ValueError("decision values hold NaN or infinite entries.")
    return f


# Which per-point score a decision function can stand in for, keyed by the probability version.
DECISION_SCORES = {margin: decision_margin, least_confidence: decision_least_confidence,
                   max_var_ratio: decision_least_confidence}
