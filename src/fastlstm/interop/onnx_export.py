"""Export of a ``fastlstm.LSTM`` to ONNX: the graph that runs the same function in any ONNX runtime.

The graph has one input and one output, named by ``INPUT_NAME`` and ``OUTPUT_NAME``:

* input: float32 x of shape (T, N, input_size), or (N, T, input_size) when the model is ``batch_first``, with T and
  N symbolic, so one export serves every batch size and sequence length;
* output: the last layer's sequence, float32 (T, N, num_directions * hidden_size) (or (N, T, ...) with
  ``batch_first``), exactly what ``model(x)[0]`` returns.

The initial states are zeros and the final states are not outputs, as in ``model(x)`` without ``state``.

Each layer is one ONNX ``LSTM`` node (opset ``OPSET``, time-major ``layout=0``, directions "forward" or
"bidirectional"), whose default activations (sigmoid, tanh, tanh) are those of ``torch.nn.LSTM``. Two things differ
from PyTorch's parameters and are converted here:

* gate order: PyTorch packs the 4H rows of a weight as i, f, g, o; ONNX as i, o, f, c (c is PyTorch's g);
* stacking: ONNX holds both directions of a layer in one tensor, forward first: W (D, 4H, I), R (D, 4H, H) and
  B (D, 8H) = [input bias, recurrent bias] per direction.

An ONNX ``LSTM`` outputs Y of shape (T, D, N, H); the next layer (and the graph's output) needs (T, N, D*H), which
a Transpose to (T, N, D, H) and a Reshape give, as ``torch.onnx.export`` does for ``torch.nn.LSTM``.

Cell options map onto the operator's: ``reverse`` to direction "reverse", ``activations`` (with their alpha and
beta), ``clip``, ``input_forget``, and ``peepholes`` to the P input (in ONNX's order i, o, f).

A projection (``proj_size > 0``, LSTMP) has no ONNX equivalent: the ``LSTM`` operator's P input holds peephole
weights, a different thing. ``onnx`` is an optional dependency, imported only when exporting.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ._common import gates_to_onnx, layer_suffixes, peepholes_to_onnx

if TYPE_CHECKING:
    import onnx

    from ..lstm import LSTM

#: The default ONNX operator set of the exported graphs: the first with the LSTM ``layout`` attribute is 14; 17 is
#: read by every current runtime.
OPSET = 17
#: Names of the graph's input and output.
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def lstm_to_onnx(model: LSTM, *, opset: int = OPSET) -> onnx.ModelProto:
    """The ONNX model computing ``model(x)[0]`` for a ``fastlstm.LSTM`` (see the module's documentation for the
    graph's input and output). Raises ValueError for a model with ``proj_size > 0``, which ONNX cannot express, or
    an ``opset`` below 14, and ImportError when the ``onnx`` package is not installed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if model.proj_size > 0:
        raise ValueError(
            f"lstm_to_onnx: a projection (proj_size={model.proj_size}) cannot be expressed in ONNX: "
            "the LSTM operator has no projection of h (its P input is for peephole weights)"
        )
    if opset < 14:
        raise ValueError(f"lstm_to_onnx: expected opset >= 14 (the LSTM operator's layout attribute), got {opset}")

    hidden = model.hidden_size
    directions = model.num_directions
    parameters = model.state_dict()
    nodes = []
    initializers = [
        # Transpose Y (T, D, N, H) to (T, N, D, H), then Reshape to (T, N, D*H): 0 keeps a dimension, -1 infers it.
        numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge_directions_shape"),
    ]

    if model.batch_first:
        nodes.append(helper.make_node("Transpose", [INPUT_NAME], ["time_major_input"], perm=[1, 0, 2]))
        layer_input = "time_major_input"
    else:
        layer_input = INPUT_NAME

    for layer in range(model.num_layers):
        nodes.append(
            helper.make_node(
                "LSTM",
                [layer_input, *_weight_inputs(model, layer, parameters, initializers)],
                [f"Y_l{layer}"],  # Y_h and Y_c, the final states, are left out
                name=f"lstm_l{layer}",
                hidden_size=hidden,
                direction="bidirectional" if model.bidirectional else "reverse" if model.reverse else "forward",
                layout=0,
                **_cell_attributes(model),
            )
        )
        last = layer == model.num_layers - 1
        layer_output = OUTPUT_NAME if last and not model.batch_first else f"sequence_l{layer}"
        nodes += [
            helper.make_node("Transpose", [f"Y_l{layer}"], [f"Y_l{layer}_by_batch"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [f"Y_l{layer}_by_batch", "merge_directions_shape"], [layer_output]),
        ]
        layer_input = layer_output

    if model.batch_first:
        nodes.append(helper.make_node("Transpose", [layer_input], [OUTPUT_NAME], perm=[1, 0, 2]))

    outer_axes = ["N", "T"] if model.batch_first else ["T", "N"]
    graph = helper.make_graph(
        nodes,
        "fastlstm_lstm",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [*outer_axes, model.input_size])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [*outer_axes, directions * hidden])],
        initializer=initializers,
    )
    graph.doc_string = repr(model)
    # The IR version that goes with the operator set, rather than the newest the onnx package knows, so that
    # runtimes older than the package read the file.
    exported = helper.make_model_gen_version(
        graph, producer_name="fastlstm", opset_imports=[helper.make_opsetid("", opset)]
    )
    onnx.checker.check_model(exported)
    return exported


