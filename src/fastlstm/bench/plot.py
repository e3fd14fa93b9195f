"""The optional bar chart of fastlstm's speed-ups (``--plot``), drawn with matplotlib."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .rows import Row
from .shapes import row_text


def plotting_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(path: Path, rows: Sequence[Row], env: dict[str, Any]) -> None:
    """A horizontal bar chart of fastlstm's speed-up over each peer, one group of bars per (shape, threads). Bars
    grow from 1 (as fast) to the right where fastlstm is faster and to the left where it is slower, on a log scale
    so that ratios near 1 (the runtimes) and far above (the NumPy baseline) both read well."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    peer_names = list(env["peers"])
    bar_height = 0.8 / len(peer_names)
    figure, axes = plt.subplots(figsize=(10, 1.5 + 0.2 * len(rows) * len(peer_names)))
    shown = [1.0]  # every speed-up drawn, and 1, to leave room for the labels at the bars' ends
    for index, name in enumerate(peer_names):
        positions, speedups = [], []
        for row_number, row in enumerate(rows):
            speedup = row.speedup(row.peer(name))
            if speedup is not None:  # the peer cannot express this model, or takes no part in the row's precision
                positions.append(row_number - 0.4 + (index + 0.5) * bar_height)
                speedups.append(speedup)
        shown += speedups
        widths = [speedup - 1 for speedup in speedups]
        bars = axes.barh(positions, widths, left=1, height=bar_height, label=name, color=f"C{index}")
        axes.bar_label(bars, labels=[f"{speedup:.2f}" for speedup in speedups], padding=2, fontsize=7)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlim(min(shown) / 1.3, max(shown) * 1.4)
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    labels = [row_text(row.shape, row.threads, row.precision) for row in rows]
    axes.set_yticks(range(len(rows)), labels, fontsize=8)
    axes.set_ylim(len(rows) - 0.5, -0.5)  # first row at the top, as in the table
    axes.set_xlabel("speed-up of fastlstm: peer median time / fastlstm median time (> 1: fastlstm is faster)")
    title = f"fastlstm {env['fastlstm']} ({env['isa']}) vs peers, {env['cpu']}, {env['cpu_count']} CPUs"
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
