"""Paired A/B timing of two builds of fastlstm, for changes that must keep the speed (a refactor, a new compiler flag).

    python tools/ab_compare.py A_DIR B_DIR [--rounds 31] [--rows "1x100x512x512-L1 t1,..."]
                               [--shapes 7x500x50x65-L1,...] [--steps 256x256,...] [--ticks 64x80x256,...]

A_DIR and B_DIR each hold an importable ``fastlstm`` with its built ``_core`` (a checkout's ``src`` after an in-place
build, or a ``site-packages``). One worker process per build keeps its models; each round asks A and B in turn
(alternating who goes first) for the median time of one row over about 40 ms of back-to-back calls, so that a slow
spell of a shared machine falls on both. Per row it prints each side's median and the median of the per-round ratios
B/A. Run it with A_DIR = B_DIR first: the spread of that A/A run is this machine's noise, the yardstick of any B/A.
The rows are the quick matrix of ``python -m fastlstm bench``, the batch-1 rows of ``--full`` and two bidirectional
stacks (the neighbours benchmark's among them), at 1 and 2 threads; ``--shapes`` adds others, and ``--steps`` a
batch-1 stream's step from a state at each IxH ("step 256x256 t1": a whole forward call at T = 1 starts from a zero
state, which skips the recurrent product), and ``--ticks`` one step of S sessions of a pool at each SxIxH ("tick
64x80x256 t1", the sessions opened in order as the bench's streaming section opens them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

#: (batch, steps, input size, hidden size, layers, bidirectional)
SHAPES = [
    (1, 1, 256, 256, 1, False),
    (1, 100, 128, 128, 1, False),
    (1, 100, 256, 256, 1, False),
    (1, 100, 256, 256, 1, True),
    (8, 100, 256, 256, 1, False),
    (64, 50, 256, 256, 1, False),
    (1, 100, 512, 512, 1, False),
    (1, 100, 1024, 1024, 1, False),
    (1, 100, 256, 256, 2, False),
    (3, 100, 255, 255, 1, False),
    # Bidirectional stacks, whose directions two threads take as pieces: the neighbours benchmark's shape, and
    # three small layers (layer buffers and workspaces shared two layers apart).
    (8, 100, 128, 256, 2, True),
    (3, 50, 64, 64, 3, True),
]
ROW_SECONDS = 0.04


def parse_shape(text: str) -> tuple[int, int, int, int, int, bool]:
    """A row's shape as its name reads, without the thread count: BxTxIxH-L<layers>[-bidir]."""
    sizes, *options = text.split("-")
    batch, steps, inputs, hidden = (int(size) for size in sizes.split("x"))
    layers = next((int(option[1:]) for option in options if option.startswith("L")), 1)
    return batch, steps, inputs, hidden, layers, "bidir" in options


