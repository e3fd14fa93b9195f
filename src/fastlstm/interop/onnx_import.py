"""Import of ONNX LSTM graphs: ``from_onnx(model_or_path)`` returns the ``fastlstm.LSTM`` that computes what the graph
computes.

What is read
------------
* One ONNX ``LSTM`` node (operator set 7 to 22 of the default domain), or the chain of ``LSTM`` nodes that
  ``torch.onnx.export(torch.nn.LSTM(...), ..., dynamo=False)`` writes for a stacked LSTM, or that
  ``fastlstm.LSTM.to_onnx`` (``fastlstm.interop.onnx_export``) writes. A chain of k nodes becomes one model with
  ``num_layers=k``.
* Between the nodes, only the exporters' plumbing, recognised by what it computes (see "How the graph is read"):

  - a Transpose perm=[1, 0, 2] of the graph's input before the first node, and of the sequence after the last
    (``batch_first=True``);
  - between layers and after the last one, the merge of Y's direction axis: Transpose perm=[0, 2, 1, 3] then Reshape
    to [0, 0, -1] (or [0, 0, D*H]), or, with one direction, Squeeze axes=[1] (with ``layout=1``: a Reshape of Y to
    [0, 0, -1], or Squeeze axes=[2]);
  - initial states: a graph input, or for layer k a Slice of rows k*D:(k+1)*D on axis 0 of a graph input (torch
    slices one (num_layers*D, N, H) input that way), or zeros: an all-zero constant, or Expand / ConstantOfShape /
    Slice of zeros, whose shape comes from Shape, Gather, Unsqueeze, Concat, Constant... nodes;
  - the final states: each node's Y_h and Y_c, or their Concat on axis 0 over all layers in order (torch's h_n, c_n).

  Every other node (any op, or one of these ops used otherwise) raises a ValueError that names it.

The returned model's call ``model(x, state)`` has torch's layouts: output (T, N, D*H), or (N, T, D*H) with
``batch_first``, and h_n, c_n (num_layers*D, N, H). So the graph's values compare as follows:

* the graph's sequence output after the exporter's merge is our output as it is; a bare ``Y`` of the last node
  (T, D, N, H) is ``output.reshape(T, N, D, H).transpose(0, 2, 1, 3)`` (with ``layout=1``, Y (N, T, D, H) is
  ``output.reshape(N, T, D, H)``);
* Y_h / Y_c of layer k are ``h_n[k*D:(k+1)*D]`` (with ``layout=1``: transposed to (N, D, H));
* initial states read from graph inputs are the ``state`` argument, in our layout (with ``layout=1`` transpose the
  graph's (N, D, H) to (D, N, H)). If only one of initial_h / initial_c is a graph input, pass zeros for the other;
  if neither is, call without ``state`` (or with zeros).

Parameters: W, R and B are converted from ONNX's gate order i, o, f, c to torch's i, f, g, o. The input half of B
becomes ``bias_ih`` and the recurrent half ``bias_hh``, unchanged, so the sums are rounded as onnxruntime rounds them.
A graph without B gives ``bias=False`` (if only some nodes of a chain have B, the others get zero biases).
float16, float64 and bfloat16 weights are converted to float32, the kernel's only dtype (float64 weights are
thereby rounded; the model then computes in float32 whatever the graph's dtype).

Cell options: direction "reverse", ``activations`` (any of the operator's eleven, the same in both directions) with
``activation_alpha`` / ``activation_beta`` handed out as onnxruntime does (in order, only to the functions that read
them; onnxruntime's defaults otherwise), ``clip``, ``input_forget`` and peepholes ``P`` (order i, o, f) become the
model's ``reverse``, ``activations``, ``clip``, ``input_forget`` and ``peepholes`` (an all-zero P is no peepholes).

Not supported (ValueError naming the node and the attribute or input): different activations per direction; a
``sequence_lens`` that is not a graph input (a graph input is the ``lengths=`` argument of the model's call, int64
or int32, and must feed every node of a chain); weights that are not initializers or Constant nodes (e.g. torch
exports at opset 7 or with ``do_constant_folding=False``, which compute W with Slice/Concat nodes); nonzero constant
initial states; chains whose nodes differ in hidden_size, direction, layout or cell options; graph outputs other
than the last layer's sequence and the states. ONNX external data must be loaded already (``onnx.load`` of a path
does it). Names that are both graph inputs and initializers (IR < 4) are read as constants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import _cell
from .._checks import check_precision, existing_file, shape_text
from ._common import gates_from_onnx, layer_suffixes, peepholes_from_onnx

if TYPE_CHECKING:
    import onnx

    from ..lstm import LSTM

__all__ = ["from_onnx"]

#: The operator sets of the default domain whose LSTM this importer reads: 7 removed ``output_sequence`` and 22 is
#: the newest; the maths is the same in all of them.
MIN_OPSET = 7
MAX_OPSET = 22
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
_DEFAULT_DOMAINS = ("", "ai.onnx")


def from_onnx(model_or_path: onnx.ModelProto | str | os.PathLike[str], *, precision: str = "fp32") -> LSTM:
    """The ``fastlstm.LSTM`` computing what an ONNX LSTM graph computes (see the module's documentation for the graphs
    read, the layouts of the result and what is refused).

    Args:
        model_or_path: an ``onnx.ModelProto``, or the path (str or os.PathLike) of a ``.onnx`` file.
        precision: the model's precision, "fp32" or "bf16" (see ``fastlstm.LSTM``).

    Raises:
        ImportError: the ``onnx`` package is not installed.
        TypeError: ``model_or_path`` is neither a ModelProto nor a path.
        FileNotFoundError: the path does not exist (IsADirectoryError: it is a directory).
        ValueError: the graph holds something the kernel cannot run or this importer does not recognise; the
            message names the node, op type, attribute or input, and its value.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError("from_onnx: reading ONNX models needs the onnx package: pip install onnx") from None
    precision = check_precision(precision)
    model = _load_model(model_or_path, onnx)
    opset = _default_opset(model)
    lstm = _GraphReader(model.graph, opset, onnx).build_model()
    return lstm if precision == "fp32" else lstm.astype(precision)


