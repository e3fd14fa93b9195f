"""The ONNX importer's reading of one LSTM node: its attributes checked and turned into ``fastlstm.LSTM``'s cell
options, its W, R, B and P converted to PyTorch's names and gate order, its X and initial states traced to where
they come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _cell
from .._checks import shape_text
from ._common import gates_from_onnx, layer_suffixes, peepholes_from_onnx
from ._onnx_plumbing import (
    _Constant,
    _GraphInput,
    _InputRows,
    _LayerSequence,
    _LayerState,
    _LayerY,
    _TimeMajorInput,
    _Value,
    _Zeros,
)

#: The first operator set whose LSTM has the ``layout`` attribute.
LAYOUT_OPSET = 14

#: The LSTM operator's inputs, in order.
_LSTM_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
_LSTM_ATTRIBUTES = {
    "activation_alpha",
    "activation_beta",
    "activations",
    "clip",
    "direction",
    "hidden_size",
    "input_forget",
    "layout",
}
#: Weight dtypes converted to float32; any other dtype is refused.
_CONVERTIBLE_DTYPES = ("float32", "float16", "float64", "bfloat16")
#: An activation that the node's activation_alpha / activation_beta leave without a value gets onnxruntime's alpha
#: and beta, since onnxruntime runs the graphs this importer reads. Those are the defaults of _cell.ACTIVATIONS
#: (the standalone ONNX operators' defaults, which the LSTM operator's specification names) except for these three
#: functions, to which onnxruntime gives alpha 0 and beta 0 instead of (1, 0), (1, 0) and (1, 1)
#: (tests/test_onnx_import.py::test_omitted_alpha_and_beta_are_onnxruntimes).
_ZERO_WHEN_OMITTED = ("affine", "thresholded_relu", "scaled_tanh")


@dataclass
class _StateSource:
    """Where one layer's initial h or c comes from: rows start:stop of a graph input (stop None: all of it)."""

    input_name: str
    start: int
    stop: int | None
    description: str


@dataclass
class _Layer:
    """One LSTM node, checked, with its parameters under PyTorch's names for its layer."""

    index: int
    node: str
    directions: int
    hidden_size: int
    layout: int
    input_size: int
    x: _Value
    parameters: dict[str, np.ndarray] = field(default_factory=dict)
    has_bias: bool = False
    # "h" and "c": None when the state is zeros
    initial_states: dict[str, _StateSource | None] = field(default_factory=dict)
    # the graph input holding the rows' lengths, or None (every row runs all steps)
    sequence_lens: str | None = None
    # fastlstm.LSTM's cell options (reverse, activations, clip, input_forget), and whether P holds peepholes
    cell: dict[str, Any] = field(default_factory=dict)
    peepholes: bool = False


