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

An asyncio loop that submits frames takes the finished steps itself, in its own thread: the step queue writes a byte
to a pipe the loop watches as each step finishes. Through the batcher's thread, a finished step reached the loop
after three wake-ups in a row (that thread's, its wait for the GIL the loop held, the loop's own) and a hand-over of
the GIL: 240 us a step of 128 frames here, a fifth of the step. The batcher's thread still takes a step the loop has
left for ``LOOP_GRACE`` seconds (a loop busy elsewhere, or stopped).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import numbers
import os
import threading
import time
import weakref
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

_open_batchers: weakref.WeakSet[SessionBatcher] = weakref.WeakSet()


@atexit.register
def _close_open_batchers() -> None:
    """At exit, close the batchers left open: their pending frames cancelled (nobody is left to read them), their
    queued steps finished, their threads ended, before the interpreter freezes its daemon threads where they stand."""
    for batcher in list(_open_batchers):
        batcher.close(cancel_pending=True)


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


_FLOAT32 = np.dtype(np.float32)  # native float32 arrays share this dtype object; others take the checked path


class _Pending:
    """The frames waiting for a step, in the order submitted, as four parallel lists: per frame an append to each
    (no object made for it), and the common step, the oldest frames all of different sessions, taken as slices."""

    __slots__ = ("arrivals", "futures", "ids", "xs")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.xs: list[np.ndarray] = []
        self.futures: list[Future | asyncio.Future] = []  # asyncio's for submit_async, of its loop
        self.arrivals: list[float] = []  # time.monotonic() at submit

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, max_batch: int) -> tuple[list[int], list[np.ndarray], list]:
        """Up to max_batch frames in the order submitted, one per session; the rest stay, in order (a session's
        later frames wait for the next step). Frames whose futures were cancelled are dropped."""
        n = min(len(self.ids), max_batch)
        ids = self.ids[:n]
        if len(set(ids)) == n:  # no session twice among the oldest n: slices
            xs, futures = self.xs[:n], self.futures[:n]
            del self.ids[:n], self.xs[:n], self.futures[:n], self.arrivals[:n]
            claimed = list(map(_claim, futures))
            if all(claimed):
                return ids, xs, futures
            keep = [row for row, ok in enumerate(claimed) if ok]
            return [ids[row] for row in keep], [xs[row] for row in keep], [futures[row] for row in keep]
        taken, leaving, sessions = [], set(), set()
        for row, id in enumerate(self.ids):
            if len(taken) == max_batch:
                break
            if id in sessions:
                continue  # stays for a later step
            leaving.add(row)
            if _claim(self.futures[row]):
                sessions.add(id)
                taken.append(row)
            # else cancelled: dropped, and its session's next frame may be taken
        result = [self.ids[row] for row in taken], [self.xs[row] for row in taken], [self.futures[row] for row in taken]
        for name in self.__slots__:
            values = getattr(self, name)
            setattr(self, name, [value for row, value in enumerate(values) if row not in leaving])
        return result

    def clear(self) -> list:
        """Empty the queue; returns the futures that were in it."""
        futures = self.futures
        self.ids, self.xs, self.futures, self.arrivals = [], [], [], []
        return futures


class _QueuedStep(NamedTuple):
    """A step in the C++ queue, and what it reads and writes until it finishes (kept alive here)."""

    ticket: int
    ids: list[int]
    futures: list
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


