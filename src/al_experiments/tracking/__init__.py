"""Where results go. tf_al's file layout: ``ExperimentSuitMetrics`` (one CSV per experiment plus
``.meta.json``) and the simpler ``Metrics`` CSV writer. MLflow: ``mlflow_store`` (the store,
the experiment, the UI's addresses), ``mlflow_run`` (one run per job) and ``sweep`` (a sweep's
parent run). Pure Python + numpy (no TensorFlow)."""

import os

# Before MLflow is imported: its telemetry thread adds and removes an environment variable while
# a job's writer thread reads the environment (requests does, for every request), which failed
# a request with KeyError under load. Cluster nodes seldom reach its endpoint anyway. A value
# set by the user wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

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
