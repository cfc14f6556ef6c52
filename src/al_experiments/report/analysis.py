"""From a set of curves to the numbers of a report: one section per (dataset, model).

A report may hold several datasets or models (a sweep over ``model=...``); each pair is its own
section with its own figure panel, summary rows and comparisons, since curves of different
data or networks are not comparable. ``--dataset``/``--model`` narrow a report to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from al_experiments.report import stats
from al_experiments.report.curves import Curve, CurveSet, check_one_run_per_seed, label_samples

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
    """The numbers of one (dataset, model) pair."""

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


def analyse(curve_set: CurveSet, targets: Sequence[float] = DEFAULT_TARGETS,
            baseline: str = DEFAULT_BASELINE, band: str = DEFAULT_BAND) -> Report:
    """Summaries, mean curves and paired comparisons of every (dataset, model) section.

    Raises:
        ReportError: a (dataset, model, strategy, seed) has more than one run.
    """
    if band not in BANDS:
        raise ValueError(f"band={band!r} is not one of {', '.join(BANDS)}.")
    curves = label_samples(curve_set.curves)
    check_one_run_per_seed(curves)
    pairs = sorted({(c.dataset, c.model) for c in curves})
    sections = [
        _section(d, m, [c for c in curves if (c.dataset, c.model) == (d, m)], targets, baseline)
        for d, m in pairs
    ]
    return Report(sections, curve_set.metric, curve_set.source, len(curves),
                  tuple(float(t) for t in targets), baseline, list(curve_set.notes), band)


def _section(dataset: str, model: str, curves: list[Curve], targets: Sequence[float], baseline: str) -> Section:
    names = sorted({c.strategy for c in curves})
    strategies = ([baseline] if baseline in names else []) + [s for s in names if s != baseline]
    by_strategy = {
        s: {c.seed: (c.x, c.y) for c in curves if c.strategy == s} for s in strategies
    }
    summaries = {s: stats.summarize_strategy(by_strategy[s], targets) for s in strategies}
    mean_curves = {s: stats.mean_curve(list(by_strategy[s].values())) for s in strategies}
    notes: list[str] = []
    comparisons: dict[str, stats.Comparison] = {}
    if baseline in summaries:
        for s in strategies[1:]:
            comparisons[s] = stats.paired_comparison(
                summaries[s].aulc_by_seed, summaries[baseline].aulc_by_seed, baseline
            )
        comparisons = stats.adjust_for_multiple_comparisons(comparisons, baseline)
    else:
        notes.append(f"No {baseline} runs here, so no paired comparison (choose another with --baseline).")
    grids = {tuple(c.x.tolist()) for c in curves}
    if len(grids) > 1:
        spans = sorted({f"{int(g[0])}-{int(g[-1])} in {len(g)} rounds" for g in grids})
        notes.append(
            f"The runs do not share one label grid ({len(grids)} grids: {'; '.join(spans[:4])}); each AULC "
            "is over its own run's label range, so AULCs from different grids are not strictly comparable."
        )
    samples = {s: ", ".join(sorted({c.samples for c in curves if c.strategy == s} - {""})) for s in strategies}
    copies = {s: stats.mean_std(c.copies for c in curves if c.strategy == s and c.copies is not None)
              for s in strategies}
    validation = sorted({c.validation for c in curves})
    if validation != [0]:
        sizes = " or ".join(str(v) for v in validation)
        notes.append(f"Besides the labels on the x axis, the runs used {sizes} labelled validation points "
                     "(early stopping, validation metrics): their label budget is x plus these.")
    return Section(dataset, model, strategies, summaries, mean_curves, comparisons, notes, by_strategy,
                   samples, {s: spread for s, spread in copies.items() if spread.n})
