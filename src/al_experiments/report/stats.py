"""The statistics of a report: pure NumPy/SciPy on arrays, no I/O, so each is testable by hand.

Conventions (stated again in every report's notes):

- x is the number of labelled points the model was trained on in a round (``labeled_pool_size``,
  the initial set included); y is the test accuracy of that round.
- AULC is the trapezoidal area under y(x) divided by the label range ``x[-1] - x[0]``: a mean
  accuracy over the range, in [0, 1], comparable across runs of different lengths (one round
  gives its accuracy). ``al_experiments.app.job.summarize`` uses the same definition. Where the
  runs of a section have different label grids, every AULC is taken over the label range they
  all cover (``common_label_range``), interpolating linearly, so all average over the same labels.
- Spreads across seeds are sample standard deviations (``ddof=1``); intervals are two-sided 95%.
- A strategy differs significantly from the baseline when the two-sided paired t-test on per-seed
  AULC gives p < 0.05 after Holm's adjustment over the strategies compared with that baseline. The bootstrap interval is reported beside it, not used for the verdict:
  with the 3 to 5 seeds typical of these sweeps a bootstrap of the mean has only a handful of
  distinct resamples and its interval is too narrow, while the t-test accounts for small n.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def _sorted_curve(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.shape != y_arr.shape or x_arr.ndim != 1 or x_arr.size == 0:
        raise ValueError(f"a curve needs equally long, non-empty x and y (got {x_arr.shape} and {y_arr.shape})")
    order = np.argsort(x_arr, kind="stable")
    return x_arr[order], y_arr[order]


def aulc(x: Sequence[float], y: Sequence[float], label_range: tuple[float, float] | None = None) -> float:
    """Area under the learning curve, normalised by the label range (a mean accuracy).

    With ``label_range=(low, high)`` the area is over those labels alone, the curve interpolated
    linearly where a bound falls between two rounds, divided by ``high - low``; the range must
    lie within the curve's own (an AULC is never extrapolated).
    """
    xs, ys = _sorted_curve(x, y)
    if label_range is not None:
        xs, ys = _restrict(xs, ys, *label_range)
    span = xs[-1] - xs[0]
    if span <= 0:
        return float(ys.mean())
    return float(np.trapezoid(ys, xs) / span)


def _restrict(xs: np.ndarray, ys: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """The sorted curve cut to [low, high], with interpolated end points."""
    if not xs[0] <= low <= high <= xs[-1]:
        raise ValueError(f"the label range [{low:g}, {high:g}] is not within the curve's [{xs[0]:g}, {xs[-1]:g}]; "
                         "use common_label_range of the curves")
    inside = (xs > low) & (xs < high)
    ends = np.interp([low, high], xs, ys)
    return (np.concatenate([[low], xs[inside], [high]]), np.concatenate([[ends[0]], ys[inside], [ends[1]]]))


def common_label_range(xs: Iterable[Sequence[float]]) -> tuple[float, float] | None:
    """The labels every curve covers, ``(largest first x, smallest last x)``; None when they
    share no range of labels (one curve ends before another starts, or at the same point)."""
    bounds = [(float(np.min(x)), float(np.max(x))) for x in xs]
    low, high = max(b[0] for b in bounds), min(b[1] for b in bounds)
    return (low, high) if low < high else None


def final_value(x: Sequence[float], y: Sequence[float]) -> float:
    """y at the largest x: the accuracy after the last round."""
    xs, ys = _sorted_curve(x, y)
    return float(ys[-1])


def labels_to_reach(x: Sequence[float], y: Sequence[float], target: float) -> float | None:
    """The smallest x whose y is >= ``target``; None when the curve never reaches it."""
    xs, ys = _sorted_curve(x, y)
    reached = np.flatnonzero(ys >= target)
    return float(xs[reached[0]]) if reached.size else None


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of n values (std is NaN for n < 2, mean NaN for n=0)."""

    mean: float
    std: float
    n: int


def mean_std(values: Iterable[float]) -> Spread:
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return Spread(math.nan, math.nan, 0)
    std = float(arr.std(ddof=1)) if arr.size >= 2 else math.nan
    return Spread(float(arr.mean()), std, int(arr.size))


def t_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half width of the two-sided t-interval of the mean; NaN for fewer than 2 values."""
    arr = np.asarray(values, dtype=float)
    n = arr.size
    if n < 2:
        return math.nan
    quantile = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return float(quantile * arr.std(ddof=1) / math.sqrt(n))


@dataclass(frozen=True)
class MeanCurve:
    """Mean learning curve over seeds: at each x, the seeds that have that x (``n``), their mean,
    the 95% t-interval ``[low, high]`` and the standard error ``se`` (NaN where n < 2)."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray
    se: np.ndarray


