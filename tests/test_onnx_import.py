"""``from_onnx``: the imported model computes what the ONNX graph computes in its own runtime (onnxruntime, or the
ONNX reference evaluator for ``layout=1``, which onnxruntime's CPU provider rejects), for single LSTM nodes built
with ``onnx.helper`` at several opsets and sizes, for the graphs ``torch.onnx.export`` writes for ``torch.nn.LSTM``
(also against torch itself), and for our own export (a round trip). Everything outside what the kernel runs is
refused with a message naming it."""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import fastlstm
from fastlstm.interop.onnx_export import INPUT_NAME, lstm_to_onnx
from fastlstm.interop.onnx_import import from_onnx

TOLERANCE = 1e-5
#: A round trip keeps every parameter exactly, so the outputs are the original's; this bound is slack.
ROUND_TRIP_TOLERANCE = 1e-6


# ---- building ONNX models -------------------------------------------------------------------------------------------


def lstm_model(
    seed: int = 0,
    input_size: int = 5,
    hidden: int = 7,
    *,
    direction: str = "forward",
    bias: bool = True,
    states: bool = False,
    layout: int = 0,
    opset: int = 14,
    peepholes: str | None = None,  # None, "zeros" or "random"
    sequence_lens: bool = False,
    weight_dtype: type = np.float32,
    attributes: dict | None = None,
) -> onnx.ModelProto:
    """A graph of one LSTM node named 'lstm': inputs X (and initial_h, initial_c with ``states``), initializers W,
    R (and B, P), outputs Y, Y_h and Y_c. The same seed gives the same weights whatever the layout or opset.
    ``attributes`` overrides the node's attributes (None removes one)."""
    rng = np.random.default_rng(seed)
    directions = 2 if direction == "bidirectional" else 1
    bound = 1 / np.sqrt(hidden)  # the size of PyTorch's initial weights

    def uniform(*shape):
        return rng.uniform(-bound, bound, shape).astype(np.float32).astype(weight_dtype)

    initializers = [
        numpy_helper.from_array(uniform(directions, 4 * hidden, input_size), "W"),
        numpy_helper.from_array(uniform(directions, 4 * hidden, hidden), "R"),
    ]
    lstm_inputs = ["X", "W", "R", "", "", "", "", ""]
    if bias:
        initializers.append(numpy_helper.from_array(uniform(directions, 8 * hidden), "B"))
        lstm_inputs[3] = "B"
    if sequence_lens:
        initializers.append(numpy_helper.from_array(np.full(3, 2, np.int32), "sequence_lens"))
        lstm_inputs[4] = "sequence_lens"
    if peepholes is not None:
        values = uniform(directions, 3 * hidden) * (peepholes == "random")
        initializers.append(numpy_helper.from_array(values, "P"))
        lstm_inputs[7] = "P"
    outer = ["N", "T"] if layout else ["T", "N"]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [*outer, input_size])]
    state_shape = ["N", directions, hidden] if layout else [directions, "N", hidden]
    if states:
        for name, position in [("initial_h", 5), ("initial_c", 6)]:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, state_shape))
            lstm_inputs[position] = name
    while not lstm_inputs[-1]:
        lstm_inputs.pop()

    node_attributes = {"hidden_size": hidden, "direction": direction}
    if layout:
        node_attributes["layout"] = layout
    node_attributes.update(attributes or {})
    node_attributes = {key: value for key, value in node_attributes.items() if value is not None}
    node = helper.make_node("LSTM", lstm_inputs, ["Y", "Y_h", "Y_c"], name="lstm", **node_attributes)
    graph = helper.make_graph(
        [node],
        "one_lstm",
        graph_inputs,
        [
            helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, [*outer[:2], directions, hidden] if layout else ["T", directions, "N", hidden]
            ),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, state_shape),
            helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, state_shape),
        ],
        initializer=initializers,
    )
    model = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)])
    if model.ir_version < 4:  # before IR version 4 (opset 9), every initializer must be a graph input too
        for tensor in initializers:
            model.graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return model


