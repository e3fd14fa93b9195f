"""One LSTM step from a kept state, by each implementation the streaming section times: fastlstm's stream, torch's
``nn.LSTMCell`` and ``nn.LSTM`` with ``hx``, onnxruntime's LSTM node with ``initial_h`` / ``initial_c``. Each builder
takes a one-layer fastlstm model and returns a ``StepRunner``: ``step(x)`` steps one session (x (1, I) float32,
NumPy in and out, the state kept by the runner) and the thread limit it runs under."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastlstm

from .peers import _torch_threads

Step = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StepPeer:
    name: str
    modules: tuple[str, ...]
    #: (model, sessions) -> one step function per session, each keeping its session's state
    build: Callable[[fastlstm.LSTM, int], list[Step]]
    limit_threads: Callable[[int], AbstractContextManager[Any]] = lambda threads: contextlib.nullcontext()

    def is_available(self) -> bool:
        import importlib.util

        return all(importlib.util.find_spec(module) is not None for module in self.modules)


def fastlstm_streams(model: fastlstm.LSTM, sessions: int) -> list[Step]:
    """One ``model.stream(1)`` per session."""
    return [model.stream(1).step for _ in range(sessions)]


def _torch_cell_steps(model: fastlstm.LSTM, sessions: int) -> list[Step]:
    import torch

    cell = torch.nn.LSTMCell(model.input_size, model.hidden_size)
    parameters = model.state_dict()  # one layer: torch.nn.LSTMCell's names without the _l0
    cell.load_state_dict({name.removesuffix("_l0"): torch.from_numpy(value) for name, value in parameters.items()})
    cell.eval()

    def session() -> Step:
        state = [torch.zeros(1, model.hidden_size), torch.zeros(1, model.hidden_size)]

        def step(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                state[:] = cell(torch.from_numpy(x), (state[0], state[1]))
            return state[0].numpy()

        return step

    return [session() for _ in range(sessions)]


def _torch_lstm_steps(model: fastlstm.LSTM, sessions: int) -> list[Step]:
    import torch

    module = model.to_torch(module=True)

    def session() -> Step:
        state = [torch.zeros(1, 1, model.hidden_size), torch.zeros(1, 1, model.hidden_size)]

        def step(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                y, (state[0], state[1]) = module(torch.from_numpy(x)[None], (state[0], state[1]))
            return y[0].numpy()

        return step

    return [session() for _ in range(sessions)]


def onnx_step_graph(model: fastlstm.LSTM) -> bytes:
    """An ONNX graph of one layer's LSTM node with the state as inputs and outputs: (X, initial_h, initial_c) ->
    (Y, Y_h, Y_c), the weights as initializers in ONNX's gate order."""
    from onnx import TensorProto, helper, numpy_helper

    from ..interop._common import gates_to_onnx

    hidden, parameters = model.hidden_size, model.state_dict()
    weights = {
        "W": gates_to_onnx(parameters["weight_ih_l0"], hidden)[None],
        "R": gates_to_onnx(parameters["weight_hh_l0"], hidden)[None],
        "B": np.concatenate(
            [gates_to_onnx(parameters["bias_ih_l0"], hidden), gates_to_onnx(parameters["bias_hh_l0"], hidden)]
        )[None],
    }
    node = helper.make_node(
        "LSTM", ["X", "W", "R", "B", "", "initial_h", "initial_c"], ["Y", "Y_h", "Y_c"], hidden_size=hidden
    )
    inputs = [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, model.input_size]),
        helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, 1, hidden]),
        helper.make_tensor_value_info("initial_c", TensorProto.FLOAT, [1, 1, hidden]),
    ]
    outputs = [
        helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 1, hidden]),
        helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, hidden]),
        helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, 1, hidden]),
    ]
    initializers = [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()]
    graph = helper.make_graph([node], "lstm_step", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def _onnxruntime_steps(model: fastlstm.LSTM, sessions: int, threads: int = 1) -> list[Step]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_step_graph(model), options, providers=["CPUExecutionProvider"])

    def one() -> Step:
        state = [np.zeros((1, 1, model.hidden_size), np.float32), np.zeros((1, 1, model.hidden_size), np.float32)]

        def step(x: np.ndarray) -> np.ndarray:
            y, state[0], state[1] = session.run(None, {"X": x[None], "initial_h": state[0], "initial_c": state[1]})
            return y[0, 0]

        return step

    return [one() for _ in range(sessions)]


#: The streaming section's implementations of a step from a state, fastlstm first.
STEP_PEERS: tuple[StepPeer, ...] = (
    StepPeer("fastlstm stream", ("numpy",), fastlstm_streams),
    StepPeer("torch LSTMCell", ("torch",), _torch_cell_steps, _torch_threads),
    StepPeer("torch LSTM+hx", ("torch",), _torch_lstm_steps, _torch_threads),
    StepPeer("onnxruntime", ("onnxruntime", "onnx"), _onnxruntime_steps),
)


#: How far a peer's step may be from fastlstm's: float32 sums of up to I + H products and the peers' activations
#: (onnxruntime's rational approximations: ~1e-6 relative) over a few steps stay well inside 1e-4 at these sizes.
STEP_TOLERANCE = 1e-4


def step_difference(peer: StepPeer, model: fastlstm.LSTM, steps: int = 3) -> float:
    """max |peer - fastlstm stream| over the outputs of ``steps`` steps of one session from zeros."""
    rng = np.random.default_rng(3)
    ours, theirs = model.stream(1).step, peer.build(model, 1)[0]
    worst = 0.0
    for _ in range(steps):
        x = rng.standard_normal((1, model.input_size)).astype(np.float32)
        expected, got = ours(x), np.asarray(theirs(x)).reshape(1, -1)
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - expected), initial=0.0)))
    return worst
