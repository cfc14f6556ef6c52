"""Acquisition: query strategies, the per-round view they select from, and their array math.

A strategy owns selection: it gets a :class:`RoundView` of the round (candidates, labelled set,
and on demand scores, samples, consistent joint samples, embeddings, a target set), a batch size
and a seeded generator, and returns candidate positions, best first. Two kinds:

* per-point score functions (``(N, T, C)`` samples -> ``(N,)`` scores, higher = more worth
  labelling), followed by :func:`top_k` or :func:`stochastic_top_k`; users add theirs with
  :func:`register_query`;
* batch selectors (BatchBALD, Core-set, BADGE, EPIG, PowerBALD, and the low-budget TypiClust
  and ProbCover), added with :func:`register_batch_query`.

Installed packages add strategies through the entry-point group ``al_experiments.strategies``
(see :mod:`.plugins`), loaded the first time a name is not found.

Every built-in is also a pure function on arrays importable from here (``batch_bald``,
``stochastic_top_k``, ``k_center_greedy``, ``badge``, ``epig_scores``, ``typiclust``,
``probcover``). Nothing here imports TensorFlow.
"""

from __future__ import annotations

from typing import Any

from .functions import (
    bald,
    check_probs,
    least_confidence,
    margin,
    max_entropy,
    max_var_ratio,
    std_mean,
    variation_ratio,
)
from .batch.badge import badge
from .batch.batch_bald import batch_bald
from .batch.coreset import k_center_greedy
from .batch.epig import epig_scores
from .batch.probcover import probcover
from .batch.stochastic import STOCHASTIC_MODES, stochastic_top_k
from .batch.typiclust import typiclust
from .registry import (
    BatchStrategy,
    QueryStrategy,
    UnknownQueryError,
    available_queries,
    canonical_query_name,
    get_query,
    register_batch_query,
    register_query,
    register_strategy,
    unregister_query,
)
from .plugins import ENTRY_POINT_GROUP, StrategyPluginError
from .round import RoundView
from .selection import top_k
from .strategy import Selection

__all__ = [
    "QueryStrategy",
    "BatchStrategy",
    "RoundView",
    "Selection",
    "UnknownQueryError",
    "available_queries",
    "canonical_query_name",
    "get_query",
    "register_query",
    "register_batch_query",
    "register_strategy",
    "unregister_query",
    "ENTRY_POINT_GROUP",
    "StrategyPluginError",
    "top_k",
    "stochastic_top_k",
    "STOCHASTIC_MODES",
    "batch_bald",
    "k_center_greedy",
    "badge",
    "epig_scores",
    "typiclust",
    "probcover",
    "check_probs",
    "max_entropy",
    "bald",
    "max_var_ratio",
    "std_mean",
    "variation_ratio",
    "margin",
    "least_confidence",
]


def __getattr__(name: str) -> Any:
    # AcquisitionFunction (tf_al's model-calling wrapper) lives in acquisition_function.py and may
    # import model code; load it on first access so the array math stays importable on its own
    # and no import cycle arises.
    if name == "AcquisitionFunction":
        try:
            from .acquisition_function import AcquisitionFunction
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.acquisition_function":
                raise  # a real missing dependency inside that module: show it
            raise AttributeError(
                f"module {__name__!r} has no attribute 'AcquisitionFunction' (not installed)"
            ) from None
        return AcquisitionFunction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
