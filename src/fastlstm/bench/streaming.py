"""``python -m fastlstm bench --streaming``: live streams, one thread. Three tables:

1. Latency of one step from a kept state at batch 1 (median and p99 of single calls, NumPy in and out, the timer's
   own ~0.1 us included), fastlstm's ``stream.step`` against torch's ``LSTMCell`` and ``LSTM`` with ``hx`` and
   onnxruntime's LSTM node with ``initial_h`` / ``initial_c``; and fastlstm's median as a percentage of the step's
   bound (step_bound_seconds).
2. Session throughput: frames per second with S live sessions, each with a frame every tick, stepped as one
   ``Sessions.step`` (the tick), as S ``stream(1).step`` calls, and as S torch ``LSTMCell`` calls.
3. The dynamic batcher: PRODUCERS threads (then as many asyncio tasks) each submitting a frame and waiting for its
   output, against the same sessions stepped directly in full batches; and the p99 of a frame's wait. And the gain
   of one tick over as many stream steps (GAIN_CASES) at 1 and 2 threads.

The implementations of a table take turns (ROUNDS rounds, rotating), so that a slow spell of a shared machine falls
on all of them alike; figures are medians over the rounds."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TextIO

import numpy as np

import fastlstm

from .machine import cpu_model
from .plot import write_streaming_plot
from .report import unscaled_peak_notes
from .step_peers import STEP_PEERS, STEP_TOLERANCE, StepPeer, step_difference
from .timing import measure_peaks, read_bandwidth

ROUNDS = 5
#: (input, hidden) of the latency table: a tiny model (the per-call overhead), a speech front end, a square one whose
#: weights (2 MiB) are twice a core's L2, and one that streams 20 MiB from L3.
LATENCY_SIZES = ((8, 8), (80, 256), (256, 256), (256, 1024))
#: Seconds of single calls per implementation, size and round (at least LATENCY_MIN_CALLS calls).
LATENCY_SECONDS = 0.05
LATENCY_MIN_CALLS = 20
#: (input, hidden) of the throughput and batcher tables, and the live session counts.
SESSIONS_SIZE = (80, 256)
SESSION_COUNTS = (1, 16, 64, 256)
#: (input, hidden, sessions) of the gain lines: one tick against as many stream steps, at 1 and 2 threads. 64 sessions
#: of the speech front end, and 256 of a large model, whose tick is compute-bound (its bound: the FMA peak).
GAIN_CASES = ((80, 256, 64), (1024, 1024, 256))
GAIN_THREADS = (1, 2)
PRODUCERS = 256
FRAMES_PER_PRODUCER = 50  # a round of 256 x 50 frames lasts 0.1 s and more: long enough to outlast a host hiccup


def _rotations(names: list[str], rounds: int) -> list[list[str]]:
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(rounds)]


def _single_calls(step: Callable[[np.ndarray], object], x: np.ndarray, seconds: float) -> list[float]:
    step(x)  # warm: the first call pays for caches and workspaces
    times, end = [], time.perf_counter() + seconds
    while len(times) < LATENCY_MIN_CALLS or time.perf_counter() < end:
        start = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - start)
    return times


def _p99(times: list[float]) -> float:
    return float(np.percentile(times, 99))


def measure_latency(
    peers: list[StepPeer], sizes=LATENCY_SIZES, rounds: int = ROUNDS, seconds: float = LATENCY_SECONDS
) -> dict[tuple[int, int], dict[str, tuple[float, float]]]:
    """{(I, H): {peer: (median, p99) seconds of one step}}, one thread."""
    results = {}
    for input_size, hidden in sizes:
        model = fastlstm.LSTM(input_size, hidden, seed=0, threads=1)
        x = np.random.default_rng(0).standard_normal((1, input_size)).astype(np.float32)
        for peer in peers:  # checked before timed
            with peer.limit_threads(1):
                difference = step_difference(peer, model)
            if not difference < STEP_TOLERANCE:
                where = f"I={input_size}, H={hidden}"
                raise RuntimeError(f"{peer.name}'s step differs from fastlstm's by {difference:.2e} at {where}")
        steps = {peer.name: (peer, peer.build(model, 1)[0]) for peer in peers}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for order in _rotations(list(steps), rounds):
            for name in order:
                peer, step = steps[name]
                with peer.limit_threads(1):
                    times[name] += _single_calls(step, x, seconds)
        results[(input_size, hidden)] = {name: (statistics.median(t), _p99(t)) for name, t in times.items()}
    return results


def step_weight_bytes(input_size: int, hidden: int) -> int:
    """Bytes of float32 weights that one step from a state reads: all of them, input and recurrent (4H x (I + H))."""
    return 4 * 4 * hidden * (input_size + hidden)


def measure_step_bandwidths(sizes, before: dict[tuple[int, int], float] | None = None) -> dict[tuple[int, int], float]:
    """{(I, H): GB/s} that our read-bandwidth calibration kernel reads, on one thread, from a working set of a
    step's weights; with ``before``, the better of it and this reading. Measured before and after the latency
    table and the best kept, as the batch-1 rows do (rows.measure_rows): a slow spell of the shared machine makes
    one reading low, which would make the bound look reachable when it is not."""
    before = before or {}
    return {size: max(before.get(size, 0.0), read_bandwidth(1, step_weight_bytes(*size))) for size in sizes}


def step_bound_seconds(input_size: int, hidden: int, bandwidth_gbs: float, peak_gflops: float) -> float:
    """The least time one step from a state at batch 1 can take on one thread: the larger of its arithmetic at the
    FMA peak and its weights read once at the read bandwidth measured for them (the two can proceed at once). The
    cell's element-wise arithmetic and the call's own cost are left out, so the bound is not reachable exactly."""
    arithmetic = _flops(input_size, hidden, 1) / (peak_gflops * 1e9)
    traffic = step_weight_bytes(input_size, hidden) / (bandwidth_gbs * 1e9)
    return max(arithmetic, traffic)


def _ticks(ticks: dict[str, Callable[[], object]], rounds: int, limits: dict[str, Callable]) -> dict[str, float]:
    """Median seconds of each tick function over ``rounds`` rotating rounds (a warm-up call first)."""
    times: dict[str, list[float]] = {name: [] for name in ticks}
    for name, tick in ticks.items():
        with limits[name](1):
            tick()
    for order in _rotations(list(ticks), rounds):
        for name in order:
            with limits[name](1):
                start = time.perf_counter()
                ticks[name]()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _tick_functions(model: fastlstm.LSTM, sessions: int, peers: list[StepPeer]) -> dict[str, Callable[[], object]]:
    """A tick of ``sessions`` sessions with a frame each: one pool step, and every peer stepping each session."""
    frames = np.random.default_rng(1).standard_normal((sessions, model.input_size)).astype(np.float32)
    rows = [frames[i : i + 1] for i in range(sessions)]
    pool = model.sessions(sessions)
    ids = np.array([pool.open() for _ in range(sessions)], np.int64)
    ticks: dict[str, Callable[[], object]] = {"fastlstm sessions": lambda: pool.step(ids, frames)}
    for peer in peers:
        steps = peer.build(model, sessions)
        ticks[peer.name] = lambda steps=steps: [step(row) for step, row in zip(steps, rows)]
    return ticks


def measure_throughput(
    peers: list[StepPeer], size=SESSIONS_SIZE, counts=SESSION_COUNTS, rounds: int = ROUNDS
) -> dict[int, dict[str, float]]:
    """{sessions: {implementation: median seconds per tick}}, one thread: the pool against each of ``peers``."""
    model = fastlstm.LSTM(*size, seed=0, threads=1)
    limits = {peer.name: peer.limit_threads for peer in peers} | {"fastlstm sessions": STEP_PEERS[0].limit_threads}
    return {sessions: _ticks(_tick_functions(model, sessions, peers), rounds, limits) for sessions in counts}


def batcher_max_batch(producers: int) -> int:
    """The batcher's max_batch for ``producers`` that each wait for their output before sending the next frame: half
    of them. A step of all of them would wait for every producer's Python, and they for it: the two would take turns.
    Two half steps overlap, one computing on the batcher's C++ thread while the other half's Python runs."""
    return max(1, producers // 2)


def _run_together(workers: list[threading.Thread], start_line: threading.Barrier) -> float:
    """Starts the threads, which wait at ``start_line`` with this one; returns the seconds from there until the
    last has ended."""
    for worker in workers:
        worker.start()
    start_line.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def _batcher_round(pool, ids: np.ndarray, x: np.ndarray, frames: int, waits: list[float], max_batch: int) -> float:
    """Frames per second of one producer thread per session of ``ids``, each submitting ``frames`` frames one
    after the other through a batcher over ``pool`` with ``max_batch``; appends each frame's wait."""
    start_line = threading.Barrier(ids.size + 1)
    with pool.batcher(max_batch=max_batch) as batcher:

        def produce(session: int) -> None:
            id, frame = int(ids[session]), x[session]  # a producer holds its id and frame: no NumPy indexing timed
            start_line.wait()
            for _ in range(frames):
                submitted = time.perf_counter()
                batcher.submit(id, frame).result()
                waits.append(time.perf_counter() - submitted)

        workers = [threading.Thread(target=produce, args=(session,)) for session in range(ids.size)]
        return ids.size * frames / _run_together(workers, start_line)


