"""Aggregates across settings: which strategy needs the fewest labels, and how sure we are.

A setting is one section of a report: a dataset, a model and the job's setting (scenario,
budget). AULCs of different settings are not comparable (an easy dataset gives every strategy a
high one), so the aggregates use what is comparable:

- ranks within each setting (1 = the largest mean AULC), their mean over settings, the Friedman
  test of "every strategy has the same mean rank" with the Iman-Davenport F correction, and the
  Nemenyi critical difference of mean ranks (Demsar 2006, J. Mach. Learn. Res. 7:1-30);
- counts of settings where one strategy's AULC is significantly larger than another's, paired
  over seeds (the paired t-test of ``stats.paired_comparison``, Holm-adjusted over the pairs of
  each setting; without its bootstrap interval, which no verdict uses);
- the AULC rescaled per setting so that the baseline is 0 and the best strategy 1.

Only strategies that ran in every setting are ranked: a rank among 3 strategies and one among 5
are different things. Pure NumPy/SciPy on ``{setting: {strategy: {seed: AULC}}}``; no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import stats as sp

from al_experiments.report import stats

# setting -> strategy -> seed -> AULC
AulcTable = Mapping[str, Mapping[str, Mapping[str, float]]]


# ----------------------------------------------------------------------------- ranks
def ranks_within_settings(means: np.ndarray) -> np.ndarray:
    """Rank the strategies (columns) within each setting (row) of mean AULCs: 1 = the largest,
    tied strategies share the average of their ranks."""
    rows = np.atleast_2d(np.asarray(means, dtype=float))
    return np.vstack([sp.rankdata(-row, method="average") for row in rows])


@dataclass(frozen=True)
class Friedman:
    """Friedman's test that all strategies have the same mean rank over N settings."""

    chi_square: float  # Friedman's statistic, k - 1 degrees of freedom
    chi_square_p: float
    f: float  # Iman and Davenport's correction, F with (df1, df2) degrees of freedom
    f_p: float  # the p-value a verdict uses: chi-square is needlessly conservative
    df1: int
    df2: int


def friedman(ranks: np.ndarray) -> Friedman:
    """The Friedman test on (N settings, k strategies) ranks, in Demsar's form (Eq. 1-2):
    without the correction for ties that ``scipy.stats.friedmanchisquare`` applies, which only
    makes the test slightly conservative when a setting has ties."""
    ranks = np.asarray(ranks, dtype=float)
    n, k = ranks.shape
    if n < 2 or k < 2:
        raise ValueError(f"the Friedman test needs at least 2 settings and 2 strategies (got {n} and {k})")
    mean = ranks.mean(axis=0)
    chi_square = max(0.0, 12 * n / (k * (k + 1)) * (float(np.sum(mean**2)) - k * (k + 1) ** 2 / 4))
    df1, df2 = k - 1, (k - 1) * (n - 1)
    denominator = n * (k - 1) - chi_square
    if denominator <= 1e-12 * n * k:
        # Every setting ranks the strategies the same way, without ties: F is infinite and its
        # p-value 0, which with 2 settings would be absurd. The exact p-value is the chance of
        # such agreement under the null (each setting one of k! orders at random): k!^(1 - n).
        f, f_p = math.inf, math.exp((1 - n) * math.lgamma(k + 1))
    else:
        f = (n - 1) * chi_square / denominator
        f_p = float(sp.f.sf(f, df1, df2))
    return Friedman(chi_square, float(sp.chi2.sf(chi_square, df1)), f, f_p, df1, df2)


