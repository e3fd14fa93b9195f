"""``fastlstm.from_torch`` and ``to_torch`` / ``to_onnx``: imported models compute what the torch module computes,
with its exact weights, for every option; exports load back into torch and run in onnxruntime; what cannot be
imported is refused with a message naming it.

Tolerance: both torch and fastlstm are float32 evaluations of the same equations; each lies within
``float32_tolerance`` (derived in fastlstm.testing, capped at 1e-5) of the float64 reference on the problem, so they
differ by at most twice that."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import safetensors.torch
import torch

import fastlstm
from fastlstm import reference
from fastlstm.testing import float32_tolerance, max_abs_difference

# (input_size, hidden_size, num_layers, bidirectional, proj_size, bias, batch_first)
CONFIGURATIONS = [
    (5, 7, 1, False, 0, True, False),
    (13, 33, 2, True, 0, True, True),
    (3, 17, 3, False, 5, False, False),
    (8, 9, 2, True, 4, True, True),
    (1, 16, 1, True, 0, False, False),
]


def _torch_lstm(input_size, hidden, layers, bidirectional, proj_size, bias, batch_first):
    torch.manual_seed(input_size * 1000 + hidden)
    module = torch.nn.LSTM(
        input_size,
        hidden,
        layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        proj_size=proj_size,
    )
    return module.eval()


def _torch_outputs(module, x, state):
    with torch.inference_mode():
        output, (h, c) = module(torch.from_numpy(x), tuple(torch.from_numpy(s) for s in state))
    return output.numpy(), h.numpy(), c.numpy()


def _state(rng, module, batch):
    directions = 2 if module.bidirectional else 1
    h_out = module.proj_size or module.hidden_size
    h0 = rng.standard_normal((module.num_layers * directions, batch, h_out)).astype(np.float32)
    c0 = rng.standard_normal((module.num_layers * directions, batch, module.hidden_size)).astype(np.float32)
    return h0, c0


def _assert_same_function(rng, module, model, batch=3, steps=9):
    """model(x, state) against module(x, state) and the float64 reference, on outputs and both states."""
    shape = (batch, steps, module.input_size) if module.batch_first else (steps, batch, module.input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    state = _state(rng, module, batch)
    exact_model = reference.LSTM(
        module.input_size,
        module.hidden_size,
        module.num_layers,
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        proj_size=module.proj_size,
    )
    exact_model.load_state_dict({name: value.numpy() for name, value in module.state_dict().items()})
    float32_model = reference.LSTM(
        module.input_size,
        module.hidden_size,
        module.num_layers,
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        proj_size=module.proj_size,
        dtype=np.float32,
    )
    float32_model.load_state_dict(exact_model.state_dict())
    exact_output, (exact_h, exact_c) = exact_model(x, state)
    output32, (h32, c32) = float32_model(x, state)
    output, (h, c) = model(x, state)
    for ours, theirs, exact, float32 in zip(
        (output, h, c), _torch_outputs(module, x, state), (exact_output, exact_h, exact_c), (output32, h32, c32)
    ):
        assert max_abs_difference(ours, theirs) <= 2 * float32_tolerance(exact, float32)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda c: "I{}-H{}-L{}-bi{}-P{}-bias{}-bf{}".format(*c))
def test_from_module_and_from_state_dict_compute_what_torch_computes(rng, configuration):
    module = _torch_lstm(*configuration)
    model = fastlstm.from_torch(module)
    assert isinstance(model, fastlstm.LSTM) and model.batch_first == module.batch_first
    for name, value in module.state_dict().items():  # the exact weights, not a re-rounded or re-fused copy
        assert np.array_equal(model.state_dict()[name], value.numpy())
    _assert_same_function(rng, module, model)
    from_state_dict = fastlstm.from_torch(module.state_dict(), batch_first=module.batch_first)
    assert repr(from_state_dict) == repr(model)
    _assert_same_function(rng, module, from_state_dict, batch=1, steps=1)


def test_other_dtypes_are_copied_as_float32(rng):
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        module = _torch_lstm(4, 6, 1, True, 0, True, False).to(dtype)
        model = fastlstm.from_torch(module)
        for name, value in module.state_dict().items():
            assert np.array_equal(model.state_dict()[name], value.float().numpy())


def test_cell_from_module_and_state_dict(rng):
    torch.manual_seed(1)
    for bias in (True, False):
        module = torch.nn.LSTMCell(7, 9, bias=bias).eval()
        x = rng.standard_normal((3, 7)).astype(np.float32)
        state = tuple(rng.standard_normal((3, 9)).astype(np.float32) for _ in range(2))
        with torch.inference_mode():
            expected = [t.numpy() for t in module(torch.from_numpy(x), tuple(torch.from_numpy(s) for s in state))]
        for cell in (fastlstm.from_torch(module), fastlstm.from_torch(module.state_dict())):
            assert isinstance(cell, fastlstm.LSTMCell) and cell.bias == bias
            for ours, theirs in zip(cell(x, state), expected):
                # one step: sums of 16 + 2 terms and the cell arithmetic, far inside MAX_TOLERANCE (1e-5)
                assert max_abs_difference(ours, theirs) <= 1e-6


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
def test_to_torch_gives_back_the_parameters_and_the_module(rng):
    model = fastlstm.LSTM(6, 10, 2, bidirectional=True, proj_size=3, batch_first=True, seed=4)
    state_dict = model.to_torch()
    assert list(state_dict) == list(model.parameter_shapes())
    assert all(isinstance(value, torch.Tensor) and value.dtype == torch.float32 for value in state_dict.values())
    module = model.to_torch(module=True)
    assert isinstance(module, torch.nn.LSTM) and not module.training
    assert (module.batch_first, module.bidirectional, module.proj_size, module.num_layers) == (True, True, 3, 2)
    for name, value in module.state_dict().items():
        assert np.array_equal(value.numpy(), model.state_dict()[name])
    _assert_same_function(rng, module, model)
    cell = fastlstm.LSTMCell(4, 5, seed=1)
    assert isinstance(cell.to_torch(module=True), torch.nn.LSTMCell)
    assert list(cell.to_torch()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def test_to_onnx_runs_in_onnxruntime(rng, tmp_path):
    model = fastlstm.LSTM(5, 8, 2, bidirectional=True, seed=2)
    path = tmp_path / "model.onnx"
    exported = model.to_onnx(path)
    assert path.exists() and [node.op_type for node in exported.graph.node].count("LSTM") == 2
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((7, 3, 5)).astype(np.float32)
    [output] = session.run(None, {session.get_inputs()[0].name: x})
    assert max_abs_difference(output, model(x)[0]) <= 1e-5  # MAX_TOLERANCE: two float32 evaluations
    assert model.to_onnx() is not None  # no path: the graph only


class Wrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4)


def test_what_cannot_be_imported_is_named():
    with pytest.raises(TypeError, match=r"obj: expected a torch.nn.LSTM.*got .*Linear"):
        fastlstm.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match=r"obj: .*got builtins.object"):
        fastlstm.from_torch(object())
    with pytest.raises(TypeError, match=r"obj: .*GRU"):
        fastlstm.from_torch(torch.nn.GRU(3, 4))
    with pytest.raises(ValueError, match=r"\['lstm.weight_ih_l0'.*module.lstm.state_dict\(\)"):
        fastlstm.from_torch(Wrapper().state_dict())
    state_dict = torch.nn.LSTM(3, 4, 2).state_dict()
    del state_dict["weight_hh_l1"]
    with pytest.raises(ValueError, match=r"missing \['weight_hh_l1'\]"):
        fastlstm.from_torch(state_dict)
    state_dict = torch.nn.LSTM(3, 4).state_dict()
    state_dict["weight_hh_l0"] = torch.zeros(16, 5)
    with pytest.raises(ValueError, match=r"weight_hh_l0.*\(16, 4\).*\(16, 5\)"):
        fastlstm.from_torch(state_dict)
    state_dict["weight_ih_l0"] = torch.zeros(15, 3)
    with pytest.raises(ValueError, match=r"weight_ih_l0.*4\*hidden_size.*\(15, 3\)"):
        fastlstm.from_torch(state_dict)
    with pytest.raises(ValueError, match=r"batch_first: the module has batch_first=False"):
        fastlstm.from_torch(torch.nn.LSTM(3, 4), batch_first=True)
    with pytest.raises(TypeError, match=r"state_dict\['weight_ih_l0'\].*complex"):
        fastlstm.from_torch({"weight_ih_l0": np.zeros((16, 3), np.complex64), "weight_hh_l0": np.zeros((16, 4))})
    with pytest.raises(ValueError, match=r"no entries"):
        fastlstm.from_torch({})


def test_file_of_fastlstm_save_loads_into_torch(tmp_path):
    # The file's tensors carry torch.nn.LSTM's names and shapes: the safetensors package reads them as they are.
    model = fastlstm.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3, batch_first=True, seed=12)
    path = tmp_path / "model.safetensors"
    fastlstm.save(model, path)
    module = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3, batch_first=True)
    module.load_state_dict(safetensors.torch.load_file(path))
    for name, value in model.state_dict().items():
        assert np.array_equal(module.state_dict()[name].numpy(), value), name