class _LstmNodeReader:
    """The LSTM node handler of ``_GraphReader``, which sets ``opset`` and ``layers`` (the LSTM nodes read so far,
    to which each node is appended) and provides ``_attributes``."""

    opset: int
    layers: list[_Layer]

    def _lstm(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        where = f"node {label} (LSTM)"
        index = len(self.layers)
        attributes = self._attributes(node)
        directions, layout, cell = self._check_lstm_attributes(where, attributes)
        direction = attributes.get("direction", "forward")

        if len(operands) > 8:
            raise ValueError(f"from_onnx: {where}: has {len(operands)} inputs, the LSTM operator has at most 8")
        # The name of each input in the graph, "" when omitted: for the messages.
        names = dict(zip(_LSTM_INPUTS, list(node.input) + [""] * (8 - len(node.input))))
        x, w, r, b, sequence_lens, initial_h, initial_c, p = operands + [None] * (8 - len(operands))
        if sequence_lens is not None and not isinstance(sequence_lens, _GraphInput):
            raise ValueError(
                f"from_onnx: {where}: input sequence_lens ({names['sequence_lens']!r}) is {sequence_lens}; only a "
                "graph input is supported (it becomes the lengths= argument of the model's call)"
            )
        if w is None or r is None:
            raise ValueError(f"from_onnx: {where}: the inputs W and R are required")

        weights = self._weight(where, "W", names["W"], w)
        recurrent = self._weight(where, "R", names["R"], r)
        if recurrent.ndim != 3:
            raise ValueError(
                f"from_onnx: {where}: input R ({names['R']!r}) has shape {shape_text(recurrent.shape)}, expected "
                "(num_directions, 4*hidden_size, hidden_size)"
            )
        hidden = attributes.get("hidden_size", recurrent.shape[-1])
        if hidden < 1:
            raise ValueError(f"from_onnx: {where}: hidden_size={hidden} is not valid")

        def check_shape(role: str, array: np.ndarray, expected: tuple[int, ...], meaning: str) -> None:
            if array.shape != expected:
                raise ValueError(
                    f"from_onnx: {where}: input {role} ({names[role]!r}) has shape {shape_text(array.shape)}, expected "
                    f"{shape_text(expected)} = {meaning} for hidden_size={hidden}, direction={direction!r}"
                )

        # W's last axis is the input size, free for layer 0 (later layers are checked against the previous one).
        input_size = weights.shape[-1] if weights.ndim == 3 else "input_size"
        check_shape("W", weights, (directions, 4 * hidden, input_size), "(num_directions, 4*hidden_size, input_size)")
        check_shape("R", recurrent, (directions, 4 * hidden, hidden), "(num_directions, 4*hidden_size, hidden_size)")

        layer = _Layer(index, label, directions, hidden, layout, input_size, x)
        layer.cell = cell
        layer.sequence_lens = sequence_lens.name if sequence_lens is not None else None
        self._check_layer_input(where, layer, names["X"])
        suffixes = layer_suffixes(index, directions)
        for direction_index, suffix in enumerate(suffixes):
            layer.parameters[f"weight_ih{suffix}"] = gates_from_onnx(weights[direction_index], hidden)
            layer.parameters[f"weight_hh{suffix}"] = gates_from_onnx(recurrent[direction_index], hidden)
        if b is not None:
            bias = self._weight(where, "B", names["B"], b)
            check_shape("B", bias, (directions, 8 * hidden), "(num_directions, 8*hidden_size)")
            layer.has_bias = True
            for direction_index, suffix in enumerate(suffixes):
                # Kept as two vectors, as ONNX runtimes add them, rather than summed: the same rounding.
                layer.parameters[f"bias_ih{suffix}"] = gates_from_onnx(bias[direction_index, : 4 * hidden], hidden)
                layer.parameters[f"bias_hh{suffix}"] = gates_from_onnx(bias[direction_index, 4 * hidden :], hidden)
        if p is not None:
            peepholes = self._weight(where, "P", names["P"], p)
            check_shape("P", peepholes, (directions, 3 * hidden), "(num_directions, 3*hidden_size)")
            if np.any(peepholes != 0):  # an all-zero P is the same as none
                layer.peepholes = True
                for direction_index, suffix in enumerate(suffixes):
                    layer.parameters[f"peephole{suffix}"] = peepholes_from_onnx(peepholes[direction_index], hidden)
        layer.initial_states = {
            "h": self._initial_state(where, "initial_h", names["initial_h"], initial_h),
            "c": self._initial_state(where, "initial_c", names["initial_c"], initial_c),
        }
        self.layers.append(layer)
        return [_LayerY(index, label), _LayerState(index, label, "h"), _LayerState(index, label, "c")]

    def _check_lstm_attributes(self, where: str, attributes: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
        """(num_directions, layout, cell options as fastlstm.LSTM's keyword arguments) of an LSTM node; anything the
        model cannot express raises."""
        unknown = sorted(set(attributes) - _LSTM_ATTRIBUTES)
        if unknown:
            raise ValueError(f"from_onnx: {where}: attribute {unknown[0]!r} is not supported")
        direction = attributes.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise ValueError(
                f"from_onnx: {where}: direction={direction!r} is not valid (forward, reverse or bidirectional)"
            )
        directions = 2 if direction == "bidirectional" else 1
        cell: dict[str, Any] = {"reverse": direction == "reverse"}
        if "clip" in attributes:
            if not attributes["clip"] > 0:
                raise ValueError(f"from_onnx: {where}: clip={attributes['clip']} is not valid (a threshold > 0)")
            cell["clip"] = float(attributes["clip"])
        if attributes.get("input_forget", 0) not in (0, 1):
            raise ValueError(f"from_onnx: {where}: input_forget={attributes['input_forget']} is not valid (0 or 1)")
        cell["input_forget"] = attributes.get("input_forget", 0) == 1
        cell["activations"] = self._activations(where, attributes, directions)
        layout = attributes.get("layout", 0)
        if "layout" in attributes and self.opset < LAYOUT_OPSET:
            raise ValueError(
                f"from_onnx: {where}: the layout attribute needs opset >= {LAYOUT_OPSET}, the model has opset "
                f"{self.opset}"
            )
        if layout not in (0, 1):
            raise ValueError(f"from_onnx: {where}: layout={layout} is not valid (0 or 1)")
        return directions, layout, cell

    @staticmethod
    def _activations(where: str, attributes: dict[str, Any], directions: int) -> tuple | None:
        """The node's (gate, candidate, output) activations as fastlstm names with alpha and beta, or None for the
        defaults. The alpha and beta lists are handed out in order to the functions that read them, as
        onnxruntime does; a function left without a value gets onnxruntime's default (see _ZERO_WHEN_OMITTED)."""
        if "activations" not in attributes:
            return None
        names = list(attributes["activations"])
        if len(names) != 3 * directions:
            raise ValueError(
                f"from_onnx: {where}: activations={names} has {len(names)} entries, expected 3 per direction (f, g, h)"
            )
        alphas = list(attributes.get("activation_alpha", []))
        betas = list(attributes.get("activation_beta", []))
        specs = []
        for name in names:
            ours = _cell.ONNX_NAMES.get(str(name).lower())
            if ours is None:
                raise ValueError(
                    f"from_onnx: {where}: activation {name!r} is not one of the LSTM operator's "
                    f"({', '.join(f.onnx_name for f in _cell.ACTIVATIONS.values())})"
                )
            function = _cell.ACTIVATIONS[ours]
            alpha, beta = (0.0, 0.0) if ours in _ZERO_WHEN_OMITTED else (function.default_alpha, function.default_beta)
            if function.reads_alpha and alphas:
                alpha = float(alphas.pop(0))
            if function.reads_beta and betas:
                beta = float(betas.pop(0))
            specs.append((ours, alpha, beta))
        per_direction = [tuple(specs[3 * d : 3 * d + 3]) for d in range(directions)]
        if len(set(per_direction)) > 1:
            raise ValueError(
                f"from_onnx: {where}: the two directions use different activations ({names}); a fastlstm.LSTM uses "
                "the same in both"
            )
        return per_direction[0]

    def _check_layer_input(self, where: str, layer: _Layer, name: str) -> None:
        """Layer 0 reads the graph's input (maybe transposed from batch-first); layer k the merged output of k-1."""
        x = layer.x
        if layer.index == 0:
            if isinstance(x, _GraphInput) or (isinstance(x, _TimeMajorInput) and layer.layout == 0):
                return
            expected = "a graph input" + (" (or its Transpose perm=[1, 0, 2])" if layer.layout == 0 else "")
        else:
            previous = self.layers[layer.index - 1]
            batch_major = layer.layout == 1
            if isinstance(x, _LayerSequence) and x.layer == previous.index and x.batch_major == batch_major:
                expected_size = previous.directions * previous.hidden_size
                if layer.input_size != expected_size:
                    raise ValueError(
                        f"from_onnx: {where}: input W has input_size {layer.input_size}, expected {expected_size} = "
                        f"num_directions*hidden_size of the previous LSTM node {previous.node}"
                    )
                return
            merge = (
                "Reshape [0, 0, -1] or, with one direction, Squeeze axes=[2]"
                if batch_major
                else "Transpose perm=[0, 2, 1, 3] + Reshape [0, 0, -1] or, with one direction, Squeeze axes=[1]"
            )
            expected = f"output Y of the previous LSTM node {previous.node} with its directions merged ({merge})"
        if x is None:
            raise ValueError(f"from_onnx: {where}: the input X is required")
        raise ValueError(f"from_onnx: {where}: input X ({name!r}) is {x}; expected {expected}")

    def _weight(self, where: str, role: str, name: str, value: _Value) -> np.ndarray:
        """A constant input as float32, or a ValueError naming where it comes from."""
        if not isinstance(value, _Constant):
            raise ValueError(
                f"from_onnx: {where}: input {role} ({name!r}) must be an initializer or a Constant node, but it is "
                f"{value} (torch.onnx.export folds weights into initializers from opset 9 with "
                "do_constant_folding=True, its default)"
            )
        array = value.array
        if array.dtype.name not in _CONVERTIBLE_DTYPES:
            raise ValueError(
                f"from_onnx: {where}: input {role} ({name!r}) has dtype {array.dtype.name}; expected float32 "
                "(float16, float64 and bfloat16 are converted to float32)"
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    def _initial_state(self, where: str, role: str, name: str, value: _Value) -> _StateSource | None:
        """None for zeros (omitted, an all-zero constant, or made by Expand / ConstantOfShape), else where the state
        comes from; anything else raises."""
        if value is None or isinstance(value, _Zeros):
            return None
        if isinstance(value, _Constant):
            if np.any(value.array != 0):
                raise ValueError(
                    f"from_onnx: {where}: input {role} ({name!r}) is a nonzero constant ({value}), which is not "
                    "supported: the imported model keeps no initial state; make it a graph input and pass it as "
                    "the state argument"
                )
            return None
        if isinstance(value, _GraphInput):
            return _StateSource(value.name, 0, None, str(value))
        if isinstance(value, _InputRows):
            return _StateSource(value.name, value.start, value.stop, str(value))
        raise ValueError(
            f"from_onnx: {where}: input {role} ({name!r}) is {value}; expected zeros, a graph input, or a Slice on "
            "axis 0 of a graph input"
        )
