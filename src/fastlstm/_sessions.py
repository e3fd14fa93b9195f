"""Sessions: many live streams of one model, each with its own state, stepped together whenever some have a frame.

``pool = model.sessions(capacity)`` holds the states (h, c) of up to ``capacity`` sessions in two arrays, one row
per session. ``id = pool.open()`` starts a session from zeros; ``pool.step(ids, x)`` runs one step of exactly the
sessions listed, x holding one frame per id, as one batch through the kernels: the C++ core gathers their state
rows, steps them and writes them back, with no Python loop over the sessions. Each session's outputs are bitwise
those of its own ``model.stream(1)`` fed the same frames, whatever the other sessions of each step: a row's
arithmetic never depends on its batch (tests/test_threads.py, tests/test_sessions.py).

A session id is an int: ``generation << 32 | slot``, the slot being its row and the generation counting the
sessions that slot has held. An id therefore stays unique after its session closes and the slot is reused, and
the core checks a whole step's ids against one array, the generation each slot holds now (-1: free).
"""

from __future__ import annotations

import heapq
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._checks import check_bool, check_int, check_pair, check_shape, real_array, shape_text
from ._stream import check_forward_only
from ._threads import call_threads

if TYPE_CHECKING:
    from ._batcher import SessionBatcher
    from .lstm import LSTM

_SLOT_BITS = 32
_SLOT_MASK = (1 << _SLOT_BITS) - 1
#: Slots are rows of int64-indexed arrays and the low half of an id.
_MAX_CAPACITY = 1 << _SLOT_BITS


