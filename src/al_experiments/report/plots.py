"""Learning-curve figures: mean test accuracy against labels with a 95% band, one line per strategy.

matplotlib is imported here, lazily and with the Agg backend, so the report runs on machines
without a display and importing ``al_experiments.report`` stays cheap.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from al_experiments.report.analysis import Report

PNG = "learning_curves.png"
SVG = "learning_curves.svg"


def plot_learning_curves(report: Report, folder: Path) -> list[Path]:
    """Write ``learning_curves.png`` and ``.svg``: one panel per (dataset, model) section."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(report.sections)
    columns = min(panels, 2)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.4 * rows), squeeze=False)
    names = sorted({s for section in report.sections for s in section.strategies})
    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
    try:
        for ax, section in zip(axes.flat, report.sections):
            for name in section.strategies:
                curve = section.mean_curves[name]
                seeds = section.summaries[name].seeds
                style = {"linestyle": "--"} if name == report.baseline else {}
                ax.plot(curve.x, curve.mean, marker="o", markersize=3, color=colours[name],
                        label=f"{name} ({seeds} seed{'s' if seeds != 1 else ''})", **style)
                # drawn within [0, 1]: an accuracy cannot leave it, however wide a 2-seed interval is
                ax.fill_between(curve.x, np.clip(curve.low, 0, 1), np.clip(curve.high, 0, 1),
                                color=colours[name], alpha=0.2, linewidth=0)
            ax.set_title(f"{section.dataset} / {section.model}")
            ax.set_xlabel("labelled points (initial set included)")
            ax.set_ylabel("test accuracy")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
        for ax in list(axes.flat)[panels:]:
            ax.set_visible(False)
        fig.suptitle("Learning curves: mean over seeds, 95% t-interval band", fontsize="medium")
        fig.tight_layout()
        png, svg = folder / PNG, folder / SVG
        fig.savefig(png, dpi=150, metadata={"Software": None})
        fig.savefig(svg, metadata={"Date": None})  # no timestamp: same data, same file
    finally:
        plt.close(fig)
    return [png, svg]