def _batcher_async_round(
    pool, ids: np.ndarray, x: np.ndarray, frames: int, waits: list[float], max_batch: int
) -> float:
    """``_batcher_round`` with one asyncio task per session instead of a thread."""

    async def produce(batcher, session: int) -> None:
        id, frame = int(ids[session]), x[session]
        for _ in range(frames):
            submitted = time.perf_counter()
            await batcher.submit_async(id, frame)
            waits.append(time.perf_counter() - submitted)

    async def all_sessions() -> float:
        with pool.batcher(max_batch=max_batch) as batcher:
            start = time.perf_counter()
            await asyncio.gather(*(produce(batcher, session) for session in range(ids.size)))
            return ids.size * frames / (time.perf_counter() - start)

    return asyncio.run(all_sessions())


def _thread_floor_round(producers: int, frames: int, max_batch: int) -> float:
    """Frames per second of ``producers`` threads that each hand a frame over and wait on a concurrent Future, which
    one thread settles ``max_batch`` at a time, with nothing computed: what CPython's threads cost a batcher before
    any step (each frame wakes its thread, which must take the GIL back)."""
    ready = threading.Condition()
    pending: list[Future] = []
    producing = [producers]
    start_line = threading.Barrier(producers + 2)

    def settle() -> None:
        start_line.wait()
        while True:
            with ready:
                # A batch, or every producer still running waiting (each has at most one frame pending).
                ready.wait_for(lambda: len(pending) >= min(max_batch, producing[0]))
                if not producing[0]:
                    return
                batch = pending[:max_batch]
                del pending[:max_batch]
            for future in batch:
                future.set_result(None)

    def produce() -> None:
        start_line.wait()
        for _ in range(frames):
            future: Future = Future()
            with ready:
                pending.append(future)
                if len(pending) >= min(max_batch, producing[0]):
                    ready.notify()
            future.result()
        with ready:
            producing[0] -= 1
            ready.notify()

    workers = [threading.Thread(target=produce) for _ in range(producers)] + [threading.Thread(target=settle)]
    return producers * frames / _run_together(workers, start_line)