def chain_model(seed: int, input_size: int, hiddens: list[int], *, bidirectional: bool, layout: int) -> onnx.ModelProto:
    """A stack of LSTM nodes joined as the exporters join them (layout 0: Transpose to (T, N, D, H) then Reshape;
    layout 1: a Reshape of Y (N, T, D, H)), with outputs 'sequence' and each layer's Y_h{k} and Y_c{k}."""
    rng = np.random.default_rng(seed)
    directions = 2 if bidirectional else 1
    nodes, initializers, outputs = [], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge")], []
    layer_input, size = "X", input_size
    for k, hidden in enumerate(hiddens):
        for name, shape in [("W", (4 * hidden, size)), ("R", (4 * hidden, hidden)), ("B", (8 * hidden,))]:
            values = rng.uniform(-0.4, 0.4, (directions, *shape)).astype(np.float32)
            initializers.append(numpy_helper.from_array(values, f"{name}{k}"))
        sequence = "sequence" if k == len(hiddens) - 1 else f"sequence{k}"
        nodes.append(
            helper.make_node(
                "LSTM",
                [layer_input, f"W{k}", f"R{k}", f"B{k}"],
                [f"Y{k}", f"Y_h{k}", f"Y_c{k}"],
                name=f"lstm{k}",
                hidden_size=hidden,
                direction="bidirectional" if bidirectional else "forward",
                layout=layout,
            )
        )
        if layout == 0:
            nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Y{k}_by_batch"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"Y{k}_by_batch", "merge"], [sequence], name=f"merge{k}"))
        else:
            nodes.append(helper.make_node("Reshape", [f"Y{k}", "merge"], [sequence], name=f"merge{k}"))
        outputs += [f"Y_h{k}", f"Y_c{k}"]
        layer_input, size = sequence, directions * hidden
    outer = ["N", "T"] if layout else ["T", "N"]
    graph = helper.make_graph(
        nodes,
        "lstm_chain",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [*outer, input_size])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ["sequence", *outputs]],
        initializer=initializers,
    )
    return helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", 17)])


def initializers_as_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with every initializer turned into a Constant node."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    constants = [helper.make_node("Constant", [], [tensor.name], value=tensor) for tensor in model.graph.initializer]
    del model.graph.initializer[:]
    nodes = constants + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def torch_export(module: torch.nn.LSTM, args: tuple, *, states: bool, **options) -> onnx.ModelProto:
    """``torch.onnx.export(..., dynamo=False)`` of ``module`` called on ``args``, with inputs x (h0, c0) and outputs
    y, h_n, c_n."""
    names = ["x", "h0", "c0"] if states else ["x"]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            module, args, buffer, dynamo=False, input_names=names, output_names=["y", "h_n", "c_n"], **options
        )
    return onnx.load_from_string(buffer.getvalue())


# ---- running and comparing -------------------------------------------------------------------------------------


def run_onnxruntime(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def merge_directions(y: np.ndarray) -> np.ndarray:
    """ONNX's Y (T, D, N, H) in our layout (T, N, D*H)."""
    steps, directions, batch, hidden = y.shape
    return y.transpose(0, 2, 1, 3).reshape(steps, batch, directions * hidden)


def assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float = TOLERANCE) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance)


def random_inputs(rng, shape: tuple[int, ...], state_shape: tuple[int, ...]):
    x = rng.standard_normal(shape).astype(np.float32)
    h0 = rng.standard_normal(state_shape).astype(np.float32)
    c0 = rng.standard_normal(state_shape).astype(np.float32)
    return x, h0, c0


# ---- single LSTM nodes against onnxruntime ------------------------------------------------------------------------

# (opset, direction, bias, input_size, hidden, batch, steps, states)
SINGLE_NODE_CASES = [
    (7, "forward", True, 5, 7, 3, 9, False),
    (7, "bidirectional", False, 13, 33, 1, 1, True),
    (14, "forward", False, 13, 33, 3, 1, True),
    (14, "bidirectional", True, 5, 7, 1, 9, False),
    (17, "bidirectional", False, 5, 7, 3, 9, False),
    (22, "forward", True, 5, 7, 1, 9, True),
    (22, "bidirectional", True, 13, 33, 3, 9, True),
]