class Sessions:
    """The states of up to ``capacity`` live sessions of a unidirectional ``fastlstm.LSTM``, stepped together; make
    one with ``model.sessions(capacity)``. With ``grow=True`` (the default) a full pool doubles its capacity when a
    session opens (ids stay valid); with ``grow=False`` it refuses to open more. It follows the model: weights
    loaded into the model later apply to the next step.

    Thread-safe: its methods may be called from any thread (one step at a time runs; the core releases the GIL).
    ``pool.batcher()`` gathers frames submitted from many threads or tasks into steps."""

    def __init__(self, model: LSTM, capacity: int, *, grow: bool = True) -> None:
        check_forward_only(model, "sessions")
        self._model = model
        capacity = check_int(capacity, "capacity", minimum=1)
        if capacity > _MAX_CAPACITY:
            raise ValueError(f"capacity: expected at most {_MAX_CAPACITY} sessions, got {capacity}")
        self._grow = check_bool(grow, "grow")
        # The lock of the pool's arrays, shared with the steps a batcher queues in C++ (which never take the GIL, and
        # read the arrays where they are when they start): a mutex that `with` waits for without the GIL.
        self._lock = _core.SessionRows()
        self._h = np.zeros((model.num_layers, capacity, model.output_size), np.float32)
        self._c = np.zeros((model.num_layers, capacity, model.hidden_size), np.float32)
        self._generations = np.full(capacity, -1, np.int64)  # the generation each slot holds now; -1: free
        self._opened = [0] * capacity  # sessions each slot has held: the next generation
        self._free = list(range(capacity))  # a heap: the lowest free slot first, so open sessions stay packed
        # The open ids again, for `id in pool`: a batcher asks it of every frame, and a set lookup there takes 0.13 us
        # against 0.41 us reading _generations (here). Changed with _generations, under the lock.
        self._open_ids: set[int] = set()
        self._cache = _core.ForwardCache()
        with self._lock:
            self._lock.attach(self._h, self._c, self._generations)

    @property
    def model(self) -> LSTM:
        return self._model

    @property
    def capacity(self) -> int:
        """Sessions the pool holds without growing."""
        return self._generations.shape[0]

    def __len__(self) -> int:
        """The number of open sessions."""
        return self.capacity - len(self._free)

    @property
    def ids(self) -> np.ndarray:
        """The ids of the open sessions, (len(pool),) int64, by slot."""
        with self._lock:
            slots = np.flatnonzero(self._generations >= 0)
            return self._generations[slots] << _SLOT_BITS | slots

    def open(self) -> int:
        """Start a session from the zero state; returns its id."""
        with self._lock:
            if not self._free:
                self._grow_capacity()
            slot = heapq.heappop(self._free)
            generation = self._opened[slot]
            self._opened[slot] = generation + 1
            self._generations[slot] = generation
            self._h[:, slot] = 0.0
            self._c[:, slot] = 0.0
            id = generation << _SLOT_BITS | slot
            self._open_ids.add(id)
            return id

    def close(self, id: int) -> None:
        """End the session ``id``: its id is refused from now on, and its row serves a later session."""
        with self._lock:
            slot = self._slot(id, "id")
            self._generations[slot] = -1
            self._open_ids.discard(int(id))
            heapq.heappush(self._free, slot)

    def __contains__(self, id: Any) -> bool:
        """Whether ``id`` is the id of an open session of this pool."""
        if type(id) is int:  # a plain int, as a batcher is given for every frame: no ABC check
            return id in self._open_ids
        if isinstance(id, bool) or not isinstance(id, numbers.Integral):
            return False
        return int(id) in self._open_ids

    def step(self, ids: Any, x: Any, *, threads: int | None = None) -> np.ndarray:
        """One step of the sessions ``ids`` (a sequence or 1-D array of n distinct open ids) with their frames x
        (n, input_size), in one call of the kernels; returns their outputs (n, H_out) in the order of ``ids``. An id
        that is unknown, closed or listed twice is refused (ValueError) before any session is stepped."""
        threads = call_threads(threads, self._model.threads)
        with self._lock:
            packed = self._model._packed
            try:
                # The fast path: x plain float32 and ids an int64 array, taken as they are (the core checks ids).
                y = packed.step_sessions(x, ids, self._generations, self._h, self._c, threads, self._cache)
                if y is None:
                    ids, x = self._step_arguments(ids, x)
                    y = packed.step_sessions(x, ids, self._generations, self._h, self._c, threads, self._cache)
            except KeyError:
                self._refuse_ids(ids)
                raise  # not reached: _refuse_ids finds what the core refused
            return y

    def _step_arguments(self, ids: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """ids and x of a step as the core takes them (int64 and float32 arrays), or the error that says what is
        wrong with their types or shapes."""
        ids = np.asarray(ids)
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected session ids (ints), got dtype {ids.dtype}")
        if ids.ndim != 1:
            raise ValueError(f"ids: expected a 1-D sequence of session ids, got shape {shape_text(ids.shape)}")
        x = real_array(x, "x")
        check_shape(x, (ids.size, self._model.input_size), "x", hint="one frame per id, input_size")
        return np.ascontiguousarray(ids, np.int64), self._model._convert(x)

    def _refuse_ids(self, ids: Any) -> None:
        """The error for the ids of a step the core refused: the first unknown or closed id, or one listed twice.
        (A loop over the ids, on this path only.)"""
        ids = np.asarray(ids).tolist()
        for id in ids:
            self._slot(id, "ids")
        repeated = next(id for id in ids if ids.count(id) > 1)
        raise ValueError(
            f"ids: each session steps at most once per call; session {repeated} is listed {ids.count(repeated)} "
            "times (step its frames in turn, or submit them to pool.batcher())"
        )

    def _slot(self, id: Any, name: str) -> int:
        """The slot of the open session ``id``, or an error naming ``name``, the id and what is wrong."""
        if isinstance(id, bool) or not isinstance(id, numbers.Integral):
            raise TypeError(f"{name}: expected a session id (an int), got {type(id).__name__} {id!r}")
        id = int(id)
        slot, generation = id & _SLOT_MASK, id >> _SLOT_BITS
        if id < 0 or slot >= self.capacity or generation >= self._opened[slot]:
            raise ValueError(f"{name}: no session {id} was opened in this pool")
        if int(self._generations[slot]) != generation:
            raise ValueError(f"{name}: session {id} is closed")
        return slot

    def _grow_capacity(self) -> None:
        capacity = self.capacity
        if not self._grow:
            raise RuntimeError(
                f"open: all {capacity} sessions of this pool are open (made with grow=False); close one first, or "
                "make the pool with grow=True or a larger capacity"
            )
        if capacity >= _MAX_CAPACITY:
            raise RuntimeError(f"open: the pool holds its maximum of {_MAX_CAPACITY} sessions")
        larger = min(2 * capacity, _MAX_CAPACITY)  # doubling: n opens cost O(n) copies in all
        # All three made before any is replaced: the lock's pointers must never name a freed array.
        h, c = _grown(self._h, larger), _grown(self._c, larger)
        generations = np.concatenate([self._generations, np.full(larger - capacity, -1, np.int64)])
        self._lock.attach(h, c, generations)
        self._h, self._c, self._generations = h, c, generations
        self._opened.extend([0] * (larger - capacity))
        for slot in range(capacity, larger):
            heapq.heappush(self._free, slot)

    def state(self, id: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the session's (h, c): h (num_layers, H_out), c (num_layers, hidden_size)."""
        with self._lock:
            slot = self._slot(id, "id")
            return self._h[:, slot].copy(), self._c[:, slot].copy()

    def set_state(self, id: int, state: tuple[Any, Any]) -> None:
        """Set the session's (h, c), shaped as ``state(id)`` returns them."""
        h, c = check_pair(state, "state", "(h, c)", optional=False)
        h = real_array(h, "state[0] (h)")
        c = real_array(c, "state[1] (c)")
        check_shape(h, self._h[:, 0].shape, "state[0] (h)", hint="num_layers, H_out")
        check_shape(c, self._c[:, 0].shape, "state[1] (c)", hint="num_layers, hidden_size")
        with self._lock:
            slot = self._slot(id, "id")
            self._h[:, slot] = h
            self._c[:, slot] = c

    def batcher(self, *, max_batch: int | None = None, max_delay: float | None = None) -> SessionBatcher:
        """A ``fastlstm.SessionBatcher`` over this pool: frames submitted from any thread or task, stepped together
        (see there for ``max_batch`` and ``max_delay``)."""
        from ._batcher import SessionBatcher

        return SessionBatcher(self, max_batch=max_batch, max_delay=max_delay)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Sessions are live conversations of this process; what travels is the model and each session's state.
        raise TypeError(
            "cannot pickle or copy a fastlstm.Sessions: it holds the running state of live sessions. Send the model "
            "(it pickles) and the states you need (pool.state(id)) instead, and on the other side make "
            "pool = model.sessions(capacity), id = pool.open() and pool.set_state(id, (h, c))"
        )

    def __repr__(self) -> str:
        return f"<fastlstm.Sessions of {self._model!r}, {len(self)} open of capacity {self.capacity}>"


def _grown(state: np.ndarray, capacity: int) -> np.ndarray:
    """``state`` (layers, rows, size) with zero rows appended up to ``capacity``."""
    grown = np.zeros((state.shape[0], capacity, state.shape[2]), np.float32)
    grown[:, : state.shape[1]] = state
    return grown
