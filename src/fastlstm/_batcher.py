"""The dynamic batcher: frames of many sessions, submitted one at a time from any thread or asyncio task, stepped
together through a ``fastlstm.Sessions`` pool.

One worker thread takes the frames pending, at most ``max_batch`` of them and at most one per session, and steps
them with one ``pool.step``; a step starts when ``max_batch`` frames wait or when the oldest has waited
``max_delay`` seconds. A session's frames are stepped in the order submitted, each in its own step, so its outputs
are bitwise those of its own ``model.stream(1)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import numbers
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._checks import check_shape, real_array

if TYPE_CHECKING:
    from ._sessions import Sessions


class _LoopFuture:
    """The asyncio future of ``submit_async``, which belongs to its event loop's thread: the worker resolves a
    step's loop futures with one call into each loop (not one per frame, each of which would wake the loop)."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()

    def set_running_or_notify_cancel(self) -> bool:
        return not self.future.cancelled()

    def cancel(self) -> bool:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the future
            self.loop.call_soon_threadsafe(self.future.cancel)
        return True


class _Frame(NamedTuple):
    id: int
    x: np.ndarray
    future: Future | _LoopFuture
    arrival: float


def _resolve(outcomes: list[tuple[asyncio.Future, Any, bool]]) -> None:
    """In a loop's thread: set each (future, value, is_error) not cancelled meanwhile."""
    for future, value, is_error in outcomes:
        if not future.done():
            if is_error:
                future.set_exception(value)
            else:
                future.set_result(value)


def _settle(frames: list[_Frame], values: Any, is_error: bool) -> None:
    """Resolve the frames' futures with values[i] (or all with one error): concurrent futures at once, each event
    loop's futures with one call into that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for i, frame in enumerate(frames):
        value = values if is_error else values[i]
        if isinstance(frame.future, _LoopFuture):
            by_loop.setdefault(frame.future.loop, []).append((frame.future.future, value, is_error))
        elif is_error:
            frame.future.set_exception(value)
        else:
            frame.future.set_result(value)
    for loop, outcomes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody awaits these
            loop.call_soon_threadsafe(_resolve, outcomes)


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

    def __init__(self, pool: Sessions, *, max_batch: int | None = None, max_delay: float | None = None) -> None:
        from ._sessions import Sessions

        if not isinstance(pool, Sessions):
            raise TypeError(f"pool: expected a fastlstm.Sessions, got {type(pool).__name__}")
        self._pool = pool
        self._condition = threading.Condition(threading.Lock())
        self._pending: deque[_Frame] = deque()
        self._closed = False
        self._idle = False  # the worker waits for a first frame, with no deadline
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
        with self._condition:
            self._max_batch = int(value)
            self._condition.notify()

    @property
    def max_delay(self) -> float:
        """Seconds the oldest pending frame waits for more frames before a step starts without them."""
        return self._max_delay

    @max_delay.setter
    def max_delay(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
            raise ValueError(f"max_delay: expected a finite number of seconds >= 0, got {value!r}")
        with self._condition:
            self._max_delay = float(value)
            self._condition.notify()

    def submit(self, id: int, frame: Any) -> Future:
        """Queue the session's next frame (input_size,) (copied now); returns the future of its output (H_out,).
        Refuses at once an id that is not open in the pool, a frame of the wrong shape, or a closed batcher."""
        future: Future = Future()
        self._enqueue(id, frame, future)
        return future

    async def submit_async(self, id: int, frame: Any) -> np.ndarray:
        """``submit`` for asyncio: the session's output for this frame, awaited without blocking the loop."""
        future = _LoopFuture(asyncio.get_running_loop())
        self._enqueue(id, frame, future)
        return await future.future

    def _enqueue(self, id: int, frame: Any, future: Future | _LoopFuture) -> None:
        if id not in self._pool:
            self._pool._slot(id, "id")  # raises the pool's error: what is wrong with the id
        x = self._frame(frame)
        with self._condition:
            if self._closed:
                raise RuntimeError("submit: the batcher is closed")
            self._pending.append(_Frame(int(id), x, future, time.monotonic()))
            if (self._idle and len(self._pending) == 1) or len(self._pending) >= self._max_batch:
                self._condition.notify()

    def _frame(self, frame: Any) -> np.ndarray:
        input_size = self._pool.model.input_size
        if type(frame) is np.ndarray and frame.dtype == np.float32 and frame.shape == (input_size,):
            return frame.copy()
        x = real_array(frame, "frame")
        check_shape(x, (input_size,), "frame", hint="input_size")
        with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as the models convert
            return x.astype(np.float32)

    def close(self, *, cancel_pending: bool = False) -> None:
        """Stop taking frames and wait for the worker: the frames pending are stepped first, or with
        ``cancel_pending`` their futures are cancelled. Closing twice is harmless."""
        with self._condition:
            self._closed = True
            if cancel_pending:
                while self._pending:
                    self._pending.popleft().future.cancel()
            self._condition.notify()
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> SessionBatcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- the worker --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            frames = self._next_frames()
            if frames is None:
                return
            if frames:
                self._step(frames)

    def _next_frames(self) -> list[_Frame] | None:
        """The frames of the next step, once max_batch wait or the oldest has waited max_delay (at once after
        close); None when closed and nothing is pending."""
        with self._condition:
            if not self._pending and not self._closed:
                # Just after a step, whose producers are likely submitting again: wait up to max_delay to be woken
                # by a full batch only. Every wake-up costs the worker the GIL, which it may wait for while the
                # producers run (up to the interpreter's switch interval, 5 ms).
                self._condition.wait(self._max_delay)
            while not self._pending:
                if self._closed:
                    return None
                self._idle = True  # submit wakes the worker at the first frame
                self._condition.wait()
                self._idle = False
            while not self._closed and len(self._pending) < self._max_batch:
                remaining = self._pending[0].arrival + self._max_delay - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return self._take()

    def _take(self) -> list[_Frame]:
        """Up to max_batch pending frames in the order submitted, one per session; the rest stay pending in order
        (a session's later frames wait for the next step). Frames whose futures were cancelled are dropped."""
        taken: list[_Frame] = []
        sessions: set[int] = set()
        kept: deque[_Frame] = deque()
        for frame in self._pending:
            if len(taken) == self._max_batch or frame.id in sessions:
                kept.append(frame)
            elif frame.future.set_running_or_notify_cancel():
                sessions.add(frame.id)
                taken.append(frame)
        self._pending = kept
        return taken

    def _step(self, frames: list[_Frame]) -> None:
        try:
            ids = np.fromiter((frame.id for frame in frames), np.int64, len(frames))
            y = self._pool.step(ids, np.stack([frame.x for frame in frames]))
        except Exception as error:
            self._fail(frames, error)
            return
        _settle(frames, y, is_error=False)

    def _fail(self, frames: list[_Frame], error: Exception) -> None:
        """A step refused: the frames of sessions closed since they were submitted fail with the pool's error
        about them and the others are stepped again; if every session is still open, all fail with ``error``."""
        closed = [frame for frame in frames if frame.id not in self._pool]
        if not closed:
            _settle(frames, error, is_error=True)
            return
        for frame in closed:
            try:
                self._pool._slot(frame.id, "id")
            except Exception as refusal:
                _settle([frame], refusal, is_error=True)
        rest = [frame for frame in frames if frame.id in self._pool]
        if rest:
            self._step(rest)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pending)} pending"
        return (
            f"<fastlstm.SessionBatcher over {self._pool!r}, max_batch={self._max_batch}, "
            f"max_delay={self._max_delay}, {state}>"
        )
