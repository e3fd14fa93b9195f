"""Timing the implementations of a row, and the calibration kernels that give the machine's ceilings: the FMA peak
("% peak") and the read bandwidth of a working set (the batch-1 bound). This module is the one place that calls the
calibration kernels of ``_core``."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import fastlstm

from .. import _core
from .peers import Forward

#: Timed runs per implementation and shape: at least MIN_RUNS for a meaningful median, at most MAX_RUNS so that a
#: call of a few microseconds does not loop for the whole repeat time.
MIN_RUNS = 5
MAX_RUNS = 10_000
#: Rounds in which the implementations of a row take turns, and the untimed warm-up of each turn as a fraction of
#: its timed part (see time_interleaved).
ROUNDS = 4
WARM_UP_FRACTION = 0.5
#: Idle time before each turn. Measured on an otherwise idle 2-core machine: onnxruntime's spinning workers made the
#: next 10 calls of a 2-thread fastlstm 2.3x slower with no pause, and not at all after 10 ms
#: (``python -m pytest benchmarks -k right_after_onnxruntime`` times those calls after each pause).
SETTLE_SECONDS = 0.05
#: Seconds of the FMA calibration kernel per thread count and attempt, for "% peak".
PEAK_SECONDS = 0.3
#: Attempts at a thread count's peak, the best kept. This virtual machine's host sometimes takes part of a CPU, or
#: runs both CPUs on one physical core, for a second or so: single attempts measured the 1-thread peak at 86 GFLOP/s
#: and the 2-thread one at 117 (one core's; 115 and 230 otherwise), and rows then read 120% or 170% of "peak".
#: Attempts stop once the best two agree within PEAK_AGREEMENT and, for a larger count, the best reaches
#: PEAK_SCALING of the count times the smallest count's per-thread rate.
PEAK_ATTEMPTS = 6
PEAK_AGREEMENT = 0.05
PEAK_SCALING = 0.9
#: Seconds of the read-bandwidth calibration kernel per working set, for the batch-1 bound ("% bound").
BANDWIDTH_SECONDS = 0.1


@dataclass(frozen=True)
class Timing:
    median_seconds: float
    min_seconds: float
    runs: int


def time_interleaved(forwards: dict[str, Forward], x: np.ndarray, repeat_seconds: float) -> dict[str, Timing]:
    """Time each of ``forwards`` on ``x`` for at least ``repeat_seconds`` and MIN_RUNS runs (at most MAX_RUNS),
    in ROUNDS rounds that take the implementations in turn (in a rotating order): a slow spell of the shared machine
    then falls on all of them alike instead of on whichever was being timed, so their ratios hold. Each turn starts
    with SETTLE_SECONDS of sleep, for the worker threads of the previous runtime, which spin on the cores for a
    while after their last call, to go idle; then untimed calls, at least one and WARM_UP_FRACTION of the turn's
    time: the first calls pay for caches that the previous implementation filled, for first touch of buffers, and
    for a thread count that just changed (torch's OpenMP team)."""
    names = list(forwards)
    turn_seconds = repeat_seconds / ROUNDS
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(ROUNDS):
        rotated = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in rotated:
            forward, runs = forwards[name], times[name]
            time.sleep(SETTLE_SECONDS)
            warm_up_end = time.perf_counter() + WARM_UP_FRACTION * turn_seconds
            forward(x)
            while time.perf_counter() < warm_up_end:
                forward(x)
            # This turn's share of the runs: the rest of MIN_RUNS spread over the rounds left.
            minimum_runs = max(1, math.ceil((MIN_RUNS - len(runs)) / (ROUNDS - round_number)))
            turn_end = time.perf_counter() + turn_seconds
            done = 0
            while done < minimum_runs or (time.perf_counter() < turn_end and len(runs) < MAX_RUNS):
                start = time.perf_counter()
                forward(x)
                runs.append(time.perf_counter() - start)
                done += 1
    return {name: Timing(statistics.median(runs), min(runs), len(runs)) for name, runs in times.items()}


def peak_scales(gflops: float, threads: int, per_thread: float) -> bool:
    """Whether ``threads`` threads' FMA peak ``gflops`` reaches PEAK_SCALING of that many times the smallest count's
    per-thread rate ``per_thread``: short of it, something else had some of the CPUs."""
    return gflops >= PEAK_SCALING * threads * per_thread


def measure_peaks(
    isa: str, thread_counts: Sequence[int], measure: Callable[[str, int, float], float] | None = None
) -> dict[int, float]:
    """GFLOP/s of our FMA calibration kernel for ``isa`` at each thread count: the ceiling of "% peak". Each count
    is measured until its best two attempts agree (and a larger count scales from the smallest one's per-thread
    rate), at most PEAK_ATTEMPTS times; the best is kept. ``measure``: the calibration (tests replace it)."""
    measure = measure or _core.calibration.fma_peak_gflops
    peaks: dict[int, float] = {}
    per_thread = None
    for threads in sorted(set(thread_counts)):
        attempts: list[float] = []
        while len(attempts) < PEAK_ATTEMPTS:
            attempts.append(measure(isa, threads, PEAK_SECONDS))
            best, second = sorted(attempts, reverse=True)[:2] if len(attempts) > 1 else (attempts[0], 0.0)
            agree = second >= (1 - PEAK_AGREEMENT) * best
            scales = per_thread is None or peak_scales(best, threads, per_thread)
            if agree and scales:
                break
        peaks[threads] = max(attempts)
        if per_thread is None:
            per_thread = peaks[threads] / threads
    return {threads: peaks[threads] for threads in thread_counts}


def read_bandwidth(threads: int, bytes_per_thread: int) -> float:
    """GB/s that ``threads`` threads of our read-bandwidth calibration kernel for the active ISA read, each from a
    working set of ``bytes_per_thread`` bytes."""
    time.sleep(SETTLE_SECONDS)  # after a runtime's timing: its worker threads may still spin on the cores
    return _core.calibration.read_bandwidth_gbs(
        fastlstm.active_isa(), threads, bytes_per_thread, seconds=BANDWIDTH_SECONDS
    )
