"""Live streams, one thread (``python -m fastlstm bench --streaming`` prints the same cases as tables):

- a step from a kept state at batch 1: fastlstm's ``stream.step`` against torch's ``LSTMCell`` and ``LSTM`` with
  ``hx`` and onnxruntime's LSTM node with ``initial_h`` / ``initial_c``, per size (compare within a group);
- a tick of S live sessions, a frame each: one ``Sessions.step`` against S ``stream(1).step`` calls and S torch
  ``LSTMCell`` calls (extra_info: frames per second, the tick's GFLOP/s);
- 256 producer threads through the dynamic batcher against full-batch ``Sessions.step`` calls.

    python -m pytest benchmarks/bench_streaming.py
"""

from __future__ import annotations

import numpy as np
import pytest

import fastlstm
from fastlstm.bench import streaming
from fastlstm.bench.step_peers import STEP_PEERS, STEP_TOLERANCE, StepPeer, step_difference

PEERS = {peer.name: peer for peer in STEP_PEERS}


def _peer(name: str) -> StepPeer:
    peer = PEERS[name]
    for module in peer.modules:
        pytest.importorskip(module)
    return peer


@pytest.mark.parametrize("size", streaming.LATENCY_SIZES, ids=lambda size: f"I{size[0]}-H{size[1]}")
@pytest.mark.parametrize("implementation", list(PEERS))
def test_step_from_a_state(benchmark, implementation: str, size: tuple[int, int]) -> None:
    peer = _peer(implementation)
    model = fastlstm.LSTM(*size, seed=0, threads=1)
    with peer.limit_threads(1):
        assert step_difference(peer, model) < STEP_TOLERANCE
        step = peer.build(model, 1)[0]
        x = np.random.default_rng(0).standard_normal((1, size[0])).astype(np.float32)
        benchmark.group = f"step from a state, B=1, I={size[0]} H={size[1]}, 1 thread"
        benchmark.extra_info.update(implementation=implementation, input_size=size[0], hidden_size=size[1])
        benchmark(step, x)


def _tick(benchmark, model: fastlstm.LSTM, sessions: int, implementation: str) -> None:
    peers = [] if implementation == "fastlstm sessions" else [_peer(implementation)]
    tick = streaming._tick_functions(model, sessions, peers)[implementation]
    limit = peers[0].limit_threads if peers else STEP_PEERS[0].limit_threads
    input_size, hidden = model.input_size, model.hidden_size
    benchmark.group = f"a tick of {sessions} sessions, I={input_size} H={hidden}, 1 thread"
    with limit(1):
        benchmark.pedantic(tick, warmup_rounds=1, rounds=10 if sessions * hidden < 100_000 else 3)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        implementation=implementation,
        sessions=sessions,
        frames_per_second=sessions / seconds,
        gflops=8.0 * hidden * (input_size + hidden) * sessions / seconds / 1e9,
    )


@pytest.mark.parametrize("sessions", streaming.SESSION_COUNTS)
@pytest.mark.parametrize("implementation", ["fastlstm sessions", "fastlstm stream", "torch LSTMCell"])
def test_tick(benchmark, implementation: str, sessions: int) -> None:
    _tick(benchmark, fastlstm.LSTM(*streaming.SESSIONS_SIZE, seed=0, threads=1), sessions, implementation)


@pytest.mark.parametrize("implementation", ["fastlstm sessions", "fastlstm stream"])
def test_tick_of_a_large_model(benchmark, implementation: str) -> None:
    input_size, hidden, sessions = streaming.GAIN_CASES[1]
    _tick(benchmark, fastlstm.LSTM(input_size, hidden, seed=0, threads=1), sessions, implementation)


@pytest.mark.parametrize("through", ["batcher, threads", "batcher, asyncio tasks", "direct"])
def test_256_producers(benchmark, through: str) -> None:
    """One call: every one of 256 sessions steps FRAMES_PER_PRODUCER frames, through the batcher (a producer
    thread or asyncio task per session) or as full-batch steps."""
    producers, frames = streaming.PRODUCERS, streaming.FRAMES_PER_PRODUCER
    model = fastlstm.LSTM(*streaming.SESSIONS_SIZE, seed=0, threads=1)
    x = np.random.default_rng(2).standard_normal((producers, model.input_size)).astype(np.float32)
    pool = model.sessions(producers)
    ids = np.array([pool.open() for _ in range(producers)], np.int64)
    waits: list[float] = []

    def direct() -> None:
        for _ in range(frames):
            pool.step(ids, x)

    max_batch = streaming.batcher_max_batch(producers)
    rounds = {
        "batcher, threads": lambda: streaming._batcher_round(pool, ids, x, frames, waits, max_batch),
        "batcher, asyncio tasks": lambda: streaming._batcher_async_round(pool, ids, x, frames, waits, max_batch),
        "direct": direct,
    }
    run = rounds[through]
    benchmark.group = f"{producers} sessions x {frames} frames, I={model.input_size} H={model.hidden_size}, 1 thread"
    benchmark.pedantic(run, warmup_rounds=1, rounds=5)
    benchmark.extra_info.update(frames_per_second=producers * frames / benchmark.stats.stats.median)
    if waits:
        benchmark.extra_info.update(wait_median=float(np.median(waits)), wait_p99=float(np.percentile(waits, 99)))