def _load_model(model_or_path: Any, onnx: Any) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise TypeError(
            "from_onnx: model_or_path: expected an onnx.ModelProto or the path of a .onnx file (str or os.PathLike), "
            f"got {type(model_or_path).__name__}"
        )
    path = existing_file(model_or_path, "from_onnx", "model_or_path", "a .onnx file")
    try:
        return onnx.load(path)
    except Exception as error:  # protobuf's DecodeError and friends: not an ONNX file
        raise ValueError(f"from_onnx: {path!r} could not be read as an ONNX model: {error}") from error


def _default_opset(model: onnx.ModelProto) -> int:
    versions = [entry.version for entry in model.opset_import if entry.domain in _DEFAULT_DOMAINS]
    if not versions:
        raise ValueError("from_onnx: the model imports no operator set of the default ONNX domain")
    opset = versions[0]
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"from_onnx: operator set {opset} of the default domain is not supported (opsets {MIN_OPSET} to "
            f"{MAX_OPSET} are)"
        )
    return opset


# ---- abstract values ------------------------------------------------------------------------------------------
# The reader gives every tensor of the graph one of these: not its numbers (the shapes are unknown until run time)
# but what it is, enough to tell that the plumbing between the LSTM nodes only moves the LSTM data around.


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


# ---- the reader ---------------------------------------------------------------------------------------------------