def worker(extra: list[str], stream_steps: list[str], ticks: list[str]) -> None:
    """Builds every row's model (SHAPES and the ``extra`` shapes, a stream of batch 1 for each IxH of
    ``stream_steps``, a pool for each SxIxH of ``ticks``), prints the row names, then answers each row index read
    from stdin with the median seconds of one call."""
    import fastlstm

    rows = []
    for batch, steps, inputs, hidden, layers, bidirectional in SHAPES + [parse_shape(text) for text in extra]:
        model = fastlstm.LSTM(inputs, hidden, num_layers=layers, bidirectional=bidirectional, seed=0)
        x = np.random.default_rng(0).standard_normal((steps, batch, inputs)).astype(np.float32)
        name = f"{batch}x{steps}x{inputs}x{hidden}-L{layers}{'-bidir' if bidirectional else ''}"
        rows += [(f"{name} t{threads}", model, x, threads) for threads in (1, 2)]
    for text in stream_steps:
        inputs, hidden = (int(size) for size in text.split("x"))
        # A stream's step from a state that is not zero (a zero state skips the recurrent product).
        stream = fastlstm.LSTM(inputs, hidden, seed=0).stream(1)
        x = np.random.default_rng(0).standard_normal((1, inputs)).astype(np.float32)
        stream.step(x)
        rows += [(f"step {text} t{threads}", stream.step, x, threads) for threads in (1, 2)]
    for text in ticks:
        sessions, inputs, hidden = (int(size) for size in text.split("x"))
        pool = fastlstm.LSTM(inputs, hidden, seed=0).sessions(sessions)
        ids = np.array([pool.open() for _ in range(sessions)], np.int64)
        x = np.random.default_rng(0).standard_normal((sessions, inputs)).astype(np.float32)
        pool.step(ids, x)

        def tick(x, threads, pool=pool, ids=ids):
            return pool.step(ids, x, threads=threads)

        rows += [(f"tick {text} t{threads}", tick, x, threads) for threads in (1, 2)]
    print(json.dumps([row[0] for row in rows]), flush=True)
    for line in sys.stdin:
        _, call, x, threads = rows[int(line)]
        call(x, threads=threads)
        times: list[float] = []
        end = time.perf_counter() + ROW_SECONDS
        while len(times) < 3 or time.perf_counter() < end:
            start = time.perf_counter()
            call(x, threads=threads)
            times.append(time.perf_counter() - start)
        print(float(np.median(times)), flush=True)


def _spawn(source: str, extra: list[str], steps: list[str], ticks: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(source))
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps([extra, steps, ticks])]
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ask(process: subprocess.Popen, row: int) -> float:
    process.stdin.write(f"{row}\n")
    process.stdin.flush()
    return float(process.stdout.readline())


def compare(
    a_dir: str, b_dir: str, rounds: int, only: list[str] | None, extra: list[str], steps: list[str], ticks: list[str]
) -> None:
    a, b = _spawn(a_dir, extra, steps, ticks), _spawn(b_dir, extra, steps, ticks)
    names = json.loads(a.stdout.readline())
    if json.loads(b.stdout.readline()) != names:
        raise SystemExit("the two builds list different rows")
    chosen = [i for i, name in enumerate(names) if not only or name in only]
    times: dict[int, tuple[list[float], list[float]]] = {i: ([], []) for i in chosen}
    for round_index in range(rounds):
        for i in chosen:
            order = (a, b) if (round_index + i) % 2 == 0 else (b, a)
            measured = {id(process): _ask(process, i) for process in order}
            times[i][0].append(measured[id(a)])
            times[i][1].append(measured[id(b)])
    print(f"{'row':30s} {'A ms':>9s} {'B ms':>9s} {'median B/A':>10s}  ({rounds} rounds)")
    for i in chosen:
        a_times, b_times = np.array(times[i][0]), np.array(times[i][1])
        ratio = float(np.median(b_times / a_times))
        print(f"{names[i]:30s} {np.median(a_times) * 1e3:9.4f} {np.median(b_times) * 1e3:9.4f} {ratio:10.3f}")


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(*json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_dir")
    parser.add_argument("b_dir")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--rows", help="comma-separated row names, as printed (default: every row)")
    parser.add_argument(
        "--shapes", default="", help="comma-separated shapes to add to the rows, as a row names them: 7x500x50x65-L1"
    )
    parser.add_argument(
        "--steps",
        default="",
        help="comma-separated IxH: rows of a batch-1 stream's step from a state, 'step 256x256 t1'",
    )
    parser.add_argument(
        "--ticks", default="", help="comma-separated SxIxH: rows of one step of S sessions, 'tick 64x80x256 t1'"
    )
    args = parser.parse_args()
    extra = [text for text in args.shapes.split(",") if text]
    steps = [text for text in args.steps.split(",") if text]
    ticks = [text for text in args.ticks.split(",") if text]
    only = args.rows.split(",") if args.rows else None
    compare(args.a_dir, args.b_dir, args.rounds, only, extra, steps, ticks)


if __name__ == "__main__":
    main()
