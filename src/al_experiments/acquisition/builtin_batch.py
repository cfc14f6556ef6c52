"""The built-in batch strategies: each asks the round's view for what it needs and hands it to
the pure array function of the same name.

Which samples each uses: ``batch_bald`` and ``epig`` need consistent joint samples (sample t
is one parameter draw for every candidate and target point); ``power_bald`` and
``power_entropy`` score points one by one, so they use the cheaper independent samples;
``coreset`` and ``badge`` use deterministic embeddings (and, for BADGE, the deterministic
predictive of the same pass); ``typiclust`` and ``probcover`` use deterministic embeddings or,
with ``features=input``, the raw inputs and no model output at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_experiments.validation import WHOLE_AT_LEAST_1, Options, optional, validate_params

from .batch import batch_bald as _batch_bald
from .batch.badge import badge as _badge
from .batch.coreset import k_center_greedy
from .batch.epig import TARGET_SOURCES, epig_scores
from .batch.probcover import DEFAULT_PURITY, DEFAULT_SUBSAMPLE, DELTA, PURITY, sampled_candidates
from .batch.probcover import probcover as _probcover
from .batch.stochastic import STOCHASTIC_CONSTRAINTS, take_batch
from .batch.typiclust import typiclust_stacked
from .ranking import top_k

__all__ = ["BUILTINS", "FIXED_SAMPLES", "samples_used"]

# Where the distance-based cold-start strategies find their features: the model's deterministic
# embeddings, or the raw inputs flattened (no model output).
FEATURE_SOURCES = ("embedding", "input")


# The joint strategies' cull: the candidates of highest BALD (on the round's consistent samples,
# reduced inside the compiled sampler) that alone get consistent samples and a joint score.
# Pools up to this size are never culled; see the README for the measurement behind it.
DEFAULT_PREFILTER = 10_000
PREFILTER = {"prefilter": optional(WHOLE_AT_LEAST_1)}


def kept_candidates(view: Any, prefilter: int | None, batch_size: int) -> np.ndarray | None:
    """Positions (into the round's candidates, ascending) of the ``prefilter`` candidates of
    highest BALD on the consistent samples, ties to the lower position; None where nothing is
    culled (``prefilter`` None or at least the number of candidates)."""
    if prefilter is None or prefilter >= len(view):
        return None
    if prefilter < min(batch_size, len(view)):
        raise ValueError(
            f"prefilter={prefilter} keeps fewer candidates than the batch of {batch_size}: set "
            f"query.options.prefilter to at least the batch size, or null to keep every candidate."
        )
    return np.sort(top_k(view.joint_scores("bald"), prefilter))


# Each selector declares the ranges of its options, so a bad query.options value stops a job at
# its config check (``strategy.check_options`` reads the declarations) as well as at a call.
@validate_params(_batch_bald.OPTIONS)
def batch_bald(view: Any, batch_size: int, rng: np.random.Generator, num_samples: int = 10_000,
               prefilter: int | None = DEFAULT_PREFILTER, lazy: bool = True):
    """BatchBALD (Kirsch et al. 2019): greedy joint mutual information on consistent samples,
    among the ``prefilter`` candidates of highest BALD (None: all)."""
    kept = kept_candidates(view, prefilter, batch_size)
    chosen, joint = _batch_bald.batch_bald_with_scores(view.joint_samples(kept), batch_size, num_samples=num_samples,
                                                       rng=rng, lazy=lazy)
    if kept is not None:
        chosen = kept[chosen]
    return chosen, np.diff(joint, prepend=0.0)  # each pick's gain in joint mutual information


@validate_params({"temperature": STOCHASTIC_CONSTRAINTS["temperature"]})
def power_bald(view: Any, batch_size: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
    """PowerBALD (Kirsch et al. 2023): sample the batch with probability proportional to BALD^(1/temperature)."""
    return _power(view, "bald", batch_size, rng, temperature)


@validate_params({"temperature": STOCHASTIC_CONSTRAINTS["temperature"]})
def power_entropy(view: Any, batch_size: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
    """PowerEntropy: sample the batch with probability proportional to entropy^(1/temperature)."""
    return _power(view, "max_entropy", batch_size, rng, temperature)


def _power(view: Any, score: str, batch_size: int, rng: np.random.Generator, temperature: float):
    scores = view.scores(score)
    chosen = take_batch(scores, batch_size, "power", temperature, rng)
    return chosen, scores[chosen]


def coreset(view: Any, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Core-set (Sener & Savarese 2018): greedy k-center on deterministic embeddings."""
    return k_center_greedy(view.embeddings(), view.labelled_embeddings(), batch_size, rng=rng)


def badge(view: Any, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings."""
    return _badge(view.predictive(), view.embeddings(), batch_size, rng=rng)


@validate_params({"target_size": WHOLE_AT_LEAST_1, "target": Options(TARGET_SOURCES), **STOCHASTIC_CONSTRAINTS,
                  **PREFILTER})
def epig(view: Any, batch_size: int, rng: np.random.Generator, target_size: int = 100,
         target: str = "pool", stochastic: str | None = None, temperature: float = 1.0,
         prefilter: int | None = DEFAULT_PREFILTER):
    """EPIG (Bickford Smith et al. 2023): expected information gain about predictions on a target
    set, among the ``prefilter`` candidates of highest BALD (None: all). A point's EPIG never
    exceeds its BALD on the same draws (its label informs the targets' only through the
    parameters), so a culled point scores at most the lowest BALD kept."""
    kept = kept_candidates(view, prefilter, batch_size)
    scores = epig_scores(view.joint_samples(kept), view.target_samples(target_size, source=target))
    chosen = take_batch(scores, batch_size, stochastic, temperature, rng)
    if kept is not None:
        return kept[chosen], scores[chosen]
    return chosen, scores[chosen]


@validate_params({"features": Options(FEATURE_SOURCES), "min_cluster_size": WHOLE_AT_LEAST_1})
def typiclust(view: Any, batch_size: int, rng: np.random.Generator, features: str = "embedding",
              min_cluster_size: int = 5) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022): the most typical point of each largest cluster without a label."""
    # One array of candidates and labelled points, owned here: normalised in place, so a large
    # pool's features exist once (a million embeddings of 256 floats are 1 GiB).
    return typiclust_stacked(view.stacked_features(features), len(view), batch_size, rng=rng,
                             min_cluster_size=min_cluster_size, overwrite=True)


@validate_params({"features": Options(FEATURE_SOURCES), "delta": DELTA, "purity": PURITY,
                  "subsample": optional(WHOLE_AT_LEAST_1)})
def probcover(view: Any, batch_size: int, rng: np.random.Generator, features: str = "embedding",
              delta: float | None = None, purity: float = DEFAULT_PURITY,
              subsample: int | None = DEFAULT_SUBSAMPLE) -> np.ndarray:
    """ProbCover (Yehuda et al. 2022): greedy coverage of the points by balls of radius delta,
    over a uniform sample of ``subsample`` candidates where there are more (None: all)."""
    # The sample is drawn as the array function draws it, first, so only its features are computed.
    kept = sampled_candidates(len(view), subsample, batch_size, rng)
    points = view.stacked_features(features, kept)
    n = len(view) if kept is None else len(kept)
    num_classes = _num_classes(view) if delta is None else None
    picks = _probcover(points[:n], points[n:], batch_size, rng=rng, delta=delta, num_classes=num_classes,
                       purity=purity, subsample=None)
    return picks if kept is None else kept[picks]


def _num_classes(view: Any) -> int:
    """The number of classes, for ProbCover's purity-based radius: the model's outputs (one
    sigmoid unit = 2 classes), else the dataset's; one sentence when neither says."""
    outputs = getattr(view.model, "num_outputs", None)
    count = outputs() if outputs is not None else None
    if count is None and view.dataset is not None:
        count = view.dataset.num_classes()
    if count is None:
        raise ValueError(
            "probcover's default delta needs the number of classes, which neither the model nor the "
            "dataset gives here: set the ball radius with query.options.delta."
        )
    return max(2, int(count))


# What a built-in batch strategy's choice rests on where it does not follow ``samples`` (the
# power strategies do: they rank per-point scores).
FIXED_SAMPLES = {"batch_bald": "consistent", "epig": "consistent", "coreset": "deterministic",
                 "badge": "deterministic", "typiclust": "deterministic", "probcover": "deterministic"}


def samples_used(strategy: Any, samples: str, settings: dict[str, Any] | None = None) -> str:
    """What ``strategy`` runs on when per-point scores use ``samples``: ``independent`` or
    ``consistent`` samples, ``deterministic`` predictions, or ``none`` (sample-free, or a
    built-in on the raw inputs: ``features=input`` in ``settings``)."""
    if not strategy.needs_samples:
        return "none"
    if strategy.kind == "batch" and BUILTINS.get(strategy.name) is strategy.fn:
        if (settings or {}).get("features") == "input":
            return "none"
        return FIXED_SAMPLES.get(strategy.name, samples)
    return samples


# name -> selector (its options' ranges are declared on it)
BUILTINS = {
    "batch_bald": batch_bald,
    "power_bald": power_bald,
    "power_entropy": power_entropy,
    "coreset": coreset,
    "badge": badge,
    "epig": epig,
    "typiclust": typiclust,
    "probcover": probcover,
}
