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

from . import builtin_batch as _builtin_batch
from . import scores as _f
from .acquisition_function import AcquisitionFunction
from .batch.badge import badge
from .batch.batch_bald import batch_bald
from .batch.coreset import k_center_greedy
from .batch.epig import epig_scores
from .batch.probcover import probcover
from .batch.stochastic import STOCHASTIC_MODES, stochastic_top_k
from .batch.typiclust import typiclust
from .scores import (
    bald,
    check_probs,
    least_confidence,
    margin,
    max_entropy,
    max_var_ratio,
    std_mean,
    variation_ratio,
)
from .plugins import ENTRY_POINT_GROUP, StrategyPluginError
from .registry import (
    UnknownQueryError,
    available_queries,
    canonical_query_name,
    get_query,
    register_batch_query,
    register_query,
    register_strategy,
    unregister_query,
)
from .round import RoundView
from .ranking import top_k
from .strategy import BatchStrategy, QueryStrategy, Selection

__all__ = [
    "AcquisitionFunction",
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


def _register_builtins() -> None:
    """The built-in strategies, registered once as the package is assembled (the registry
    itself holds none, so it imports none of the modules that define them)."""
    register_query("random", _f.random_scores, needs_samples=False)
    for score in (_f.max_entropy, _f.bald, _f.max_var_ratio, _f.variation_ratio, _f.margin,
                  _f.least_confidence):
        register_query(score.__name__, score)
    # tf_al's docs call it mean_std, its code only knew std_mean; accept both.
    register_query("std_mean", _f.std_mean, aliases=("mean_std",))
    for name, selector in _builtin_batch.BUILTINS.items():
        register_batch_query(name, selector)


_register_builtins()