@pytest.mark.parametrize("opset, direction, bias, input_size, hidden, batch, steps, states", SINGLE_NODE_CASES)
def test_single_node_matches_onnxruntime(isa, rng, opset, direction, bias, input_size, hidden, batch, steps, states):
    model = lstm_model(7, input_size, hidden, direction=direction, bias=bias, states=states, opset=opset)
    onnx.checker.check_model(model)
    imported = from_onnx(model)
    directions = 2 if direction == "bidirectional" else 1
    assert (imported.input_size, imported.hidden_size, imported.num_layers) == (input_size, hidden, 1)
    assert (imported.bidirectional, imported.bias, imported.batch_first) == (directions == 2, bias, False)

    x, h0, c0 = random_inputs(rng, (steps, batch, input_size), (directions, batch, hidden))
    feeds = {"X": x, "initial_h": h0, "initial_c": c0} if states else {"X": x}
    y, y_h, y_c = run_onnxruntime(model, feeds)
    output, (h_n, c_n) = imported(x, (h0, c0) if states else None)
    assert_close(output, merge_directions(y))
    assert_close(h_n, y_h)
    assert_close(c_n, y_c)


@pytest.mark.parametrize(
    "variant",
    ["hidden_size inferred", "explicit default activations", "zero peepholes", "Constant nodes", "float64 input"],
)
def test_accepted_variants_match_onnxruntime(rng, variant):
    options = dict(direction="bidirectional", states=True, opset=17)
    if variant == "hidden_size inferred":
        options["attributes"] = {"hidden_size": None}
    elif variant == "explicit default activations":
        options["attributes"] = {"activations": ["Sigmoid", "Tanh", "Tanh", "sigmoid", "tanh", "tanh"]}
    elif variant == "zero peepholes":
        options["peepholes"] = "zeros"
    model = lstm_model(3, 6, 9, **options)
    if variant == "Constant nodes":
        model = initializers_as_constant_nodes(model)
    imported = from_onnx(model)

    x, h0, c0 = random_inputs(rng, (4, 2, 6), (2, 2, 9))
    # onnxruntime requires hidden_size: it runs the same model (same seed) with the attribute.
    runnable = lstm_model(3, 6, 9, direction="bidirectional", states=True, opset=17) if "inferred" in variant else model
    y, y_h, y_c = run_onnxruntime(runnable, {"X": x, "initial_h": h0, "initial_c": c0})
    if variant == "float64 input":  # our models take any real dtype and compute in float32
        x, h0, c0 = x.astype(np.float64), h0.astype(np.float64), c0.astype(np.float64)
    output, (h_n, c_n) = imported(x, (h0, c0))
    assert_close(output, merge_directions(y))
    assert_close(h_n, y_h)
    assert_close(c_n, y_c)


@pytest.mark.parametrize("weight_dtype", [np.float16, np.float64, "bfloat16"])
def test_other_weight_dtypes_are_converted_to_float32(weight_dtype):
    if weight_dtype == "bfloat16":
        weight_dtype = pytest.importorskip("ml_dtypes").bfloat16
    imported = from_onnx(lstm_model(4, direction="bidirectional", weight_dtype=weight_dtype, opset=22))
    # The same weights rounded to weight_dtype, stored as float32.
    rounded = lstm_model(4, direction="bidirectional", opset=22)
    for tensor in rounded.graph.initializer:
        values = numpy_helper.to_array(tensor).astype(weight_dtype).astype(np.float32)
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    expected = from_onnx(rounded).state_dict()
    actual = imported.state_dict()
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == np.float32
        np.testing.assert_array_equal(actual[name], expected[name])


def test_gate_order_and_bias_halves():
    """ONNX packs i, o, f, c; PyTorch i, f, g, o. B's input half is bias_ih, its recurrent half bias_hh."""
    model = lstm_model(5, 2, 3)
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    parameters = from_onnx(model).state_dict()
    i, o, f, c = np.split(weights["W"][0], 4)
    np.testing.assert_array_equal(parameters["weight_ih_l0"], np.concatenate([i, f, c, o]))
    i, o, f, c = np.split(weights["R"][0], 4)
    np.testing.assert_array_equal(parameters["weight_hh_l0"], np.concatenate([i, f, c, o]))
    input_half, recurrent_half = np.split(weights["B"][0], 2)
    i, o, f, c = np.split(input_half, 4)
    np.testing.assert_array_equal(parameters["bias_ih_l0"], np.concatenate([i, f, c, o]))
    i, o, f, c = np.split(recurrent_half, 4)
    np.testing.assert_array_equal(parameters["bias_hh_l0"], np.concatenate([i, f, c, o]))


