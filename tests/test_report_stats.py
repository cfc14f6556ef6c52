"""al-report's statistics against values computed by hand on small synthetic curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from al_experiments.report import stats
from al_experiments.report.analysis import analyse
from al_experiments.report.curves import Curve, CurveSet
from al_experiments.report.tables import comparison_csv, markdown, summary_csv

X = [20, 30, 40]
T_975_DF2 = 4.302652729749464  # t table: 97.5% quantile, 2 degrees of freedom
T_975_DF1 = 12.706204736174707


# ----------------------------------------------------------------------------- one curve
def test_aulc_is_the_trapezoid_divided_by_the_label_range():
    # (0.5+0.7)/2*10 + (0.7+0.8)/2*10 = 6 + 7.5 = 13.5 over a range of 20
    assert stats.aulc(X, [0.5, 0.7, 0.8]) == pytest.approx(0.675)
    # uneven steps: 0.3*10 + 0.7*30 = 24 over 40; the order of the points does not matter
    assert stats.aulc([50, 10, 20], [1.0, 0.2, 0.4]) == pytest.approx(0.6)
    assert stats.aulc([20], [0.6]) == pytest.approx(0.6)  # one round: its accuracy


def test_final_value_is_the_accuracy_at_the_most_labels():
    assert stats.final_value([40, 20, 30], [0.8, 0.5, 0.7]) == 0.8


def test_labels_to_reach_is_the_first_round_at_or_above_the_target():
    y = [0.5, 0.7, 0.8]
    assert stats.labels_to_reach(X, y, 0.7) == 30  # >= counts
    assert stats.labels_to_reach(X, y, 0.75) == 40
    assert stats.labels_to_reach(X, y, 0.5) == 20  # the initial set alone
    assert stats.labels_to_reach(X, y, 0.9) is None
    # a curve that reaches the target and drops again: the first time counts
    assert stats.labels_to_reach([20, 30, 40, 50], [0.5, 0.92, 0.85, 0.95], 0.9) == 30


def test_mean_std_uses_the_sample_deviation():
    spread = stats.mean_std([0.8, 0.9, 0.6])
    assert spread.n == 3 and spread.mean == pytest.approx(0.7666667)
    # squared deviations 0.001111 + 0.017778 + 0.027778 = 0.046667, over n-1 = 2
    assert spread.std == pytest.approx(math.sqrt(0.046667 / 2), rel=1e-4)
    one = stats.mean_std([0.4])
    assert one.mean == 0.4 and math.isnan(one.std)
    assert stats.mean_std([]).n == 0


def test_t_interval_half_width():
    # mean 0.5, sample std 0.1, n = 3
    assert stats.t_half_width([0.5, 0.6, 0.4]) == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3))
    assert math.isnan(stats.t_half_width([0.5]))


def test_mean_curve_on_unequal_grids():
    curve = stats.mean_curve([([20, 30], [0.5, 0.7]), ([20, 30, 40], [0.6, 0.8, 0.9])])
    assert curve.x.tolist() == [20, 30, 40]
    assert curve.n.tolist() == [2, 2, 1]
    assert curve.mean == pytest.approx([0.55, 0.75, 0.9])
    # two values 0.1 apart: sample std 0.1/sqrt(2), standard error 0.05
    assert curve.high[0] - curve.mean[0] == pytest.approx(T_975_DF1 * 0.05)
    assert curve.mean[0] - curve.low[0] == pytest.approx(T_975_DF1 * 0.05)
    assert math.isnan(curve.low[2]) and math.isnan(curve.high[2])  # one seed: no interval


def test_summarize_strategy_with_a_seed_that_does_not_reach_the_target():
    curves = {"0": (X, [0.5, 0.7, 0.8]), "1": (X, [0.6, 0.8, 0.9]), "2": (X, [0.4, 0.5, 0.6])}
    summary = stats.summarize_strategy(curves, [0.75, 0.95])
    assert summary.seeds == 3
    assert summary.aulc_by_seed["0"] == pytest.approx(0.675)
    reach, never = summary.targets
    assert (reach.reached, reach.seeds) == (2, 3)
    assert reach.labels.mean == pytest.approx(35)  # 40 and 30
    assert reach.labels.std == pytest.approx(math.sqrt(50))  # (25 + 25) / 1
    assert never.reached == 0 and math.isnan(never.labels.mean)


# ----------------------------------------------------------------------------- paired comparison
def test_paired_comparison_uses_common_seeds_and_a_paired_t_test():
    strategy = {"0": 0.70, "1": 0.72, "2": 0.69, "3": 0.75}
    baseline = {"0": 0.65, "1": 0.70, "2": 0.70, "4": 0.60}
    result = stats.paired_comparison(strategy, baseline)
    # seeds 0, 1, 2: differences 0.05, 0.02, -0.01; mean 0.02, sample std 0.03
    assert (result.n, result.wins, result.ties, result.losses) == (3, 2, 0, 1)
    assert result.mean_diff == pytest.approx(0.02)
    t = 0.02 / (0.03 / math.sqrt(3))
    # two-sided p of Student's t with 2 degrees of freedom: 1 - t / sqrt(2 + t^2)
    assert result.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert result.p_value == pytest.approx(0.367544, abs=1e-6)
    assert result.verdict == "no significant difference from random (p=0.368, n=3)"
    assert result.ci_low <= result.mean_diff <= result.ci_high
    # resampled means of three values stay within their range
    assert -0.01 - 1e-12 <= result.ci_low and result.ci_high <= 0.05 + 1e-12


@pytest.mark.parametrize("sign, word", [(1, "better"), (-1, "worse")])
def test_a_clear_difference_is_called_significant(sign, word):
    baseline = {"0": 0.5, "1": 0.6, "2": 0.55}
    diffs = [0.10, 0.11, 0.12]
    strategy = {s: baseline[s] + sign * d for s, d in zip(baseline, diffs)}
    result = stats.paired_comparison(strategy, baseline, "random")
    t = 0.11 / (0.01 / math.sqrt(3))
    assert result.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-6)  # 0.00274
    assert result.verdict == f"{word} than random (p=0.003, n=3)"
    assert result.wins == (3 if sign > 0 else 0)


def test_too_few_paired_seeds():
    result = stats.paired_comparison({"0": 0.7, "1": 0.8}, {"1": 0.6, "2": 0.5}, "random")
    assert result.n == 1 and result.wins == 1
    assert math.isnan(result.p_value) and math.isnan(result.ci_low)
    assert result.verdict == "too few paired seeds (n=1) to compare with random"
    assert stats.paired_comparison({"0": 0.7}, {"1": 0.6}).n == 0


def test_ties_and_differences_without_spread():
    same = stats.paired_comparison({"0": 0.7, "1": 0.8}, {"0": 0.7, "1": 0.8})
    assert (same.ties, same.wins, same.p_value) == (2, 0, 1.0)
    assert same.verdict.startswith("no significant difference")
    shifted = stats.paired_comparison({"0": 0.75, "1": 0.85}, {"0": 0.5, "1": 0.6})
    assert shifted.p_value == 0.0 and shifted.verdict.startswith("better")


def test_bootstrap_interval_is_reproducible_and_hand_checkable():
    # two differences 0 and 1: resampled means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles are 0 and 1
    assert stats.bootstrap_mean_interval([0.0, 1.0]) == (0.0, 1.0)
    values = np.random.default_rng(7).normal(0.02, 0.03, size=12).tolist()
    first = stats.bootstrap_mean_interval(values, seed=3)
    assert first == stats.bootstrap_mean_interval(values, seed=3)
    assert first[0] < np.mean(values) < first[1]
    assert first != stats.bootstrap_mean_interval(values, seed=4)


# ----------------------------------------------------------------------------- report numbers
def _curve(strategy, seed, y, x=X, dataset="digits", model="mlp"):
    return Curve(dataset, model, strategy, str(seed), f"{strategy}-{seed}", np.array(x, float), np.array(y, float))


def _set(curves):
    return CurveSet(curves, "eval_accuracy", "synthetic")


def test_unequal_seed_counts_per_strategy():
    curves = [_curve("random", 0, [0.5, 0.6, 0.7]), _curve("random", 1, [0.4, 0.6, 0.6]),
              _curve("random", 2, [0.5, 0.5, 0.8]),
              _curve("bald", 0, [0.5, 0.7, 0.9]), _curve("bald", 2, [0.6, 0.7, 0.8])]
    report = analyse(_set(curves), targets=[0.7], baseline="random")
    [section] = report.sections
    assert section.strategies == ["random", "bald"]  # the baseline first
    assert section.summaries["random"].seeds == 3 and section.summaries["bald"].seeds == 2
    bald = section.comparisons["bald"]
    assert bald.n == 2 and bald.wins == 2  # seeds 0 and 2 only
    # seed 0: 0.7 - 0.6 ; seed 2: 0.7 - 0.575
    assert bald.mean_diff == pytest.approx((0.1 + 0.125) / 2)
    assert section.summaries["random"].targets[0].reached == 2  # seed 1 never gets to 0.7
    assert not section.notes


def test_tables_show_not_reached_and_partial_counts():
    curves = [_curve("random", s, y) for s, y in enumerate([[0.5, 0.7, 0.8], [0.6, 0.8, 0.9], [0.4, 0.5, 0.6]])]
    report = analyse(_set(curves), targets=[0.75, 0.95])
    text = markdown(report)
    assert "| random | 3 | 0.767 ± 0.153 | " in text
    # Seeds reach 0.75 at 40 and 30 labels and never: the median of (30, 40, never) is 40, not
    # the 35 of the two that got there.
    assert "| 40 (not reached in 1 of 3) |" in text
    assert "| not reached in 3 of 3 |" in text
    assert "initial set included" in text
    rows = summary_csv(report).splitlines()
    assert rows[0].split(",")[-11:-3] == [
        "labels_to_0.75_median", "labels_to_0.75_mean_of_reached", "labels_to_0.75_std_of_reached",
        "labels_to_0.75_reached", "labels_to_0.95_median", "labels_to_0.95_mean_of_reached",
        "labels_to_0.95_std_of_reached", "labels_to_0.95_reached"]
    assert rows[1].split(",")[-11:-3] == ["40", "35", "7.071067812", "2", "", "", "", "0"]
    assert rows[0].split(",")[-3:] == ["samples", "copies_per_batch_mean", "copies_per_batch_std"]
    assert comparison_csv(report).splitlines() == [comparison_csv(report).splitlines()[0]]  # no baseline pairs


def test_sections_per_dataset_model_and_notes():
    curves = [_curve("random", 0, [0.5, 0.6, 0.7]), _curve("bald", 0, [0.5, 0.7], x=[20, 30]),
              _curve("bald", 0, [0.3, 0.4, 0.5], model="cnn")]
    report = analyse(_set(curves), targets=[0.9])
    assert [(s.dataset, s.model) for s in report.sections] == [("digits", "cnn"), ("digits", "mlp")]
    cnn, mlp = report.sections
    assert any("No random runs" in n for n in cnn.notes) and not cnn.comparisons
    assert any("do not share one label grid" in n for n in mlp.notes)
    assert "## digits / cnn" in markdown(report) and "## digits / mlp" in markdown(report)


def test_job_summary_uses_the_report_definition_of_aulc():
    from al_experiments.app.job import summarize

    history = [{"labeled_pool_size": n, "eval": {"accuracy": a}, "train_time": 1.0}
               for n, a in [(20, 0.5), (30, 0.7), (40, 0.8)]]
    summary = summarize(history)
    # trapezoid by hand: (10 * (0.5 + 0.7) / 2 + 10 * (0.7 + 0.8) / 2) / 20 = 0.675
    assert summary["aulc"] == pytest.approx(0.675)
    assert summary["final_accuracy"] == 0.8 and summary["rounds"] == 3 and summary["train_seconds"] == 3.0


# ----------------------------------------------------------------------------- multiple strategies
def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, 2 * 0.03, max(1 * 0.04, 0.06); NaN is not in the family
    assert stats.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(stats.holm([0.01, 0.04, 0.03, float("nan")])[3])
    assert stats.holm([0.2]) == [0.2] and stats.holm([0.6, 0.7]) == [1.0, 1.0]


def test_holm_decides_the_verdict_across_strategies():
    random = {"0": 0.5, "1": 0.6, "2": 0.55, "3": 0.52}
    curves = [_curve("random", s, [a, a, a]) for s, a in random.items()]
    # Two strategies, each just under p = 0.05 alone: Holm doubles the smaller one.
    for name, gains in (("bald", (0.02, 0.05, 0.03, 0.01)), ("max_entropy", (0.02, 0.04, 0.03, 0.01))):
        curves += [_curve(name, s, [random[s] + g] * 3) for s, g in zip(random, gains)]
    section = analyse(_set(curves), targets=[0.9]).sections[0]
    p_values = {name: c.p_value for name, c in section.comparisons.items()}
    assert all(p < 0.05 for p in p_values.values())
    low, high = sorted(p_values.values())
    assert sorted(c.p_holm for c in section.comparisons.values()) == pytest.approx([max(2 * low, high)] * 2)
    for c in section.comparisons.values():
        assert c.p_holm > 0.05 and c.verdict.startswith("no significant difference")
        assert "Holm-adjusted p=" in c.verdict
    text = markdown(analyse(_set(curves), targets=[0.9]))
    assert "| Holm-adjusted | seeds for 80% power |" in text


@pytest.mark.parametrize(("d", "n"), [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_for_power_match_published_tables(d, n):
    # Two-sided paired t-test, alpha 0.05, power 0.8 (G*Power and Cohen's tables: 34, 15, 10).
    assert stats.seeds_for_power(d) == n
    assert stats.seeds_for_power(-d) == n


def test_seeds_for_power_of_an_observed_difference():
    diffs = np.array([0.02, 0.01, 0.03, -0.01, 0.02])
    random = {str(s): 0.5 for s in range(5)}
    bald = {str(s): 0.5 + d for s, d in enumerate(diffs)}
    c = stats.paired_comparison(bald, random)
    assert c.seeds_for_power == stats.seeds_for_power(diffs.mean() / diffs.std(ddof=1))
    assert stats.seeds_for_power(0.0) is None
    same = stats.paired_comparison({"0": 0.5, "1": 0.6}, {"0": 0.5, "1": 0.6})
    assert same.seeds_for_power is None  # no difference to detect


def test_median_labels_counts_the_seeds_that_never_get_there():
    assert stats.median_labels([100, None, 120]) == 120  # (100, 120, never)
    assert stats.median_labels([100, 140]) == 120
    assert stats.median_labels([100, None]) is None  # the middle lies among the failures
    assert stats.median_labels([None, None, 90]) is None
    assert stats.median_labels([]) is None


def test_mean_curve_standard_error_by_hand():
    curve = stats.mean_curve([([20, 30], [0.5, 0.7]), ([20, 30], [0.7, 0.7])])
    assert curve.se[0] == pytest.approx(np.std([0.5, 0.7], ddof=1) / math.sqrt(2))  # 0.1
    assert curve.se[1] == 0.0


def test_one_strategy_on_two_kinds_of_samples_is_two_strategies_with_their_copies():
    from dataclasses import replace

    curves = [replace(_curve("bald", s, [0.5, 0.6, 0.7]), samples=kind, copies=copies)
              for s in (0, 1) for kind, copies in (("consistent", 4.0 + s), ("independent", 1.0))]
    curves += [replace(_curve("random", s, [0.5, 0.55, 0.6]), samples="none", copies=0.0) for s in (0, 1)]
    report = analyse(_set(curves), targets=[0.9])
    [section] = report.sections
    assert section.strategies == ["random", "bald (consistent)", "bald (independent)"]
    assert section.samples["bald (consistent)"] == "consistent"
    assert section.copies["bald (consistent)"].mean == 4.5 and section.copies["bald (independent)"].mean == 1.0
    text = markdown(report)
    assert "| bald (consistent) | 2 | 0.700 ± 0.000 | 0.600 ± 0.000 | not reached in 2 of 2 | consistent | " \
           "4.50 ± 0.71 |" in text
    assert "| --- | ---: | ---: | ---: | ---: | --- | ---: |" in text  # names left, numbers right
    # Without copies or samples known, neither column appears.
    plain = markdown(analyse(_set([_curve("random", 0, [0.5, 0.6, 0.7])]), targets=[0.9]))
    assert "| samples |" not in plain and "copies per batch" not in plain


def test_validation_labels_are_counted_in_a_note_on_the_budget():
    from dataclasses import replace

    curves = [replace(_curve(s, 0, [0.5, 0.6, 0.7]), validation=100) for s in ("random", "bald")]
    [section] = analyse(_set(curves), targets=[0.9]).sections
    assert any("used 100 labelled validation points" in note and "x plus these" in note for note in section.notes)
    [plain] = analyse(_set([_curve("random", 0, [0.5, 0.6, 0.7])]), targets=[0.9]).sections
    assert not any("validation" in note for note in plain.notes)
