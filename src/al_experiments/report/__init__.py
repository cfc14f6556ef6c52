"""``al-report``: learning curves, summary tables and paired comparisons of a sweep.

Read a sweep from MLflow (``load_mlflow``) or a tf_al metrics directory (``load_metrics_dir``),
then ``make_report`` writes the figures and tables into a folder and logs them to the sweep's
parent run; with two settings or more (``Curve.setting``) it adds a leaderboard across them
(``aggregate_settings``). No TensorFlow is imported; matplotlib only when a figure is drawn.
"""

from al_experiments.report.aggregate import Aggregate, aggregate_settings
from al_experiments.report.analysis import DEFAULT_BASELINE, DEFAULT_TARGETS, Report, analyse
from al_experiments.report.writer import ReportResult, make_report, report_sweep
from al_experiments.report.curves import Curve, CurveSet, ReportError, load_metrics_dir, load_mlflow, select

__all__ = [
    "Aggregate",
    "DEFAULT_BASELINE",
    "DEFAULT_TARGETS",
    "Curve",
    "CurveSet",
    "Report",
    "ReportError",
    "ReportResult",
    "aggregate_settings",
    "analyse",
    "load_metrics_dir",
    "load_mlflow",
    "make_report",
    "report_sweep",
    "select",
]