# ---- layout=1 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("opset, direction, batch, steps", [(14, "forward", 3, 9), (22, "bidirectional", 1, 5)])
def test_layout_1_matches_the_reference_evaluator_and_onnxruntime_on_layout_0(rng, opset, direction, batch, steps):
    """onnxruntime's CPU provider refuses layout=1: the reference evaluator runs the graph itself, and onnxruntime
    runs the same weights in layout 0 on transposed inputs."""
    input_size, hidden = 13, 33
    directions = 2 if direction == "bidirectional" else 1
    batch_major = lstm_model(11, input_size, hidden, direction=direction, states=True, layout=1, opset=opset)
    time_major = lstm_model(11, input_size, hidden, direction=direction, states=True, layout=0, opset=opset)
    imported = from_onnx(batch_major)
    assert imported.batch_first

    x, h0, c0 = random_inputs(rng, (batch, steps, input_size), (batch, directions, hidden))  # layout=1 shapes
    y, y_h, y_c = ReferenceEvaluator(batch_major).run(None, {"X": x, "initial_h": h0, "initial_c": c0})
    assert y.shape == (batch, steps, directions, hidden)
    time_major_outputs = run_onnxruntime(
        time_major, {"X": x.transpose(1, 0, 2), "initial_h": h0.transpose(1, 0, 2), "initial_c": c0.transpose(1, 0, 2)}
    )
    # Our states are (D, N, H) whatever the layout.
    output, (h_n, c_n) = imported(x, (h0.transpose(1, 0, 2), c0.transpose(1, 0, 2)))
    assert_close(output, y.reshape(batch, steps, directions * hidden))
    assert_close(h_n, y_h.transpose(1, 0, 2))
    assert_close(c_n, y_c.transpose(1, 0, 2))
    ort_y, ort_h, ort_c = time_major_outputs
    assert_close(output, merge_directions(ort_y).transpose(1, 0, 2))
    assert_close(h_n, ort_h)
    assert_close(c_n, ort_c)


@pytest.mark.parametrize("layout", [0, 1])
def test_chain_of_nodes(rng, layout):
    """Stacked nodes joined as the exporters join them; layout 0 against onnxruntime, layout 1 the reference."""
    model = chain_model(2, 5, [7, 7, 7], bidirectional=True, layout=layout)
    imported = from_onnx(model)
    assert (imported.num_layers, imported.batch_first, imported.bidirectional) == (3, layout == 1, True)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    # onnxruntime's CPU provider refuses layout=1, which the reference evaluator runs.
    outputs = run_onnxruntime(model, {"X": x}) if layout == 0 else ReferenceEvaluator(model).run(None, {"X": x})
    output, (h_n, c_n) = imported(x)
    assert_close(output, outputs[0])
    for k in range(3):
        y_h, y_c = outputs[1 + 2 * k], outputs[2 + 2 * k]
        if layout == 1:
            y_h, y_c = y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)
        assert_close(h_n[2 * k : 2 * k + 2], y_h)
        assert_close(c_n[2 * k : 2 * k + 2], y_c)


# ---- graphs from torch.onnx.export ------------------------------------------------------------------------------

# (num_layers, bidirectional, batch_first, bias, states, opset (None: torch's default), dynamic axes)
TORCH_CASES = [
    (1, False, False, True, False, None, False),
    (1, True, True, True, True, 14, False),
    (2, True, False, True, True, None, False),
    (2, False, True, False, True, 9, False),
    (2, True, True, False, False, 20, True),
    (3, True, True, True, False, 17, True),
    (3, False, False, True, True, 11, True),
]


