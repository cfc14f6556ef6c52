"""The report's figures: learning curves (mean test accuracy against labels, one line per
strategy, with a band of ±1 standard error (default), a 95% t-interval, or one thin line per
seed), and with two settings or more the critical-difference diagram of the strategies' ranks.

matplotlib is imported here, lazily; figures are ``matplotlib.figure.Figure`` objects saved
directly (Agg for PNG), never pyplot's, so the report runs on machines without a display,
leaves the backend of a process that imports it alone (a notebook keeps its own), and importing
``al_experiments.report`` stays cheap.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from al_experiments.report.aggregate import Aggregate
from al_experiments.report.analysis import Report
from al_experiments.report.stats import format_p

PNG = "learning_curves.png"
SVG = "learning_curves.svg"
CD_PNG = "critical_difference.png"
CD_SVG = "critical_difference.svg"


def plot_learning_curves(report: Report, folder: Path) -> list[Path]:
    """Write ``learning_curves.png`` (300 dpi) and ``.svg``: one panel per (dataset, model)
    section, titled by it; what the band shows is in the legend's title."""
    import matplotlib  # slow to import: loaded when a figure is drawn
    from matplotlib.figure import Figure

    panels = len(report.sections)
    columns = min(panels, 2)
    rows = math.ceil(panels / columns)
    names = sorted({s for section in report.sections for s in section.strategies})
    x_label = ("labelled points (initial set and validation labels included)" if report.budget_includes_validation
               else "labelled points (initial set included)")
    with matplotlib.rc_context({"font.size": 12, "axes.titlesize": 13, "legend.fontsize": 11}):
        fig = Figure(figsize=(6.4 * columns, 4.8 * rows))
        axes = fig.subplots(rows, columns, squeeze=False)
        palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]  # a colour per strategy
        colours = {name: palette(i % palette.N) for i, name in enumerate(names)}
        # Many panels share one legend above them (a strategy keeps its colour in every panel),
        # so no legend hides a panel's curves.
        shared_legend = panels > 2
        legend_title = f"mean over seeds, {_BAND_LEGEND[report.band]}"
        for ax, section in zip(axes.flat, report.sections):
            for name in section.strategies:
                _draw_strategy(ax, section, name, colours[name], report)
            ax.set_title(textwrap.fill(section.title, 48))
            ax.set_xlabel(x_label)
            ax.set_ylabel("test accuracy")
            ax.grid(True, alpha=0.3)
            if not shared_legend:
                ax.legend(title=legend_title, title_fontsize=10)
        for ax in list(axes.flat)[panels:]:
            ax.set_visible(False)
        if shared_legend:
            handles = {}
            for ax in axes.flat:
                handles.update({h.get_label().split(" (")[0]: h for h in ax.get_lines() if not h.get_label().startswith("_")})
            fig.legend([handles[n] for n in names if n in handles], [n for n in names if n in handles],
                                loc="upper center", ncol=min(5, len(handles)), title=legend_title,
                                title_fontsize=10, frameon=False)
            fig.tight_layout(rect=(0, 0, 1, 1 - (1.1 + 0.3 * math.ceil(len(handles) / 5)) / (4.8 * rows)))
        else:
            fig.tight_layout()
        # 300 dpi for a page's worth of panels; a large grid at 150 stays a file one can open
        return _save(fig, folder / PNG, folder / SVG, dpi=300 if panels <= 4 else 150)


def _save(fig, png: Path, svg: Path, dpi: int = 300, **options) -> list[Path]:
    fig.savefig(png, dpi=dpi, metadata={"Software": None}, **options)
    fig.savefig(svg, metadata={"Date": None}, **options)  # no timestamp: same data, same file
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


# ----------------------------------------------------------------------------- critical difference
# Layout of the diagram, in inches from its top (the axes' y unit): the CD bar, the rank axis
# below it, the bars of groups below the axis, then one row per name on each side.
_CD_BAR_Y, _AXIS_Y, _GROUP_STEP, _ROW_STEP = 0.35, 0.95, 0.14, 0.3


