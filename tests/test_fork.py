"""Fork safety (POSIX): a child made by fork() runs models with threads as its parent does, with bitwise the parent's
results, even when the parent had used its thread pool or another parent thread was inside a call at the fork.

fork() copies only the calling thread, so the child's copy of the parent's pool has no workers (and may have locked
mutexes); the core abandons it in the child and starts a fresh pool there (csrc/thread_pool.cc). Without that, the
child's first call with threads waits forever. A hang must fail a test, not stall the suite: every child gets
CHILD_TIMEOUT seconds and is killed after them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
import traceback

import numpy as np
import pytest

import fastlstm

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only; Windows has no fork"),
    # Python 3.12+ warns in os.fork() when the process has other threads (the pool's workers, the calling thread of
    # the mid-call test, multiprocessing.Pool's handler threads): a child of a multi-threaded parent may deadlock,
    # which is exactly what this file tests against. The suite turns warnings into errors, so this one warning, and
    # no other, is let through here.
    pytest.mark.filterwarnings(r"ignore:This process \(pid=\d+\) is multi-threaded:DeprecationWarning"),
]

#: Seconds a child may take. A child that works finishes in well under a second (even under AddressSanitizer);
#: only a hang comes near this.
CHILD_TIMEOUT = 60

FORK = multiprocessing.get_context("fork")


def _arrays(result) -> list[np.ndarray]:
    """The arrays of a model call's result (output and the final states), flattened into a list."""
    if isinstance(result, np.ndarray):
        return [result]
    return [array for part in result for array in _arrays(part)]


def _assert_bitwise_equal(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert a.tobytes() == b.tobytes()


def _in_fork_child(work):
    """Runs work() in a child made by fork() and returns what it returned (pickled through a pipe, so a child error
    comes back with its traceback). Fails, after killing the child, when it does not finish within CHILD_TIMEOUT."""
    receiver, sender = FORK.Pipe(duplex=False)

    def child():
        try:
            sender.send(("returned", work()))
        except BaseException:  # sent to the parent, which fails the test with it
            sender.send(("raised", traceback.format_exc()))

    process = FORK.Process(target=child)
    process.start()
    sender.close()
    try:
        assert receiver.poll(CHILD_TIMEOUT), f"the fork child sent nothing within {CHILD_TIMEOUT} s: it hangs"
        outcome, value = receiver.recv()
        process.join(CHILD_TIMEOUT)
        assert process.exitcode == 0, f"the fork child exited with {process.exitcode}"
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()
    assert outcome == "returned", value
    return value


def test_fork_child_of_a_parent_that_used_threads_gets_the_parents_result():
    # The reproduction of the hang: the parent's pool has a worker thread, which the child does not have.
    model = fastlstm.LSTM(64, 256, seed=0)
    x = np.ones((50, 4, 64), np.float32)
    expected = _arrays(model(x, threads=2))
    _assert_bitwise_equal(_in_fork_child(lambda: _arrays(model(x, threads=2))), expected)


def test_fork_children_and_grandchildren_after_many_threaded_calls(rng):
    model = fastlstm.LSTM(32, 96, 2, bidirectional=True, seed=1)
    inputs = [rng.standard_normal((40, 3, 32)).astype(np.float32) for _ in range(4)]
    for _ in range(3):  # the parent's pool runs several jobs before the forks
        expected = [_arrays(model(x, threads=2)) for x in inputs]

    def child_work():
        # Several calls on the child's own pool, then a grandchild forked from a child whose new pool has a worker.
        mine = [_arrays(model(x, threads=2)) for x in inputs]
        grandchild = _in_fork_child(lambda: [_arrays(model(x, threads=2)) for x in inputs])
        return mine, grandchild

    for _ in range(2):  # a second child of the same parent
        mine, grandchild = _in_fork_child(child_work)
        for outputs in (mine, grandchild):
            for actual, wanted in zip(outputs, expected, strict=True):
                _assert_bitwise_equal(actual, wanted)


def test_fork_child_runs_a_sequence_model_head_with_threads(rng):
    # The classifier head shares the pool (csrc/linear.cc); threads=2 makes it use the pool at any size.
    lstm = fastlstm.LSTM(16, 48, seed=2)
    model = fastlstm.SequenceModel(lstm, rng.standard_normal((7, 48)), rng.standard_normal(7))
    x = rng.standard_normal((30, 5, 16)).astype(np.float32)
    expected = _arrays(model.predict_proba(x, threads=2))
    _assert_bitwise_equal(_in_fork_child(lambda: _arrays(model.predict_proba(x, threads=2))), expected)


@contextlib.contextmanager
def _another_thread_calling(model, x, expected):
    """While the block runs, another thread calls model(x, threads=2) back to back (checking each result against
    expected); the block starts once that thread is inside its calls."""
    stop, calling = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def keep_calling():
        try:
            while not stop.is_set():
                calling.set()
                _assert_bitwise_equal(_arrays(model(x, threads=2)), expected)
        except BaseException as error:  # reported below, never lost in a thread
            errors.append(error)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        assert calling.wait(CHILD_TIMEOUT)
        yield
    finally:
        stop.set()
        caller.join()
    assert not errors, errors


def _busy_model():
    """A model and input whose threaded calls take tens of milliseconds, and the call's result: forks at spread
    delays fall inside such calls, where the calling thread holds the pool and a job runs on its worker, so that the
    child inherits held mutexes and a job in flight, which its fresh pool must ignore."""
    model = fastlstm.LSTM(128, 256, seed=3)
    x = np.linspace(-1, 1, 200 * 8 * 128, dtype=np.float32).reshape(200, 8, 128)
    started = time.perf_counter()
    expected = _arrays(model(x, threads=2))
    return model, x, expected, time.perf_counter() - started


def test_fork_while_another_thread_is_inside_a_threaded_call():
    model, x, expected, call_seconds = _busy_model()
    forks = 5
    with _another_thread_calling(model, x, expected):
        for k in range(forks):
            time.sleep(call_seconds * (k + 0.5) / forks)
            _assert_bitwise_equal(_in_fork_child(lambda: _arrays(model(x, threads=2))), expected)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
    reason="counts the child's threads in Linux's /proc/self/task; a team of 2 needs 2 cores",
)
def test_fork_child_of_a_busy_parent_runs_on_a_pool_of_its_own():
    # The child inherits the parent's pool as held by the calling thread: a child that used it would find it busy
    # and run every call alone (or wait forever). Its own pool starts one worker for threads=2: one OS thread more.
    model, x, expected, call_seconds = _busy_model()

    def child_work():
        before = _os_threads()
        outputs = _arrays(model(x, threads=2))
        return before, _os_threads(), outputs

    with _another_thread_calling(model, x, expected):
        time.sleep(call_seconds / 2)
        before, after, outputs = _in_fork_child(child_work)
    assert after == before + 1
    _assert_bitwise_equal(outputs, expected)