def measure_batcher(
    size=SESSIONS_SIZE, producers: int = PRODUCERS, frames: int = FRAMES_PER_PRODUCER, rounds: int = ROUNDS
) -> dict[str, float]:
    """Frames per second of ``producers`` threads through a batcher (``_batcher_round``) against full-batch
    ``pool.step`` calls of the same sessions, and the median and p99 of a frame's wait, one thread; taking turns. The
    batcher's max_batch: ``batcher_max_batch``."""
    max_batch = batcher_max_batch(producers)
    model = fastlstm.LSTM(*size, seed=0, threads=1)
    x = np.random.default_rng(2).standard_normal((producers, size[0])).astype(np.float32)
    pool = model.sessions(producers)
    ids = np.array([pool.open() for _ in range(producers)], np.int64)

    def direct() -> float:
        start = time.perf_counter()
        for _ in range(frames):
            pool.step(ids, x)
        return producers * frames / (time.perf_counter() - start)

    # Each way is timed right after a round of direct steps, and compared with it: this host's speed drifts by
    # tens of percent within seconds, so rates measured a second apart would compare two different machines.
    rates: dict[str, list[float]] = {"direct": [], "batcher": [], "tasks": [], "thread_floor": []}
    ratios: dict[str, list[float]] = {"batcher": [], "tasks": [], "thread_floor": []}
    waits: list[float] = []
    task_waits: list[float] = []
    ways = {
        "batcher": lambda: _batcher_round(pool, ids, x, frames, waits, max_batch),
        "tasks": lambda: _batcher_async_round(pool, ids, x, frames, task_waits, max_batch),
        "thread_floor": lambda: _thread_floor_round(producers, frames, max_batch),
    }
    for _ in range(rounds):
        for name, way in ways.items():
            reference = direct()
            rate = way()
            rates["direct"].append(reference)
            rates[name].append(rate)
            ratios[name].append(rate / reference)
    return {
        **{name: statistics.median(values) for name, values in rates.items()},
        **{f"{name}_ratio": statistics.median(values) for name, values in ratios.items()},
        "max_batch": max_batch,
        "producers": producers,
        "frames": frames,
        "task_wait_p99": _p99(task_waits),
        "wait_median": statistics.median(waits),
        "wait_p99": _p99(waits),
    }


