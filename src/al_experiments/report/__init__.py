"""``al-report``: learning curves, summary tables and paired comparisons of a sweep.

Read a sweep from MLflow (``load_mlflow``) or a tf_al metrics directory (``load_metrics_dir``),
then ``make_report`` writes the figures and tables into a folder and logs them to the sweep's
parent run. No TensorFlow is imported; matplotlib only when a figure is drawn.
"""

from al_experiments.report.analysis import DEFAULT_BASELINE, DEFAULT_TARGETS, Report, analyse
from al_experiments.report.build import ReportResult, make_report, report_sweep
from al_experiments.report.curves import Curve, CurveSet, ReportError, load_metrics_dir, load_mlflow, select

__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_TARGETS",
    "Curve",
    "CurveSet",
    "Report",
    "ReportError",
    "ReportResult",
    "analyse",
    "load_metrics_dir",
    "load_mlflow",
    "make_report",
    "report_sweep",
    "select",
]
