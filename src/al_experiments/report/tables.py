"""The report's tables: ``summary.md`` for people, ``summary.csv``/``comparison.csv`` for programs.

The CSV files hold only numbers derived from the curves (no paths, no run ids), so the same
sweep read from MLflow or from its metrics directory gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Container
from pathlib import Path

from al_experiments.report import stats
from al_experiments.report.analysis import BAND_WORDS, Report, Section
from al_experiments.report.curves import X_KEY
from al_experiments.utils.atomic import atomic_write_text

SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
COMPARISON_CSV = "comparison.csv"


def write_tables(report: Report, folder: Path) -> list[Path]:
    """Write the Markdown summary and the two CSV tables into ``folder``."""
    written = []
    for name, text in ((SUMMARY_MD, markdown(report)), (SUMMARY_CSV, summary_csv(report)),
                       (COMPARISON_CSV, comparison_csv(report))):
        atomic_write_text(folder / name, text)
        written.append(folder / name)
    return written


# ----------------------------------------------------------------------------- Markdown
def target_label(target: float) -> str:
    return f"{target * 100:g}%"


def markdown(report: Report) -> str:
    lines = ["# Active-learning report", "",
             f"- Source: {report.source}",
             f"- Runs: {report.runs}; y = {report.metric} (test accuracy), x = {X_KEY} "
             "(labelled points the model was trained on, initial set included)",
             *(f"- {note}" for note in report.notes), ""]
    for section in report.sections:
        lines += _section_markdown(section, report)
    lines += ["## Conventions", "",
              "- Final accuracy: the test accuracy of each seed's last round.",
              "- AULC: trapezoidal area under accuracy against labels, divided by the label range "
              "(a mean accuracy over the range, in [0, 1]), per seed.",
              "- Labels to a target: the smallest number of labelled points (initial set included) at "
              "which the test accuracy is >= the target; the median over all seeds, a seed that never "
              "reaches the target counting as needing more than any run had (\"not reached\" when half "
              "of the seeds or more never do), with how many did not reach it.",
              "- a ± b: mean and sample standard deviation (ddof=1) over seeds; one seed shows no spread.",
              f"- Paired comparison: the seeds both strategies ran; wins = seeds with a higher AULC than "
              f"{report.baseline}; significant when the two-sided paired t-test on per-seed AULC gives "
              f"p < {stats.ALPHA:g} after Holm's adjustment over the strategies compared with "
              f"{report.baseline}. Seeds for 80% power: the paired seeds a t-test at {stats.ALPHA:g} would "
              "need to detect the observed mean difference, given the observed spread of the differences. "
              f"The bootstrap interval ({stats.BOOTSTRAP_RESAMPLES:,} resamples of the seeds, seed "
              f"{stats.BOOTSTRAP_SEED}) is shown for reference; with few seeds it is too narrow.",
              "- Samples: what a strategy's choice rested on: per-point scores on independent samples "
              "(a fresh dropout draw per point) or consistent ones (one draw per sample for the whole "
              "round, so copies of a point tie), deterministic predictions, or none (random).",
              "- Copies per batch: picks of a round that copy another pick of the same batch (on a pool "
              "of repeated data), the mean over rounds, then mean ± std over seeds.",
              f"- Learning curves: mean over seeds with {BAND_WORDS[report.band]} where at least 2 seeds "
              "have that number of labels.", ""]
    return "\n".join(lines)


def results_markdown(report: Report) -> str:
    """The result tables alone (per dataset and model), as a sweep's description shows them."""
    lines: list[str] = []
    for section in report.sections:
        lines += _section_markdown(section, report)
    return "\n".join(lines).strip()