def _settle(futures: list, values: Any, is_error: bool, in_loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Resolve frames' futures with the rows of values (or all with one error): concurrent futures at once, each
    event loop's futures with one call into that loop's thread (not one per frame, each of which would wake it);
    called in the thread of the loop ``in_loop``, that loop's futures at once too."""
    each = itertools.repeat(values) if is_error else list(values)  # the rows' views made in one C call
    by_loop: dict[asyncio.AbstractEventLoop, tuple[list, list]] = {}
    for future, value in zip(futures, each):
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
        if loop is in_loop:
            _resolve(futures, loop_values, is_error)
            continue
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
        self._pending = _Pending()
        self._steps = _core.StepQueue()
        # By ticket, in the order queued. Two threads may take finished steps (this one's and a loop's: _watch).
        self._queued: dict[int, _QueuedStep] = {}
        self._forks = _forks  # os.getpid() would cost a system call per frame
        self._last_loop: asyncio.AbstractEventLoop | None = None  # of submit_async
        self._watched: tuple[asyncio.AbstractEventLoop, int, int] | None = None  # (loop, pipe read fd, write fd)
        self._watch_lock = threading.RLock()  # of _watched
        self._closed = False
        self.max_batch = self.DEFAULT_MAX_BATCH if max_batch is None else max_batch
        self.max_delay = self.DEFAULT_MAX_DELAY if max_delay is None else max_delay
        self._worker = threading.Thread(target=self._run, name="fastlstm-session-batcher", daemon=True)
        self._worker.start()
        _open_batchers.add(self)

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
        # asyncio.get_running_loop() makes a getpid() system call on every call (its guard against a forked child):
        # 0.7 us here, 7% of a frame's Python. The loop it found last is taken again while it runs in this thread:
        # a running asyncio loop records its thread, and a thread runs one loop at a time.
        loop = self._last_loop
        if loop is None or getattr(loop, "_thread_id", None) != threading.get_ident():
            loop = asyncio.get_running_loop()
            self._watch(loop)
            self._last_loop = loop
        future = loop.create_future()
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
            pending = self._pending
            pending.ids.append(int(id))
            pending.xs.append(x)
            pending.futures.append(future)
            pending.arrivals.append(time.monotonic())
            count = len(pending.ids)
            refused = self._queue_due() if count >= self._max_batch else []
        if count == 1:
            self._steps.nudge()  # the batcher's thread keeps the frame's deadline
        for futures, error in refused:
            _settle(futures, error, is_error=True)

    def _frame(self, frame: Any) -> np.ndarray:
        input_size = self._pool.model.input_size
        x = real_array(frame, "frame")
        check_shape(x, (input_size,), "frame", hint="input_size")
        with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as the models convert
            return x.astype(np.float32)

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop taking frames and wait for the worker: the frames pending are stepped first, or with
        ``cancel_pending`` their futures are cancelled. Closing twice is harmless."""
        _open_batchers.discard(self)
        with self._lock:
            self._closed = True
            if cancel_pending:
                for future in self._pending.clear():
                    _cancel(future)
        if _forks != self._forks:
            return  # a forked child: the worker is the parent's
        self._unwatch()  # the worker takes the steps left at once (a loop closing us is not reading its pipe)
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
            for futures, error in refused:
                _settle(futures, error, is_error=True)
            finished = self._steps.wait_finished(timeout)  # without the GIL
            if finished:
                watched = self._watched
                if watched is not None and not watched[0].is_running():
                    self._unwatch()  # the loop stopped (its next submit_async watches again)
                self._take(finished)

    def _take(self, finished: list, in_loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Settle the finished steps (wait_finished's or take_finished's report), in the thread of the loop
        ``in_loop`` if given, after queueing the next steps: they compute while these settle."""
        with self._lock:
            steps = [self._queued.pop(ticket) for ticket, _, _ in finished]
            refused = self._queue_due()
            if self._closed and not self._queued:
                self._steps.nudge()  # the batcher's thread may wait for these last steps: it has nothing left
        for futures, error in refused:
            _settle(futures, error, is_error=True, in_loop=in_loop)
        for step, (_, error, skipped) in zip(steps, finished):
            self._finish(step, error, skipped, in_loop)

    # ---- an asyncio loop's own taking of finished steps ---------------------------------------------------------

    #: Seconds a finished step waits for the watched loop before the batcher's thread takes it instead.
    LOOP_GRACE = 0.005

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have the running ``loop`` (of this thread) take finished steps itself, woken by a pipe the step queue
        writes to, unless another loop that still runs does (it settles this one's futures through their loop as the
        batcher's thread would; switching loops on every frame of two alternating ones would cost a pipe a frame).
        Where a loop cannot watch a pipe (Windows), none does."""
        with self._watch_lock:
            watched = self._watched
            if watched is not None and (watched[0] is loop or watched[0].is_running()):
                return
            self._unwatch()
            if os.name != "posix" or self._closed:
                return
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            try:
                loop.add_reader(read_fd, self._take_in_loop, read_fd)
            except (NotImplementedError, RuntimeError):
                os.close(read_fd)
                os.close(write_fd)
                return
            self._watched = (loop, read_fd, write_fd)
            self._steps.set_wakeup_fd(write_fd, self.LOOP_GRACE)

    def _unwatch(self) -> None:
        """No loop takes steps from now on; the pipe is closed in its loop's thread (or here, if it does not run)."""
        with self._watch_lock:
            watched, self._watched = self._watched, None
            if watched is None:
                return
            self._steps.set_wakeup_fd(-1, 0.0)  # no write reaches the pipe after this
            self._last_loop = None  # so that the loop's next submit_async watches it again
        loop, read_fd, write_fd = watched

        def close_pipe() -> None:
            with contextlib.suppress(Exception):  # a closed loop forgot its readers
                loop.remove_reader(read_fd)
            os.close(read_fd)
            os.close(write_fd)

        # A loop running in another thread removes its reader itself; one closed, stopped (nobody touches its
        # selector) or running in this thread, here.
        if loop.is_running() and getattr(loop, "_thread_id", None) != threading.get_ident():
            try:
                loop.call_soon_threadsafe(close_pipe)
                return
            except RuntimeError:  # closed meanwhile
                pass
        close_pipe()

    def _take_in_loop(self, read_fd: int) -> None:
        """The watched loop's reader: the steps finished, taken and settled in the loop's thread."""
        watched = self._watched
        if watched is None or watched[1] != read_fd:
            return  # unwatched since this call was scheduled: the fd is closed or about to be (or another file's)
        loop = watched[0]
        with contextlib.suppress(BlockingIOError):
            os.read(read_fd, 4096)  # a byte per step since the last call (or a full pipe's worth)
        finished = self._steps.take_finished()
        if finished:
            self._take(finished, loop)

    def _timeout(self) -> float:
        """Seconds until the oldest pending frame is due, when a step could be queued for it; -1 (no limit: wait for
        a step to finish or a submit's nudge) otherwise."""
        if not self._pending or len(self._queued) >= self.QUEUED_STEPS:
            return -1.0
        return max(0.0, self._pending.arrivals[0] + self._max_delay - time.monotonic())

    def _queue_due(self) -> list[tuple[list, Exception]]:
        """Queue steps of the pending frames while there is room and a step is due (max_batch frames wait, the
        oldest has waited max_delay, or the batcher is closing); returns the futures refused with the error. Called
        with the lock held."""
        refused = []
        while self._pending and len(self._queued) < self.QUEUED_STEPS:
            due = self._closed or len(self._pending) >= self._max_batch
            if not due and self._pending.arrivals[0] + self._max_delay > time.monotonic():
                break
            ids, xs, futures = self._pending.take(self._max_batch)
            if ids:
                self._queue_step(ids, xs, futures, refused)
        return refused

    def _queue_step(self, ids: list[int], xs: list[np.ndarray], futures: list, refused: list) -> None:
        pool = self._pool
        model = pool.model
        # The frames are (input_size,) float32: one concatenate, a quarter of np.stack's time (128 frames: 18, 62 us).
        x = np.concatenate(xs).reshape(len(xs), self._frame_shape[0])
        packed = model._packed
        try:
            ticket, y = self._steps.push_sessions(
                packed, pool._lock, x, np.array(ids, np.int64), call_threads(None, model.threads), pool._cache
            )
        except Exception as error:
            refused.append((futures, error))
            return
        self._queued[ticket] = _QueuedStep(ticket, ids, futures, x, y, packed)

    def _finish(
        self, step: _QueuedStep, error: str | None, skipped: list[int], in_loop: asyncio.AbstractEventLoop | None
    ) -> None:
        """Settle a finished step's futures: its outputs, or for the frames of sessions closed while the step was
        queued (which it left out) the pool's error about them."""
        if error is not None:
            _settle(step.futures, RuntimeError(f"step: {error}"), is_error=True, in_loop=in_loop)
            return
        if not skipped:
            _settle(step.futures, step.y, is_error=False, in_loop=in_loop)
            return
        for row in skipped:
            try:
                self._pool._slot(step.ids[row], "id")
                refusal: Exception = RuntimeError(f"step: session {step.ids[row]} could not be stepped")
            except Exception as error_of_id:
                refusal = error_of_id
            _settle([step.futures[row]], refusal, is_error=True, in_loop=in_loop)
        left_out = set(skipped)
        kept = [row for row in range(len(step.ids)) if row not in left_out]
        _settle([step.futures[row] for row in kept], step.y[kept], is_error=False, in_loop=in_loop)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pending)} pending"
        return (
            f"<fastlstm.SessionBatcher over {self._pool!r}, max_batch={self._max_batch}, "
            f"max_delay={self._max_delay}, {state}>"
        )