def _flops(input_size: int, hidden: int, rows: int) -> float:
    return 8.0 * hidden * (input_size + hidden) * rows


def streaming_report(
    latency, throughput, gains, batcher, peaks: dict[int, float], bandwidths: dict[tuple[int, int], float]
) -> str:
    lines = ["Live streams, 1 thread", "", "Step from a kept state, B=1: median / p99 us per call"]
    names = list(next(iter(latency.values())))
    lines.append(f"{'I x H':>11s}" + "".join(f" {name:>22s}" for name in names) + f" {'bound us':>9s} {'% bound':>8s}")
    for (input_size, hidden), by_name in latency.items():
        cells = "".join(f" {f'{m * 1e6:.2f} / {p * 1e6:.2f}':>22s}" for m, p in by_name.values())
        bound = step_bound_seconds(input_size, hidden, bandwidths[(input_size, hidden)], peaks[1])
        percent = 100 * bound / by_name["fastlstm stream"][0]
        lines.append(f"{f'{input_size} x {hidden}':>11s}" + cells + f" {bound * 1e6:9.2f} {percent:7.0f}%")
    lines.append(
        "bound: the least time of fastlstm's step on one thread, the larger of its arithmetic at the FMA peak and its "
        "weights, 16 H (I + H) bytes, read once at the read bandwidth measured for them; % bound: the bound / "
        "fastlstm's median"
    )
    input_size, hidden = SESSIONS_SIZE
    lines += ["", f"Sessions, I={input_size} H={hidden}: frames per second (every session a frame per tick)"]
    names = list(next(iter(throughput.values())))
    lines.append(f"{'sessions':>8s}" + "".join(f" {name:>20s}" for name in names) + f" {'tick GFLOP/s':>13s}")
    for sessions, by_name in throughput.items():
        cells = "".join(f" {sessions / seconds:20,.0f}" for seconds in by_name.values())
        gflops = _flops(input_size, hidden, sessions) / by_name["fastlstm sessions"] / 1e9
        lines.append(f"{sessions:8d}" + cells + f" {gflops:13.1f}")
    for (input_size, hidden, sessions, threads), (tick, streams) in gains.items():
        gflops = _flops(input_size, hidden, sessions) / tick / 1e9
        lines.append(
            f"{sessions} sessions, I={input_size} H={hidden}, {threads} thread{'s' if threads > 1 else ''}: one tick "
            f"{tick * 1e6:,.0f} us vs {sessions} stream steps {streams * 1e6:,.0f} us: {streams / tick:.2f}x; the tick "
            f"at {gflops:.0f} GFLOP/s, {gflops / peaks[threads]:.0%} of the FMA peak ({peaks[threads]:.0f} GFLOP/s)"
        )
    lines += unscaled_peak_notes(peaks)
    if batcher:
        b = batcher
        lines += [
            "",
            f"Batcher (max_batch={b['max_batch']}), {b['producers']} producer threads, {b['frames']} frames each: "
            f"{b['batcher']:,.0f} frames/s vs {b['direct']:,.0f} in direct full-batch steps "
            f"({b['batcher_ratio']:.0%}, median of the rounds' ratios); a frame's wait: median "
            f"{b['wait_median'] * 1e3:.2f} ms, p99 {b['wait_p99'] * 1e3:.2f} ms",
            f"Batcher, {b['producers']} asyncio tasks: {b['tasks']:,.0f} frames/s ({b['tasks_ratio']:.0%} of direct); "
            f"p99 wait {b['task_wait_p99'] * 1e3:.2f} ms",
            f"CPython's floor for {b['producers']} threads, each waiting on a Future settled {b['max_batch']} at a "
            f"time with no step at all: {b['thread_floor']:,.0f} frames/s ({b['thread_floor_ratio']:.0%} of direct; "
            f"the batcher's threads reach {b['batcher'] / b['thread_floor']:.0%} of it)",
        ]
    return "\n".join(lines) + "\n"


