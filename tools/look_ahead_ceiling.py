"""How close a batch-1 sequence can come to the benchmark's bound ("% bound") on this machine: for each layer size,
the bound of a step as ``python -m fastlstm bench`` computes it, the time of the look-ahead loop (the step's loads
and multiply-adds and nothing else: no cells, no bookkeeping, no Python; ``_core.calibration``), and the time of a
real forward call, per step, all on one thread.

    python tools/look_ahead_ceiling.py [--sizes 128x128,256x256,512x512] [--steps 100] [--rounds 5]

The bound assumes the arithmetic at the FMA peak and the weight reads at the calibrated read bandwidth, both at
once; the loop shows how much of that the core reaches when it has to do both in one instruction stream, so the
real step's distance from the loop is what its cells and bookkeeping cost. Sizes past the look-ahead's weight limit
(plan.cc: 8 MiB a thread) run the projection ahead of the steps and are not what the loop measures. Run with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE as they are: nothing here calls NumPy's BLAS.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

import fastlstm
from fastlstm import _core
from fastlstm.bench.rows import Row
from fastlstm.bench.shapes import Shape
from fastlstm.bench.timing import Timing, measure_peaks, read_bandwidth


def bound_seconds_per_step(shape: Shape, isa: str, peak_gflops: float) -> float:
    """The bench's bound of a one-thread float32 row (bench.rows.Row.bound_seconds), per step, from the same
    calibration the bench runs: a row of this shape whose timings do not enter the bound."""
    working_set = shape.working_set_bytes(1)
    recurrent_set = shape.recurrent_set_bytes(1) or working_set
    row = Row(
        shape,
        isa,
        1,
        peak_gflops,
        Timing(math.nan, math.nan, 0),
        (),
        bandwidth_gbs=read_bandwidth(1, working_set),
        recurrent_bandwidth_gbs=read_bandwidth(1, recurrent_set),
    )
    return row.bound_seconds / shape.steps


def forward_seconds_per_step(input_size: int, hidden_size: int, steps: int, rounds: int) -> float:
    """Median over ``rounds`` of the median time of back-to-back calls (about 0.1 s each), per step."""
    rng = np.random.default_rng(0)
    model = fastlstm.LSTM(input_size, hidden_size, threads=1)
    x = rng.standard_normal((steps, 1, input_size)).astype(np.float32)
    model(x)
    medians = []
    for _ in range(rounds):
        times = []
        start = time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < 0.1:
            began = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - began)
        medians.append(statistics.median(times))
    return statistics.median(medians) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128x128,256x256,512x512", help="IxH of each layer, comma-separated")
    parser.add_argument("--steps", type=int, default=100, help="T of the forward calls and of the bound")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each timing (the median is kept)")
    args = parser.parse_args()
    isa = fastlstm.active_isa()
    peak = measure_peaks(isa, [1])[1]
    print(f"fastlstm {fastlstm.__version__}   ISA {isa}   1 thread   FMA peak {peak:.1f} GFLOP/s   T={args.steps}")
    print(
        f"{'I x H':>11}  {'bound us':>9}  {'loop us':>8}  {'loop % bound':>12}  {'step us':>8}  "
        f"{'step % bound':>12}  {'step % loop':>11}"
    )
    for size in args.sizes.split(","):
        input_size, hidden_size = (int(value) for value in size.split("x"))
        shape = Shape(1, args.steps, input_size, hidden_size)
        bound = bound_seconds_per_step(shape, isa, peak)
        measure_loop = _core.calibration.look_ahead_loop_step_seconds
        loop = statistics.median(measure_loop(isa, input_size, hidden_size, 0.2) for _ in range(args.rounds))
        step = forward_seconds_per_step(input_size, hidden_size, args.steps, args.rounds)
        print(
            f"{size:>11}  {bound * 1e6:9.2f}  {loop * 1e6:8.2f}  {100 * bound / loop:12.1f}  {step * 1e6:8.2f}  "
            f"{100 * bound / step:12.1f}  {100 * loop / step:11.1f}"
        )


if __name__ == "__main__":
    main()