def _section_markdown(section: Section, report: Report) -> list[str]:
    head = ["strategy", "seeds", "final accuracy", "AULC", *(f"labels to {target_label(t)}" for t in report.targets)]
    show_samples, show_copies = any(section.samples.values()), bool(section.copies)
    head += ["samples"] * show_samples + ["copies per batch"] * show_copies
    rows = []
    for name in section.strategies:
        s = section.summaries[name]
        extra = [section.samples.get(name) or "–"] * show_samples
        extra += [_pm(section.copies[name], 2) if name in section.copies else "–"] * show_copies
        rows.append([name, str(s.seeds), _pm(s.final, 3), _pm(s.aulc, 3), *(_target_cell(t) for t in s.targets),
                     *extra])
    lines = [f"## {section.dataset} / {section.model}", "", "Summary over seeds (mean ± std):", "",
             *_md_table(head, rows, right={*range(1, 4 + len(report.targets)), *[len(head) - 1] * show_copies}), ""]
    if section.comparisons:
        head = ["strategy", "paired seeds", f"wins over {report.baseline}", "AULC difference (mean)",
                "95% bootstrap CI", "paired t-test", "Holm-adjusted", "seeds for 80% power", "verdict"]
        rows = [[name, str(c.n), _wins(c), _signed(c.mean_diff), _interval(c.ci_low, c.ci_high),
                 _p(c.p_value), _p(c.p_holm), "–" if c.seeds_for_power is None else str(c.seeds_for_power),
                 c.verdict]
                for name, c in section.comparisons.items()]
        lines += [f"Paired comparison with {report.baseline} (per-seed AULC, strategy - {report.baseline}):", "",
                  *_md_table(head, rows, right=range(1, 8)), ""]
    lines += [*(f"- {note}" for note in section.notes), *([""] if section.notes else [])]
    return lines


def _md_table(head: list[str], rows: list[list[str]], right: Container[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(head))]
    return ["| " + " | ".join(r) + " |" for r in (head, align, *rows)]


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _labels(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _pm(spread: stats.Spread, digits: int, fmt: Callable[[float], str] | None = None) -> str:
    """``mean ± std``; the mean alone for one value, a dash for none."""
    fmt = fmt or (lambda v: _num(v, digits))
    if spread.n == 0:
        return "–"
    if spread.n == 1:
        return fmt(spread.mean)
    return f"{fmt(spread.mean)} ± {fmt(spread.std)}"


def _target_cell(t: stats.TargetSummary) -> str:
    """The median labels over all seeds, and how many seeds never reached the target."""
    if t.median is None:
        return f"not reached in {t.not_reached} of {t.seeds}"
    value = _labels(t.median)
    return value if t.not_reached == 0 else f"{value} (not reached in {t.not_reached} of {t.seeds})"


def _p(p_value: float) -> str:
    return "–" if math.isnan(p_value) else stats.format_p(p_value)


def _wins(c: stats.Comparison) -> str:
    return f"{c.wins} of {c.n}" + (f" ({c.ties} tied)" if c.ties else "")


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"


def _interval(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"


# ----------------------------------------------------------------------------- CSV
def _csv_value(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


def _csv_text(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_csv_value(v) for v in row] for row in rows])
    return buffer.getvalue()


def summary_csv(report: Report) -> str:
    header = ["dataset", "model", "strategy", "seeds", "final_accuracy_mean", "final_accuracy_std",
              "aulc_mean", "aulc_std"]
    for t in report.targets:
        header += [f"labels_to_{t:g}_median", f"labels_to_{t:g}_mean_of_reached", f"labels_to_{t:g}_std_of_reached",
                   f"labels_to_{t:g}_reached"]
    header += ["samples", "copies_per_batch_mean", "copies_per_batch_std"]
    rows = []
    for section in report.sections:
        for name in section.strategies:
            s = section.summaries[name]
            row: list[object] = [section.dataset, section.model, name, s.seeds, s.final.mean, s.final.std,
                                 s.aulc.mean, s.aulc.std]
            for t in s.targets:
                row += [t.median, t.labels.mean, t.labels.std, t.reached]
            copies = section.copies.get(name)
            row += [section.samples.get(name, ""), copies.mean if copies else None, copies.std if copies else None]
            rows.append(row)
    return _csv_text(header, rows)


def comparison_csv(report: Report) -> str:
    header = ["dataset", "model", "strategy", "baseline", "paired_seeds", "wins", "ties", "losses",
              "aulc_diff_mean", "p_value", "p_holm", "bootstrap_ci_low", "bootstrap_ci_high", "significant",
              "seeds_for_80pct_power", "verdict"]
    rows = [
        [section.dataset, section.model, name, report.baseline, c.n, c.wins, c.ties, c.losses, c.mean_diff,
         c.p_value, c.p_holm, c.ci_low, c.ci_high,
         "" if math.isnan(c.p_holm) else str(c.p_holm < stats.ALPHA).lower(), c.seeds_for_power, c.verdict]
        for section in report.sections for name, c in section.comparisons.items()
    ]
    return _csv_text(header, rows)
