"""al-experiments: deep active-learning experiments on TensorFlow.

The public names are those of the older ``tf_al`` package, so a script written against its
documentation runs after changing ``import tf_al`` to ``import al_experiments``.

Names are imported lazily: TensorFlow takes seconds to import, and the file-format, pool and
query-function layers do not need it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "ActiveLearningLoop": "al_experiments.loop",
    "AcquisitionFunction": "al_experiments.acquisition.acquisition_function",
    "Config": "al_experiments.config",
    "Dataset": "al_experiments.dataset",
    "Pool": "al_experiments.pool",
    "Oracle": "al_experiments.oracle",
    "ExperimentSuit": "al_experiments.suit",
    "ExperimentSuitMetrics": "al_experiments.tracking",
    "Metrics": "al_experiments.tracking",
    "aggregates_per_key": "al_experiments.tracking",
    "save_history": "al_experiments.tracking",
    "read_history": "al_experiments.tracking",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'al_experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
