"""The parameters of ``fastlstm.LSTM`` and ``fastlstm.reference.LSTM``: PyTorch's names, shapes and initialisation,
``state_dict`` / ``load_state_dict``, and the limits a precision puts on the sizes (``astype``)."""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from ._checks import aligned_contiguous, check_precision, check_shape, missing_and_unexpected, real_array

_GATES = 4  # i, f, g, o


def layer_suffix(layer: int, direction: int) -> str:
    """PyTorch's suffix of a cell's parameter names: ``_l{layer}``, then ``_reverse`` for the reverse direction."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def check_state_dict_names(state_dict: Any, shapes: Mapping[str, Any], owner: Any) -> None:
    """Refuse a ``state_dict`` that is not a mapping (TypeError) or whose names are not exactly those of ``shapes``
    (ValueError listing the missing and the unexpected ones, naming ``owner`` by its repr)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of names to arrays, got {type(state_dict).__name__}")
    differences = missing_and_unexpected(state_dict, shapes)
    if differences:
        raise ValueError(f"state_dict: {differences} for {owner!r}; expected the names {list(shapes)}")


class LSTMParameters:
    """Names, shapes, initial values and loading of the parameters of a ``torch.nn.LSTM``-shaped model. The model
    sets input_size, hidden_size, num_layers, bias, bidirectional, proj_size, peepholes and precision."""

    #: dtype in which parameters are stored and the forward pass computes
    _dtype: np.dtype = np.dtype(np.float32)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of h for one direction: proj_size when projecting, else hidden_size."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def _cell_keys(self) -> list[tuple[int, int, str]]:
        """(layer, direction, name suffix) of every cell, in PyTorch's order."""
        return [
            (layer, direction, layer_suffix(layer, direction))
            for layer in range(self.num_layers)
            for direction in range(self.num_directions)
        ]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name and shape of every parameter, in the order of ``torch.nn.LSTM.state_dict()``."""
        H, P = self.hidden_size, self.proj_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer, _, suffix in self._cell_keys():
            layer_input = self.input_size if layer == 0 else self.num_directions * self.output_size
            shapes[f"weight_ih{suffix}"] = (_GATES * H, layer_input)
            shapes[f"weight_hh{suffix}"] = (_GATES * H, self.output_size)
            if self.bias:
                shapes[f"bias_ih{suffix}"] = (_GATES * H,)
                shapes[f"bias_hh{suffix}"] = (_GATES * H,)
            if P > 0:
                shapes[f"weight_hr{suffix}"] = (P, H)
            if self.peepholes:
                shapes[f"peephole{suffix}"] = (3, H)  # rows p_i, p_f, p_o
        return shapes

    def _size_text(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}, num_layers={self.num_layers}"

    def _parameter_bytes(self) -> int:
        """Bytes of the parameters in this model's dtype, counted in Python integers (no overflow). Refuses sizes whose
        byte count no array on this platform can hold, before anything is allocated."""
        values = sum(math.prod(shape) for shape in self.parameter_shapes().values())
        count = values * max(np.dtype(self._dtype).itemsize, np.dtype(np.float32).itemsize)
        if count > sys.maxsize:
            raise ValueError(
                f"{self._size_text()}: the parameters would take {count} bytes, more than this platform can address "
                f"({sys.maxsize})"
            )
        return count

    def _initial_parameters(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        # PyTorch's initialisation: every parameter uniform in [-1/sqrt(hidden_size), 1/sqrt(hidden_size)].
        # Drawn in float32, as PyTorch stores them, so that every dtype of the same seed holds the same values.
        bound = 1.0 / np.sqrt(self.hidden_size)
        return {
            name: rng.uniform(-bound, bound, size=shape).astype(np.float32).astype(self._dtype)
            for name, shape in self.parameter_shapes().items()
        }

    def _cell_parameters(
        self, suffix: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(w_ih, w_hh, b_ih or None, b_hh or None, w_hr or None) of one cell."""
        p = self._parameters
        return (
            p[f"weight_ih{suffix}"],
            p[f"weight_hh{suffix}"],
            p.get(f"bias_ih{suffix}"),
            p.get(f"bias_hh{suffix}"),
            p.get(f"weight_hr{suffix}"),
        )

    # ---- state_dict -------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, keyed by PyTorch's names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...)."""
        return {name: value.copy() for name, value in self._parameters.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Replace every parameter. Takes what ``torch.nn.LSTM.state_dict()`` gives, each tensor as a NumPy array
        (or anything NumPy can view as a real array). Every name must be present with its exact shape, and no other
        name may appear; nothing changes unless all of them are right."""
        self._set_parameters(state_dict, copy=True)

    def _set_parameters(self, state_dict: Mapping[str, Any], *, copy: bool) -> None:
        """``load_state_dict``, keeping arrays that are already C-contiguous in the dtype when ``copy`` is false (for
        arrays nothing else holds, such as those just read from a file)."""
        shapes = self.parameter_shapes()
        check_state_dict_names(state_dict, shapes, self)
        loaded = {}
        for name, shape in shapes.items():
            array = real_array(state_dict[name], f"state_dict[{name!r}]")
            check_shape(array, shape, f"state_dict[{name!r}]")
            if copy:
                loaded[name] = np.array(array, dtype=self._dtype, order="C", copy=True)
            else:
                loaded[name] = aligned_contiguous(array, self._dtype)
        self._parameters = loaded
        self._parameters_changed()

    def _parameters_changed(self) -> None:
        """Hook: the parameters (or the precision) were set; fastlstm.LSTM repacks them here."""

    # ---- precision --------------------------------------------------------------------------------------------

    #: The largest dot-product depth K (input_size, the recurrent size, a deeper layer's input) int8 accepts: the
    #: core's kInt8MaxDepth (csrc/include/fastlstm/int8.h derives it from the int32 sums), which the core enforces
    #: too; this check gives the friendly error before anything is packed.
    INT8_MAX_DEPTH = _core.INT8_MAX_DEPTH

    def _check_precision_fits(self, precision: str) -> None:
        if precision != "int8":
            return
        depths = {"input_size": self.input_size, "the recurrent size": self.output_size}
        if self.num_layers > 1:
            depths["the input of layers > 0"] = self.num_directions * self.output_size
        for what, depth in depths.items():
            if depth > self.INT8_MAX_DEPTH:
                raise ValueError(
                    f"precision: 'int8' sums at most {self.INT8_MAX_DEPTH} products per gate exactly (32-bit "
                    f"integers); {what} is {depth}. Use 'bf16' or 'fp32'"
                )

    def astype(self, precision: str):
        """A new model of the same class, options and parameters, computing in ``precision`` ("fp32", "bf16" or
        "int8"). The parameters stay float32 in every precision (``state_dict`` gives them unrounded); only the
        packed copy the kernels read is rounded or quantized, so ``model.astype("int8").astype("fp32")`` computes
        exactly what ``model`` does."""
        precision = check_precision(precision)
        self._check_precision_fits(precision)
        other = copy.copy(self)
        other.precision = precision
        other._parameters = dict(self._parameters)  # the arrays are never changed in place: shared
        other._parameters_changed()
        return other
