"""Learning-curve figures: mean test accuracy against labels, one line per strategy, with a band
of ±1 standard error (default), a 95% t-interval, or one thin line per seed.

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
    """Write ``learning_curves.png`` (300 dpi) and ``.svg``: one panel per (dataset, model)
    section, titled by it; what the band shows is in the legend's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(report.sections)
    columns = min(panels, 2)
    rows = math.ceil(panels / columns)
    names = sorted({s for section in report.sections for s in section.strategies})
    with plt.rc_context({"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 11}):
        fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.8 * rows), squeeze=False)
        colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(names)}
        try:
            for ax, section in zip(axes.flat, report.sections):
                for name in section.strategies:
                    _draw_strategy(ax, section, name, colours[name], report)
                ax.set_title(f"{section.dataset} / {section.model}")
                ax.set_xlabel("labelled points (initial set included)")
                ax.set_ylabel("test accuracy")
                ax.grid(True, alpha=0.3)
                ax.legend(title=f"mean over seeds, {_BAND_LEGEND[report.band]}", title_fontsize=10)
            for ax in list(axes.flat)[panels:]:
                ax.set_visible(False)
            fig.tight_layout()
            png, svg = folder / PNG, folder / SVG
            fig.savefig(png, dpi=300, metadata={"Software": None})
            fig.savefig(svg, metadata={"Date": None})  # no timestamp: same data, same file
        finally:
            plt.close(fig)
    return [png, svg]


_BAND_LEGEND = {"se": "band ±1 s.e.", "ci": "95% t-interval", "seeds": "thin lines: seeds"}


def _draw_strategy(ax, section, name: str, colour, report: Report) -> None:
    curve = section.mean_curves[name]
    seeds = section.summaries[name].seeds
    style = {"linestyle": "--"} if name == report.baseline else {}
    ax.plot(curve.x, curve.mean, marker="o", markersize=3, linewidth=2, color=colour,
            label=f"{name} ({seeds} seed{'s' if seeds != 1 else ''})", **style)
    if report.band == "seeds":
        for x, y in section.seed_curves.get(name, {}).values():
            ax.plot(x, y, color=colour, linewidth=0.7, alpha=0.35, **style)
        return
    low, high = (curve.mean - curve.se, curve.mean + curve.se) if report.band == "se" else (curve.low, curve.high)
    # drawn within [0, 1]: an accuracy cannot leave it, however wide a 2-seed interval is
    ax.fill_between(curve.x, np.clip(low, 0, 1), np.clip(high, 0, 1), color=colour, alpha=0.15, linewidth=0)
