"""The numbers docs/reproductions.md quotes, from an MLflow experiment or a metrics folder: per
strategy, test accuracy at given label counts, labels to given accuracies and copies per batch,
each as the median and quartiles over seeds (a paper's table gives medians or means over a few
seeds; a spread says how far ours may be from it).

    python scripts/reproduction_table.py --experiment repeated-fashion-cpu --labels 50 100 150 \\
        --targets 0.7 --tracking-uri sqlite:///mlflow.db
    python scripts/reproduction_table.py --metrics-dir multirun/.../metrics --labels 50 100

Labels to a target: the first label count whose accuracy reaches it; a seed that never does
counts as "never" and sorts above every count (so a median can be "never").
"""

from __future__ import annotations

import argparse

import numpy as np

from al_experiments.report.curves import label_samples, load_metrics_dir, load_mlflow


def quartiles(values: list[float], digits: int = 3) -> str:
    """``median [q1, q3]`` of ``values`` (inf shown as never); one value alone; a dash for none."""
    if not values:
        return "–"
    data = np.asarray(values, dtype=float)
    # Interpolated quartiles; where a seed never got there, the nearest rank at or above (so
    # "never" is never averaged with a count).
    method = "higher" if np.isinf(data).any() else "linear"
    q1, median, q3 = np.percentile(data, [25, 50, 75], method=method)

    def show(v: float) -> str:
        return "never" if np.isinf(v) else (f"{v:.{digits}f}" if digits else f"{v:.0f}")

    return show(median) if len(values) == 1 else f"{show(median)} [{show(q1)}, {show(q3)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--metrics-dir")
    parser.add_argument("--labels", type=float, nargs="*", default=[])
    parser.add_argument("--targets", type=float, nargs="*", default=[])
    parser.add_argument("--include-unfinished", action="store_true")
    args = parser.parse_args()
    if args.metrics_dir:
        curves = load_metrics_dir(args.metrics_dir, include_unfinished=args.include_unfinished).curves
    else:
        curves = load_mlflow(args.tracking_uri, args.experiment, include_unfinished=args.include_unfinished).curves
    curves = label_samples(curves)  # one strategy on two kinds of samples: two rows
    strategies = sorted({c.strategy for c in curves}, key=lambda s: (s != "random", s))
    head = ["strategy", "seeds", *(f"accuracy at {x:g}" for x in args.labels),
            *(f"labels to {t:g}" for t in args.targets), "copies per batch"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for strategy in strategies:
        mine = [c for c in curves if c.strategy == strategy]
        cells = [strategy, str(len(mine))]
        for x in args.labels:
            cells.append(quartiles([float(c.y[c.x == x][0]) for c in mine if np.any(c.x == x)]))
        for target in args.targets:
            reached = [float(c.x[np.argmax(c.y >= target)]) if np.any(c.y >= target) else np.inf for c in mine]
            cells.append(quartiles(reached, digits=0))
        cells.append(quartiles([c.copies for c in mine if c.copies is not None], digits=2))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
