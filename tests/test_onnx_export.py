"""``lstm_to_onnx``: the exported graph computes what the model computes, in onnxruntime, for any number of layers,
both directions, with and without biases, batch-first or not, and for other batch sizes and lengths than the first
(the T and N axes are symbolic)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

import fastlstm
from fastlstm.interop.onnx_export import INPUT_NAME, OUTPUT_NAME, lstm_to_onnx

TOLERANCE = 1e-5

# (input_size, hidden_size, num_layers, bidirectional, bias, batch_first): odd sizes that fill no vector evenly
CONFIGURATIONS = [
    (13, 7, 1, False, True, False),
    (5, 16, 2, True, True, False),
    (31, 9, 3, True, False, False),
    (8, 33, 2, False, False, True),
    (3, 4, 3, False, True, False),
    (6, 5, 1, True, True, True),
]


@pytest.mark.parametrize("input_size, hidden, layers, bidirectional, bias, batch_first", CONFIGURATIONS)
def test_onnxruntime_computes_the_model(rng, input_size, hidden, layers, bidirectional, bias, batch_first):
    model = fastlstm.LSTM(
        input_size, hidden, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, seed=3
    )
    exported = lstm_to_onnx(model)
    assert [node.op_type for node in exported.graph.node].count("LSTM") == layers
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    for steps, batch in [(5, 3), (1, 1), (11, 2)]:
        shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
        x = rng.standard_normal(shape).astype(np.float32)
        [output] = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        expected = model(x)[0]
        assert output.shape == expected.shape
        np.testing.assert_allclose(output, expected, rtol=0, atol=TOLERANCE)


def test_graph_interface():
    exported = lstm_to_onnx(fastlstm.LSTM(4, 6, 2, bidirectional=True, seed=0))
    [graph_input], [graph_output] = exported.graph.input, exported.graph.output
    assert graph_input.name == INPUT_NAME and graph_output.name == OUTPUT_NAME
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(graph_input) == ["T", "N", 4]
    assert dims(graph_output) == ["T", "N", 12]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    onnx.checker.check_model(exported, full_check=True)  # with shape inference


def test_weights_are_in_onnx_gate_order():
    model = fastlstm.LSTM(2, 3, seed=0)
    state = model.state_dict()
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in lstm_to_onnx(model).graph.initializer}
    i, f, g, o = np.split(state["weight_ih_l0"], 4)
    np.testing.assert_array_equal(weights["W_l0"][0], np.concatenate([i, o, f, g]))
    i, f, g, o = np.split(state["bias_hh_l0"], 4)
    np.testing.assert_array_equal(weights["B_l0"][0, 12:], np.concatenate([i, o, f, g]))


def test_refuses_what_onnx_cannot_express():
    with pytest.raises(ValueError, match=r"projection \(proj_size=2\) cannot be expressed in ONNX"):
        lstm_to_onnx(fastlstm.LSTM(4, 8, proj_size=2))
    with pytest.raises(ValueError, match="opset >= 14"):
        lstm_to_onnx(fastlstm.LSTM(4, 8), opset=13)
