"""SessionBatcher: frames submitted by many concurrent producers (threads, asyncio tasks) come back bitwise as each
session's own model.stream(1) gives them, a session's frames in order; errors reach the futures they concern; the
settings are checked; closing steps or cancels what is pending."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import CancelledError

import numpy as np
import pytest

import fastlstm

PRODUCERS = 256
FRAMES = 4


@pytest.fixture
def model():
    return fastlstm.LSTM(8, 16, num_layers=2, seed=21)


def _expected(model, frames):
    """Each session's outputs from its own stream: frames (sessions, FRAMES, input_size)."""
    outputs = np.empty((frames.shape[0], FRAMES, model.output_size), np.float32)
    for session, session_frames in enumerate(frames):
        stream = model.stream(1)
        for t, frame in enumerate(session_frames):
            outputs[session, t] = stream.step(frame[None])[0]
    return outputs


def _record_steps(batcher):
    """The sessions of each step the batcher queues, as lists of ids, filled in as it queues them."""
    steps = []
    queue_step = batcher._queue_step

    def recording(ids, xs, futures, refused):
        steps.append(list(ids))
        queue_step(ids, xs, futures, refused)

    batcher._queue_step = recording
    return steps


def _run_all(threads):
    """Start the threads, then wait for all of them."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_256_threads_get_their_own_streams_outputs(model, rng):
    frames = rng.standard_normal((PRODUCERS, FRAMES, 8)).astype(np.float32)
    pool = model.sessions(PRODUCERS)
    ids = [pool.open() for _ in range(PRODUCERS)]
    outputs = np.empty((PRODUCERS, FRAMES, model.output_size), np.float32)
    start = threading.Barrier(PRODUCERS)

    def produce(session):
        start.wait()
        for t in range(FRAMES):
            outputs[session, t] = batcher.submit(ids[session], frames[session, t]).result(timeout=60)

    with pool.batcher(max_batch=64, max_delay=0.002) as batcher:
        _run_all([threading.Thread(target=produce, args=(session,)) for session in range(PRODUCERS)])
    np.testing.assert_array_equal(outputs, _expected(model, frames))


def test_256_asyncio_tasks_get_their_own_streams_outputs(model, rng):
    frames = rng.standard_normal((PRODUCERS, FRAMES, 8)).astype(np.float32)
    pool = model.sessions(16)  # grows while the tasks run
    outputs = np.empty((PRODUCERS, FRAMES, model.output_size), np.float32)

    async def produce(batcher, session):
        id = pool.open()
        for t in range(FRAMES):
            outputs[session, t] = await batcher.submit_async(id, frames[session, t])

    async def main():
        with pool.batcher() as batcher:
            await asyncio.gather(*(produce(batcher, session) for session in range(PRODUCERS)))

    asyncio.run(main())
    np.testing.assert_array_equal(outputs, _expected(model, frames))


def test_a_sessions_pending_frames_are_stepped_in_order_in_separate_steps(model, rng):
    frames = rng.standard_normal((3, FRAMES, 8)).astype(np.float32)
    pool = model.sessions(3)
    ids = [pool.open() for _ in range(3)]
    # A long delay and a large batch: every frame is pending when the batcher closes, which steps them.
    batcher = pool.batcher(max_batch=100, max_delay=60)
    steps = _record_steps(batcher)
    futures = [[batcher.submit(ids[s], frames[s, t]) for t in range(FRAMES)] for s in range(3)]
    batcher.close()
    outputs = np.array([[future.result() for future in session] for session in futures])
    np.testing.assert_array_equal(outputs, _expected(model, frames))
    assert steps == [ids] * FRAMES  # one frame per session per step, in the order submitted


def test_max_batch_bounds_each_step(model, rng):
    pool = model.sessions(10)
    ids = [pool.open() for _ in range(10)]
    batcher = pool.batcher(max_batch=4, max_delay=60)
    steps = _record_steps(batcher)
    futures = [batcher.submit(id, np.zeros(8)) for id in ids]
    batcher.close()
    assert [future.result().shape for future in futures] == [(16,)] * 10
    assert steps == [ids[:4], ids[4:8], ids[8:]]  # two full steps queued by submit, the rest at close
    assert batcher._steps.busy_seconds > 0 and batcher._steps.outstanding == 0  # its thread stepped; all reported


def test_a_session_closed_before_its_step_fails_only_its_frames(model, rng):
    pool = model.sessions(2)
    kept, closing = pool.open(), pool.open()
    batcher = pool.batcher(max_delay=60)
    futures = [batcher.submit(kept, np.ones(8)), batcher.submit(closing, np.ones(8))]
    pool.close(closing)
    batcher.close()
    np.testing.assert_array_equal(futures[0].result(), model.stream(1).step(np.ones((1, 8)))[0])
    with pytest.raises(ValueError, match=f"id: session {closing} is closed"):
        futures[1].result()


def test_submit_refuses_at_once(model):
    pool = model.sessions(1)
    id = pool.open()
    with pool.batcher() as batcher:
        with pytest.raises(ValueError, match="id: no session 7 was opened in this pool"):
            batcher.submit(7, np.zeros(8))
        with pytest.raises(ValueError, match=r"frame: expected shape \(8,\) \(input_size\), got \(1, 8\)"):
            batcher.submit(id, np.zeros((1, 8)))
        with pytest.raises(TypeError, match="frame: expected a real numeric array"):
            batcher.submit(id, np.array(["a"] * 8))
    with pytest.raises(RuntimeError, match="submit: the batcher is closed"):
        batcher.submit(id, np.zeros(8))
    batcher.close()  # twice: harmless


def test_settings_are_checked_and_can_change(model):
    pool = model.sessions(1)
    with pool.batcher() as batcher:
        assert (batcher.max_batch, batcher.max_delay) == (256, 0.001)
        batcher.max_batch, batcher.max_delay = 8, 0
        assert (batcher.max_batch, batcher.max_delay) == (8, 0.0)
        for name, value in [("max_batch", 0), ("max_batch", 2.0), ("max_batch", True)]:
            with pytest.raises(ValueError, match=f"{name}: expected an int >= 1, got"):
                setattr(batcher, name, value)
        for value in (-1, float("inf"), float("nan"), "1"):
            with pytest.raises(ValueError, match="max_delay: expected a finite number of seconds >= 0, got"):
                batcher.max_delay = value
    with pytest.raises(TypeError, match=r"pool: expected a fastlstm\.Sessions, got LSTM"):
        fastlstm.SessionBatcher(model)


def test_cancelled_frames_are_not_stepped(model):
    pool = model.sessions(2)
    a, b = pool.open(), pool.open()
    batcher = pool.batcher(max_delay=60)
    cancelled = batcher.submit(a, np.ones(8))
    assert cancelled.cancel()
    pending = batcher.submit(b, np.ones(8))
    batcher.close(cancel_pending=True)
    with pytest.raises(CancelledError):
        pending.result()
    assert not pool.state(a)[0].any() and not pool.state(b)[0].any()  # neither was stepped


def test_cancel_pending_cancels_awaited_frames(model):
    pool = model.sessions(1)
    id = pool.open()

    async def main():
        batcher = pool.batcher(max_delay=60)
        task = asyncio.ensure_future(batcher.submit_async(id, np.ones(8)))  # the frame is queued at the call
        await asyncio.sleep(0.01)  # the task has submitted its frame and awaits it
        batcher.close(cancel_pending=True)
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not pool.state(id)[0].any()  # not stepped


def test_outputs_hold_while_the_pool_grows_and_other_sessions_open_change_and_close(model, rng):
    # Steps queued in C++ read the pool's arrays when they start: another thread growing the pool (new arrays),
    # setting other sessions' states and closing them (their slots then serve new sessions) must change nothing of
    # the producers' results.
    sessions, frames_each = 32, 12
    frames = rng.standard_normal((sessions, frames_each, 8)).astype(np.float32)
    pool = model.sessions(sessions, grow=True)
    ids = [pool.open() for _ in range(sessions)]
    outputs = np.empty((sessions, frames_each, model.output_size), np.float32)
    churned = threading.Event()

    def churn():
        for extra_count in (40, 100, 300, 40):  # the first three grow the pool, the last reuses closed slots
            extra = [pool.open() for _ in range(extra_count)]
            for id in extra:
                pool.set_state(id, (np.full((2, 16), 3.0), np.full((2, 16), -3.0)))
            for id in extra:
                pool.close(id)
        churned.set()

    def produce(session):
        for t in range(frames_each):
            outputs[session, t] = batcher.submit(ids[session], frames[session, t]).result(timeout=60)

    with pool.batcher(max_batch=8, max_delay=0.0005) as batcher:
        _run_all(
            [threading.Thread(target=produce, args=(s,)) for s in range(sessions)] + [threading.Thread(target=churn)]
        )
    assert churned.is_set() and pool.capacity == 512
    expected = np.empty_like(outputs)
    for session in range(sessions):
        stream = model.stream(1)
        for t in range(frames_each):
            expected[session, t] = stream.step(frames[session, t][None])[0]
    np.testing.assert_array_equal(outputs, expected)


def test_submit_async_queues_at_the_call_and_refuses_there(model):
    pool = model.sessions(1)
    id = pool.open()

    async def main():
        with pool.batcher(max_delay=60) as batcher:
            with pytest.raises(ValueError, match="id: no session 7 was opened in this pool"):
                batcher.submit_async(7, np.zeros(8))
            future = batcher.submit_async(id, np.ones(8))
            assert len(batcher._pending) == 1  # queued before anything awaits it
        return await future  # closing stepped it

    np.testing.assert_array_equal(asyncio.run(main()), model.stream(1).step(np.ones((1, 8)))[0])
    with pool.batcher() as batcher, pytest.raises(RuntimeError, match="no running event loop"):
        batcher.submit_async(id, np.ones(8))


def test_submit_async_takes_the_loop_running_in_the_calling_thread(model, rng):
    # submit_async keeps the loop it found last (asyncio.get_running_loop costs a system call): one batcher fed by
    # loops in turn in one thread, then by two threads each running its own loop at once, must tie every future to
    # the loop of the task that awaits it, and refuse a call outside any loop after one has run.
    frames = rng.standard_normal((4, FRAMES, 8)).astype(np.float32)
    pool = model.sessions(4)
    ids = [pool.open() for _ in range(4)]
    outputs = np.empty((4, FRAMES, model.output_size), np.float32)

    async def produce(batcher, session, t):
        future = batcher.submit_async(ids[session], frames[session, t])
        assert future.get_loop() is asyncio.get_running_loop()
        outputs[session, t] = await future

    def run_loop(batcher, sessions, t):
        async def main():
            await asyncio.gather(*(produce(batcher, session, t) for session in sessions))

        asyncio.run(main())

    with pool.batcher(max_delay=0.0005) as batcher:
        for t in range(2):  # a new loop in this thread for each frame
            run_loop(batcher, range(4), t)
        with pytest.raises(RuntimeError, match="no running event loop"):
            batcher.submit_async(ids[0], frames[0, 0])
        for t in range(2, FRAMES):  # two threads, each with its loop, sharing the batcher
            _run_all([threading.Thread(target=run_loop, args=(batcher, half, t)) for half in (range(2), range(2, 4))])
    np.testing.assert_array_equal(outputs, _expected(model, frames))


def test_a_loop_takes_its_steps_and_a_blocked_loop_leaves_them_to_the_batchers_thread(model, rng):
    # A loop that submits watches a pipe the step queue writes to and takes finished steps itself. While it is
    # blocked (a coroutine that does not yield), steps must still finish for a thread's frames: the batcher's thread
    # takes a step the loop leaves for LOOP_GRACE. Closing the batcher closes the pipe.
    frames = rng.standard_normal((2, FRAMES, 8)).astype(np.float32)
    pool = model.sessions(2)
    a, b = pool.open(), pool.open()
    outputs = np.empty((2, FRAMES, model.output_size), np.float32)
    thread_done = threading.Event()

    def thread_producer(batcher):
        for t in range(FRAMES):
            outputs[1, t] = batcher.submit(b, frames[1, t]).result(timeout=60)
        thread_done.set()

    async def main():
        with pool.batcher(max_delay=0.0005) as batcher:
            for t in range(FRAMES):
                outputs[0, t] = await batcher.submit_async(a, frames[0, t])
            loop, read_fd, write_fd = batcher._watched
            assert loop is asyncio.get_running_loop()
            producer = threading.Thread(target=thread_producer, args=(batcher,))
            producer.start()
            assert thread_done.wait(timeout=60), "the thread's frames waited for the blocked loop"
            producer.join()
        assert batcher._watched is None
        return read_fd, write_fd

    for fd in asyncio.run(main()):
        with pytest.raises(OSError):
            os.fstat(fd)
    np.testing.assert_array_equal(outputs, _expected(model, frames))


def test_closing_from_another_thread_while_a_loop_takes_the_steps(model, rng):
    # The loop takes finished steps itself while another thread closes the batcher (which unwatches the loop and
    # waits for the batcher's thread): close must return, every frame submitted before it must come back, and each
    # session must have been stepped exactly as often as its producer got an output.
    sessions = 32
    frames = rng.standard_normal((sessions, 8)).astype(np.float32)
    pool = model.sessions(sessions)
    ids = [pool.open() for _ in range(sessions)]
    outputs_received = [0] * sessions

    async def produce(batcher, session):
        while True:
            try:
                future = batcher.submit_async(ids[session], frames[session])
            except RuntimeError:  # closed
                return
            await future
            outputs_received[session] += 1

    async def main():
        batcher = pool.batcher(max_batch=16, max_delay=0.0005)
        tasks = [asyncio.ensure_future(produce(batcher, session)) for session in range(sessions)]
        await asyncio.sleep(0.05)
        closer = threading.Thread(target=batcher.close)
        closer.start()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        closer.join(timeout=60)
        assert not closer.is_alive() and batcher._watched is None

    asyncio.run(main())
    for session in range(sessions):
        assert outputs_received[session] > 0
        stream = model.stream(1)
        for _ in range(outputs_received[session]):
            stream.step(frames[session][None])
        np.testing.assert_array_equal(pool.state(ids[session])[0], stream.state[0][:, 0])


def test_a_cancelled_frame_gives_way_to_its_sessions_next_frame_in_the_same_step(model, rng):
    frames = rng.standard_normal((3, 8)).astype(np.float32)
    pool = model.sessions(2)
    a, b = pool.open(), pool.open()
    batcher = pool.batcher(max_delay=60)
    steps = _record_steps(batcher)
    dropped = batcher.submit(a, frames[0])
    assert dropped.cancel()
    later, other = batcher.submit(a, frames[1]), batcher.submit(b, frames[2])
    batcher.close()
    assert steps == [[a, b]] and dropped.cancelled()
    np.testing.assert_array_equal(later.result(), model.stream(1).step(frames[1][None])[0])  # a from zeros
    np.testing.assert_array_equal(other.result(), model.stream(1).step(frames[2][None])[0])