#: The model of the pool test, at module level as a multiprocessing worker function finds it: fork children
#: inherit it (and the parent's pool state with it).
_POOL_MODEL = fastlstm.LSTM(24, 80, 2, seed=4)


def _pool_model_outputs(seed: int) -> list[np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((20, 3, 24)).astype(np.float32)
    return _arrays(_POOL_MODEL(x, threads=2))


def test_fork_pool_map_gives_the_single_process_results():
    seeds = list(range(6))
    expected = [_pool_model_outputs(seed) for seed in seeds]  # the parent's pool has a worker before the fork
    with FORK.Pool(2) as pool:
        # get(timeout): a worker that hangs raises multiprocessing.TimeoutError, and leaving the block kills it.
        results = pool.map_async(_pool_model_outputs, seeds).get(CHILD_TIMEOUT)
    for actual, wanted in zip(results, expected, strict=True):
        _assert_bitwise_equal(actual, wanted)


def test_fork_child_refuses_the_parents_batcher_and_steps_through_its_own(rng):
    # The child has none of the batcher's threads: its submit must refuse, not hang. The pool's lock may be held
    # across the fork by a thread the child lacks (a queued step's): here a parent thread holds it, and the child's
    # pool still steps.
    model = fastlstm.LSTM(8, 16, seed=3)
    pool = model.sessions(4)
    ids = [pool.open() for _ in range(4)]
    frames = rng.standard_normal((4, 8)).astype(np.float32)

    def through(batcher):
        return np.array([f.result(timeout=CHILD_TIMEOUT) for f in [batcher.submit(i, x) for i, x in zip(ids, frames)]])

    batcher = pool.batcher(max_batch=4)
    through(batcher)  # the batcher's threads have run
    held, release = threading.Event(), threading.Event()

    def hold_the_pool_lock():
        with pool._lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold_the_pool_lock)
    holder.start()
    held.wait()

    def in_child():
        try:
            batcher.submit(ids[0], frames[0])
        except RuntimeError as error:
            refusal = str(error)
        with pool.batcher(max_batch=4) as own:
            return refusal, through(own)

    try:
        refusal, child = _in_fork_child(in_child)
    finally:
        release.set()
        holder.join()
    assert "made in the parent of this forked process" in refusal
    parent = through(batcher)  # from the same states as the child's step
    batcher.close()
    assert child.tobytes() == parent.tobytes()
