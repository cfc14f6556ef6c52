"""``al-report``: the report of a sweep, from MLflow or from a tf_al metrics directory.

    al-report                                    # experiment al-experiments in sqlite:///mlflow.db
    al-report --parent-run RUN_ID                # the jobs of one sweep; logged to that run
    al-report --tracking-uri http://host:5000 --experiment NAME
    al-report --metrics-dir multirun/2026-01-01/12-00-00/metrics --out report-csv

Writes learning_curves.{png,svg}, summary.md, summary.csv and comparison.csv into ``--out``
and prints the Markdown summary; with two settings or more (dataset x model x the jobs'
``setting``) also leaderboard.{md,csv}, pairwise.csv and critical_difference.{png,svg}, and the
printed summary ends with the leaderboard. Errors are one sentence with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from al_experiments.report.analysis import BANDS, DEFAULT_BAND, DEFAULT_BASELINE, DEFAULT_TARGETS
from al_experiments.report.writer import ReportResult, make_report
from al_experiments.report.curves import (
    DEFAULT_EXPERIMENT,
    ReportError,
    latest_sweep,
    load_metrics_dir,
    load_mlflow,
    select,
)
from al_experiments.report.tables import markdown


def _target(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an accuracy in (0, 1], e.g. 0.9")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="al-report",
        description="Learning curves, summary tables and paired comparisons with a baseline "
                    "for the runs of an al-run sweep.",
    )
    source = parser.add_argument_group(
        "source (one of; default: the latest sweep in the MLflow experiment al-experiments, or all "
        "of its runs when it holds no sweep)")
    which = source.add_mutually_exclusive_group()
    which.add_argument("--experiment", metavar="NAME",
                       help=f"all runs of this MLflow experiment (default {DEFAULT_EXPERIMENT})")
    which.add_argument("--parent-run", metavar="RUN_ID",
                       help="the jobs of one sweep: the children of its MLflow parent run")
    which.add_argument("--metrics-dir", metavar="DIR", help="a tf_al-layout metrics directory (CSV + .meta.json)")
    source.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    source.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for a remote tracking server (default 5)")

    what = parser.add_argument_group("what to report")
    what.add_argument("--out", default="report", metavar="DIR", help="output folder (default report/)")
    what.add_argument("--metric", metavar="KEY",
                      help="accuracy metric (default: test_accuracy, else the single eval_*accuracy* metric)")
    what.add_argument("--targets", type=_target, nargs="+", default=list(DEFAULT_TARGETS), metavar="ACC",
                      help="target accuracies for 'labels to reach' (default 0.9 0.95, as Gal et al.)")
    what.add_argument("--baseline", metavar="QUERY", help=f"strategy to compare with (default {DEFAULT_BASELINE})")
    what.add_argument("--band", choices=BANDS, default=DEFAULT_BAND,
                      help="around each mean curve: se = ±1 standard error (default), ci = 95%% "
                           "t-interval, seeds = one thin line per seed")
    what.add_argument("--budget-includes-validation", action="store_true",
                      help="count each run's labelled validation points on the label axis too "
                           "(x = labelled pool + validation labels; default: the labelled pool only)")
    what.add_argument("--dataset", help="only runs on this dataset")
    what.add_argument("--model", help="only runs of this model")
    what.add_argument("--include-unfinished", action="store_true",
                      help="also use failed, killed or running jobs (default: finished ones only)")
    what.add_argument("--no-log", action="store_true",
                      help="do not log the report as artifacts of the sweep's parent MLflow run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.metrics_dir and args.tracking_uri:
        parser.error("--tracking-uri reads MLflow; it cannot be combined with --metrics-dir")
    for name in ("alembic", "mlflow"):  # store migrations and client chatter: not the user's business
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result = _run(args)
    except ReportError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(markdown(result.report), end="")
    where = f"; logged to MLflow run {result.logged_run_id} under report/" if result.logged_run_id else ""
    print(f"Report written to {result.folder} ({', '.join(result.files)}){where}.", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> ReportResult:
    if args.metrics_dir:
        curves = load_metrics_dir(args.metrics_dir, args.metric, args.include_unfinished)
    else:
        parent_run = args.parent_run
        if not (parent_run or args.experiment):
            parent_run = latest_sweep(args.tracking_uri, DEFAULT_EXPERIMENT, args.timeout)
        curves = load_mlflow(args.tracking_uri, args.experiment, parent_run, args.metric,
                             args.include_unfinished, args.timeout)
    curves = select(curves, args.dataset, args.model)
    baseline = args.baseline or DEFAULT_BASELINE
    if args.baseline and args.baseline not in {c.strategy for c in curves.curves}:
        found = ", ".join(sorted({c.strategy for c in curves.curves}))
        raise ReportError(f"--baseline {args.baseline} matches none of the strategies ({found}).")
    return make_report(curves, args.out, targets=args.targets, baseline=baseline, band=args.band,
                       budget_includes_validation=args.budget_includes_validation, log=not args.no_log)


if __name__ == "__main__":
    sys.exit(main())
