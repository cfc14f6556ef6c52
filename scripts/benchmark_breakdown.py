"""Mean ranks per scenario, budget and dataset, and each strategy's record against random, from an
al-report folder of the laptop benchmark (its summary.csv and comparison.csv): the figures the
README gives beside the leaderboard.

    .venv/bin/python scripts/benchmark_breakdown.py docs/results/benchmark-laptop
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from al_experiments.report.aggregate import ranks_within_settings

# The setting tag's words for each scenario of the preset (app.run_names.setting_label).
SCENARIOS = (("imbalance", "imbalanced"), ("label noise", "noisy labels"), ("repeat", "duplicates"))


def group_names(dataset: str, setting: str) -> list[str]:
    scenario = next((name for words, name in SCENARIOS if words in setting), "plain")
    budget = "budget small" if setting.split("init ")[-1].startswith("20 ") else "budget large"
    return [scenario, budget, dataset]


def main(folder: str) -> None:
    aulc: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    with open(Path(folder) / "summary.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            aulc[(row["dataset"], row["setting"])][row["strategy"]] = float(row["aulc_mean"])
    strategies = sorted(next(iter(aulc.values())))
    groups: dict[str, list[np.ndarray]] = defaultdict(list)
    for (dataset, setting), by_strategy in aulc.items():
        ranks = ranks_within_settings(np.array([[by_strategy[s] for s in strategies]]))[0]
        for name in group_names(dataset, setting):
            groups[name].append(ranks)
    for name, rows in groups.items():
        mean = np.mean(rows, axis=0)
        ordered = ", ".join(f"{strategies[i]} {mean[i]:.1f}" for i in np.argsort(mean))
        print(f"{name} ({len(rows)} settings): {ordered}")
    print()
    with open(Path(folder) / "comparison.csv", newline="") as handle:
        comparisons = list(csv.DictReader(handle))
    for strategy in sorted({c["strategy"] for c in comparisons}):
        rows = [c for c in comparisons if c["strategy"] == strategy]
        ahead = sum(float(c["aulc_diff_mean"]) > 0 for c in rows)
        significant = [float(c["aulc_diff_mean"]) for c in rows if c["significant"] == "true"]
        print(f"{strategy}: ahead of {rows[0]['baseline']} in {ahead} of {len(rows)} settings, significantly "
              f"{sum(d > 0 for d in significant)} ahead / {sum(d < 0 for d in significant)} behind")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/results/benchmark-laptop")