def measure_gains(cases=GAIN_CASES, thread_counts=GAIN_THREADS, rounds: int = 3) -> dict[tuple, tuple[float, float]]:
    """{(input, hidden, sessions, threads): (tick, stream steps) median seconds}."""
    gains = {}
    for input_size, hidden, sessions in cases:
        for threads in thread_counts:
            model = fastlstm.LSTM(input_size, hidden, seed=0, threads=threads)
            ticks = _tick_functions(model, sessions, [STEP_PEERS[0]])
            times = _ticks(ticks, rounds, dict.fromkeys(ticks, STEP_PEERS[0].limit_threads))
            gains[(input_size, hidden, sessions, threads)] = (times["fastlstm sessions"], times["fastlstm stream"])
    return gains


def run_streaming(
    out: TextIO | None = None, progress: TextIO | None = None, quick: bool = False, plot_path: Path | None = None
) -> int:
    """Measures the three tables (``quick``: fewer sizes and rounds, for the tests) and prints them to ``out``;
    with ``plot_path``, also draws the first two (plot.write_streaming_plot)."""
    out, progress = out or sys.stdout, progress or sys.stderr
    peers = [peer for peer in STEP_PEERS if peer.is_available()]
    rounds = 2 if quick else ROUNDS
    print("streaming: latency ...", file=progress, flush=True)
    sizes = LATENCY_SIZES[:1] if quick else LATENCY_SIZES
    bandwidths = measure_step_bandwidths(sizes)
    latency = measure_latency(peers, sizes, rounds)
    bandwidths = measure_step_bandwidths(sizes, before=bandwidths)
    print("streaming: sessions ...", file=progress, flush=True)
    per_session = [peer for peer in peers if peer.name in ("fastlstm stream", "torch LSTMCell")]
    throughput = measure_throughput(per_session, counts=(1, 64) if quick else SESSION_COUNTS, rounds=rounds)
    thread_counts = [threads for threads in GAIN_THREADS if threads <= (os.cpu_count() or 1)]
    gains = measure_gains(GAIN_CASES[:1], thread_counts[:1], 1) if quick else measure_gains(thread_counts=thread_counts)
    print("streaming: batcher ...", file=progress, flush=True)
    batcher = measure_batcher(
        producers=16 if quick else PRODUCERS, frames=3 if quick else FRAMES_PER_PRODUCER, rounds=rounds
    )
    peaks = measure_peaks(fastlstm.active_isa(), thread_counts)
    out.write(streaming_report(latency, throughput, gains, batcher, peaks, bandwidths))
    if plot_path is not None:
        title = f"fastlstm {fastlstm.__version__} ({fastlstm.active_isa()}), {cpu_model()}, 1 thread"
        write_streaming_plot(plot_path, latency, throughput, title)
    return 0
