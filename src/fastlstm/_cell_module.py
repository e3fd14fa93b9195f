"""What ``fastlstm.LSTMCell`` and ``fastlstm.reference.LSTMCell`` share: a cell is one step of a one-layer LSTM of
its module's class, with ``torch.nn.LSTMCell``'s parameter names and call conventions."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._checks import check_pair, check_shape, real_array, shape_text
from ._module import LSTMBase
from ._parameters import check_state_dict_names
from ._portable import PortableModel, check_config_keys

#: The options of a one-layer, one-direction LSTM with torch.nn.LSTM's cell, which a cell's configuration leaves out.
_ONE_CELL = {
    "num_layers": 1,
    "batch_first": False,
    "bidirectional": False,
    "proj_size": 0,
    "reverse": False,
    "activations": None,
    "clip": None,
    "input_forget": False,
    "peepholes": False,
}


class LSTMCellBase(PortableModel):
    """Parameters and call conventions of ``torch.nn.LSTMCell``, as one step of a one-layer LSTM (``_lstm_class``)."""

    _lstm_class: type[LSTMBase]
    _portable_name = "fastlstm.LSTMCell"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        seed: int | np.random.Generator | None = None,
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        self._lstm = self._lstm_class(
            input_size, hidden_size, bias=bias, seed=seed, threads=threads, precision=precision
        )

    input_size = property(lambda self: self._lstm.input_size)
    hidden_size = property(lambda self: self._lstm.hidden_size)
    bias = property(lambda self: self._lstm.bias)
    precision = property(lambda self: self._lstm.precision)

    def astype(self, precision: str):
        """A new cell with the same parameters computing in ``precision``, "fp32", "bf16" or "int8" (see
        ``fastlstm.LSTM.astype``)."""
        other = copy.copy(self)
        other._lstm = self._lstm.astype(precision)
        return other

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name and shape of every parameter, in the order of ``torch.nn.LSTMCell.state_dict()``."""
        return {name[: -len("_l0")]: shape for name, shape in self._lstm.parameter_shapes().items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters: ``weight_ih``, ``weight_hh`` and, with bias, ``bias_ih``, ``bias_hh``."""
        return {name[: -len("_l0")]: value for name, value in self._lstm.state_dict().items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Replace every parameter; names and shapes as ``torch.nn.LSTMCell.state_dict()``."""
        self._set_parameters(state_dict, copy=True)

    def _set_parameters(self, state_dict: Mapping[str, Any], *, copy: bool) -> None:
        check_state_dict_names(state_dict, self.parameter_shapes(), self)
        try:
            self._lstm._set_parameters({f"{name}_l0": value for name, value in state_dict.items()}, copy=copy)
        except (TypeError, ValueError) as error:
            raise type(error)(str(error).replace("_l0'", "'")) from None

    # ---- pickle, copy, fastlstm.save (see fastlstm._portable) -------------------------------------------------

    def _portable_config(self) -> dict[str, Any]:
        """The LSTM's configuration without the options every cell has alike (``_ONE_CELL``)."""
        return {key: value for key, value in self._lstm._portable_config().items() if key not in _ONE_CELL}

    def _portable_tensors(self) -> dict[str, np.ndarray]:
        return {name[: -len("_l0")]: value for name, value in self._lstm._portable_tensors().items()}

    def _portable_restore(self, config: Mapping[str, Any], precision: str, tensors: Mapping[str, Any]) -> None:
        expected = tuple(key for key in self._lstm_class._OPTIONS if key not in _ONE_CELL)
        check_config_keys(config, expected, self._portable_name)
        lstm = self._lstm_class.__new__(self._lstm_class)
        lstm._portable_configure({**_ONE_CELL, **config}, precision, tensors)
        self._lstm = lstm
        self._set_parameters(tensors, copy=False)

    def __call__(
        self, x: Any, state: tuple[Any, Any] | None = None, *, threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step: ``(h, c)`` from x of shape (N, input_size) or (input_size,) and state ``(h, c)`` of shape
        (N, hidden_size) or (hidden_size,), zeros when omitted."""
        x = real_array(x, "x")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape (N, {self.input_size}) or unbatched ({self.input_size},) "
                f"(input_size={self.input_size}), got {shape_text(x.shape)}"
            )
        unbatched = x.ndim == 1
        x2 = x[None, :] if unbatched else x
        lstm_state = None
        if state is not None:
            h0, c0 = check_pair(state, "state", "(h, c)", optional=True)
            expected = (self.hidden_size,) if unbatched else (x2.shape[0], self.hidden_size)
            h0 = real_array(h0, "state[0] (h)")
            c0 = real_array(c0, "state[1] (c)")
            check_shape(h0, expected, "state[0] (h)", hint="batch, hidden_size" if not unbatched else "hidden_size")
            check_shape(c0, expected, "state[1] (c)", hint="batch, hidden_size" if not unbatched else "hidden_size")
            shape = (1, x2.shape[0], self.hidden_size)
            lstm_state = (h0.reshape(shape), c0.reshape(shape))
        _, (h, c) = self._lstm(x2[None, :, :], lstm_state, threads=threads)
        h, c = h[0], c[0]
        return (h[0], c[0]) if unbatched else (h, c)

    forward = __call__

    def __repr__(self) -> str:
        options = "" if self.bias else ", bias=False"
        if self.precision != "fp32":
            options += f", precision={self.precision!r}"
        module = self._lstm_class._public_module
        return f"{module}.{type(self).__name__}({self.input_size}, {self.hidden_size}{options})"
