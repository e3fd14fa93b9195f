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


def write_streaming_plot(
    path: Path,
    latency: dict[tuple[int, int], dict[str, tuple[float, float]]],
    throughput: dict[int, dict[str, float]],
    title: str,
) -> None:
    """The streaming section (``--streaming --plot``) in two panels: left, each implementation's step from a kept
    state at batch 1 per model size (a bar to the median, a whisker to the p99, microseconds on a log scale, since
    the sizes span three decades); right, frames per second against the number of live sessions, each sending a
    frame every tick. ``latency`` and ``throughput`` are what ``measure_latency`` and ``measure_throughput``
    return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    sizes = list(latency)
    names = list(latency[sizes[0]])
    counts = sorted(throughput)
    # One colour per implementation in both panels (the pool's ticks appear only on the right).
    everyone = names + [name for name in throughput[counts[0]] if name not in names]
    colors = {name: f"C{index}" for index, name in enumerate(everyone)}
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 0.9 + 0.45 * len(sizes) * len(names) / 2))
    bar_height = 0.8 / len(names)
    longest = 0.0
    for index, name in enumerate(names):
        positions = [row - 0.4 + (index + 0.5) * bar_height for row in range(len(sizes))]
        medians = [latency[size][name][0] * 1e6 for size in sizes]
        p99s = [latency[size][name][1] * 1e6 for size in sizes]
        left.barh(positions, medians, height=bar_height, color=colors[name], label=name)
        # The whisker runs from the median to the p99 only, and the median's label sits past it.
        below = [0.0] * len(p99s)
        above = [p99 - median for median, p99 in zip(medians, p99s)]
        left.errorbar(medians, positions, xerr=[below, above], fmt="none", ecolor="black", elinewidth=0.7, capsize=2)
        for position, median, p99 in zip(positions, medians, p99s):
            label = f"{median:,.0f}" if median >= 100 else f"{median:.3g}"
            left.text(p99 * 1.15, position, label, va="center", fontsize=7)
        longest = max(longest, *p99s)
    left.set_xscale("log")
    left.set_xlim(right=longest * 4)  # room for the labels
    left.set_yticks(range(len(sizes)), [f"I={i}, H={h}" for i, h in sizes], fontsize=8)
    left.set_ylim(len(sizes) - 0.5, -0.5)
    left.set_xlabel("us per step, batch 1: bar to the median, whisker to the p99 (lower is better)")
    left.set_title("Step from a kept state", fontsize=10)
    left.legend(fontsize=8, loc="upper right")
    left.grid(axis="x", which="both", alpha=0.3)

    for name in throughput[counts[0]]:
        rates = [sessions / throughput[sessions][name] for sessions in counts]
        right.plot(counts, rates, marker="o", color=colors[name], label=name)
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xticks(counts, [str(sessions) for sessions in counts])
    right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    right.set_xlabel("live sessions, each sending a frame every tick")
    right.set_ylabel("frames per second (higher is better)")
    right.set_title("Sessions stepped together vs one by one", fontsize=10)
    right.legend(fontsize=8)
    right.grid(which="both", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
