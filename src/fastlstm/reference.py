"""A NumPy reference LSTM, written from the equations for a reader: the oracle of the tests and the baseline of the
benchmarks. Same API, parameter names and semantics as ``fastlstm.LSTM`` / ``fastlstm.LSTMCell`` (those of
``torch.nn``), computed in float64 by default, or in any NumPy float dtype given as ``dtype``.

For each layer and direction, at each step t (backwards in time for the reverse direction)::

    gates = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh        # 4H values, in the order i, f, g, o
    i, f, o = sigmoid(gates_i), sigmoid(gates_f), sigmoid(gates_o);   g = tanh(gates_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                                   # then h_t = W_hr h_t with a projection

The input part ``W_ih x_t + b_ih + b_hh`` does not depend on the recurrence, so it is computed for all steps at once.

With ``precision="bf16"`` the products are those of the bf16 kernels: W_ih and W_hh rounded to bf16, times x_t and
h_{t-1} rounded to bf16 (``round_to_bf16``), the rest in ``dtype``. With ``precision="int8"``, those of the int8
kernels: every row of W_ih and W_hh, and every row of x_t and h_{t-1}, replaced by its int8 code times its scale
(``quantize_to_int8``).
"""

from __future__ import annotations

import numpy as np

from . import _cell
from ._cell import sigmoid
from ._cell_module import LSTMCellBase
from ._module import LSTMBase
from ._parameters import layer_suffix

# sigmoid, exported here, is _cell's, which holds the NumPy form of every activation for this reference alone: the
# models compute in the C++ core, so the oracle shares no arithmetic with what it checks.
__all__ = ["LSTM", "LSTMCell", "quantize_to_int8", "round_to_bf16", "sigmoid"]


def round_to_bf16(values: np.ndarray) -> np.ndarray:
    """``values`` as float32, rounded to the nearest bf16 (the upper 16 bits of a float32), ties to even, returned
    as float32. NaN stays NaN; values past the largest bf16 (about 3.39e38) become +-inf."""
    single = np.ascontiguousarray(values, dtype=np.float32)
    bits = single.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    nan = np.isnan(single)
    rounded[nan] = (bits[nan].astype(np.uint32) >> 16 << 16) | 0x00400000  # quiet, as the kernels keep it
    return rounded.view(np.float32)