@pytest.mark.parametrize("layers, bidirectional, batch_first, bias, states, opset, dynamic", TORCH_CASES)
def test_torch_export_matches_onnxruntime_and_torch(
    rng, layers, bidirectional, batch_first, bias, states, opset, dynamic
):
    input_size, hidden = 5, 7
    torch.manual_seed(layers)
    module = torch.nn.LSTM(
        input_size, hidden, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional
    ).eval()
    directions = 2 if bidirectional else 1

    def inputs(batch, steps):
        shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
        return random_inputs(rng, shape, (layers * directions, batch, hidden))

    x, h0, c0 = inputs(batch=3, steps=4)
    args = (torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0))) if states else (torch.from_numpy(x),)
    options = {"opset_version": opset} if opset else {}
    if dynamic:
        axes = {"x": {0: "a", 1: "b"}}
        if states:
            axes.update(h0={1: "batch"}, c0={1: "batch"})
        options["dynamic_axes"] = axes
    exported = torch_export(module, args, states=states, **options)
    imported = from_onnx(exported)
    assert (imported.num_layers, imported.bidirectional, imported.batch_first, imported.bias) == (
        layers,
        bidirectional,
        batch_first,
        bias,
    )

    if dynamic:  # another batch and length than the export's
        x, h0, c0 = inputs(batch=2, steps=7)
    feeds = {"x": x, "h0": h0, "c0": c0} if states else {"x": x}
    y, y_h, y_c = run_onnxruntime(exported, feeds)
    output, (h_n, c_n) = imported(x, (h0, c0) if states else None)
    with torch.no_grad():
        torch_output, (torch_h, torch_c) = module(
            torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)) if states else None
        )
    for ours, runtime, reference in [(output, y, torch_output), (h_n, y_h, torch_h), (c_n, y_c, torch_c)]:
        assert_close(ours, runtime)
        assert_close(ours, reference.numpy())


def test_torch_export_without_constant_folding_is_refused():
    module = torch.nn.LSTM(4, 6, 2)
    exported = torch_export(module, (torch.zeros(3, 2, 4),), states=False, do_constant_folding=False)
    with pytest.raises(
        ValueError,
        match=r"input W \(.*\) must be an initializer or a Constant node, but it is "
        r"computed by node .* \((Concat|Slice|Unsqueeze)\)",
    ):
        from_onnx(exported)


# ---- round trip through our export ------------------------------------------------------------------------------

# (input_size, hidden_size, num_layers, bidirectional, bias, batch_first)
ROUND_TRIPS = [
    (13, 7, 1, False, True, False),
    (5, 16, 2, True, True, False),
    (31, 9, 3, True, False, False),
    (8, 33, 2, False, False, True),
    (6, 5, 1, True, True, True),
]