def nemenyi_q(k: int, alpha: float = stats.ALPHA) -> float:
    """Demsar's q_alpha for k strategies: the studentized range quantile over sqrt(2)."""
    return float(sp.studentized_range.ppf(1 - alpha, k, math.inf) / math.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = stats.ALPHA) -> float:
    """Nemenyi's critical difference: two of k strategies ranked over n settings differ
    significantly when their mean ranks differ by at least this much."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))


def settings_for_difference(rank_difference: float, k: int, alpha: float = stats.ALPHA) -> int | None:
    """The fewest settings at which a difference of mean ranks this large would reach the
    critical difference (if it held as more settings came); None for no difference."""
    d = abs(rank_difference)
    if d == 0:
        return None
    return max(2, math.ceil(k * (k + 1) * nemenyi_q(k, alpha) ** 2 / (6 * d**2)))


def cd_groups(mean_ranks: Mapping[str, float], cd: float) -> list[tuple[str, ...]]:
    """The bars of a critical-difference diagram: maximal runs of strategies, in rank order,
    whose mean ranks differ by less than ``cd`` (not significantly different)."""
    order = sorted(mean_ranks, key=lambda s: (mean_ranks[s], s))
    groups: list[tuple[str, ...]] = []
    for i, first in enumerate(order):
        last = i
        while last + 1 < len(order) and mean_ranks[order[last + 1]] - mean_ranks[first] < cd:
            last += 1
        # the end never moves left, so a run inside an earlier one is inside the latest
        if last > i and not (groups and order[last] in groups[-1]):
            groups.append(tuple(order[i:last + 1]))
    return groups


# ----------------------------------------------------------------------------- pairwise
@dataclass(frozen=True)
class WinLoss:
    """Settings where a strategy's AULC is significantly larger (wins) or smaller (losses) than
    an opponent's, of the settings where the two had at least 2 paired seeds (compared)."""

    wins: int
    losses: int
    compared: int


def pairwise_wins(aulc: AulcTable, strategies: Sequence[str], alpha: float = stats.ALPHA
                  ) -> dict[tuple[str, str], WinLoss]:
    """``{(a, b): WinLoss}`` for every ordered pair of ``strategies``, which must be in every
    setting of ``aulc``. Within a setting each pair is the paired t-test on per-seed AULC, Holm-
    adjusted over that setting's pairs (so more strategies do not mean more chance wins)."""
    wins: Counter = Counter()  # (winner, loser) -> settings
    compared: Counter = Counter()  # {a, b} -> settings
    pairs = list(combinations(strategies, 2))
    for by_strategy in aulc.values():
        diffs = [stats.paired_differences(by_strategy[a], by_strategy[b]) for a, b in pairs]
        p_values = [stats.paired_t_test(d) if d.size >= 2 else math.nan for d in diffs]  # NaN: not tested
        for (a, b), d, p in zip(pairs, diffs, stats.holm(p_values)):
            if math.isnan(p):
                continue
            compared[frozenset((a, b))] += 1
            if p < alpha:
                wins[(a, b) if d.mean() > 0 else (b, a)] += 1
    return {(a, b): WinLoss(wins[(a, b)], wins[(b, a)], compared[frozenset((a, b))])
            for a in strategies for b in strategies if a != b}