def quantize_to_int8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric int8 code of every row (last axis) of ``values`` as float32, as the kernels compute it:
    ``(codes, scales)`` with scale = max|row| / 127 and codes = rint(row * (127 / max|row|)) in [-127, 127] (ties to
    even), every operation in float32. A row whose largest magnitude is below the smallest normal float32 has scale
    0 and codes 0; a row holding inf or NaN has scale NaN and codes 0. ``codes * scales`` is the row the int8 kernels
    multiply with."""
    single = np.ascontiguousarray(values, dtype=np.float32)
    finite = np.all(np.isfinite(single), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        largest = np.max(np.abs(single), axis=-1, keepdims=True, initial=np.float32(0))
    usable = finite & (largest >= np.finfo(np.float32).tiny)
    inverse = np.float32(127) / np.where(usable, largest, np.float32(1))
    with np.errstate(invalid="ignore", over="ignore"):
        codes = np.clip(np.rint(np.where(usable, single, 0) * inverse), -127, 127).astype(np.float32)
    scales = np.where(usable, largest / np.float32(127), np.where(finite, np.float32(0), np.float32(np.nan)))
    return codes, scales.astype(np.float32)


def _float_dtype(dtype) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected a NumPy float dtype, got {dtype!r}") from None
    if dtype.kind != "f":
        raise TypeError(f"dtype: expected a NumPy float dtype, got {dtype}")
    return dtype


class LSTM(LSTMBase):
    """``torch.nn.LSTM`` in NumPy. ``dtype`` (keyword, default float64) is the dtype of parameters and arithmetic;
    ``precision`` ("fp32", "bf16" or "int8") makes the products those of the kernels of that precision (see the
    module docstring)."""

    _public_module = "fastlstm.reference"
    _portable_name = "fastlstm.reference.LSTM"
    _OPTIONS = (*LSTMBase._OPTIONS, "dtype")

    def __init__(self, *args, dtype=np.float64, **kwargs) -> None:
        self._dtype = _float_dtype(dtype)
        super().__init__(*args, **kwargs)

    def _configure(self, *args, dtype=None, **kwargs) -> None:
        # The constructor sets the dtype before the options (None keeps it); a pickle's configuration carries it.
        if dtype is not None:
            self._dtype = _float_dtype(dtype)
        super()._configure(*args, **kwargs)

    def _portable_config(self) -> dict:
        return {**super()._portable_config(), "dtype": self._dtype.name}

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def _run(self, x, batch_first, h0, c0, threads, lengths=None):
        # `threads` is accepted for the shared API; the reference is plain NumPy, whose BLAS picks its own threads.
        # NaN and inf in the data propagate through the equations (inf - inf in a product gives NaN) without
        # warnings, as in the C++ kernels.
        with np.errstate(invalid="ignore", over="ignore"):
            if lengths is None:
                return self._equations(x, batch_first, h0, c0)
            return self._rows_of_own_lengths(x, batch_first, h0, c0, lengths)

    def _rows_of_own_lengths(self, x, batch_first, h0, c0, lengths):
        """Variable lengths by their definition: each row alone, on its first lengths[b] steps, from its own
        initial state; outputs zero past its length."""
        time_major = x.transpose(1, 0, 2) if batch_first else x
        steps, batch, _ = time_major.shape
        output = np.zeros((steps, batch, self.num_directions * self.output_size), self._dtype)
        states = self.num_layers * self.num_directions
        h_n = np.zeros((states, batch, self.output_size), self._dtype) if h0 is None else h0.astype(self._dtype)
        c_n = np.zeros((states, batch, self.hidden_size), self._dtype) if c0 is None else c0.astype(self._dtype)
        for b, length in enumerate(lengths):
            if length == 0:
                continue  # the initial state, and zero outputs
            row_state = (h_n[:, b : b + 1], c_n[:, b : b + 1])
            row_output, row_h, row_c = self._equations(time_major[:length, b : b + 1], False, *row_state)
            output[:length, b] = row_output[:, 0]
            h_n[:, b], c_n[:, b] = row_h[:, 0], row_c[:, 0]
        y = output.transpose(1, 0, 2) if batch_first else output
        return np.ascontiguousarray(y), h_n, c_n

    def _equations(self, x, batch_first, h0, c0):
        if batch_first:
            x = x.transpose(1, 0, 2)
        steps, batch, _ = x.shape
        states = self.num_layers * self.num_directions
        if h0 is None:
            h0 = np.zeros((states, batch, self.output_size), self._dtype)
            c0 = np.zeros((states, batch, self.hidden_size), self._dtype)
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0)

        layer_input = x
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                suffix = layer_suffix(layer, direction)
                w_ih, w_hh, b_ih, b_hh, w_hr = self._cell_parameters(suffix)
                bias = b_ih + b_hh if self.bias else 0.0
                w_ih, w_hh = self._as_operand(w_ih), self._as_operand(w_hh)

                input_part = self._as_operand(layer_input) @ w_ih.T + bias  # (T, N, 4H)
                h, c = h0[index], c0[index]
                output = np.empty((steps, batch, self.output_size), self._dtype)
                backwards = direction == 1 or self.reverse
                time_steps = range(steps - 1, -1, -1) if backwards else range(steps)
                peepholes = self._parameters.get(f"peephole{suffix}")
                for t in time_steps:
                    gates = input_part[t] + self._as_operand(h) @ w_hh.T
                    i, f, g, o = np.split(gates, 4, axis=1)
                    if self.has_cell_options:
                        c, h = self._cell_with_options(i, f, g, o, c, peepholes)
                    else:
                        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
                        c = f * c + i * g
                        h = o * np.tanh(c)
                    if w_hr is not None:
                        h = h @ w_hr.T
                    output[t] = h
                direction_outputs.append(output)
                h_n[index], c_n[index] = h, c
            layer_input = np.concatenate(direction_outputs, axis=2)

        y = layer_input.transpose(1, 0, 2) if batch_first else layer_input
        return np.ascontiguousarray(y), h_n, c_n

    def _as_operand(self, values: np.ndarray) -> np.ndarray:
        """``values`` (weights, or rows of x or h) as the kernels of this precision multiply them."""
        if self.precision == "bf16":
            with np.errstate(over="ignore"):
                return round_to_bf16(values).astype(self._dtype)
        if self.precision == "int8":
            codes, scales = quantize_to_int8(values)
            with np.errstate(invalid="ignore"):
                return codes.astype(self._dtype) * scales.astype(self._dtype)
        return values

    def _cell_with_options(self, i, f, g, o, c, peepholes):
        """(c_t, o * output(c_t)) by the equations of fastlstm._cell."""
        gate, candidate, output = self.activations

        def clipped(z):
            return z if self.clip is None else np.clip(z, -self.clip, self.clip)

        if peepholes is not None:
            i = i + peepholes[0] * c
            f = f + peepholes[1] * c
        i = _cell.apply(gate, clipped(i))
        f = 1 - i if self.input_forget else _cell.apply(gate, clipped(f))
        c = f * c + i * _cell.apply(candidate, clipped(g))
        if peepholes is not None:
            o = o + peepholes[2] * c
        return c, _cell.apply(gate, clipped(o)) * _cell.apply(output, c)


class LSTMCell(LSTMCellBase):
    """``torch.nn.LSTMCell`` in NumPy; ``dtype`` as for ``LSTM``."""

    _lstm_class = LSTM
    _portable_name = "fastlstm.reference.LSTMCell"

    def __init__(
        self, input_size, hidden_size, bias=True, *, seed=None, threads=None, precision="fp32", dtype=np.float64
    ) -> None:
        self._lstm = LSTM(
            input_size, hidden_size, bias=bias, seed=seed, threads=threads, precision=precision, dtype=dtype
        )
