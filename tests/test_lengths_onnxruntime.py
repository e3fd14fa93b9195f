"""``model(x, lengths=...)`` against onnxruntime's LSTM with ``sequence_lens`` (tests/test_lengths.py has the rest).

Tolerance: twice ``float32_tolerance`` of fastlstm.testing around the float64 reference, as in test_lengths.py
(both are float32 evaluations within it)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

import fastlstm
from fastlstm import reference
from fastlstm.interop.onnx_export import INPUT_NAME, OUTPUT_NAME, lstm_to_onnx
from fastlstm.testing import float32_tolerance, max_abs_difference


@pytest.mark.parametrize("bidirectional", [False, True])
def test_equals_onnxruntime_sequence_lens(rng, bidirectional):
    model = fastlstm.LSTM(6, 11, 1, bidirectional=bidirectional, seed=3)
    exported = lstm_to_onnx(model)
    [lstm] = [node for node in exported.graph.node if node.op_type == "LSTM"]
    while len(lstm.input) < 4:
        lstm.input.append("")
    lstm.input.append("sequence_lens")
    exported.graph.input.append(onnx.helper.make_tensor_value_info("sequence_lens", onnx.TensorProto.INT32, ["N"]))
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    lengths = np.array([5, 1, 8, 3, 8], np.int32)  # onnxruntime refuses length 0
    x = rng.standard_normal((8, 5, 6)).astype(np.float32)
    [output] = session.run([OUTPUT_NAME], {INPUT_NAME: x, "sequence_lens": lengths})
    exact = reference.LSTM(6, 11, 1, bidirectional=bidirectional)
    float32 = reference.LSTM(6, 11, 1, bidirectional=bidirectional, dtype=np.float32)
    exact.load_state_dict(model.state_dict())
    float32.load_state_dict(model.state_dict())
    want = exact(x, lengths=lengths)[0]
    tolerance = 2 * float32_tolerance(want, float32(x, lengths=lengths)[0])
    assert max_abs_difference(model(x, lengths=lengths)[0], output) <= tolerance
