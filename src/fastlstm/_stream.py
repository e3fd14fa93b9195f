"""Streaming: a model's state (h, c) kept between calls, for inputs that arrive a step or a chunk at a time.

``stream = model.stream(batch_size)`` holds one (h, c) per layer for ``batch_size`` independent sequences, starting
from zeros. ``stream.feed(chunk)`` runs the next steps of every sequence and returns their outputs;
``stream.step(x_t)`` runs one. The kernel reads and writes the state in place, so a call allocates only its output.
Feeding a sequence in chunks of any sizes gives bitwise the output and state of one call on the whole sequence:
each step's arithmetic does not depend on where a chunk starts.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._checks import check_int, check_pair, check_shape, check_threads, real_array, shape_text
from ._threads import call_threads, resolve_threads

if TYPE_CHECKING:
    from .lstm import LSTM


def check_forward_only(model: LSTM, what: str) -> None:
    """Refuse a model that reads sequences backwards: ``what`` (a stream, sessions) runs them step by step."""
    for option, name in ((model.reverse, "a reverse model"), (model.bidirectional, "a bidirectional model")):
        if option:
            raise ValueError(
                f"{what}: {name} reads each sequence backwards from its end, so it cannot run step by step; call "
                "the model on whole sequences instead"
            )


class Stream:
    """The running state of ``batch_size`` sequences through a unidirectional ``fastlstm.LSTM``; make one with
    ``model.stream(batch_size)``. It follows the model: weights loaded into the model later apply to the next call.

    Not thread-safe: calls on one stream must not overlap (streams of the same model are independent)."""

    def __init__(self, model: LSTM, batch_size: int) -> None:
        check_forward_only(model, "stream")
        self._model = model
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self._h = np.zeros((model.num_layers, self.batch_size, model.output_size), np.float32)
        self._c = np.zeros((model.num_layers, self.batch_size, model.hidden_size), np.float32)
        self._cache = _core.ForwardCache()  # the step's workspaces, kept from one call to the next

    @property
    def model(self) -> LSTM:
        return self._model

    def feed(self, chunk: Any, *, threads: int | None = None) -> np.ndarray:
        """The outputs of the next steps: chunk is (T, batch_size, input_size), or (batch_size, T, input_size) when
        the model is batch_first; the result is (T, batch_size, H_out) or (batch_size, T, H_out) likewise."""
        model = self._model
        chunk = real_array(chunk, "chunk")
        expected = ("batch_size", "T", "input_size") if model.batch_first else ("T", "batch_size", "input_size")
        batch_axis = 0 if model.batch_first else 1
        if chunk.ndim != 3 or chunk.shape[batch_axis] != self.batch_size or chunk.shape[2] != model.input_size:
            raise ValueError(
                f"chunk: expected shape ({', '.join(expected)}) with batch_size={self.batch_size}, "
                f"input_size={model.input_size}, got {shape_text(chunk.shape)}"
            )
        return self._run(chunk, model.batch_first, threads)

    def step(self, x: Any, *, threads: int | None = None) -> np.ndarray:
        """The output of one step, (batch_size, H_out), for x of shape (batch_size, input_size)."""
        # The fast path: one C++ call, which takes x as it is when it is C-contiguous, aligned float32 of the right
        # shape, and otherwise returns None for the validating path below (which converts x or explains).
        model = self._model
        threads = call_threads(threads, model.threads)
        y = model._packed.step_in_place(x, self._h, self._c, threads, self._cache)
        if y is not None:
            return y
        x = real_array(x, "x")
        check_shape(x, (self.batch_size, model.input_size), "x", hint="batch_size, input_size")
        return model._packed.step_in_place(model._convert(x), self._h, self._c, threads, self._cache)

    def _run(self, x: np.ndarray, batch_first: bool, threads: int | None) -> np.ndarray:
        threads = resolve_threads(check_threads(threads, "threads"), self._model.threads)
        x = self._model._convert(x)
        return self._model._packed.forward_in_place(x, batch_first, self._h, self._c, threads)

    def reset(self, mask: Any = None) -> None:
        """Start sequences anew (state zero): all of them, or those where ``mask`` (batch_size,) is true."""
        if mask is None:
            self._h[...] = 0.0
            self._c[...] = 0.0
            return
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask: expected a boolean array of shape ({self.batch_size},), got dtype {mask.dtype}")
        check_shape(mask, (self.batch_size,), "mask", hint="batch_size")
        self._h[:, mask] = 0.0
        self._c[:, mask] = 0.0

    @property
    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (h, c): h (num_layers, batch_size, H_out), c (num_layers, batch_size, hidden_size)."""
        return self._h.copy(), self._c.copy()

    @state.setter
    def state(self, value: tuple[Any, Any]) -> None:
        h, c = check_pair(value, "state", "(h, c)", optional=False)
        h = real_array(h, "state[0] (h)")
        c = real_array(c, "state[1] (c)")
        check_shape(h, self._h.shape, "state[0] (h)", hint="num_layers, batch_size, H_out")
        check_shape(c, self._c.shape, "state[1] (c)", hint="num_layers, batch_size, hidden_size")
        self._h[...] = h
        self._c[...] = c

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The state is of sequences in flight in this process; what travels is the model (it pickles) and the state.
        raise TypeError(
            "cannot pickle a fastlstm.Stream: it is the running state of live sequences. Send the model (it pickles) "
            "and the state (h, c) = stream.state instead, and on the other side make "
            "stream = model.stream(batch_size) and set stream.state = (h, c)"
        )

    def __copy__(self) -> Stream:
        """A branch: a stream of the same model whose state starts as a copy of this one's."""
        return self._branch(self._model)

    def __deepcopy__(self, memo: dict) -> Stream:
        """A branch on a deep copy of the model."""
        return self._branch(copy.deepcopy(self._model, memo))

    def _branch(self, model: LSTM) -> Stream:
        branch = Stream(model, self.batch_size)
        branch._h[...] = self._h
        branch._c[...] = self._c
        return branch

    def __repr__(self) -> str:
        return f"<fastlstm.Stream of {self._model!r}, batch_size={self.batch_size}>"
