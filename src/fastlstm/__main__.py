"""Command line: ``python -m fastlstm bench [options]``, ``python -m fastlstm predict MODEL INPUT OUTPUT
[options]``. Each command's module adds its arguments to the parser built here and runs them (``bench``:
fastlstm.bench.cli; ``predict``: fastlstm.predict_cli, which imports Dask only when it runs)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import predict_cli
from .bench import cli as bench_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastlstm", description="fastlstm command-line tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_cli.add_command(commands)
    predict_cli.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
