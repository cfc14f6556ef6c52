"""Acquisition: query functions as pure array math on predictive samples, plus selection.

Score functions take predictive samples of shape ``(N, T, C)`` and return ``(N,)`` scores,
higher = more worth labelling; :func:`top_k` turns scores into positions, best first. Strategies
are looked up by name (tf_al's strings included) in a registry users extend with
:func:`register_query`. Nothing here imports TensorFlow.
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
from .registry import (
    QueryStrategy,
    UnknownQueryError,
    available_queries,
    canonical_query_name,
    get_query,
    register_query,
    unregister_query,
)
from .selection import top_k

__all__ = [
    "QueryStrategy",
    "UnknownQueryError",
    "available_queries",
    "canonical_query_name",
    "get_query",
    "register_query",
    "unregister_query",
    "top_k",
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
