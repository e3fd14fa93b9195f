"""The ONNX importer's view of the tensors between LSTM nodes, and the handlers of the nodes that move them.

The reader (``fastlstm.interop.onnx_import``) gives every tensor of the graph an abstract value: not its numbers (the
shapes are unknown until run time) but what it is, enough to tell that the plumbing between the LSTM nodes only moves
the LSTM data around. The handlers below compute the abstract value of each plumbing node's outputs from those of its
inputs and raise, naming the node, for any use the exporters do not make:

* a Transpose perm=[1, 0, 2] of the graph's input before the first node, and of the sequence after the last;
* the merge of Y's direction axis: Transpose perm=[0, 2, 1, 3] then Reshape to [0, 0, -1] (or [0, 0, D*H]), or,
  with one direction, Squeeze axes=[1] (with ``layout=1``: a Reshape of Y to [0, 0, -1], or Squeeze axes=[2]);
* a Slice of rows on axis 0 of a graph input (a layer's initial state), and zeros made by Expand, ConstantOfShape,
  Slice... of shapes computed by Shape, Gather, Unsqueeze, Concat, Constant... nodes;
* a Concat on axis 0 of the layers' Y_h or Y_c (torch's h_n, c_n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# ---- abstract values ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Constant:
    """A tensor known now: an initializer or a Constant node's value."""

    array: np.ndarray
    origin: str

    def __str__(self) -> str:
        return self.origin


@dataclass
class _Untracked:
    """Data the importer does not evaluate: shapes, indices and whatever is computed only from them and constants.
    Harmless as a shape or index operand; refused anywhere the LSTM reads values."""

    origin: str

    def __str__(self) -> str:
        return f"computed by node {self.origin}"


@dataclass
class _Zeros:
    """A tensor of zeros whose shape is only known at run time (Expand or ConstantOfShape of 0)."""

    origin: str

    def __str__(self) -> str:
        return f"zeros made by node {self.origin}"


@dataclass
class _GraphInput:
    name: str

    def __str__(self) -> str:
        return f"graph input {self.name!r}"


@dataclass
class _TimeMajorInput:
    """A batch-first graph input made time-major by a Transpose perm=[1, 0, 2]."""

    name: str

    def __str__(self) -> str:
        return f"graph input {self.name!r} transposed from (N, T, I) to (T, N, I)"


@dataclass
class _InputRows:
    """Rows start:stop on axis 0 of a graph input, as torch slices each layer's initial state from h0 / c0."""

    name: str
    start: int
    stop: int

    def __str__(self) -> str:
        return f"rows {self.start}:{self.stop} of graph input {self.name!r}"


@dataclass
class _LayerY:
    """The output Y of layer ``layer``'s LSTM node: (T, D, N, H), or (N, T, D, H) with layout=1."""

    layer: int
    node: str

    def __str__(self) -> str:
        return f"output Y of LSTM node {self.node} (layer {self.layer})"


@dataclass
class _LayerYByBatch:
    """Y of a layout=0 node transposed to (T, N, D, H): half of the merge of the direction axis."""

    layer: int
    node: str

    def __str__(self) -> str:
        return f"output Y of LSTM node {self.node} (layer {self.layer}) transposed to (T, N, D, H)"


@dataclass
class _LayerSequence:
    """Layer ``layer``'s output with the directions merged: (T, N, D*H), or (N, T, D*H) when ``batch_major``."""

    layer: int
    node: str
    batch_major: bool

    def __str__(self) -> str:
        layout = "(N, T, D*H)" if self.batch_major else "(T, N, D*H)"
        return f"the sequence of layer {self.layer} (LSTM node {self.node}) as {layout}"


@dataclass
class _LayerState:
    """Y_h (kind 'h') or Y_c (kind 'c') of one layer's node."""

    layer: int
    node: str
    kind: str

    def __str__(self) -> str:
        return f"output Y_{self.kind} of LSTM node {self.node} (layer {self.layer})"


@dataclass
class _StackedStates:
    """Y_h or Y_c of layers 0 .. layers-1 concatenated on axis 0: torch's h_n / c_n."""

    kind: str
    layers: int
    origin: str

    def __str__(self) -> str:
        return f"Y_{self.kind} of layers 0 to {self.layers - 1} concatenated by node {self.origin}"


_Value = Any  # one of the classes above, or None for an omitted optional input
_SHAPE_OPERANDS = (_Constant, _Untracked, type(None))


# ---- plumbing nodes -------------------------------------------------------------------------------------------


