"""``python -m fastlstm bench``: its arguments, and ``run``, which measures, reports and writes the JSON and the
plot."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import fastlstm

from .machine import environment
from .neighbours import NEIGHBOURS_SHAPE, run_neighbours
from .peers import available_peers
from .plot import plotting_available, write_plot
from .precisions import PRECISIONS, check_precisions, parse_precisions
from .report import report, write_json
from .rows import measure
from .shapes import FULL_SHAPES, QUICK_SHAPES, Shape, check_thread_counts, default_thread_counts, parse_shapes
from .streaming import run_streaming
from .timing import MIN_RUNS, measure_peaks
from .torch_model import run_torch_model

#: Seconds of timing per implementation of a row, by default.
REPEAT_SECONDS = 0.2

#: The options of the shape matrix (their defaults: None or False).
MATRIX_OPTIONS = ("full", "shapes", "repeat_seconds", "isa", "threads", "precision", "json", "plot")

#: The alternatives to the shape matrix, and which of MATRIX_OPTIONS each reads: the neighbours benchmark measures
#: each of --shapes, the streaming section draws --plot; the rest would be ignored, so they are refused.
MODE_OPTIONS: dict[str, frozenset[str]] = {
    "neighbours": frozenset({"shapes"}),
    "torch_model": frozenset(),
    "streaming": frozenset({"plot"}),
}


def _shapes(text: str) -> list[Shape]:
    try:
        return parse_shapes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _precisions(text: str) -> list[str]:
    try:
        return parse_precisions(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text: str) -> float:
    error = argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    try:
        value = float(text)
    except ValueError:
        raise error from None
    if not value > 0:  # also refuses NaN
        raise error
    return value


def _thread_counts(text: str) -> list[int]:
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise argparse.ArgumentTypeError(f"expected thread counts separated by commas, such as 1,2, got {text!r}")
    counts = list(dict.fromkeys(int(item) for item in items))  # in the given order, each once
    try:
        check_thread_counts(counts)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return counts


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``bench`` command to ``commands`` (the subparsers of ``python -m fastlstm``); its parsed arguments
    carry ``handler``, the function that runs them."""
    command = commands.add_parser(
        "bench",
        help="time fastlstm against NumPy and the other installed runtimes over a matrix of shapes",
        description=(
            "Time fastlstm against the other LSTM implementations installed (NumPy always; torch, onnxruntime and "
            "openvino when present; openvino-bf16 in bf16 rows) on the same weights and input, after checking that "
            "their outputs agree, at each thread count and precision. Progress goes to stderr, the report to stdout. "
            "Exit status 1 when some output disagrees."
        ),
    )
    which = command.add_mutually_exclusive_group()
    which.add_argument(
        "--full",
        action="store_true",
        help="the full shape matrix (minutes): hidden sizes up to 1024, batches up to 256, odd sizes, bidirectional "
        "and 2-layer models (default: a quick matrix of sizes up to 256)",
    )
    which.add_argument(
        "--shapes",
        type=_shapes,
        metavar="BxTxH,...",
        help=(
            "only these shapes: batch x steps x hidden size (input size = hidden size) or batch x steps x input size "
            "x hidden size, optionally followed by -L<layers>, -P<proj_size>, -bidir; e.g. 1x100x256,8x100x512-L2"
        ),
    )
    command.add_argument(
        "--repeat-seconds",
        type=_positive_float,
        metavar="S",
        help=f"time each implementation for at least S seconds and {MIN_RUNS} runs (default: {REPEAT_SECONDS})",
    )
    command.add_argument(
        "--isa", choices=fastlstm.available_isas(), help=f"fastlstm kernel variant (default: {fastlstm.active_isa()})"
    )
    command.add_argument(
        "--threads",
        type=_thread_counts,
        metavar="N,...",
        help=(
            "measure every shape at each of these thread counts, fastlstm and every peer held to it "
            f"(default: {','.join(map(str, default_thread_counts()))}: one thread and all CPUs)"
        ),
    )
    command.add_argument(
        "--precision",
        type=_precisions,
        metavar="P,...",
        help=(
            f"run fastlstm in each of these precisions ({', '.join(PRECISIONS)}; such as fp32,int8 for two), a "
            "row per shape, thread count and precision; a row in a reduced precision compares every output with "
            "fastlstm's fp32 one and the float32 peers' speed with fastlstm's in that precision, and a bf16 row adds "
            "the openvino-bf16 peer (default: fp32)"
        ),
    )
    command.add_argument(
        "--json", type=Path, metavar="FILE", help="also write every result and the environment as JSON"
    )
    command.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help=(
            "also draw the speed-ups as a bar chart, or with --streaming the step latencies and the sessions' "
            "throughput (PNG, needs matplotlib)"
        ),
    )
    # The alternatives to the shape matrix: one at a time, each taking only the options of MODE_OPTIONS.
    mode = command.add_mutually_exclusive_group()
    mode.add_argument(
        "--neighbours",
        action="store_true",
        help=(
            "instead of the shape matrix, time fastlstm calls right after a NumPy matmul, a torch op and an "
            "onnxruntime run, next to a busy process, and two models in two Python threads, each against the "
            "undisturbed 1- and 2-thread calls and against work shared without waits (a 2-layer bidirectional "
            "model, B=8 T=100 I=128 H=256, or each of --shapes; about four minutes a shape)"
        ),
    )
    mode.add_argument(
        "--torch-model",
        action="store_true",
        help=(
            "instead of the shape matrix, time a PyTorch tagger (embedding, 2-layer bidirectional LSTM, linear) "
            "against the same model after fastlstm.torch.optimize, at batches 1, 8, 32 and on a PackedSequence, "
            "at 1 and 2 threads (needs torch; a few minutes)"
        ),
    )
    mode.add_argument(
        "--streaming",
        action="store_true",
        help=(
            "instead of the shape matrix, time live streams on one thread: a step from a kept state at batch 1 "
            "(median and p99) against torch's LSTMCell and LSTM with hx and onnxruntime with initial states, "
            "sessions stepped together against a stream or a torch cell per session, and the dynamic batcher "
            "with 256 producer threads and 256 asyncio tasks (about half a minute on a 2-core machine)"
        ),
    )
    command.set_defaults(handler=main)