def plot_critical_difference(report: Report, folder: Path) -> list[Path]:
    """Write ``critical_difference.png`` (300 dpi) and ``.svg``: each strategy at its mean rank on
    a rank axis (1 = best, on the left), its name beside it, the Nemenyi critical difference as a
    bar of that length, and thick bars joining strategies whose mean ranks differ by less than it
    (Demsar 2006, Fig. 1). Nothing is written without a Friedman test (fewer than 2 settings or
    strategies: the aggregate's notes say so)."""
    agg = report.aggregate
    if agg is None or agg.friedman is None or agg.cd is None:
        return []
    import matplotlib  # slow to import: loaded when a figure is drawn
    from matplotlib.figure import Figure

    k, half = len(agg.strategies), math.ceil(len(agg.strategies) / 2)
    first_row = _AXIS_Y + 0.25 + _GROUP_STEP * len(agg.groups)
    height = first_row + _ROW_STEP * (half - 1) + 0.2
    pad = 0.08 * (k - 1) + 0.15  # room for the elbows beyond ranks 1 and k
    with matplotlib.rc_context({"font.size": 11}):
        fig = Figure(figsize=(8, height))
        ax = fig.add_axes((0.25, 0, 0.5, 1))
        ax.set_xlim(1 - pad, k + pad)
        ax.set_ylim(height, 0)
        ax.set_axis_off()
        _draw_rank_axis(ax, k)
        _draw_cd_bar(ax, agg, k)
        for g, group in enumerate(agg.groups):
            y = _AXIS_Y + 0.2 + _GROUP_STEP * g
            ax.plot([agg.mean_ranks[group[0]] - 0.03, agg.mean_ranks[group[-1]] + 0.03], [y, y],
                    color="black", linewidth=3, solid_capstyle="round")
        for row, name in enumerate(agg.strategies[:half]):  # the best, named on the left
            _draw_name(ax, name, agg.mean_ranks[name], first_row + _ROW_STEP * row, 1 - pad, "right")
        for row, name in enumerate(reversed(agg.strategies[half:])):  # the worst, on the right
            _draw_name(ax, name, agg.mean_ranks[name], first_row + _ROW_STEP * row, k + pad, "left")
        seeds = f"{agg.seeds[0]}" if agg.seeds[0] == agg.seeds[1] else f"{agg.seeds[0]}-{agg.seeds[1]}"
        ax.text((1 + k) / 2, 0.02, f"Mean rank by AULC (1 = best) over {len(agg.settings)} settings ({seeds} seeds "
                f"each); Friedman {format_p(agg.friedman.f_p)} (Iman-Davenport)", ha="center", va="top",
                fontsize=10, clip_on=False)
        return _save(fig, folder / CD_PNG, folder / CD_SVG, bbox_inches="tight", pad_inches=0.1)


def _draw_rank_axis(ax, k: int) -> None:
    ax.plot([1, k], [_AXIS_Y, _AXIS_Y], color="black", linewidth=1)
    for tick in np.arange(1, k + 0.01, 0.5):
        whole = float(tick).is_integer()
        ax.plot([tick, tick], [_AXIS_Y, _AXIS_Y - (0.1 if whole else 0.05)], color="black", linewidth=1)
        if whole:
            ax.text(tick, _AXIS_Y - 0.13, f"{tick:g}", ha="center", va="bottom")


def _draw_cd_bar(ax, agg: Aggregate, k: int) -> None:
    """The critical difference as a bar from rank 1; cut at rank k when it is longer than the
    whole axis (then no two strategies can differ), saying so."""
    end = min(1 + agg.cd, k)
    for x in (1, end):
        ax.plot([x, x], [_CD_BAR_Y - 0.05, _CD_BAR_Y + 0.05], color="black", linewidth=1)
    ax.plot([1, end], [_CD_BAR_Y, _CD_BAR_Y], color="black", linewidth=1.5)
    longer = " > the whole range" if 1 + agg.cd > k else ""
    ax.text(end + 0.05 * (k - 1), _CD_BAR_Y, f"CD = {agg.cd:.2f}{longer} (Nemenyi, alpha {agg.alpha:g})",
            ha="left", va="center", fontsize=10)


def _draw_name(ax, name: str, rank: float, y: float, x_end: float, side: str) -> None:
    """A line from the strategy's mean rank on the axis down to its row and out to its name."""
    ax.plot([rank, rank, x_end], [_AXIS_Y, y, y], color="black", linewidth=0.8)
    ax.plot([rank], [_AXIS_Y], marker="o", markersize=4, color="black")
    gap = -0.03 if side == "right" else 0.03
    ax.text(x_end + gap * (ax.get_xlim()[1] - ax.get_xlim()[0]), y, f"{name} ({rank:.2f})", ha=side,
            va="center", clip_on=False)