class _PlumbingReader:
    """The handlers of the plumbing nodes and the protobuf helpers of ``_GraphReader``, which sets ``onnx`` (the
    onnx module), ``opset`` (the model's operator set) and ``layers`` (the LSTM nodes read so far)."""

    onnx: Any
    opset: int
    layers: list

    def _constant(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        where = f"node {label} (Constant)"
        if len(node.attribute) != 1:
            raise ValueError(f"from_onnx: {where}: expected one attribute, got {len(node.attribute)}")
        attribute = node.attribute[0]
        origin = f"Constant node {label}"
        if attribute.name == "value":
            return [_Constant(self._tensor_array(attribute.t, origin), origin)]
        if attribute.name in ("value_float", "value_floats"):
            value = self.onnx.helper.get_attribute_value(attribute)
            return [_Constant(np.asarray(value, np.float32), origin)]
        if attribute.name in ("value_int", "value_ints"):
            value = self.onnx.helper.get_attribute_value(attribute)
            return [_Constant(np.asarray(value, np.int64), origin)]
        # strings and sparse tensors: nothing an LSTM reads
        return [_Untracked(f"{label} (Constant)")]

    def _shape_data(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        return [_Untracked(f"{label} ({node.op_type})")]

    def _gather_or_unsqueeze(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        if isinstance(operands[0], _Zeros) and _all_shape_operands(operands[1:]):
            return [_Zeros(f"{label} ({node.op_type})")]
        return self._untracked_or_mismatch(node, label, operands)

    def _cast(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        return self._untracked_or_mismatch(node, label, operands)

    def _concat(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        axis = self._attributes(node).get("axis")
        # States are (D, N, H): axis 0 (or -3) stacks the layers, as torch's h_n.
        if operands and all(isinstance(value, _LayerState) for value in operands) and axis in (0, -3):
            kind = operands[0].kind
            layers = [value.layer for value in operands]
            if all(value.kind == kind for value in operands) and layers == list(range(len(operands))):
                return [_StackedStates(kind, len(operands), f"{label} (Concat)")]
        if operands and all(isinstance(value, _Zeros) for value in operands):
            return [_Zeros(f"{label} (Concat)")]
        return self._untracked_or_mismatch(node, label, operands, f" on axis {axis}")

    def _expand(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        data = operands[0]
        if _is_zeros(data) and _all_shape_operands(operands[1:]):
            return [_Zeros(f"{label} (Expand)")]
        return self._untracked_or_mismatch(node, label, operands)

    def _constant_of_shape(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        value = self._attributes(node).get("value")
        fill = self.onnx.numpy_helper.to_array(value) if value is not None else np.zeros(1)
        if _all_shape_operands(operands):
            origin = f"{label} (ConstantOfShape)"
            return [_Zeros(origin) if not np.any(fill) else _Untracked(origin)]
        return self._mismatch(node, label, operands)

    def _slice(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        data = operands[0]
        if isinstance(data, _Zeros) and _all_shape_operands(operands[1:]):
            return [_Zeros(f"{label} (Slice)")]
        if isinstance(data, _GraphInput):
            # Before opset 10, starts, ends and axes are attributes; from 10 on, inputs (plus steps).
            attributes = self._attributes(node)
            if self.opset < 10:
                starts, ends, axes = (attributes.get(key) for key in ("starts", "ends", "axes"))
                steps = None
            else:
                starts, ends, axes, steps = (
                    _int_list(operands[position]) if position < len(operands) else None for position in (1, 2, 3, 4)
                )
            if axes is None and starts is not None:
                axes = list(range(len(starts)))
            one_row_range = starts is not None and ends is not None and len(starts) == 1 and list(axes) == [0]
            if one_row_range and (steps is None or list(steps) == [1]):
                return [_InputRows(data.name, int(starts[0]), int(ends[0]))]
            return self._mismatch(
                node, label, operands, f" with starts={starts}, ends={ends}, axes={axes}, steps={steps}"
            )
        return self._untracked_or_mismatch(node, label, operands)

    def _transpose(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        data = operands[0]
        perm = self._attributes(node).get("perm")
        perm = list(perm) if perm is not None else None
        if isinstance(data, _GraphInput) and perm == [1, 0, 2]:
            return [_TimeMajorInput(data.name)]
        if isinstance(data, _LayerY) and perm == [0, 2, 1, 3] and self.layers[data.layer].layout == 0:
            return [_LayerYByBatch(data.layer, data.node)]
        if isinstance(data, _LayerSequence) and not data.batch_major and perm == [1, 0, 2]:
            return [_LayerSequence(data.layer, data.node, batch_major=True)]
        if isinstance(data, _Zeros):
            return [_Zeros(f"{label} (Transpose)")]
        return self._untracked_or_mismatch(node, label, operands, f" with perm={perm}")

    def _reshape(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        data = operands[0]
        target = _int_list(operands[1]) if len(operands) > 1 else None
        allowzero = self._attributes(node).get("allowzero", 0)
        if isinstance(data, (_LayerYByBatch, _LayerY)) and allowzero == 0:
            layer = self.layers[data.layer]
            merged = [[0, 0, -1], [0, 0, layer.directions * layer.hidden_size]]
            # layout 0: (T, N, D, H) after the Transpose; layout 1: Y is (N, T, D, H) already.
            if isinstance(data, _LayerYByBatch) and target in merged:
                return [_LayerSequence(data.layer, data.node, batch_major=False)]
            if isinstance(data, _LayerY) and layer.layout == 1 and target in merged:
                return [_LayerSequence(data.layer, data.node, batch_major=True)]
        if isinstance(data, _Zeros) and _all_shape_operands(operands[1:]):
            return [_Zeros(f"{label} (Reshape)")]
        return self._untracked_or_mismatch(node, label, operands, f" to shape {target} (allowzero={allowzero})")

    def _squeeze(self, node: Any, label: str, operands: list[_Value]) -> list[_Value]:
        data = operands[0]
        # Before opset 13, axes is an attribute; from 13 on, an input.
        if self.opset < 13:
            axes = self._attributes(node).get("axes")
            axes = list(axes) if axes is not None else None
        else:
            axes = _int_list(operands[1]) if len(operands) > 1 else None
        if isinstance(data, _LayerY):
            layer = self.layers[data.layer]
            direction_axis = 1 if layer.layout == 0 else 2
            if layer.directions == 1 and axes in ([direction_axis], [direction_axis - 4]):
                return [_LayerSequence(data.layer, data.node, batch_major=layer.layout == 1)]
        if isinstance(data, _Zeros):
            return [_Zeros(f"{label} (Squeeze)")]
        return self._untracked_or_mismatch(node, label, operands, f" with axes={axes}")

    def _untracked_or_mismatch(self, node: Any, label: str, operands: list[_Value], detail: str = "") -> list[_Value]:
        """Shape arithmetic (every operand a constant or untracked) is untracked; anything else does not fit."""
        if _all_shape_operands(operands):
            return [_Untracked(f"{label} ({node.op_type})")]
        return self._mismatch(node, label, operands, detail)

    @staticmethod
    def _mismatch(node: Any, label: str, operands: list[_Value], detail: str = "") -> list[_Value]:
        described = "; ".join(
            f"{name!r}: {value}" for name, value in zip(node.input, operands) if not isinstance(value, _Constant)
        )
        raise ValueError(
            f"from_onnx: node {label} ({node.op_type}){detail} is not supported here: it does not match the "
            f"exporters' plumbing between LSTM nodes (its inputs: {described or 'constants'})"
        )

    # ---- protobuf helpers -----------------------------------------------------------------------------------------

    def _attributes(self, node: Any) -> dict[str, Any]:
        """The node's attributes as Python values, strings decoded."""
        attributes = {}
        for attribute in node.attribute:
            value = self.onnx.helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [item.decode() for item in value]
            attributes[attribute.name] = value
        return attributes

    def _tensor_array(self, tensor: Any, origin: str) -> np.ndarray:
        if tensor.data_location == self.onnx.TensorProto.EXTERNAL:
            raise ValueError(
                f"from_onnx: {origin} is stored as external data that is not loaded; pass the .onnx file's path "
                "or load it with onnx.load(path) first"
            )
        return self.onnx.numpy_helper.to_array(tensor)


# ---- small helpers ------------------------------------------------------------------------------------------------


def _int_list(value: _Value) -> list[int] | None:
    """A constant operand as a list of ints (a scalar as a list of one), None when it is not a constant."""
    if not isinstance(value, _Constant) or value.array.dtype.kind not in "iu":
        return None
    return [int(item) for item in value.array.reshape(-1)]


def _all_shape_operands(operands: list[_Value]) -> bool:
    return all(isinstance(value, _SHAPE_OPERANDS) for value in operands)


def _is_zeros(value: _Value) -> bool:
    return isinstance(value, _Zeros) or (isinstance(value, _Constant) and not np.any(value.array))
