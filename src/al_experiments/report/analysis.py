"""From a set of curves to the numbers of a report: one section per (dataset, model, setting).

A report may hold several datasets, models or settings (a sweep over ``model=...``, or over a
scenario or budget that the jobs tag as their ``setting``); each is its own section with its own
figure panel, summary rows and comparisons, since curves of different data, networks or
settings are not comparable. ``--dataset``/``--model`` narrow a report. With two sections or
more, the report also aggregates across them (``aggregate``): a leaderboard of strategies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from al_experiments.report import stats
from al_experiments.report.aggregate import Aggregate, aggregate_settings
from al_experiments.report.curves import Curve, CurveSet, check_one_run_per_seed, count_validation_labels, label_samples

DEFAULT_TARGETS = (0.90, 0.95)  # Gal et al. (2017): labels needed for 10% and 5% test error
DEFAULT_BASELINE = "random"
# What the learning curves show around each mean: the standard error stays readable with the
# 3 to 5 seeds of a typical sweep, where a 95% t-interval is wide enough to hide every curve.
BANDS = ("se", "ci", "seeds")
DEFAULT_BAND = "se"
BAND_WORDS = {"se": "a band of ±1 standard error", "ci": "a 95% t-interval band",
              "seeds": "one thin line per seed"}


@dataclass
class Section:
    """The numbers of one (dataset, model, setting)."""

    dataset: str
    model: str
    strategies: list[str]  # the baseline first, then alphabetical
    summaries: dict[str, stats.StrategySummary]
    mean_curves: dict[str, stats.MeanCurve]
    comparisons: dict[str, stats.Comparison]  # every strategy but the baseline
    notes: list[str] = field(default_factory=list)
    seed_curves: dict[str, dict[str, tuple]] = field(default_factory=dict)  # strategy -> seed -> (x, y)
    samples: dict[str, str] = field(default_factory=dict)  # strategy -> what it ran on ("" unknown)
    copies: dict[str, stats.Spread] = field(default_factory=dict)  # strategy -> copies per batch, over seeds
    setting: str = ""  # Curve.setting: scenario, budget, ...; "" when the jobs did not say

    @property
    def title(self) -> str:
        """``dataset / model``, and the setting in parentheses when there is one."""
        return f"{self.dataset} / {self.model}" + (f" ({self.setting})" if self.setting else "")


@dataclass
class Report:
    sections: list[Section]
    metric: str
    source: str
    runs: int
    targets: tuple[float, ...]
    baseline: str
    notes: list[str]  # from loading: what was skipped
    band: str = DEFAULT_BAND  # what the figure draws around each mean curve (BANDS)
    # x counts each run's labelled validation points as well (--budget-includes-validation)
    budget_includes_validation: bool = False
    aggregate: Aggregate | None = None  # across the sections; None with fewer than 2

    @property
    def x_words(self) -> str:
        """What x counts, in words."""
        validation = ", plus the run's labelled validation points" if self.budget_includes_validation else ""
        return f"labelled points the model was trained on, initial set included{validation}"


def analyse(curve_set: CurveSet, targets: Sequence[float] = DEFAULT_TARGETS,
            baseline: str = DEFAULT_BASELINE, band: str = DEFAULT_BAND,
            budget_includes_validation: bool = False) -> Report:
    """Summaries, mean curves and paired comparisons of every (dataset, model, setting)
    section, and the aggregates across them when there are two or more. With
    ``budget_includes_validation`` the x of each run counts its validation labels too.

    Raises:
        ReportError: a (dataset, model, setting, strategy, seed) has more than one run.
    """
    if band not in BANDS:
        raise ValueError(f"band={band!r} is not one of {', '.join(BANDS)}.")
    curves = label_samples(curve_set.curves)
    check_one_run_per_seed(curves)
    if budget_includes_validation:
        curves = count_validation_labels(curves)
    keys = sorted({(c.dataset, c.model, c.setting) for c in curves})
    sections = [
        _section(key, [c for c in curves if (c.dataset, c.model, c.setting) == key], targets, baseline,
                 budget_includes_validation)
        for key in keys
    ]
    aggregate = None
    if len(sections) >= 2:
        aggregate = aggregate_settings(
            {s.title: {name: summary.aulc_by_seed for name, summary in s.summaries.items()} for s in sections},
            baseline)
    return Report(sections, curve_set.metric, curve_set.source, len(curves),
                  tuple(float(t) for t in targets), baseline, list(curve_set.notes), band,
                  budget_includes_validation, aggregate)


def _section(key: tuple[str, str, str], curves: list[Curve], targets: Sequence[float], baseline: str,
             budget_includes_validation: bool) -> Section:
    dataset, model, setting = key
    names = sorted({c.strategy for c in curves})
    strategies = ([baseline] if baseline in names else []) + [s for s in names if s != baseline]
    by_strategy = {
        s: {c.seed: (c.x, c.y) for c in curves if c.strategy == s} for s in strategies
    }
    notes: list[str] = []
    label_range = _label_range(curves, notes)
    summaries = {s: stats.summarize_strategy(by_strategy[s], targets, label_range) for s in strategies}
    mean_curves = {s: stats.mean_curve(list(by_strategy[s].values())) for s in strategies}
    comparisons: dict[str, stats.Comparison] = {}
    if baseline in summaries:
        for s in strategies[1:]:
            comparisons[s] = stats.paired_comparison(
                summaries[s].aulc_by_seed, summaries[baseline].aulc_by_seed, baseline
            )
        comparisons = stats.adjust_for_multiple_comparisons(comparisons, baseline)
    else:
        notes.append(f"No {baseline} runs here, so no paired comparison (choose another with --baseline).")
    samples = {s: ", ".join(sorted({c.samples for c in curves if c.strategy == s} - {""})) for s in strategies}
    copies = {s: stats.mean_std(c.copies for c in curves if c.strategy == s and c.copies is not None)
              for s in strategies}
    validation = sorted({c.validation for c in curves})
    if validation != [0]:
        sizes = " or ".join(str(v) for v in validation)
        notes.append(
            f"The x axis counts the {sizes} labelled validation points the runs used (early stopping, "
            "validation metrics) as well: it is their whole label budget (--budget-includes-validation)."
            if budget_includes_validation else
            f"Besides the labels on the x axis, the runs used {sizes} labelled validation points "
            "(early stopping, validation metrics): their label budget is x plus these "
            "(--budget-includes-validation counts them on the x axis).")
    return Section(dataset, model, strategies, summaries, mean_curves, comparisons, notes, by_strategy,
                   samples, {s: spread for s, spread in copies.items() if spread.n}, setting)


def _label_range(curves: Sequence[Curve], notes: list[str]) -> tuple[float, float] | None:
    """The labels every AULC of a section is taken over: None (each run's own range) when the
    runs share one grid; else the range common to all, with a note saying so."""
    grids = {tuple(c.x.tolist()) for c in curves}
    if len(grids) == 1:
        return None
    spans = sorted({f"{stats.format_labels(g[0])}-{stats.format_labels(g[-1])} in {len(g)} rounds"
                    for g in grids})
    found = f"The runs do not share one label grid ({len(grids)} grids: {'; '.join(spans[:4])})"
    common = stats.common_label_range(c.x for c in curves)
    if common is None:
        notes.append(f"{found} and have no range of labels in common; each AULC is over its own run's label "
                     "range, so AULCs from different grids are not strictly comparable.")
    else:
        low, high = (stats.format_labels(bound) for bound in common)
        notes.append(f"{found}; every AULC is over the labels all of them cover, {low}-{high} (interpolated "
                     "linearly between rounds), so the AULCs are comparable; final accuracy and labels to a "
                     "target use each run's own rounds.")
    return common