def mean_curve(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> MeanCurve:
    """Combine ``(x, y)`` curves on the union of their x values."""
    if not curves:
        raise ValueError("mean_curve needs at least one curve")
    points: dict[float, list[float]] = {}
    for x, y in curves:
        xs, ys = _sorted_curve(x, y)
        for xi, yi in zip(xs, ys):
            points.setdefault(float(xi), []).append(float(yi))
    grid = np.array(sorted(points))
    mean = np.array([np.mean(points[xi]) for xi in grid])
    half = np.array([t_half_width(points[xi]) for xi in grid])
    n = np.array([len(points[xi]) for xi in grid])
    se = np.array([np.std(points[xi], ddof=1) / math.sqrt(len(points[xi])) if len(points[xi]) > 1 else math.nan
                   for xi in grid])
    return MeanCurve(grid, mean, mean - half, mean + half, n, se)


@dataclass(frozen=True)
class TargetSummary:
    """Labels needed to reach one target accuracy.

    ``median`` counts every seed, a seed that never reached the target as needing more labels
    than any run had (so a strategy that often fails cannot look as good as one that always
    succeeds); it is None when half of the seeds or more never reached it. ``labels`` is the
    spread over the seeds that did.
    """

    target: float
    labels: Spread  # of the seeds that reached the target
    reached: int
    seeds: int
    median: float | None = None

    @property
    def not_reached(self) -> int:
        return self.seeds - self.reached


def median_labels(reached: Sequence[float | None]) -> float | None:
    """Median of labels-to-target over all seeds, a seed that never reached it counting as
    infinitely many; None when that median is not reached (half of the seeds or more failed)."""
    if not reached:
        return None
    values = np.sort(np.array([math.inf if r is None else float(r) for r in reached]))
    n = values.size
    middle = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    return None if math.isinf(middle) else float(middle)


@dataclass(frozen=True)
class StrategySummary:
    """Per-seed AULC and final accuracy of one strategy, and their spreads over seeds."""

    seeds: int
    final: Spread
    aulc: Spread
    aulc_by_seed: dict[str, float]
    targets: tuple[TargetSummary, ...]


def summarize_strategy(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], targets: Sequence[float],
    label_range: tuple[float, float] | None = None,
) -> StrategySummary:
    """Summarise ``{seed: (x, y)}`` curves of one strategy; AULC over ``label_range`` when given
    (see ``aulc``), else over each curve's own range."""
    aulc_by_seed = {seed: aulc(x, y, label_range) for seed, (x, y) in curves.items()}
    finals = [final_value(x, y) for x, y in curves.values()]
    target_rows = []
    for target in targets:
        reached = [labels_to_reach(x, y, target) for x, y in curves.values()]
        hits = [r for r in reached if r is not None]
        target_rows.append(TargetSummary(float(target), mean_std(hits), len(hits), len(curves), median_labels(reached)))
    return StrategySummary(
        len(curves), mean_std(finals), mean_std(aulc_by_seed.values()), aulc_by_seed, tuple(target_rows)
    )


@dataclass(frozen=True)
class Comparison:
    """A strategy against the baseline on the seeds both have, by per-seed AULC."""

    n: int  # paired seeds
    wins: int  # seeds where the strategy's AULC is higher
    ties: int
    losses: int
    mean_diff: float  # mean of (strategy - baseline)
    p_value: float  # two-sided paired t-test; NaN for n < 2
    ci_low: float  # bootstrap 95% interval of the mean difference; NaN for n < 2
    ci_high: float
    verdict: str
    # Holm-adjusted p over the strategies compared with the same baseline (see ``holm``); the
    # verdict follows it. Equal to p_value for a single comparison.
    p_holm: float = math.nan
    # Paired seeds a study would need to detect the observed mean difference with 80% power
    # (two-sided paired t-test at ALPHA, the observed spread of the differences); None when
    # the difference is zero or has no spread estimate.
    seeds_for_power: int | None = None