def _weight_inputs(model: LSTM, layer: int, parameters: dict[str, np.ndarray], initializers: list) -> list[str]:
    """The names of layer ``layer``'s LSTM node inputs after X: W, R and B ("" when the model has no bias: the
    operator's biases are zeros) and, with peepholes, three omitted inputs then P. Each is a new initializer, added
    to ``initializers``, holding the layer's directions in PyTorch's order and its gates and peepholes in ONNX's."""
    from onnx import numpy_helper

    hidden = model.hidden_size
    suffixes = layer_suffixes(layer, model.num_directions)

    def add_initializer(name: str, tensors: list[np.ndarray]) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.stack(tensors), np.float32), name))
        return name

    w = add_initializer(f"W_l{layer}", [gates_to_onnx(parameters[f"weight_ih{s}"], hidden) for s in suffixes])
    r = add_initializer(f"R_l{layer}", [gates_to_onnx(parameters[f"weight_hh{s}"], hidden) for s in suffixes])
    if model.bias:
        b = add_initializer(
            f"B_l{layer}",
            [
                np.concatenate(
                    [gates_to_onnx(parameters[f"bias_ih{s}"], hidden), gates_to_onnx(parameters[f"bias_hh{s}"], hidden)]
                )
                for s in suffixes
            ],
        )
    else:
        b = ""
    inputs = [w, r, b]
    if model.peepholes:
        p = add_initializer(f"P_l{layer}", [peepholes_to_onnx(parameters[f"peephole{s}"]) for s in suffixes])
        inputs += ["", "", "", p]  # sequence_lens, initial_h, initial_c omitted
    return inputs


def save_onnx(model: LSTM, path: str | os.PathLike | None, *, opset: int = OPSET) -> onnx.ModelProto:
    """``lstm_to_onnx(model, opset=opset)``, also written to ``path`` unless it is None."""
    import onnx

    exported = lstm_to_onnx(model, opset=opset)
    if path is not None:
        onnx.save(exported, os.fspath(path))
    return exported


def _cell_attributes(model: LSTM) -> dict:
    """The LSTM node's attributes for the model's cell options (none for the standard cell). Every alpha and beta
    is written out, in the order in which runtimes hand them to the functions that read them."""
    from .._cell import ACTIVATIONS, is_standard

    attributes: dict = {}
    if not is_standard(model.activations):
        functions = [ACTIVATIONS[name] for name, _, _ in model.activations]
        attributes["activations"] = [function.onnx_name for function in functions] * model.num_directions
        alphas = [alpha for f, (_, alpha, _) in zip(functions, model.activations) if f.reads_alpha]
        betas = [beta for f, (_, _, beta) in zip(functions, model.activations) if f.reads_beta]
        if alphas:
            attributes["activation_alpha"] = alphas * model.num_directions
        if betas:
            attributes["activation_beta"] = betas * model.num_directions
    if model.clip is not None:
        attributes["clip"] = model.clip
    if model.input_forget:
        attributes["input_forget"] = 1
    return attributes
