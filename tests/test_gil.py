"""The whole sequence runs in C++: the GIL is released during the call, and no Python code runs per step.

GIL: a background thread counts in a pure-Python loop while the main thread runs a long call. Whenever the main
thread holds the GIL the counter stands still (apart from the 5 ms switch interval slices CPython hands out between
bytecodes, which a call into C does not reach); while the GIL is released it counts about as fast as when the main
thread sleeps. The control test shows that the measurement tells the two apart.

Per step: a profile hook on the calling thread counts the Python function calls and C calls made from Python during
one model call; the count must not depend on the number of steps. The control is the NumPy reference, which loops
over the steps in Python.
"""

from __future__ import annotations

import gc
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

import fastlstm

#: how long the released call should last: long against the 5 ms switch interval, short for a test suite
TARGET_SECONDS = 0.3
#: while the GIL is released the counter must run at least this fraction of its free speed
MIN_SHARE_WHEN_RELEASED = 0.2


class CountingThread:
    """A daemon thread that increments ``count`` in a pure-Python loop until the context exits."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.count += 1

    def __enter__(self) -> CountingThread:
        self._thread.start()
        while self.count == 0:
            time.sleep(0.001)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def advance_during(self, call: Callable[[], object]) -> tuple[int, float]:
        """(counts made by this thread, seconds) while ``call()`` runs in the calling thread."""
        before = self.count
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        return self.count - before, elapsed

    def free_rate(self) -> float:
        """Counts per second while the calling thread sleeps (and so does not hold the GIL)."""
        counts, elapsed = self.advance_during(lambda: time.sleep(0.1))
        return counts / elapsed


@pytest.fixture
def long_call(isa):
    """A call on a 1000-step sequence that lasts about TARGET_SECONDS with this ISA's kernels: 2 bidirectional layers
    of 128 units at batch 8, the batch grown in proportion when that call is shorter than 0.7 * TARGET_SECONDS."""
    model = fastlstm.LSTM(32, 128, num_layers=2, bidirectional=True, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 8, 32)).astype(np.float32)
    model(x[:2])  # first call out of the way
    start = time.perf_counter()
    model(x)
    elapsed = time.perf_counter() - start
    if elapsed < 0.7 * TARGET_SECONDS:
        batch = min(512, math.ceil(x.shape[1] * TARGET_SECONDS / elapsed))
        x = rng.standard_normal((1000, batch, 32)).astype(np.float32)
    return lambda: model(x)


def test_long_call_releases_the_gil(long_call):
    with CountingThread() as counter:
        rate = counter.free_rate()
        advance, elapsed = counter.advance_during(long_call)

    assert elapsed > 0.1, f"the call took {elapsed:.3f} s: too short to tell"
    assert advance > 1000
    assert advance >= MIN_SHARE_WHEN_RELEASED * rate * elapsed, (
        f"the counter advanced {advance} in {elapsed:.3f} s, {advance / (rate * elapsed):.1%} of its free speed"
    )


def hold_the_gil_for(seconds: float) -> Callable[[], int]:
    """A call into C of about ``seconds`` that never releases the GIL (the builtin sum over a range)."""
    n = 1_000_000
    start = time.perf_counter()
    sum(range(n))
    n = int(n * seconds / (time.perf_counter() - start))
    return lambda: sum(range(n))


def test_counter_tells_a_call_that_holds_the_gil():
    """The control: the same measurement on a C call of the same duration that keeps the GIL fails the bound."""
    hold = hold_the_gil_for(TARGET_SECONDS)
    with CountingThread() as counter:
        rate = counter.free_rate()
        advance, elapsed = counter.advance_during(hold)

    assert elapsed > 0.1
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()  # False only on a free-threaded build
    assert (advance < MIN_SHARE_WHEN_RELEASED * rate * elapsed) == gil_enabled, (
        f"the counter advanced {advance} in {elapsed:.3f} s, {advance / (rate * elapsed):.1%} of its free speed"
    )


def python_calls_during(call: Callable[[], object]) -> Counter:
    """Python function calls ('call') and calls of C functions from Python ('c_call') in this thread during
    ``call()``. The collector is off, so that no finaliser or gc callback adds calls of its own."""
    counts: Counter = Counter()

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            counts[event] += 1

    previous = sys.getprofile()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(previous)
        if gc_was_enabled:
            gc.enable()
    return counts


MODELS = {
    "one layer": {"num_layers": 1},
    "bidirectional 3 layers": {"num_layers": 3, "bidirectional": True},
    "bidirectional 2 layers, projection, batch first": {
        "num_layers": 2,
        "bidirectional": True,
        "proj_size": 3,
        "batch_first": True,
    },
}


def sequences(rng, batch_first: bool, steps: int) -> np.ndarray:
    return rng.standard_normal((2, steps, 4) if batch_first else (steps, 2, 4)).astype(np.float32)


@pytest.mark.parametrize("options", MODELS.values(), ids=MODELS.keys())
def test_no_python_call_per_step(isa, rng, options):
    model = fastlstm.LSTM(4, 5, seed=0, **options)
    short, long = (sequences(rng, model.batch_first, steps) for steps in (1, 1000))
    model(short)  # first call out of the way

    short_calls = python_calls_during(lambda: model(short))
    long_calls = python_calls_during(lambda: model(long))

    assert short_calls["c_call"] > 0  # the hook sees the wrapper's calls
    assert long_calls == short_calls


@pytest.mark.parametrize("options", MODELS.values(), ids=MODELS.keys())
def test_no_python_call_per_step_with_a_state(isa, rng, options):
    model = fastlstm.LSTM(4, 5, seed=0, **options)
    states = model.num_layers * model.num_directions
    state = (np.zeros((states, 2, model.output_size)), np.zeros((states, 2, model.hidden_size)))
    short, long = (sequences(rng, model.batch_first, steps) for steps in (1, 1000))
    model(short, state)

    assert python_calls_during(lambda: model(long, state)) == python_calls_during(lambda: model(short, state))


def test_the_profile_hook_sees_a_python_loop_over_steps(rng):
    """The control: the NumPy reference loops over the steps in Python, and the count shows it."""
    model = fastlstm.reference.LSTM(4, 5, num_layers=2, bidirectional=True, seed=0)
    short, long = (sequences(rng, False, steps) for steps in (1, 200))
    model(short)

    short_calls = python_calls_during(lambda: model(short))
    long_calls = python_calls_during(lambda: model(long))

    # at least one call per step, layer and direction
    assert sum(long_calls.values()) - sum(short_calls.values()) >= (200 - 1) * 2 * 2
