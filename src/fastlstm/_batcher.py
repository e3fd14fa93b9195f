"""The dynamic batcher: frames of many sessions, submitted one at a time from any thread or asyncio task, stepped
together through a ``fastlstm.Sessions`` pool.

A step takes the frames pending, at most ``max_batch`` of them and at most one per session; it is queued when
``max_batch`` frames wait (by the submit that completes them) or when the oldest has waited ``max_delay`` seconds
(by the batcher's thread). A session's frames are stepped in the order submitted, each in its own step, so its
outputs are bitwise those of its own ``model.stream(1)``.

Steps run on a C++ thread of their own (``_core.StepQueue``), which never takes the GIL: while one step computes,
Python settles the futures of the one before and gathers the frames of the next, on the other core. (Run by a
Python thread, a step could not start until that thread got the GIL back from the producers, and the producers'
next frames waited for the step: the two took turns.) The batcher's thread waits for finished steps without the GIL
and settles their futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import numbers
import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _core
from ._checks import check_shape, real_array
from ._threads import call_threads

if TYPE_CHECKING:
    from ._sessions import Sessions


_forks = 0  # times this process is a fork's child: a batcher made before a fork has no threads after it


def _count_fork() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_count_fork)


def _cancel(future: Future | asyncio.Future) -> None:
    """Cancel a frame's future from any thread (an asyncio future only in its loop's thread)."""
    if type(future) is Future:
        future.cancel()
        return
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the future
        future.get_loop().call_soon_threadsafe(future.cancel)


def _claim(future: Future | asyncio.Future) -> bool:
    """Whether a taken frame is to be stepped: its future not cancelled (a concurrent one can no longer be)."""
    if type(future) is Future:
        return future.set_running_or_notify_cancel()
    return not future.cancelled()


class _Frame(NamedTuple):
    id: int
    x: np.ndarray
    future: Future | asyncio.Future  # asyncio's for submit_async, of the loop it was submitted from
    arrival: float


_FLOAT32 = np.dtype(np.float32)  # native float32 arrays share this dtype object; others take the checked path
_new_frame = tuple.__new__  # _Frame without its generated __new__, which costs a frame as much as a step's Python


class _QueuedStep(NamedTuple):
    """A step in the C++ queue, and what it reads and writes until it finishes (kept alive here)."""

    ticket: int
    frames: list[_Frame]
    x: np.ndarray
    y: np.ndarray
    packed: Any  # the model's packed weights when the step was queued


def _resolve(futures: list[asyncio.Future], values: list[Any], is_error: bool) -> None:
    """In a loop's thread: set each future not cancelled meanwhile to its value (or error)."""
    for future, value in zip(futures, values):
        if not future.done():
            if is_error:
                future.set_exception(value)
            else:
                future.set_result(value)


def _settle(frames: list[_Frame], values: Any, is_error: bool) -> None:
    """Resolve the frames' futures with the rows of values (or all with one error): concurrent futures at once, each
    event loop's futures with one call into that loop's thread (not one per frame, each of which would wake it)."""
    each = itertools.repeat(values) if is_error else list(values)  # the rows' views made in one C call
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list, list]] = {}
    for frame, value in zip(frames, each):
        future = frame.future
        if type(future) is not Future:
            loop = future.get_loop()
            if loop not in by_loop:
                by_loop[loop] = ([], [])
            futures, loop_values = by_loop[loop]
            futures.append(future)
            loop_values.append(value)
        elif is_error:
            future.set_exception(value)
        else:
            future.set_result(value)
    for loop, (futures, loop_values) in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits these
            loop.call_soon_threadsafe(_resolve, futures, loop_values, is_error)


