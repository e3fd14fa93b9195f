"""Import of ONNX LSTM graphs: ``from_onnx(model_or_path)`` returns the ``fastlstm.LSTM`` that computes what the graph
computes.

What is read
------------
* One ONNX ``LSTM`` node (operator set 7 to 22 of the default domain), or the chain of ``LSTM`` nodes that
  ``torch.onnx.export(torch.nn.LSTM(...), ..., dynamo=False)`` writes for a stacked LSTM, or that
  ``fastlstm.LSTM.to_onnx`` (``fastlstm.interop.onnx_export``) writes. A chain of k nodes becomes one model with
  ``num_layers=k``.
* Between the nodes, only the exporters' plumbing, recognised by what it computes (see ``_onnx_plumbing``):

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._checks import check_precision, existing_file
from ._common import layer_suffixes
from ._onnx_lstm_node import _Layer, _LstmNodeReader
from ._onnx_plumbing import (
    _Constant,
    _GraphInput,
    _LayerSequence,
    _LayerState,
    _LayerY,
    _PlumbingReader,
    _StackedStates,
    _TimeMajorInput,
    _Value,
)

if TYPE_CHECKING:
    import onnx

    from ..lstm import LSTM

__all__ = ["from_onnx"]

#: The operator sets of the default domain whose LSTM this importer reads: 7 removed ``output_sequence`` and 22 is
#: the newest; the maths is the same in all of them.
MIN_OPSET = 7
MAX_OPSET = 22
_DEFAULT_DOMAINS = ("", "ai.onnx")


def from_onnx(model_or_path: onnx.ModelProto | str | os.PathLike[str], *, precision: str = "fp32") -> LSTM:
    """The ``fastlstm.LSTM`` computing what an ONNX LSTM graph computes (see the module's documentation for the graphs
    read, the layouts of the result and what is refused).

    Args:
        model_or_path: an ``onnx.ModelProto``, or the path (str or os.PathLike) of a ``.onnx`` file.
        precision: the model's precision, "fp32", "bf16" or "int8" (see ``fastlstm.LSTM``).

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


# ---- the reader ---------------------------------------------------------------------------------------------------


class _GraphReader(_LstmNodeReader, _PlumbingReader):
    """Walks the nodes once, in graph order (ONNX requires a topological order), giving each output an abstract
    value (``_onnx_plumbing``); LSTM nodes are checked and read as layers on the way (``_onnx_lstm_node``). Any node
    whose operands do not fit a recognised pattern raises, so every node of an accepted graph is accounted for."""

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