class _GraphReader:
    """Walks the nodes once, in graph order (ONNX requires a topological order), giving each output an abstract
    value; LSTM nodes are checked and read as layers on the way. Any node whose operands do not fit a recognised
    pattern raises, so every node of an accepted graph is accounted for."""

    def __init__(self, graph: onnx.GraphProto, opset: int, onnx: Any) -> None:
        self.graph = graph
        self.opset = opset
        self.onnx = onnx
        self.values: dict[str, _Value] = {}
        self.layers: list[_Layer] = []
        for tensor in graph.initializer:
            origin = f"initializer {tensor.name!r}"
            self.values[tensor.name] = _Constant(self._tensor_array(tensor, origin), origin)
        for value_info in graph.input:
            # An initializer listed as an input too (required before IR version 4) is read as the constant it holds.
            self.values.setdefault(value_info.name, _GraphInput(value_info.name))
        self.handlers: dict[str, Callable[[Any, str, list[_Value]], list[_Value]]] = {
            "LSTM": self._lstm,
            "Constant": self._constant,
            "Identity": lambda node, where, operands: [operands[0]],
            "Shape": self._shape_data,
            "Size": self._shape_data,
            "Gather": self._gather_or_unsqueeze,
            "Unsqueeze": self._gather_or_unsqueeze,
            "Cast": self._cast,
            "Concat": self._concat,
            "Expand": self._expand,
            "ConstantOfShape": self._constant_of_shape,
            "Slice": self._slice,
            "Transpose": self._transpose,
            "Reshape": self._reshape,
            "Squeeze": self._squeeze,
        }

    # ---- the walk and the model ----------------------------------------------------------------------------------

    def build_model(self) -> LSTM:
        if not any(node.op_type == "LSTM" and node.domain in _DEFAULT_DOMAINS for node in self.graph.node):
            ops = sorted({node.op_type for node in self.graph.node})
            raise ValueError(f"from_onnx: the graph has no LSTM node (its ops: {', '.join(ops) or 'none'})")
        for index, node in enumerate(self.graph.node):
            label = repr(node.name) if node.name else f"#{index}"
            where = f"node {label} ({node.op_type})"
            if node.domain not in _DEFAULT_DOMAINS:
                raise ValueError(
                    f"from_onnx: {where} of domain {node.domain!r} is not supported (only the default ONNX domain is)"
                )
            handler = self.handlers.get(node.op_type)
            if handler is None:
                raise ValueError(
                    f"from_onnx: {where} is not supported: the graph may hold only LSTM nodes and the plumbing "
                    "torch.onnx.export writes around them (Transpose, Reshape, Squeeze, Slice, Concat, Expand, ...)"
                )
            operands = [self._operand(name, where) for name in node.input]
            for name, value in zip(node.output, handler(node, label, operands)):
                if name:
                    self.values[name] = value
        self._check_chain()
        self._check_graph_outputs()
        return self._model()

    def _operand(self, name: str, where: str) -> _Value:
        if not name:
            return None  # an omitted optional input
        if name not in self.values:
            raise ValueError(
                f"from_onnx: {where}: input {name!r} is not produced by any earlier node nor a graph input or "
                "initializer (is the graph topologically sorted?)"
            )
        return self.values[name]

    def _model(self) -> LSTM:
        from ..lstm import LSTM

        first = self.layers[0]
        batch_first = first.layout == 1 or isinstance(first.x, _TimeMajorInput)
        has_bias = any(layer.has_bias for layer in self.layers)
        model = LSTM(
            first.input_size,
            first.hidden_size,
            num_layers=len(self.layers),
            bias=has_bias,
            batch_first=batch_first,
            bidirectional=first.directions == 2,
            seed=0,  # the initial weights are replaced at once
            peepholes=any(layer.peepholes for layer in self.layers),
            **first.cell,
        )
        parameters: dict[str, np.ndarray] = {}
        for layer in self.layers:
            parameters.update(layer.parameters)
            if model.peepholes and not layer.peepholes:  # no (or a zero) P on this node of a chain: zeros
                for suffix in layer_suffixes(layer.index, layer.directions):
                    parameters[f"peephole{suffix}"] = np.zeros((3, layer.hidden_size), np.float32)
            if has_bias and not layer.has_bias:  # a node without B in a chain whose other nodes have one
                for suffix in layer_suffixes(layer.index, layer.directions):
                    parameters[f"bias_ih{suffix}"] = np.zeros(4 * layer.hidden_size, np.float32)
                    parameters[f"bias_hh{suffix}"] = np.zeros(4 * layer.hidden_size, np.float32)
        model.load_state_dict(parameters)
        return model

    # ---- checks of the whole graph ----------------------------------------------------------------------------------

    def _check_chain(self) -> None:
        """One fastlstm.LSTM has one hidden size, direction and layout; initial states come from one place."""
        first = self.layers[0]
        for layer in self.layers[1:]:
            for name, value, expected in [
                ("hidden_size", layer.hidden_size, first.hidden_size),
                ("num_directions", layer.directions, first.directions),
                ("layout", layer.layout, first.layout),
            ]:
                if value != expected:
                    raise ValueError(
                        f"from_onnx: LSTM node {layer.node}: {name}={value} differs from {name}={expected} of LSTM "
                        f"node {first.node}; the layers of one fastlstm.LSTM share it"
                    )
        for layer in self.layers[1:]:
            if layer.cell != first.cell:
                raise ValueError(
                    f"from_onnx: LSTM node {layer.node}: its cell ({layer.cell}) differs from that of LSTM node "
                    f"{first.node} ({first.cell}); the layers of one fastlstm.LSTM share direction, activations, "
                    "clip and input_forget"
                )
        lengths = {layer.sequence_lens for layer in self.layers}
        if len(lengths) > 1:
            described = ", ".join(f"layer {layer.index}: {layer.sequence_lens or 'none'}" for layer in self.layers)
            raise ValueError(
                f"from_onnx: the LSTM nodes take different sequence_lens ({described}); one fastlstm.LSTM runs every "
                "layer over the same lengths"
            )
        directions = first.directions
        for kind in "hc":
            sources = [layer.initial_states[kind] for layer in self.layers]
            given = [source for source in sources if source is not None]
            if not given:
                continue
            names = {source.input_name for source in given}
            if len(given) != len(sources) or len(names) != 1:
                described = ", ".join(
                    f"layer {layer.index}: {source.description if source else 'zeros'}"
                    for layer, source in zip(self.layers, sources)
                )
                raise ValueError(
                    f"from_onnx: the initial {kind} of the layers comes from different places ({described}); the "
                    f"imported model takes all of them from one state argument (or none)"
                )
            for layer, source in zip(self.layers, sources):
                whole_input = source.stop is None and len(self.layers) == 1
                expected_rows = (layer.index * directions, (layer.index + 1) * directions)
                if not whole_input and (source.start, source.stop) != expected_rows:
                    raise ValueError(
                        f"from_onnx: LSTM node {layer.node}: initial_{kind} is {source.description}; layer "
                        f"{layer.index} must read rows {expected_rows[0]}:{expected_rows[1]} of it"
                    )
                if layer.layout == 1 and not whole_input:
                    raise ValueError(
                        f"from_onnx: LSTM node {layer.node}: initial_{kind} is {source.description}, but with "
                        "layout=1 the states are (N, D, H) and axis 0 is the batch; only a single layout=1 node "
                        "can take its states from graph inputs"
                    )

    def _check_graph_outputs(self) -> None:
        """Every graph output must be something the imported model returns."""
        last = len(self.layers) - 1
        batch_first = self.layers[0].layout == 1 or isinstance(self.layers[0].x, _TimeMajorInput)
        for output in self.graph.output:
            value = self.values.get(output.name)
            if isinstance(value, _LayerY) and value.layer == last:
                continue  # ONNX's own layout; see the module's documentation
            if isinstance(value, _LayerSequence) and value.layer == last and value.batch_major == batch_first:
                continue
            if isinstance(value, _LayerState):
                continue
            if isinstance(value, _StackedStates) and value.layers == len(self.layers) and self.layers[0].layout == 0:
                continue
            if value is None:
                raise ValueError(f"from_onnx: graph output {output.name!r} is not produced by any node")
            if isinstance(value, _LayerSequence) and value.layer == last:
                problem = (
                    f"in the {'batch' if value.batch_major else 'time'}-major layout, while the input is "
                    f"{'batch' if batch_first else 'time'}-major"
                )
            else:
                problem = "not something the imported model returns (the last layer's sequence and the final states)"
            raise ValueError(f"from_onnx: graph output {output.name!r} is {value}: {problem}")

    # ---- LSTM nodes ---------------------------------------------------------------------------------------------

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
                f"from_onnx: {where}: input sequence_lens ({names['sequence_lens']!r}) is {sequence_lens}; only a graph "
                "input is supported (it becomes the lengths= argument of the model's call)"
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
        onnxruntime does; a function left without a value gets onnxruntime's default (LeakyRelu 0.01, HardSigmoid
        0.2 and 0.5, Elu 1.0, otherwise 0)."""
        if "activations" not in attributes:
            return None
        names = list(attributes["activations"])
        if len(names) != 3 * directions:
            raise ValueError(
                f"from_onnx: {where}: activations={names} has {len(names)} entries, expected 3 per direction (f, g, h)"
            )
        alphas = list(attributes.get("activation_alpha", []))
        betas = list(attributes.get("activation_beta", []))
        defaults = {"leaky_relu": (0.01, 0.0), "hard_sigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
        specs = []
        for name in names:
            ours = _cell.ONNX_NAMES.get(str(name).lower())
            if ours is None:
                raise ValueError(
                    f"from_onnx: {where}: activation {name!r} is not one of the LSTM operator's "
                    f"({', '.join(f.onnx_name for f in _cell.ACTIVATIONS.values())})"
                )
            function = _cell.ACTIVATIONS[ours]
            alpha, beta = defaults.get(ours, (0.0, 0.0))
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

    # ---- plumbing nodes -------------------------------------------------------------------------------------------

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
            if starts is not None and ends is not None and len(starts) == 1 and list(axes) == [0]:
                if steps is None or list(steps) == [1]:
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