class SessionBatcher:
    """Steps the frames submitted to it in batches over a ``fastlstm.Sessions`` pool; make one with
    ``pool.batcher()`` or ``SessionBatcher(pool)``, and close it (or use it as a context manager) when done.

    ``submit(id, frame)`` from any thread returns a ``concurrent.futures.Future`` of the session's output for that
    frame, (H_out,); ``await submit_async(id, frame)`` is the same for asyncio. ``max_batch`` (frames per step,
    default 256) and ``max_delay`` (seconds the oldest pending frame waits for company, default 0.001) can be set
    at any time. A step's error (a session closed since its frame was submitted) goes to the futures of the frames
    it concerns; the others are stepped. A cancelled future's frame is not stepped."""

    DEFAULT_MAX_BATCH = 256
    DEFAULT_MAX_DELAY = 0.001
    #: Steps queued in C++ at once: one computing, the next ready to start the moment it ends.
    QUEUED_STEPS = 2

    def __init__(self, pool: Sessions, *, max_batch: int | None = None, max_delay: float | None = None) -> None:
        from ._sessions import Sessions

        if not isinstance(pool, Sessions):
            raise TypeError(f"pool: expected a fastlstm.Sessions, got {type(pool).__name__}")
        self._pool = pool
        self._frame_shape = (pool.model.input_size,)
        self._lock = threading.Lock()  # of the pending frames and queued steps
        self._pending: deque[_Frame] = deque()
        self._steps = _core.StepQueue()
        self._queued: deque[_QueuedStep] = deque()  # in the order queued, which is the order they finish
        self._forks = _forks  # os.getpid() would cost a system call per frame
        self._closed = False
        self.max_batch = self.DEFAULT_MAX_BATCH if max_batch is None else max_batch
        self.max_delay = self.DEFAULT_MAX_DELAY if max_delay is None else max_delay
        self._worker = threading.Thread(target=self._run, name="fastlstm-session-batcher", daemon=True)
        self._worker.start()

    @property
    def pool(self) -> Sessions:
        return self._pool

    @property
    def max_batch(self) -> int:
        """The most frames one step takes."""
        return self._max_batch

    @max_batch.setter
    def max_batch(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"max_batch: expected an int >= 1, got {type(value).__name__} {value!r}")
        with self._lock:
            self._max_batch = int(value)
        self._steps.nudge()

    @property
    def max_delay(self) -> float:
        """Seconds the oldest pending frame waits for more frames before a step starts without them."""
        return self._max_delay

    @max_delay.setter
    def max_delay(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
            raise ValueError(f"max_delay: expected a finite number of seconds >= 0, got {value!r}")
        with self._lock:
            self._max_delay = float(value)
        self._steps.nudge()

    def submit(self, id: int, frame: Any) -> Future:
        """Queue the session's next frame (input_size,) (copied now); returns the future of its output (H_out,).
        Refuses at once an id that is not open in the pool, a frame of the wrong shape, or a closed batcher."""
        future: Future = Future()
        self._enqueue(id, frame, future)
        return future

    def submit_async(self, id: int, frame: Any) -> asyncio.Future:
        """``submit`` for asyncio, called from a coroutine of the running loop: the frame is queued at once and the
        asyncio future returned, ``await``-ed for the session's output without blocking the loop. (A future, not a
        coroutine: one layer less between a frame and its task, half a microsecond of the loop's per frame.)"""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(id, frame, future)
        return future

    def _enqueue(self, id: int, frame: Any, future: Future | asyncio.Future) -> None:
        if id not in self._pool:
            self._pool._slot(id, "id")  # raises the pool's error: what is wrong with the id
        if type(frame) is np.ndarray and frame.dtype is _FLOAT32 and frame.shape == self._frame_shape:
            x = frame.copy()  # the common case, without a call
        else:
            x = self._frame(frame)
        with self._lock:
            if self._closed:
                raise RuntimeError("submit: the batcher is closed")
            if _forks != self._forks:
                raise RuntimeError(
                    "submit: this batcher was made in the parent of this forked process, and its threads did not "
                    "come along; make a new one here (pool.batcher())"
                )
            self._pending.append(_new_frame(_Frame, (int(id), x, future, time.monotonic())))
            refused = self._queue_due() if len(self._pending) >= self._max_batch else []
            first = len(self._pending) == 1
        if first:
            self._steps.nudge()  # the batcher's thread keeps the frame's deadline
        for frames, error in refused:
            _settle(frames, error, is_error=True)

    def _frame(self, frame: Any) -> np.ndarray:
        input_size = self._pool.model.input_size
        x = real_array(frame, "frame")
        check_shape(x, (input_size,), "frame", hint="input_size")
        with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as the models convert
            return x.astype(np.float32)

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop taking frames and wait for the worker: the frames pending are stepped first, or with
        ``cancel_pending`` their futures are cancelled. Closing twice is harmless."""
        with self._lock:
            self._closed = True
            if cancel_pending:
                while self._pending:
                    _cancel(self._pending.popleft().future)
        if _forks != self._forks:
            return  # a forked child: the worker is the parent's
        self._steps.nudge()
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> SessionBatcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- the worker --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                refused = self._queue_due()
                if self._closed and not self._pending and not self._queued:
                    return
                timeout = self._timeout()
            for frames, error in refused:
                _settle(frames, error, is_error=True)
            finished = self._steps.wait_finished(timeout)  # without the GIL
            if not finished:
                continue
            with self._lock:
                steps = [self._queued.popleft() for _ in finished]
                refused = self._queue_due()  # the next steps first: they compute while these settle
            for frames, error in refused:
                _settle(frames, error, is_error=True)
            for step, (ticket, error, skipped) in zip(steps, finished):
                assert step.ticket == ticket, "the step queue reports steps in the order queued"
                self._finish(step, error, skipped)

    def _timeout(self) -> float:
        """Seconds until the oldest pending frame is due, when a step could be queued for it; -1 (no limit: wait for
        a step to finish or a submit's nudge) otherwise."""
        if not self._pending or len(self._queued) >= self.QUEUED_STEPS:
            return -1.0
        return max(0.0, self._pending[0].arrival + self._max_delay - time.monotonic())

    def _queue_due(self) -> list[tuple[list[_Frame], Exception]]:
        """Queue steps of the pending frames while there is room and a step is due (max_batch frames wait, the
        oldest has waited max_delay, or the batcher is closing); returns the frames refused with the error. Called
        with the lock held."""
        refused = []
        while self._pending and len(self._queued) < self.QUEUED_STEPS:
            due = self._closed or len(self._pending) >= self._max_batch
            if not due and self._pending[0].arrival + self._max_delay > time.monotonic():
                break
            frames = self._take()
            if frames:
                self._queue_step(frames, refused)
        return refused

    def _queue_step(self, frames: list[_Frame], refused: list) -> None:
        pool = self._pool
        model = pool.model
        ids = np.fromiter((frame.id for frame in frames), np.int64, len(frames))
        x = np.stack([frame.x for frame in frames])
        packed = model._packed
        try:
            ticket, y = self._steps.push_sessions(
                packed, pool._lock, x, ids, call_threads(None, model.threads), pool._cache
            )
        except Exception as error:
            refused.append((frames, error))
            return
        self._queued.append(_QueuedStep(ticket, frames, x, y, packed))

    def _take(self) -> list[_Frame]:
        """Up to max_batch pending frames in the order submitted, one per session; the rest stay pending in order
        (a session's later frames wait for the next step). Frames whose futures were cancelled are dropped."""
        taken: list[_Frame] = []
        sessions: set[int] = set()
        later: list[_Frame] = []  # frames of sessions already taken, passed over
        pending = self._pending
        while pending and len(taken) < self._max_batch:
            frame = pending.popleft()
            if frame.id in sessions:
                later.append(frame)
            elif _claim(frame.future):
                sessions.add(frame.id)
                taken.append(frame)
        pending.extendleft(reversed(later))
        return taken

    def _finish(self, step: _QueuedStep, error: str | None, skipped: list[int]) -> None:
        """Settle a finished step's futures: its outputs, or for the frames of sessions closed while the step was
        queued (which it left out) the pool's error about them."""
        if error is not None:
            _settle(step.frames, RuntimeError(f"step: {error}"), is_error=True)
            return
        if not skipped:
            _settle(step.frames, step.y, is_error=False)
            return
        for row in skipped:
            frame = step.frames[row]
            try:
                self._pool._slot(frame.id, "id")
                refusal: Exception = RuntimeError(f"step: session {frame.id} could not be stepped")
            except Exception as error_of_id:
                refusal = error_of_id
            _settle([frame], refusal, is_error=True)
        left_out = set(skipped)
        kept = [row for row in range(len(step.frames)) if row not in left_out]
        _settle([step.frames[row] for row in kept], step.y[kept], is_error=False)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pending)} pending"
        return (
            f"<fastlstm.SessionBatcher over {self._pool!r}, max_batch={self._max_batch}, "
            f"max_delay={self._max_delay}, {state}>"
        )