@pytest.mark.parametrize("input_size, hidden, layers, bidirectional, bias, batch_first", ROUND_TRIPS)
def test_round_trip_through_lstm_to_onnx(rng, input_size, hidden, layers, bidirectional, bias, batch_first):
    model = fastlstm.LSTM(
        input_size, hidden, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, seed=9
    )
    imported = from_onnx(lstm_to_onnx(model))
    assert repr(imported) == repr(model)
    original, parameters = model.state_dict(), imported.state_dict()
    assert list(parameters) == list(original)
    for name, value in original.items():
        np.testing.assert_array_equal(parameters[name], value)  # gate permutations move values, exactly
    shape = (2, 6, input_size) if batch_first else (6, 2, input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    expected, (expected_h, expected_c) = model(x)
    output, (h_n, c_n) = imported(x)
    assert_close(output, expected, ROUND_TRIP_TOLERANCE)
    assert_close(h_n, expected_h, ROUND_TRIP_TOLERANCE)
    assert_close(c_n, expected_c, ROUND_TRIP_TOLERANCE)
    [runtime_output] = run_onnxruntime(lstm_to_onnx(model), {INPUT_NAME: x})
    assert_close(output, runtime_output)


def test_reads_a_file_given_as_str_or_path(tmp_path):
    model = fastlstm.LSTM(4, 6, 2, bidirectional=True, seed=1)
    path = tmp_path / "model.onnx"
    onnx.save(lstm_to_onnx(model), path)
    for argument in (path, str(path)):
        imported = from_onnx(argument)
        assert repr(imported) == repr(model)
        name = "weight_hh_l1_reverse"
        np.testing.assert_array_equal(imported.state_dict()[name], model.state_dict()[name])


# ---- refusals ------------------------------------------------------------------------------------------------------


REFUSED_NODES = [
    pytest.param(
        dict(attributes={"direction": "sideways"}),
        r"node 'lstm' \(LSTM\): direction='sideways' is not valid \(forward, reverse or bidirectional\)",
        id="direction",
    ),
    pytest.param(dict(attributes={"clip": -3.0}), r"node 'lstm' \(LSTM\): clip=-3.0 is not valid", id="clip"),
    pytest.param(
        dict(attributes={"input_forget": 2}),
        r"node 'lstm' \(LSTM\): input_forget=2 is not valid \(0 or 1\)",
        id="input_forget",
    ),
    pytest.param(
        dict(attributes={"activations": ["Sigmoid", "Tanh", "Gelu"]}),
        r"node 'lstm' \(LSTM\): activation 'Gelu' is not one of the LSTM operator's \(Sigmoid, Tanh, Relu,",
        id="activations",
    ),
    pytest.param(
        dict(direction="bidirectional", attributes={"activations": ["Sigmoid", "Tanh", "Tanh"]}),
        r"activations=\['Sigmoid', 'Tanh', 'Tanh'\] has 3 entries, expected 3 per direction",
        id="activations-of-one-direction",
    ),
    pytest.param(
        dict(
            direction="bidirectional",
            attributes={"activations": ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"]},
        ),
        r"the two directions use different activations",
        id="activations-per-direction",
    ),
    pytest.param(
        dict(sequence_lens=True),
        r"node 'lstm' \(LSTM\): input sequence_lens \('sequence_lens'\) is initializer 'sequence_lens'; only a graph "
        r"input is supported",
        id="sequence_lens",
    ),
    pytest.param(
        dict(attributes={"hidden_size": 8}),
        r"input W \('W'\) has shape \(1, 28, 5\), expected \(1, 32, 5\) = \(num_directions, 4\*hidden_size, "
        r"input_size\) for hidden_size=8",
        id="hidden_size",
    ),
    pytest.param(dict(weight_dtype=np.int32), r"input W \('W'\) has dtype int32; expected float32", id="dtype"),
    pytest.param(dict(opset=13, attributes={"layout": 0}), r"the layout attribute needs opset >= 14", id="layout"),
    pytest.param(
        dict(opset=6), r"operator set 6 of the default domain is not supported \(opsets 7 to 22 are\)", id="opset-6"
    ),
    pytest.param(dict(opset=23), r"operator set 23 of the default domain is not supported", id="opset-23"),
    pytest.param(
        dict(attributes={"output_sequence": 1}),
        r"node 'lstm' \(LSTM\): attribute 'output_sequence' is not supported",
        id="unknown-attribute",
    ),
]


@pytest.mark.parametrize("options, message", REFUSED_NODES)
def test_unsupported_lstm_nodes_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        from_onnx(lstm_model(1, **options))


def test_bias_of_the_wrong_shape_is_refused():
    model = lstm_model(1)
    bias = model.graph.initializer[2]
    assert bias.name == "B"
    bias.CopyFrom(numpy_helper.from_array(np.zeros((1, 28), np.float32), "B"))
    with pytest.raises(ValueError, match=r"input B \('B'\) has shape \(1, 28\), expected \(1, 56\)"):
        from_onnx(model)


def test_weights_that_are_graph_inputs_are_refused():
    model = lstm_model(1)
    weights = model.graph.initializer[0]
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(weights.dims)))
    del model.graph.initializer[0]
    with pytest.raises(
        ValueError,
        match=r"input W \('W'\) must be an initializer or a Constant node, but it is "
        r"graph input 'W'",
    ):
        from_onnx(model)


def test_nonzero_constant_initial_state_is_refused():
    model = lstm_model(1)
    model.graph.initializer.append(numpy_helper.from_array(np.ones((1, 2, 7), np.float32), "h_start"))
    model.graph.node[0].input.extend(["", "h_start"])
    with pytest.raises(ValueError, match=r"input initial_h \('h_start'\) is a nonzero constant"):
        from_onnx(model)