def paired_comparison(
    strategy: Mapping[str, float],
    baseline: Mapping[str, float],
    baseline_name: str = "random",
    *,
    alpha: float = ALPHA,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Comparison:
    """Compare per-seed values (``{seed: AULC}``) of a strategy with the baseline's.

    Only seeds present in both are used. The verdict is plain English and follows the paired
    t-test at ``alpha``; the bootstrap interval (``resamples`` resamples of the seeds, from a
    NumPy generator seeded with ``seed``, so a report is reproducible) is reported beside it.
    """
    diffs = paired_differences(strategy, baseline)
    n = int(diffs.size)
    wins, losses = int(np.sum(diffs > 0)), int(np.sum(diffs < 0))
    ties = n - wins - losses
    mean_diff = float(diffs.mean()) if n else math.nan
    if n < 2:
        verdict = f"too few paired seeds (n={n}) to compare with {baseline_name}"
        return Comparison(n, wins, ties, losses, mean_diff, math.nan, math.nan, math.nan, verdict)
    p_value = paired_t_test(diffs)
    ci_low, ci_high = bootstrap_mean_interval(diffs, resamples=resamples, seed=seed)
    spread = float(diffs.std(ddof=1))
    power_n = seeds_for_power(mean_diff / spread) if spread > 0 and mean_diff != 0 else None
    comparison = Comparison(n, wins, ties, losses, mean_diff, p_value, ci_low, ci_high, "", p_value, power_n)
    return with_verdict(comparison, baseline_name, alpha)


def paired_differences(strategy: Mapping[str, float], baseline: Mapping[str, float]) -> np.ndarray:
    """``strategy - baseline`` on the seeds both have, in seed order."""
    common = sorted(set(strategy) & set(baseline), key=seed_order)
    return np.array([strategy[s] - baseline[s] for s in common], dtype=float)


def with_verdict(c: Comparison, baseline_name: str, alpha: float = ALPHA) -> Comparison:
    """``c`` with its plain-English verdict, from its Holm-adjusted p-value."""
    if math.isnan(c.p_holm):
        return c
    adjusted = "" if c.p_holm == c.p_value else f", Holm-adjusted {format_p(c.p_holm)}"
    if c.p_holm < alpha:
        direction = "better" if c.mean_diff > 0 else "worse"
        verdict = f"{direction} than {baseline_name} ({format_p(c.p_value)}{adjusted}, n={c.n})"
    else:
        verdict = f"no significant difference from {baseline_name} ({format_p(c.p_value)}{adjusted}, n={c.n})"
    return replace(c, verdict=verdict)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN, not counted).

    The i-th smallest of m p-values is multiplied by (m - i + 1), made monotone and capped at 1,
    so the family-wise error rate stays at alpha however many strategies are compared.
    """
    valid = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    valid.sort()
    m = len(valid)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def adjust_for_multiple_comparisons(comparisons: Mapping[str, Comparison], baseline_name: str,
                                    alpha: float = ALPHA) -> dict[str, Comparison]:
    """Holm-adjust the comparisons of several strategies with one baseline, verdicts updated."""
    names = list(comparisons)
    adjusted = holm([comparisons[name].p_value for name in names])
    return {name: with_verdict(replace(comparisons[name], p_holm=p), baseline_name, alpha)
            for name, p in zip(names, adjusted)}


def seeds_for_power(effect_size: float, power: float = 0.8, alpha: float = ALPHA, limit: int = 100_000) -> int | None:
    """Smallest n at which a two-sided paired t-test at ``alpha`` detects a standardised mean
    difference ``effect_size`` (mean / sd of the differences) with probability ``power``.

    Exact power from the noncentral t distribution (df = n - 1, noncentrality d * sqrt(n)).
    None beyond ``limit``.
    """
    d = abs(float(effect_size))
    if d == 0 or not math.isfinite(d):
        return None

    def achieved(n: int) -> float:
        critical = stats.t.ppf(1 - alpha / 2, n - 1)
        noncentrality = d * math.sqrt(n)
        return float(stats.nct.sf(critical, n - 1, noncentrality) + stats.nct.cdf(-critical, n - 1, noncentrality))

    low, high = 2, 2
    while achieved(high) < power:
        low, high = high, high * 2
        if high > limit:
            return None
    while low < high:  # power grows with n: the first n that reaches it
        middle = (low + high) // 2
        if achieved(middle) >= power:
            high = middle
        else:
            low = middle + 1
    return high


def paired_t_test(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test on differences (``scipy.stats.ttest_rel``).

    Differences without spread have no t statistic: p is 1 when they are all zero (no evidence
    of a difference) and 0 when they are all the same non-zero value.
    """
    arr = np.asarray(diffs, dtype=float)
    if np.all(arr == arr[0]):
        return 1.0 if arr[0] == 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant differences
        result = stats.ttest_rel(arr, np.zeros_like(arr))
    return float(result.pvalue)


def bootstrap_mean_interval(
    values: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``, reproducible through ``seed``."""
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def format_p(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def format_labels(labels: float) -> str:
    """A number of labels: whole numbers without decimals, a median between two with one."""
    return f"{labels:.1f}".removesuffix(".0")


def seed_order(seed: str) -> tuple[int, float, str]:
    """Sort key: numeric seeds in numeric order, others after them alphabetically."""
    try:
        return (0, float(seed), "")
    except ValueError:
        return (1, 0.0, seed)