# ----------------------------------------------------------------------------- normalised area
def normalised_areas(means: Mapping[str, Mapping[str, float]], strategies: Sequence[str], baseline: str
                     ) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per setting, ``(AULC - AULC_baseline) / (AULC_best - AULC_baseline)`` of each strategy
    (mean AULCs over seeds; best = the largest of ``strategies`` and the baseline there): the
    baseline scores 0, the best strategy 1. A setting without the baseline, or where nothing beats
    it, has no scale and is skipped; the second value says which and why."""
    areas: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    no_baseline = [s for s in means if baseline not in means[s]]
    if no_baseline:
        notes.append(f"Normalised area leaves out {len(no_baseline)} setting(s) without {baseline} runs "
                     f"({'; '.join(no_baseline)}).")
    for setting, by_strategy in means.items():
        if setting in no_baseline:
            continue
        reference = by_strategy[baseline]
        best = max(by_strategy[s] for s in [*strategies, baseline] if s in by_strategy)
        if best <= reference:
            notes.append(f"Normalised area leaves out {setting}: no strategy has a larger mean AULC than "
                         f"{baseline} there, so there is no range to scale by.")
            continue
        areas[setting] = {s: (by_strategy[s] - reference) / (best - reference) for s in strategies}
    return areas, notes


# ----------------------------------------------------------------------------- all of it
@dataclass
class Aggregate:
    """The aggregates over the settings of a report, for the strategies that ran in all."""

    settings: list[str]
    strategies: list[str]  # best mean rank first
    left_out: dict[str, str]  # strategy -> why it is not ranked
    seeds: tuple[int, int]  # fewest and most seeds of a ranked strategy in a setting
    alpha: float
    ranks: dict[str, dict[str, float]]  # setting -> strategy -> rank
    mean_ranks: dict[str, float]
    friedman: Friedman | None  # None with fewer than 2 settings or strategies
    cd: float | None
    groups: list[tuple[str, ...]]  # not significantly different by mean rank
    pairwise: dict[tuple[str, str], WinLoss]
    normalised: dict[str, stats.Spread]  # over the settings that have a scale
    normalised_settings: list[str]
    notes: list[str] = field(default_factory=list)
    # strategy -> (lower quartile, median, upper quartile) of its normalised areas: the summary a
    # table shows, since a setting where the best strategy barely beats random divides by almost
    # nothing and can swing a mean by whole units
    normalised_quartiles: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def wins(self, strategy: str) -> int:
        """Significant wins over all opponents and settings."""
        return sum(w.wins for (a, _), w in self.pairwise.items() if a == strategy)

    def losses(self, strategy: str) -> int:
        return sum(w.losses for (a, _), w in self.pairwise.items() if a == strategy)

    def settings_to_separate_the_top_two(self) -> int | None:
        """Settings at which the observed gap between the two best mean ranks would be
        significant; None with fewer than 2 strategies or no gap."""
        if len(self.strategies) < 2:
            return None
        first, second = (self.mean_ranks[s] for s in self.strategies[:2])
        return settings_for_difference(second - first, len(self.strategies), self.alpha)


def aggregate_settings(aulc: AulcTable, baseline: str, alpha: float = stats.ALPHA) -> Aggregate:
    """Mean ranks, Friedman test, critical difference, pairwise wins and normalised areas over
    the settings of ``{setting: {strategy: {seed: AULC}}}``."""
    settings = list(aulc)
    everywhere = set.intersection(*(set(aulc[s]) for s in settings)) if settings else set()
    left_out = {}
    for name in sorted({name for s in settings for name in aulc[s]} - everywhere):
        missing = [s for s in settings if name not in aulc[s]]
        left_out[name] = f"no runs in {len(missing)} of {len(settings)} settings ({'; '.join(missing)})"
    names = sorted(everywhere)
    means = {s: {name: stats.mean_std(values.values()).mean for name, values in aulc[s].items()} for s in settings}
    ranked = ranks_within_settings([[means[s][name] for name in names] for s in settings]) if names else None
    ranks = {s: dict(zip(names, map(float, row))) for s, row in zip(settings, ranked)} if names else {}
    mean_ranks = {name: float(np.mean([ranks[s][name] for s in settings])) for name in names}
    order = sorted(names, key=lambda name: (mean_ranks[name], name))
    counts = [len(aulc[s][name]) for s in settings for name in (order or aulc[s])]
    notes = [f"{name} is not ranked: {why}." for name, why in left_out.items()]
    if len(settings) >= 2 and len(order) >= 2:
        test = friedman(ranked)
        cd = critical_difference(len(order), len(settings), alpha)
        groups = cd_groups(mean_ranks, cd)
    else:
        test, cd, groups = None, None, []
        notes.append(f"Ranks need at least 2 settings and 2 strategies that ran in all of them ({len(settings)} "
                     f"and {len(order)} here), so there is no Friedman test and no critical-difference diagram.")
    areas, area_notes = normalised_areas(means, order, baseline)
    normalised = {name: stats.mean_std(areas[s][name] for s in areas) for name in order}
    quartiles = {name: tuple(float(q) for q in np.quantile([areas[s][name] for s in areas], [0.25, 0.5, 0.75]))
                 for name in order} if areas else {}
    return Aggregate(settings, order, left_out, (min(counts, default=0), max(counts, default=0)), alpha, ranks,
                     mean_ranks, test, cd, groups, pairwise_wins(aulc, order, alpha), normalised, list(areas),
                     notes + area_notes, quartiles)