def test_unrecognised_nodes_are_named():
    model = lstm_model(1)
    model.graph.node.append(helper.make_node("Relu", ["Y"], ["Y_relu"], name="relu"))
    model.graph.output.append(helper.make_tensor_value_info("Y_relu", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match=r"node 'relu' \(Relu\) is not supported"):
        from_onnx(model)

    model = lstm_model(1)
    model.graph.node.append(helper.make_node("Transpose", ["Y"], ["Y_t"], name="odd_transpose", perm=[1, 0, 2, 3]))
    with pytest.raises(
        ValueError,
        match=r"node 'odd_transpose' \(Transpose\) with perm=\[1, 0, 2, 3\] is not "
        r"supported here: .*output Y of LSTM node 'lstm'",
    ):
        from_onnx(model)

    model = lstm_model(1)
    model.graph.node.append(helper.make_node("Gru", ["Y"], ["Y_g"], domain="com.example"))
    with pytest.raises(ValueError, match=r"node #1 \(Gru\) of domain 'com.example' is not supported"):
        from_onnx(model)


def test_a_graph_without_lstm_is_refused():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "no_lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(ValueError, match=r"the graph has no LSTM node \(its ops: Relu\)"):
        from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def test_chains_one_model_cannot_express_are_refused():
    with pytest.raises(
        ValueError,
        match=r"LSTM node 'lstm1': hidden_size=9 differs from hidden_size=7 of LSTM node "
        r"'lstm0'",
    ):
        from_onnx(chain_model(0, 5, [7, 9], bidirectional=False, layout=0))

    # An intermediate layer's sequence as a graph output: the model returns only the last one.
    model = chain_model(0, 5, [7, 7], bidirectional=False, layout=0)
    model.graph.output.append(helper.make_tensor_value_info("sequence0", TensorProto.FLOAT, None))
    with pytest.raises(
        ValueError,
        match=r"graph output 'sequence0' is the sequence of layer 0 .* not something the "
        r"imported model returns",
    ):
        from_onnx(model)


def test_mixed_initial_state_sources_are_refused():
    module = torch.nn.LSTM(4, 6, 2)
    exported = torch_export(module, (torch.zeros(3, 2, 4), (torch.zeros(2, 2, 6), torch.zeros(2, 2, 6))), states=True)
    second = [node for node in exported.graph.node if node.op_type == "LSTM"][1]
    second.input[5] = ""  # the second layer starts from zeros, the first from h0
    with pytest.raises(
        ValueError,
        match=r"the initial h of the layers comes from different places \(layer 0: rows "
        r"0:1 of graph input 'h0', layer 1: zeros\)",
    ):
        from_onnx(exported)


def test_arguments_that_are_not_models():
    with pytest.raises(TypeError, match=r"model_or_path: expected an onnx.ModelProto .* got int"):
        from_onnx(42)
    with pytest.raises(TypeError, match=r"model_or_path: .* got GraphProto"):
        from_onnx(lstm_model(1).graph)
    with pytest.raises(FileNotFoundError, match=r"no such file: '.*missing\.onnx'"):
        from_onnx("/nonexistent/missing.onnx")


def test_missing_onnx_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match="pip install onnx"):
        from_onnx("model.onnx")


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (1, True), (2, True)])
def test_sequence_lens_input_becomes_the_lengths_argument(rng, layers, bidirectional):
    """A graph input sequence_lens feeding every LSTM node: the imported model called with lengths= equals
    onnxruntime given the same lengths (onnxruntime refuses length 0, so lengths start at 1)."""
    original = fastlstm.LSTM(5, 9, layers, bidirectional=bidirectional, seed=7)
    exported = lstm_to_onnx(original)
    for node in exported.graph.node:
        if node.op_type == "LSTM":
            while len(node.input) < 4:
                node.input.append("")
            node.input.append("lengths")
    exported.graph.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["N"]))
    model = from_onnx(exported)
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((7, 4, 5)).astype(np.float32)
    lengths = np.array([7, 2, 5, 1], np.int32)
    [expected] = session.run(None, {exported.graph.input[0].name: x, "lengths": lengths})
    assert np.abs(model(x, lengths=lengths)[0] - expected).max() <= 1e-5  # two float32 evaluations: MAX_TOLERANCE
    # A chain whose nodes do not all take the lengths is refused.
    if layers == 2:
        second = [node for node in exported.graph.node if node.op_type == "LSTM"][1]
        second.input[4] = ""
        with pytest.raises(ValueError, match=r"different sequence_lens \(layer 0: lengths, layer 1: none\)"):
            from_onnx(exported)