def _options_left_unread(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The alternative to the shape matrix that ``args`` choose (None: the matrix), and the options given that it
    does not read, as typed."""
    mode = next((name for name in MODE_OPTIONS if getattr(args, name)), None)
    if mode is None:
        return None, []
    given = [name for name in MATRIX_OPTIONS if getattr(args, name) not in (None, False)]
    return mode, [_option(name) for name in given if name not in MODE_OPTIONS[mode]]


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def main(args: argparse.Namespace) -> int:
    """Runs ``python -m fastlstm bench`` with its parsed ``args``; returns the exit status."""
    mode, unread = _options_left_unread(args)
    if unread:
        # Refused before measuring: a --json or --threads that a mode ignored would leave no trace of it.
        reads = ", ".join(_option(name) for name in sorted(MODE_OPTIONS[mode])) or "no other option"
        print(
            f"python -m fastlstm bench: {_option(mode)} does not take {', '.join(unread)} (it reads {reads})",
            file=sys.stderr,
        )
        return 2
    if args.plot is not None and not plotting_available():
        # Said before measuring, not after minutes of it.
        print("python -m fastlstm bench: --plot needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    if args.neighbours:  # the shape, or each of --shapes in turn
        return max(run_neighbours(shape) for shape in args.shapes or [NEIGHBOURS_SHAPE])
    if args.torch_model:
        return run_torch_model()
    if args.streaming:
        return run_streaming(plot_path=args.plot)
    shapes = args.shapes or (FULL_SHAPES if args.full else QUICK_SHAPES)
    # The options' argparse defaults are None (so that a mode can tell a given option from a default): run's own
    # defaults stand for those not given.
    given = {"precisions": args.precision, "repeat_seconds": args.repeat_seconds}
    return run(
        shapes,
        thread_counts=args.threads,
        isa=args.isa,
        json_path=args.json,
        plot_path=args.plot,
        **{name: value for name, value in given.items() if value is not None},
    )


def run(
    shapes: Sequence[Shape],
    *,
    thread_counts: Sequence[int] | None = None,
    precisions: Sequence[str] = ("fp32",),
    repeat_seconds: float = REPEAT_SECONDS,
    isa: str | None = None,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    out: TextIO = sys.stdout,
    progress: TextIO = sys.stderr,
) -> int:
    """Measure ``shapes`` at each of ``thread_counts`` (default: ``default_thread_counts()``) and fastlstm in each of
    ``precisions``, print the report to ``out`` and optionally write JSON and a plot (which needs matplotlib).
    Returns the exit status: 0, or 1 when some output disagreed with fastlstm's fp32 one."""
    thread_counts = list(dict.fromkeys(thread_counts or default_thread_counts()))
    check_thread_counts(thread_counts)
    precisions = list(dict.fromkeys(precisions))
    check_precisions(precisions)
    peers = available_peers(precisions)
    with fastlstm.use_isa(isa) if isa else contextlib.nullcontext():
        print("measuring the FMA peak ...", end="", file=progress, flush=True)
        peaks = measure_peaks(fastlstm.active_isa(), thread_counts)
        print(" done", file=progress, flush=True)
        env = environment(peaks, peers, precisions)
        rows = measure(shapes, peaks, peers, repeat_seconds, progress, precisions=precisions)
    out.write(report(rows, env, repeat_seconds))
    if json_path is not None:
        write_json(json_path, rows, env, repeat_seconds)
    if plot_path is not None:
        write_plot(plot_path, rows, env)
    return 0 if all(row.agrees for row in rows) else 1
