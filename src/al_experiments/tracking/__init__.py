"""Where results go. tf_al's file layout: ``ExperimentSuitMetrics`` (one CSV per experiment plus
``.meta.json``) and the simpler ``Metrics`` CSV writer. MLflow: ``mlflow_store`` (the store,
the experiment, the UI's addresses), ``mlflow_run`` (one run per job) and ``sweep`` (a sweep's
parent run). Pure Python + numpy (no TensorFlow)."""

from al_experiments.utils.atomic import atomic_write_text
from al_experiments.tracking.metrics import Metrics, aggregates_per_key, read_history, save_history
from al_experiments.tracking.suit_metrics import ExperimentSuitMetrics

__all__ = [
    "ExperimentSuitMetrics",
    "Metrics",
    "aggregates_per_key",
    "save_history",
    "read_history",
    "atomic_write_text",
]
