"""The report's tables: ``summary.md`` for people, ``summary.csv``/``comparison.csv`` for programs;
with two settings or more also ``leaderboard.md``, ``leaderboard.csv`` and ``pairwise.csv``.

The CSV files hold only numbers derived from the curves (no paths, no run ids), so the same
sweep read from MLflow or from its metrics directory gives byte-identical files. A ``setting``
column appears only when some run named its setting, so reports of untagged runs keep their form.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Container
from pathlib import Path

from al_experiments.report import stats
from al_experiments.report.aggregate import Aggregate
from al_experiments.report.analysis import BAND_WORDS, Report, Section
from al_experiments.report.curves import X_KEY
from al_experiments.utils.atomic import atomic_write_text

SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
COMPARISON_CSV = "comparison.csv"
LEADERBOARD_MD = "leaderboard.md"
LEADERBOARD_CSV = "leaderboard.csv"
PAIRWISE_CSV = "pairwise.csv"


def write_tables(report: Report, folder: Path) -> list[Path]:
    """Write the Markdown summary and the two CSV tables into ``folder``, and the leaderboard
    files when the report aggregates across settings."""
    written = []
    files = [(SUMMARY_MD, markdown(report)), (SUMMARY_CSV, summary_csv(report)),
             (COMPARISON_CSV, comparison_csv(report))]
    if report.aggregate is not None:
        files += [(LEADERBOARD_MD, leaderboard_markdown(report)), (LEADERBOARD_CSV, leaderboard_csv(report.aggregate)),
                  (PAIRWISE_CSV, pairwise_csv(report.aggregate))]
    for name, text in files:
        atomic_write_text(folder / name, text)
        written.append(folder / name)
    return written


# ----------------------------------------------------------------------------- Markdown
def target_label(target: float) -> str:
    return f"{target * 100:g}%"


def markdown(report: Report) -> str:
    lines = ["# Active-learning report", "",
             f"- Source: {report.source}",
             _runs_line(report),
             *(f"- {note}" for note in report.notes), ""]
    for section in report.sections:
        lines += _section_markdown(section, report)
    if report.aggregate is not None:
        lines += [LEADERBOARD_HEADING, "", *_leaderboard_body(report, report.aggregate, "###")]
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


def _runs_line(report: Report) -> str:
    x = f"{X_KEY} + validation labels" if report.budget_includes_validation else X_KEY
    return f"- Runs: {report.runs}; y = {report.metric} (test accuracy), x = {x} ({report.x_words})"


def results_markdown(report: Report) -> str:
    """The result tables alone (per section, and the leaderboard across them), as a sweep's
    description shows them."""
    lines: list[str] = []
    for section in report.sections:
        lines += _section_markdown(section, report)
    if report.aggregate is not None:
        lines += [LEADERBOARD_HEADING, "", *_leaderboard_body(report, report.aggregate, "###")]
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
    lines = [f"## {section.title}", "", "Summary over seeds (mean ± std):", "",
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


# ----------------------------------------------------------------------------- leaderboard
def leaderboard_markdown(report: Report) -> str:
    """``leaderboard.md``: the aggregates across settings, on a page of their own."""
    if report.aggregate is None:
        raise ValueError("a report of fewer than 2 settings has no leaderboard")
    lines = ["# Leaderboard across settings", "", f"- Source: {report.source}", _runs_line(report), "",
             *_leaderboard_body(report, report.aggregate, "##")]
    return "\n".join(lines)


LEADERBOARD_HEADING = "## Across settings: leaderboard"


def _quartiles(values: tuple[float, float, float] | None) -> str:
    return "–" if values is None else f"{values[1]:.2f} [{values[0]:.2f}, {values[2]:.2f}]"


def _leaderboard_body(report: Report, agg: Aggregate, level: str) -> list[str]:
    """The leaderboard in Markdown, its parts under headings of ``level``."""
    n, k, alpha = len(agg.settings), len(agg.strategies), f"{agg.alpha:g}"
    seeds = str(agg.seeds[0]) if agg.seeds[0] == agg.seeds[1] else f"{agg.seeds[0]}-{agg.seeds[1]}"
    lines = [f"Which strategy needs the fewest labels: {_plural(k, 'strategy', 'strategies')} ranked by mean AULC "
             f"within each of {n} settings (rank 1 = the largest), {seeds} seeds per strategy and setting.", ""]
    head = ["strategy", "mean rank", f"normalised area, median [quartiles] ({len(agg.normalised_settings)} settings)",
            "significant wins", "significant losses"]
    rows = [[name, f"{agg.mean_ranks[name]:.2f}", _quartiles(agg.normalised_quartiles.get(name)), str(agg.wins(name)),
             str(agg.losses(name))] for name in agg.strategies]
    lines += [*_md_table(head, rows, right=range(1, 5)), ""]
    if agg.friedman is not None and agg.cd is not None:
        f = agg.friedman
        differ = "the mean ranks differ" if f.f_p < agg.alpha else "no evidence that the mean ranks differ"
        corrected = (f"Iman-Davenport F {f.f:.2f} ({f.df1}, {f.df2} df, {stats.format_p(f.f_p)})"
                     if math.isfinite(f.f) else
                     f"Iman-Davenport F infinite, as every setting ranks the strategies alike (exact "
                     f"{stats.format_p(f.f_p)})")
        lines.append(f"- Friedman test ({n} settings, {k} strategies): chi-square {f.chi_square:.2f} "
                     f"({f.df1} df, {stats.format_p(f.chi_square_p)}); {corrected}: {differ} at alpha {alpha}.")
        groups = "; ".join("{" + ", ".join(g) + "}" for g in agg.groups) or "none"
        needed = agg.settings_to_separate_the_top_two()
        gap = "" if needed is None else (
            f" The best two are {agg.mean_ranks[agg.strategies[1]] - agg.mean_ranks[agg.strategies[0]]:.2f} ranks "
            f"apart: a gap that would be significant with {needed} settings or more, if it held.")
        # Demsar: the post-hoc test only means something once Friedman's has rejected equal ranks
        reference = "" if f.f_p < agg.alpha else " (for reference: the Friedman test found no difference)"
        lines.append(f"- Critical difference (Nemenyi, alpha {alpha}): with {n} settings and {k} strategies the "
                     f"CD is {agg.cd:.2f} ranks; differences of mean rank below {agg.cd:.2f} are not significant; "
                     f"more settings shrink it (as 1/sqrt(settings)).{gap} Not significantly different{reference}: "
                     f"{groups}.")
    if agg.normalised_settings:
        lines.append(f"- Normalised area: per setting (AULC - {report.baseline}) / (best AULC - {report.baseline}) "
                     f"of mean AULCs, so {report.baseline} is 0 and the best strategy 1; the median and quartiles "
                     f"over the {len(agg.normalised_settings)} of {n} settings with a {report.baseline} baseline "
                     "that some strategy beats (the mean and std are in leaderboard.csv: a setting where the best "
                     "strategy barely beats the baseline divides by almost nothing and swings a mean). It says "
                     "how much of the best strategy's gain a strategy gets, not whether that gain is significant.")
    lines.append("- Significant wins / losses: settings x opponents where the strategy's AULC is significantly "
                 "larger / smaller, as in the matrix below.")
    lines += ["", f"{level} Pairwise wins/losses", "",
              f"W/L = settings (of {n}) where the row's AULC is significantly larger / smaller than the "
              f"column's: two-sided paired t-test on per-seed AULC, Holm-adjusted over the "
              f"{_plural(k * (k - 1) // 2, 'pair')} of each setting, alpha {alpha}, {seeds} seeds per strategy "
              "and setting. More seeds per setting make smaller differences significant; more settings make the "
              "counts more telling.", ""]
    if k >= 2:
        matrix = [[a, *("–" if a == b else f"{agg.pairwise[(a, b)].wins}/{agg.pairwise[(a, b)].losses}"
                        for b in agg.strategies)] for a in agg.strategies]
        lines += [*_md_table(["W/L", *agg.strategies], matrix, right=range(1, k + 1)), ""]
    lines += [f"{level} Settings", "", *(f"{i}. {setting}" for i, setting in enumerate(agg.settings, 1)), ""]
    lines += [*(f"- {note}" for note in agg.notes), *([""] if agg.notes else [])]
    return lines


def _plural(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _md_table(head: list[str], rows: list[list[str]], right: Container[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(head))]
    return ["| " + " | ".join(r) + " |" for r in (head, align, *rows)]


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


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
    value = stats.format_labels(t.median)
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


def _key_columns(report: Report) -> list[str]:
    """The columns that name a section: dataset, model, and setting when some run named one."""
    return ["dataset", "model"] + ["setting"] * any(s.setting for s in report.sections)


def _key(report: Report, section: Section) -> list[object]:
    return [section.dataset, section.model, section.setting][:len(_key_columns(report))]


def summary_csv(report: Report) -> str:
    header = [*_key_columns(report), "strategy", "seeds", "final_accuracy_mean", "final_accuracy_std",
              "aulc_mean", "aulc_std"]
    for t in report.targets:
        header += [f"labels_to_{t:g}_median", f"labels_to_{t:g}_mean_of_reached", f"labels_to_{t:g}_std_of_reached",
                   f"labels_to_{t:g}_reached"]
    header += ["samples", "copies_per_batch_mean", "copies_per_batch_std"]
    rows = []
    for section in report.sections:
        for name in section.strategies:
            s = section.summaries[name]
            row: list[object] = [*_key(report, section), name, s.seeds, s.final.mean, s.final.std,
                                 s.aulc.mean, s.aulc.std]
            for t in s.targets:
                row += [t.median, t.labels.mean, t.labels.std, t.reached]
            copies = section.copies.get(name)
            row += [section.samples.get(name, ""), copies.mean if copies else None, copies.std if copies else None]
            rows.append(row)
    return _csv_text(header, rows)


def comparison_csv(report: Report) -> str:
    header = [*_key_columns(report), "strategy", "baseline", "paired_seeds", "wins", "ties", "losses",
              "aulc_diff_mean", "p_value", "p_holm", "bootstrap_ci_low", "bootstrap_ci_high", "significant",
              "seeds_for_80pct_power", "verdict"]
    rows = [
        [*_key(report, section), name, report.baseline, c.n, c.wins, c.ties, c.losses, c.mean_diff,
         c.p_value, c.p_holm, c.ci_low, c.ci_high,
         "" if math.isnan(c.p_holm) else str(c.p_holm < stats.ALPHA).lower(), c.seeds_for_power, c.verdict]
        for section in report.sections for name, c in section.comparisons.items()
    ]
    return _csv_text(header, rows)


def leaderboard_csv(agg: Aggregate) -> str:
    """One row per ranked strategy, best mean rank first."""
    header = ["strategy", "mean_rank", "normalised_area_median", "normalised_area_q1", "normalised_area_q3",
              "normalised_area_mean", "normalised_area_std", "normalised_area_settings",
              "wins", "losses", "settings", "seeds_min", "seeds_max"]
    none = (math.nan, math.nan, math.nan)
    rows = [[name, agg.mean_ranks[name], *_median_first(agg.normalised_quartiles.get(name, none)),
             agg.normalised[name].mean, agg.normalised[name].std,
             agg.normalised[name].n, agg.wins(name), agg.losses(name), len(agg.settings), *agg.seeds]
            for name in agg.strategies]
    return _csv_text(header, rows)


def _median_first(quartiles: tuple[float, float, float]) -> tuple[float, float, float]:
    low, median, high = quartiles
    return median, low, high


def pairwise_csv(agg: Aggregate) -> str:
    """One row per ordered pair: settings where ``strategy`` is significantly better (wins) or
    worse (losses) than ``opponent``, of the settings where both had 2 paired seeds or more."""
    header = ["strategy", "opponent", "wins", "losses", "settings_compared"]
    rows = [[a, b, w.wins, w.losses, w.compared] for (a, b), w in agg.pairwise.items()]
    return _csv_text(header, rows)
