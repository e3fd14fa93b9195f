"""Command line: ``python -m fastlstm bench [options]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import fastlstm

from . import bench


def _shapes(text: str) -> list[bench.Shape]:
    try:
        return bench.parse_shapes(text)
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


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastlstm", description="fastlstm command-line tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = commands.add_parser(
        "bench",
        help="time fastlstm against NumPy (and other installed runtimes) over a matrix of shapes",
        description=(
            "Time fastlstm against the other LSTM implementations installed (NumPy always) on the same weights and "
            "input, after checking that their outputs agree. Progress goes to stderr, the report to stdout. "
            "Exit status 1 when some output disagrees."
        ),
    )
    which = command.add_mutually_exclusive_group()
    which.add_argument(
        "--full", action="store_true", help="the full shape matrix: also larger sizes, bidirectional and 2 layers"
    )
    which.add_argument(
        "--shapes",
        type=_shapes,
        metavar="BxTxH,...",
        help="only these shapes: batch x steps x hidden size (input size = hidden size), e.g. 1x100x256,8x100x512",
    )
    command.add_argument(
        "--repeat-seconds",
        type=_positive_float,
        default=0.2,
        metavar="S",
        help=f"time each implementation for at least S seconds and {bench.MIN_RUNS} runs (default: %(default)s)",
    )
    command.add_argument(
        "--isa", choices=fastlstm.available_isas(), help=f"fastlstm kernel variant (default: {fastlstm.active_isa()})"
    )
    command.add_argument(
        "--threads", type=_positive_int, metavar="N", help="fastlstm threads per call (default: chosen per shape)"
    )
    command.add_argument(
        "--json", type=Path, metavar="FILE", help="also write every result and the environment as JSON"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    shapes = args.shapes or (bench.FULL_SHAPES if args.full else bench.QUICK_SHAPES)
    return bench.run(
        shapes, repeat_seconds=args.repeat_seconds, isa=args.isa, threads=args.threads, json_path=args.json
    )


if __name__ == "__main__":
    sys.exit(main())
