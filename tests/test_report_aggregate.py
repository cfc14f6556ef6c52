"""al-report across settings: ranks, the Friedman test, the critical difference, pairwise wins and
normalised areas against SciPy, Demsar's tables and values computed by hand; the setting key,
AULC over a common label range, ``--budget-includes-validation``, and the leaderboard end to end
on a tf_al metrics directory (no training, so these run in seconds)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from al_experiments.report import aggregate as agg
from al_experiments.report import stats
from al_experiments.report.analysis import analyse
from al_experiments.report.curves import Curve, CurveSet, load_metrics_dir
from al_experiments.report.tables import comparison_csv, markdown, summary_csv
from al_experiments.tracking import ExperimentSuitMetrics

X = [20, 30, 40]


def _curve(strategy, seed, y, x=X, setting="", validation=0):
    return Curve("digits", "mlp", strategy, str(seed), f"{strategy}-{seed}", np.array(x, float),
                 np.array(y, float), validation=validation, setting=setting)


def _set(curves):
    return CurveSet(curves, "eval_accuracy", "synthetic")


# ----------------------------------------------------------------------------- ranks and Friedman
def test_ranks_within_settings_give_ties_the_average_rank():
    ranks = agg.ranks_within_settings([[0.8, 0.7, 0.7, 0.6], [0.5, 0.9, 0.6, 0.6]])
    assert ranks.tolist() == [[1, 2.5, 2.5, 4], [4, 1, 2.5, 2.5]]  # 1 = the largest AULC
    table = {"s1": {"a": {"0": 0.8}, "b": {"0": 0.7}, "c": {"0": 0.7}, "d": {"0": 0.6}},
             "s2": {"a": {"0": 0.5}, "b": {"0": 0.9}, "c": {"0": 0.6}, "d": {"0": 0.6}}}
    result = agg.aggregate_settings(table, "d")
    assert result.mean_ranks == {"a": 2.5, "b": 1.75, "c": 2.5, "d": 3.25}
    assert result.strategies == ["b", "a", "c", "d"]  # best mean rank first, ties by name


def test_friedman_matches_scipy_on_tie_free_data():
    from scipy import stats as sp

    values = np.random.default_rng(3).uniform(0.5, 0.9, size=(7, 4))  # 7 settings, 4 strategies
    values[:, 0] += 0.05  # one strategy tends to be better
    result = agg.friedman(agg.ranks_within_settings(values))
    expected = sp.friedmanchisquare(*values.T)
    assert result.chi_square == pytest.approx(expected.statistic)
    assert result.chi_square_p == pytest.approx(expected.pvalue)
    n, k = values.shape
    f = (n - 1) * expected.statistic / (n * (k - 1) - expected.statistic)  # Iman-Davenport
    assert (result.df1, result.df2) == (k - 1, (k - 1) * (n - 1))
    assert result.f == pytest.approx(f) and result.f_p == pytest.approx(sp.f.sf(f, k - 1, (k - 1) * (n - 1)))


def test_friedman_by_hand():
    # mean ranks 4/3, 2, 8/3: chi2 = 12*3/(3*4) * (16/9 + 4 + 64/9 - 3*16/4) = 3 * 8/9 = 8/3;
    # F = 2 * (8/3) / (3*2 - 8/3) = 1.6. With 2 df, chi2's tail is exp(-chi2/2); F(2, 4)'s
    # is (1 + 2F/4)^-2 = 1/3.24.
    result = agg.friedman(np.array([[1, 2, 3], [1, 3, 2], [2, 1, 3]]))
    assert result.chi_square == pytest.approx(8 / 3)
    assert result.chi_square_p == pytest.approx(math.exp(-4 / 3))
    assert result.f == pytest.approx(1.6) and result.f_p == pytest.approx(1 / 3.24)


def test_friedman_when_every_setting_agrees_gives_the_exact_chance_of_it():
    # F is infinite; the chance that n settings all pick the same of k! orders is k!^(1-n).
    two = agg.friedman(np.array([[1, 2], [1, 2]]))
    assert math.isinf(two.f) and two.f_p == pytest.approx(0.5)
    three = agg.friedman(np.array([[1, 2, 3]] * 3))
    assert three.f_p == pytest.approx(1 / 36) and three.chi_square == pytest.approx(6)
    with pytest.raises(ValueError, match="at least 2 settings"):
        agg.friedman(np.array([[1, 2]]))


# ----------------------------------------------------------------------------- critical difference
@pytest.mark.parametrize(("k", "q"), [(2, 1.960), (3, 2.343), (5, 2.728), (10, 3.164)])
def test_nemenyi_q_matches_demsar_table(k, q):
    assert agg.nemenyi_q(k) == pytest.approx(q, abs=1e-3)  # Demsar (2006), Table 5(a)


def test_critical_difference_of_demsar_example():
    # Demsar (2006), section 3.2.2: 4 classifiers on 14 data sets, CD = 2.569 sqrt(4*5/(6*14)) = 1.25
    assert agg.critical_difference(4, 14) == pytest.approx(1.25, abs=0.005)
    assert agg.critical_difference(4, 56) == pytest.approx(agg.critical_difference(4, 14) / 2)
    # 1.25 ranks apart: significant from 14 settings on, not at 13
    assert agg.settings_for_difference(agg.critical_difference(4, 14) + 1e-9, 4) == 14
    assert agg.settings_for_difference(0.0, 4) is None


def test_cd_groups_join_ranks_closer_than_the_cd():
    ranks = {"a": 1.0, "b": 1.5, "c": 2.9, "d": 3.2}
    assert agg.cd_groups(ranks, 1.5) == [("a", "b"), ("b", "c"), ("c", "d")]
    assert agg.cd_groups(ranks, 2.5) == [("a", "b", "c", "d")]  # the later runs lie inside it
    assert agg.cd_groups({"a": 1.0, "b": 2.0}, 1.0) == []  # a difference of exactly CD is significant


# ----------------------------------------------------------------------------- normalised area
def test_normalised_area_by_hand():
    means = {"s1": {"random": 0.6, "a": 0.7, "b": 0.65},  # a 1, b (0.65-0.6)/(0.7-0.6) = 0.5
             "s2": {"random": 0.5, "a": 0.55, "b": 0.6},  # a 0.5, b 1
             "s3": {"a": 0.9, "b": 0.8},  # no baseline
             "s4": {"random": 0.7, "a": 0.6, "b": 0.7}}  # nothing beats random: no scale
    areas, notes = agg.normalised_areas(means, ["a", "b", "random"], "random")
    assert list(areas) == ["s1", "s2"]
    assert areas["s1"] == pytest.approx({"a": 1.0, "b": 0.5, "random": 0.0})
    assert areas["s2"] == pytest.approx({"a": 0.5, "b": 1.0, "random": 0.0})
    assert any("s3" in n and "without random" in n for n in notes)
    assert any("s4" in n and "no strategy has a larger mean AULC than random" in n for n in notes)
    # through the aggregate, from per-seed AULCs whose means are the above
    table = {s: {name: {"0": m - 0.01, "1": m + 0.01} for name, m in by.items()} for s, by in means.items()}
    result = agg.aggregate_settings(table, "random")
    assert result.normalised["a"].mean == pytest.approx(0.75)
    assert result.normalised["a"].std == pytest.approx(np.std([1.0, 0.5], ddof=1))
    assert result.normalised_settings == ["s1", "s2"]
    assert result.normalised_quartiles["a"] == pytest.approx((0.625, 0.75, 0.875))  # of 0.5 and 1.0
    assert "random" not in result.strategies and "random is not ranked" in " ".join(result.notes)


# ----------------------------------------------------------------------------- pairwise wins
def _seeds(values):
    return {str(i): float(v) for i, v in enumerate(values)}


def test_win_loss_matrix_on_a_clearly_better_strategy():
    rng = np.random.default_rng(0)
    table = {}
    for setting, gain in (("s1", 0.05), ("s2", 0.04), ("s3", 0.0)):
        base = rng.uniform(0.6, 0.8, size=20)  # seeds differ a lot, the pairing removes it
        table[setting] = {"good": _seeds(base + gain + rng.normal(0, 0.002, 20)),
                          "plain": _seeds(base + rng.normal(0, 0.002, 20))}
    result = agg.aggregate_settings(table, "plain")
    assert result.pairwise[("good", "plain")] == agg.WinLoss(wins=2, losses=0, compared=3)
    assert result.pairwise[("plain", "good")] == agg.WinLoss(wins=0, losses=2, compared=3)
    assert (result.wins("good"), result.losses("good"), result.losses("plain")) == (2, 0, 2)


def test_wins_are_holm_adjusted_over_the_pairs_of_a_setting():
    random = [0.5, 0.6, 0.55, 0.52]
    table = {s: {"random": _seeds(random),  # each gain alone is just under p = 0.05
                 "bald": _seeds(np.add(random, (0.02, 0.05, 0.03, 0.01))),
                 "max_entropy": _seeds(np.add(random, (0.02, 0.04, 0.03, 0.01)))} for s in ("s1", "s2")}
    raw = stats.paired_comparison(table["s1"]["bald"], table["s1"]["random"])
    assert raw.p_value < 0.05
    result = agg.aggregate_settings(table, "random")
    assert all(w.wins == 0 and w.compared == 2 for w in result.pairwise.values())


def test_a_strategy_missing_in_a_setting_is_left_out_and_said_so():
    table = {"s1": {"random": {"0": 0.5}, "bald": {"0": 0.6}, "coreset": {"0": 0.7}},
             "s2": {"random": {"0": 0.5}, "bald": {"0": 0.6}}}
    result = agg.aggregate_settings(table, "random")
    assert result.strategies == ["bald", "random"]
    assert result.left_out == {"coreset": "no runs in 1 of 2 settings (s2)"}
    only_one = agg.aggregate_settings({"s1": {"a": {"0": 0.5}}, "s2": {"a": {"0": 0.6}, "b": {"0": 0.6}}}, "a")
    assert only_one.friedman is None and only_one.cd is None
    assert any("no critical-difference diagram" in n for n in only_one.notes)


# ----------------------------------------------------------------------------- settings as sections
def test_each_setting_is_a_section_and_shows_only_when_named():
    curves = [_curve(name, seed, [0.5, 0.6, 0.7], setting=setting)
              for setting in ("imbalance 10", "balanced") for name in ("random", "bald") for seed in (0, 1)]
    report = analyse(_set(curves), targets=[0.9])
    assert [(s.dataset, s.model, s.setting) for s in report.sections] == [
        ("digits", "mlp", "balanced"), ("digits", "mlp", "imbalance 10")]
    text = markdown(report)
    assert "## digits / mlp (balanced)" in text and "## digits / mlp (imbalance 10)" in text
    assert summary_csv(report).splitlines()[0].startswith("dataset,model,setting,strategy,seeds,")
    assert summary_csv(report).splitlines()[1].startswith("digits,mlp,balanced,random,2,")
    assert comparison_csv(report).splitlines()[1].startswith("digits,mlp,balanced,bald,random,2,")
    assert report.aggregate is not None and "## Across settings: leaderboard" in text
    # untagged runs: no setting anywhere, one section, no leaderboard
    plain = analyse(_set([replace(c, setting="") for c in curves if c.setting == "balanced"]), targets=[0.9])
    assert plain.aggregate is None and "leaderboard" not in markdown(plain)
    assert "## digits / mlp\n" in markdown(plain)
    assert summary_csv(plain).splitlines()[0].startswith("dataset,model,strategy,seeds,")


def test_metrics_dir_reads_the_setting_from_the_meta_params(tmp_path):
    suit = ExperimentSuitMetrics(tmp_path / "metrics")
    suit.add_dataset_meta("digits", "", 1000, 300)
    for i, (query, params) in enumerate([("random", {"setting": "imbalance 10; init 20 + 10/round"}),
                                         ("bald", {})]):
        suit.add_experiment_meta(f"{i}_0_mlp_{query}", "mlp", query, {"iterations": 1, **params})
        suit.write_line(f"{i}_0_mlp_{query}", {"eval": {"accuracy": 0.5}, "iteration": 1, "labeled_pool_size": 20})
    found = {c.strategy: c.setting for c in load_metrics_dir(tmp_path / "metrics").curves}
    assert found == {"random": "imbalance 10; init 20 + 10/round", "bald": ""}


def test_mlflow_reads_the_setting_tag(tmp_path):
    from mlflow import MlflowClient

    from al_experiments.report.curves import load_mlflow
    from al_experiments.tracking import mlflow_run, mlflow_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = mlflow_store.ensure_experiment(uri, "al-experiments")
    for query, extra in (("random", {"setting": "budget 100"}), ("bald", {})):
        tags = {"query": query, "seed": "0", "dataset": "digits", "model": "mlp", **extra}
        run = mlflow_run.JobRun(uri, experiment, query, tags)
        run.log_metrics({"eval_accuracy": 0.5, "labeled_pool_size": 20}, step=1)
        MlflowClient(uri).set_terminated(run.run_id)
    found = {c.strategy: c.setting for c in load_mlflow(uri, experiment="al-experiments").curves}
    assert found == {"random": "budget 100", "bald": ""}


# ----------------------------------------------------------------------------- common label range
def test_aulc_over_a_label_range_interpolates_its_ends():
    # 25 -> 0.6, 30 -> 0.7, 35 -> 0.75: (0.65 * 5 + 0.725 * 5) / 10
    assert stats.aulc(X, [0.5, 0.7, 0.8], (25, 35)) == pytest.approx(0.6875)
    assert stats.aulc(X, [0.5, 0.7, 0.8], (20, 40)) == stats.aulc(X, [0.5, 0.7, 0.8])
    with pytest.raises(ValueError, match="not within the curve"):
        stats.aulc(X, [0.5, 0.7, 0.8], (10, 30))
    assert stats.common_label_range([[20, 30, 40], [10, 30]]) == (20, 30)
    assert stats.common_label_range([[20, 30], [30, 40]]) is None  # one shared point is no range


def test_runs_on_different_grids_are_compared_over_their_common_labels():
    curves = [_curve("random", 0, [0.5, 0.7, 0.8]), _curve("bald", 0, [0.4, 0.6], x=[10, 30])]
    [section] = analyse(_set(curves), targets=[0.9]).sections
    # over 20-30: random (0.5 + 0.7) / 2 = 0.6; bald from 0.5 (interpolated at 20) to 0.6 = 0.55
    assert section.summaries["random"].aulc.mean == pytest.approx(0.6)
    assert section.summaries["bald"].aulc.mean == pytest.approx(0.55)
    assert section.summaries["random"].final.mean == 0.8  # final accuracy keeps its own rounds
    [note] = [n for n in section.notes if "label grid" in n]
    assert "every AULC is over the labels all of them cover, 20-30" in note and "not strictly" not in note
    apart = [_curve("random", 0, [0.5, 0.6], x=[20, 30]), _curve("bald", 0, [0.4, 0.6], x=[40, 50])]
    [section] = analyse(_set(apart), targets=[0.9]).sections
    assert section.summaries["random"].aulc.mean == pytest.approx(0.55)  # its own range
    assert any("no range of labels in common" in n for n in section.notes)


# ----------------------------------------------------------------------------- validation labels
def test_budget_includes_validation_moves_x_by_each_runs_validation_labels():
    curves = [_curve("random", 0, [0.5, 0.7, 0.9], validation=100), _curve("bald", 0, [0.5, 0.8, 0.9], validation=50)]
    off = analyse(_set(curves), targets=[0.9])
    assert off.sections[0].mean_curves["random"].x.tolist() == X
    assert "x = labeled_pool_size (" in markdown(off)
    on = analyse(_set(curves), targets=[0.9], budget_includes_validation=True)
    [section] = on.sections
    assert section.mean_curves["random"].x.tolist() == [120, 130, 140]
    assert section.mean_curves["bald"].x.tolist() == [70, 80, 90]
    assert section.summaries["random"].targets[0].median == 140
    text = markdown(on)
    assert "x = labeled_pool_size + validation labels (" in text and "plus the run's labelled validation" in text
    assert any("--budget-includes-validation" in n and "counts the 50 or 100" in n for n in section.notes)


# ----------------------------------------------------------------------------- al-report end to end
def _write_sweep(folder, settings, rounds=3, val_size=None):
    """A tf_al metrics directory of three strategies x 4 seeds in each setting, bald clearly
    better than random and max_entropy in between."""
    suit = ExperimentSuitMetrics(folder)
    suit.add_dataset_meta("digits", "", 1000, 300, val_size)
    rng = np.random.default_rng(1)
    job = 0
    for s, setting in enumerate(settings):
        for query, gain in (("random", 0.0), ("max_entropy", 0.02 + 0.01 * s), ("bald", 0.05)):
            for seed in range(4):
                name = f"{job}_{seed}_mc_dropout_mlp_{query}"
                job += 1
                suit.add_experiment_meta(name, "mc_dropout_mlp", query,
                                         {"iterations": rounds, "step_size": 10, "initial_size": 20,
                                          "setting": setting})
                for i in range(rounds):
                    acc = 0.5 + 0.1 * i + gain + rng.normal(0, 0.003)
                    suit.write_line(name, {"eval": {"sparse_categorical_accuracy": acc, "loss": 1.0},
                                           "iteration": i + 1, "labeled_pool_size": 20 + 10 * i,
                                           "unlabeled_pool_size": 980 - 10 * i})
    return folder


def test_al_report_on_three_settings_writes_the_leaderboard(tmp_path, capsys):
    from al_experiments.report.cli import main

    metrics = _write_sweep(tmp_path / "metrics", ["imbalance 10", "imbalance 100", "balanced"], val_size=100)
    out = tmp_path / "r"
    assert main(["--metrics-dir", str(metrics), "--out", str(out), "--targets", "0.6",
                 "--budget-includes-validation"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.csv", "critical_difference.png", "critical_difference.svg", "leaderboard.csv", "leaderboard.md",
        "learning_curves.png", "learning_curves.svg", "pairwise.csv", "summary.csv", "summary.md"]
    png = (out / "critical_difference.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert b"<svg" in (out / "critical_difference.svg").read_bytes()
    board = (out / "leaderboard.md").read_text()
    assert "| bald | 1.00 | 1.00 [1.00, 1.00] | 6 | 0 |" in board  # first everywhere, better than both in all 3
    assert "3 settings and 3 strategies the CD is" in board and "more settings shrink it" in board
    assert "| bald | – | 3/0 | 3/0 |" in board
    assert "4 seeds per strategy and setting" in board
    assert (out / "leaderboard.csv").read_text().splitlines()[1].startswith("bald,1,1,1,1,1,0,3,6,0,3,4,4")
    assert "bald,random,3,0,3" in (out / "pairwise.csv").read_text().splitlines()
    printed = capsys.readouterr().out
    assert printed == (out / "summary.md").read_text() and "## Across settings: leaderboard" in printed
    assert "x = labeled_pool_size + validation labels" in printed
    assert "## digits / mc_dropout_mlp (imbalance 100)" in printed


def test_al_report_on_one_setting_writes_no_leaderboard(tmp_path, capsys):
    from al_experiments.report.cli import main

    metrics = _write_sweep(tmp_path / "metrics", ["balanced"])
    assert main(["--metrics-dir", str(metrics), "--out", str(tmp_path / "r")]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "comparison.csv", "learning_curves.png", "learning_curves.svg", "summary.csv", "summary.md"]
    assert "leaderboard" not in capsys.readouterr().out