# Every cell option of the operator, alone and together, against onnxruntime: activations with their alpha and
# beta (as onnxruntime hands them out: only to the functions that read them), clip, input_forget, peepholes and the
# reverse direction.
CELL_OPTIONS = [
    dict(direction="reverse"),
    dict(peepholes="random"),
    dict(direction="bidirectional", peepholes="random"),
    dict(attributes={"clip": 0.6}),
    dict(attributes={"input_forget": 1}),
    dict(attributes={"activations": ["HardSigmoid", "Softsign", "Softplus"]}),
    dict(
        attributes={
            "activations": ["HardSigmoid", "LeakyRelu", "Elu"],
            "activation_alpha": [0.3, 0.05, 0.7],
            "activation_beta": [0.4],
        }
    ),
    dict(
        attributes={
            "activations": ["Sigmoid", "ScaledTanh", "Affine"],
            "activation_alpha": [1.2, 0.5],
            "activation_beta": [0.8, 0.1],
        }
    ),
    dict(attributes={"activations": ["Relu", "ThresholdedRelu", "Tanh"], "activation_alpha": [0.2]}),
    dict(
        direction="bidirectional",
        peepholes="random",
        attributes={"activations": ["HardSigmoid", "Tanh", "Softsign"] * 2, "clip": 1.5, "input_forget": 1},
    ),
    dict(
        direction="reverse",
        peepholes="random",
        states=True,
        attributes={"activations": ["Sigmoid", "Elu", "Tanh"], "clip": 2.0},
    ),
]


@pytest.mark.parametrize("options", CELL_OPTIONS, ids=lambda o: str(o).replace(" ", ""))
def test_cell_options_match_onnxruntime(isa, rng, options):
    model = lstm_model(11, 6, 17, opset=17, **options)
    imported = from_onnx(model)
    directions = 2 if options.get("direction") == "bidirectional" else 1
    x, h0, c0 = random_inputs(rng, (9, 3, 6), (directions, 3, 17))
    states = options.get("states", False)
    y, y_h, y_c = run_onnxruntime(model, {"X": x, "initial_h": h0, "initial_c": c0} if states else {"X": x})
    output, (h_n, c_n) = imported(x, (h0, c0) if states else None)
    assert_close(output, merge_directions(y))
    assert_close(h_n, y_h)
    assert_close(c_n, y_c)
    # And back: our export of the imported model runs in onnxruntime with the same results.
    exported = lstm_to_onnx(imported)
    [again] = run_onnxruntime(exported, {exported.graph.input[0].name: x}) if not states else [None]
    if again is not None:
        assert_close(again, output)


def test_omitted_alpha_and_beta_are_onnxruntimes(rng):
    """Without activation_alpha / activation_beta, onnxruntime gives Affine, ThresholdedRelu and ScaledTanh alpha 0
    and beta 0, not the defaults of the ONNX operators of those names; the import computes what onnxruntime does."""
    for activations in (["Sigmoid", "ThresholdedRelu", "Affine"], ["Sigmoid", "ScaledTanh", "Tanh"]):
        model = lstm_model(11, 6, 17, opset=17, attributes={"activations": activations})
        imported = from_onnx(model)
        assert all(alpha == beta == 0 for _, alpha, beta in imported.activations)
        x = 3 * rng.standard_normal((9, 3, 6)).astype(np.float32)
        y, y_h, y_c = run_onnxruntime(model, {"X": x})
        output, (h_n, c_n) = imported(x)
        assert_close(output, merge_directions(y))
        assert_close(h_n, y_h)
        assert_close(c_n, y_c)
