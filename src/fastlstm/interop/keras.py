"""Import of Keras 3 LSTMs: ``from_keras(obj)`` returns a ``KerasLSTM``, which runs a ``fastlstm.LSTM`` (its
``.model``) and returns exactly what the Keras layer or model returns.

What is read
------------
* a built ``keras.layers.LSTM``, or a ``keras.layers.Bidirectional`` wrapping one;
* a ``keras.Sequential`` or functional ``keras.Model`` holding only an input, at most one ``Masking`` layer before
  the LSTM, and that ``LSTM`` or ``Bidirectional`` layer, whose outputs are the model's outputs. In a Sequential,
  several LSTM layers in a row (or several Bidirectional ones) become one multi-layer model when they have the same
  units, activations and bias, every layer but the last returns sequences, none goes backwards and every
  Bidirectional but the last concatenates (merge_mode "concat");
* the path of a ``.keras`` file holding any of these. The file is a zip of ``config.json`` (the layers' settings)
  and ``model.weights.h5`` (``<layer>/cell/vars/0, 1, 2`` = kernel, recurrent kernel, bias), read with zipfile,
  json and h5py: keras is not imported, so a model trained elsewhere runs where only fastlstm and h5py are installed.

Weights: Keras's kernel (I, 4H) and recurrent kernel (H, 4H) are transposed to our (4H, I) and (4H, H); the gate
order i, f, c, o is ours. The single bias becomes ``bias_ih`` with a zero ``bias_hh``, as Keras's torch backend does.
Whatever the layer's dtype policy, the model computes in float32.

What a call returns
-------------------
``keras_lstm(x, initial_state=None, mask=None)`` with x (N, T, I) returns what the Keras layer returns, as float32
NumPy arrays: the sequence (N, T, units) with ``return_sequences`` or else the last output (N, units); with
``return_state`` the list ``[output, h, c]`` (Bidirectional: ``[output, h_fw, c_fw, h_bw, c_bw]``). Bidirectional
merges both directions as its ``merge_mode`` says (concat, sum, mul, ave; None gives the list of both outputs).

* ``go_backwards``: Keras reads the sequence from its end and returns the outputs in the order it computed them,
  i.e. reversed in time. That is our ``reverse=True`` (whose outputs are aligned with the input) with the sequence
  flipped. In a Bidirectional the backward layer's sequence is flipped back, so it is our bidirectional model's.
* Masks: ``mask`` (N, T), True at the valid steps (or a ``Masking`` layer's mask: the steps where some feature
  differs from its mask_value). At a masked step Keras leaves the state unchanged and outputs the previous output
  (zeros before the first valid step, even with an initial state), or zeros when the layer's
  ``zero_output_for_mask`` is set, which Bidirectional forces for layers that return sequences. Because the state
  does not move at masked steps, running only each row's valid steps is exact: a right-padded mask runs as it is,
  with ``lengths=``; a mask with holes first has each row's valid steps gathered to the front (one copy of x), then
  runs the same way. The outputs at masked steps are filled in afterwards.
* Several layers: the output and states are the last layer's.

Refused (ValueError naming the layer and the option): activations other than tanh, sigmoid, hard_sigmoid (Keras 3's
x/6 + 1/2, clipped), relu, linear, softsign, softplus, elu and leaky_relu (slope 0.2); a stateful layer (the state
Keras keeps between calls lives in the returned model's ``model.stream(batch_size)`` instead); a Bidirectional whose
backward layer differs from its forward one in units, activations or bias, or whose forward layer goes backwards;
any other layer in a model. Ignored, as they act only in training: dropout, recurrent_dropout, regularizers,
constraints, initializers (unit_forget_bias among them); unroll changes nothing in the result.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .._checks import check_precision, check_shape, check_threads, existing_file, float32_weights, real_array, shape_text
from ._common import layer_suffix

if TYPE_CHECKING:
    from ..lstm import LSTM

__all__ = ["KerasLSTM", "from_keras"]

#: Keras activation names and the same function in our terms (see fastlstm._cell). Keras 3's hard_sigmoid is
#: relu6(x + 3) / 6, i.e. clip(x / 6 + 1/2, 0, 1); its leaky_relu has the negative slope 0.2.
_ACTIVATIONS: dict[str, tuple[str, float, float]] = {
    "tanh": ("tanh", 0.0, 0.0),
    "sigmoid": ("sigmoid", 0.0, 0.0),
    "hard_sigmoid": ("hard_sigmoid", 1.0 / 6.0, 0.5),
    "relu": ("relu", 0.0, 0.0),
    "linear": ("affine", 1.0, 0.0),
    "softsign": ("softsign", 0.0, 0.0),
    "softplus": ("softplus", 0.0, 0.0),
    "elu": ("elu", 1.0, 0.0),
    "leaky_relu": ("leaky_relu", 0.2, 0.0),
}
_MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_RECURRENT_CLASSES = ("LSTM", "Bidirectional")
#: The ops a functional model traces for a Masking layer's mask (NotEqual to mask_value, then Any over features).
_MASK_OPS = ("NotEqual", "Any")
_WEIGHTS_FILE = "model.weights.h5"
_CONFIG_FILE = "config.json"
_METADATA_FILE = "metadata.json"
_WHAT_IS_READ = (
    "a model may hold only an input, one Masking layer before the LSTM, and one LSTM or Bidirectional(LSTM) layer "
    "(in a Sequential, several in a row that make a multi-layer LSTM)"
)


# ---- the result ---------------------------------------------------------------------------------------------------


class KerasLSTM:
    """A Keras LSTM layer (or model around one) run by ``fastlstm``: ``keras_lstm(x, initial_state=None,
    mask=None)`` returns what Keras returns for the same call (see ``fastlstm.interop.keras`` for the semantics).

    Attributes:
        model: the ``fastlstm.LSTM`` doing the work, batch_first=True as Keras is batch-major; reverse=True for a
            layer with go_backwards, bidirectional=True for a Bidirectional layer. It can be called directly, with
            torch.nn.LSTM's conventions (its reverse outputs are aligned with the input, not flipped).
        name: the Keras layer's (or model's) name.
        return_sequences, return_state, go_backwards, merge_mode, zero_output_for_mask: the (last) layer's settings.
        mask_value: the mask_value of the model's Masking layer, None without one.
    """

    def __init__(
        self,
        model: LSTM,
        *,
        name: str,
        return_sequences: bool,
        return_state: bool,
        go_backwards: bool,
        merge_mode: str | None,
        zero_output_for_mask: bool,
        mask_value: float | None,
    ) -> None:
        self.model = model
        self.name = name
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.merge_mode = merge_mode
        self.zero_output_for_mask = zero_output_for_mask
        self.mask_value = mask_value

    @property
    def bidirectional(self) -> bool:
        return self.model.bidirectional

    def __call__(self, x: Any, initial_state: Any = None, mask: Any = None) -> np.ndarray | list[np.ndarray]:
        """What the Keras layer returns for ``layer(x, initial_state=initial_state, mask=mask)``.

        Args:
            x: (N, T, input_size), any real dtype (computed in float32).
            initial_state: None (zeros) or the list ``[h, c]`` (Bidirectional: ``[h_fw, c_fw, h_bw, c_bw]``), each
                (N, units). Not for a multi-layer import, whose Keras model starts every layer from zeros.
            mask: None or (N, T) booleans (or 0/1 integers), True at the steps to compute. A model with a Masking
                layer computes its mask from x, so it takes none.
        """
        x = real_array(x, "x")
        if x.ndim != 3 or x.shape[2] != self.model.input_size or x.shape[1] == 0:
            raise ValueError(
                f"x: expected a 3-D array (N, T, {self.model.input_size}) (batch, steps >= 1, input_size), "
                f"got shape {shape_text(x.shape)}"
            )
        mask = self._mask(x, mask)
        state = None if initial_state is None else self._initial_state(initial_state, x.shape[0])
        output, h_n, c_n = self._run_aligned(x, state, mask)

        hidden, layers = self.model.hidden_size, self.model.num_layers
        if not self.model.bidirectional:
            sequence = _keras_sequence(output, mask, self.go_backwards, self.zero_output_for_mask)
            result = sequence if self.return_sequences else sequence[:, -1]
            states = [h_n[layers - 1], c_n[layers - 1]]
        else:
            forward = _keras_sequence(output[..., :hidden], mask, False, self.zero_output_for_mask)
            backward = _keras_sequence(output[..., hidden:], mask, True, self.zero_output_for_mask)
            if self.return_sequences:  # Bidirectional flips the backward sequence back to the input's order
                forward_result, backward_result = forward, backward[:, ::-1]
            else:
                forward_result, backward_result = forward[:, -1], backward[:, -1]
            result = _merge(self.merge_mode, forward_result, backward_result)
            last = 2 * (layers - 1)
            states = [h_n[last], c_n[last], h_n[last + 1], c_n[last + 1]]
        results = result if isinstance(result, list) else [result]
        if self.return_state:
            results = results + states
        results = [np.ascontiguousarray(item, dtype=np.float32) for item in results]
        return results if len(results) > 1 else results[0]

    def _mask(self, x: np.ndarray, mask: Any) -> np.ndarray | None:
        """The (N, T) bool mask, or None when every step is valid (then nothing needs filling in)."""
        if self.mask_value is not None:
            if mask is not None:
                raise ValueError(
                    f"mask: the model's Masking layer computes the mask from x (mask_value={self.mask_value!r}); "
                    "pass no mask"
                )
            # Keras compares the float32 input with the float32 mask_value (values beyond float32 become +-inf).
            with np.errstate(over="ignore"):
                mask = np.any(np.asarray(x, dtype=np.float32) != np.float32(self.mask_value), axis=-1)
        elif mask is not None:
            array = np.asarray(mask)
            if array.dtype.kind not in "biu":
                raise TypeError(f"mask: expected booleans (or 0/1 integers), got dtype {array.dtype}")
            check_shape(array, x.shape[:2], "mask", hint="batch, steps")
            mask = array.astype(bool)
        if mask is None or mask.all():
            return None
        return mask

    def _initial_state(self, initial_state: Any, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Keras's list [h, c] (or [h_fw, c_fw, h_bw, c_bw]) as our pair (h0, c0), each (directions, N, H)."""
        if self.model.num_layers > 1:
            raise ValueError(
                "initial_state: this import stacks several Keras layers, which the Keras model starts from zeros; "
                "pass no initial_state (or call .model with a state per layer)"
            )
        count = 2 * self.model.num_directions
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != count:
            names = "[h_fw, c_fw, h_bw, c_bw]" if self.model.bidirectional else "[h, c]"
            got = type(initial_state).__name__
            if isinstance(initial_state, (list, tuple)):
                got += f" of length {len(initial_state)}"
            raise TypeError(f"initial_state: expected None or the list {names}, got {got}")
        arrays = []
        for index, item in enumerate(initial_state):
            array = real_array(item, f"initial_state[{index}]")
            check_shape(array, (batch, self.model.hidden_size), f"initial_state[{index}]", hint="batch, units")
            arrays.append(array)
        return np.stack(arrays[0::2]), np.stack(arrays[1::2])

    def _run_aligned(
        self, x: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(output, h_n, c_n) of our model over each row's valid steps; output is aligned with x's time axis, its
        rows correct at the valid steps and zero elsewhere."""
        if mask is None:
            output, (h_n, c_n) = self.model(x, state)
            return output, h_n, c_n
        steps = x.shape[1]
        lengths = mask.sum(axis=1)
        if np.array_equal(mask, np.arange(steps) < lengths[:, None]):  # right padding: runs as it is
            output, (h_n, c_n) = self.model(x, state, lengths=lengths)
            return output, h_n, c_n
        # Holes: a stable sort of "masked" puts each row's valid steps first, in their order; the masked steps, which
        # Keras lets pass without touching the state, go behind the row's length where our model skips them.
        order = np.argsort(~mask, axis=1, kind="stable")
        gathered = np.take_along_axis(x, order[:, :, None], axis=1)
        gathered_output, (h_n, c_n) = self.model(gathered, state, lengths=lengths)
        output = np.empty_like(gathered_output)
        np.put_along_axis(output, order[:, :, None], gathered_output, axis=1)
        return output, h_n, c_n

    def __repr__(self) -> str:
        options = []
        for option in ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask"):
            if getattr(self, option):
                options.append(f"{option}=True")
        if self.bidirectional:
            options.append(f"merge_mode={self.merge_mode!r}")
        if self.mask_value is not None:
            options.append(f"mask_value={self.mask_value!r}")
        return f"KerasLSTM({self.name!r}, {', '.join([repr(self.model), *options])})"


def _keras_sequence(aligned: np.ndarray, mask: np.ndarray | None, backwards: bool, zero_output: bool) -> np.ndarray:
    """The outputs of one direction in the order Keras's RNN loop computes them (reversed in time when it reads
    backwards), from ours aligned with the input; at masked steps zeros, or the last output computed before them
    (zeros if none) unless zero_output."""
    sequence = aligned[:, ::-1] if backwards else aligned
    if mask is None:
        return sequence
    valid = mask[:, ::-1] if backwards else mask
    if zero_output:
        return np.where(valid[:, :, None], sequence, 0).astype(np.float32, copy=False)
    steps = np.arange(valid.shape[1])
    last_valid = np.maximum.accumulate(np.where(valid, steps, -1), axis=1)  # -1: no valid step yet
    repeated = np.take_along_axis(sequence, np.maximum(last_valid, 0)[:, :, None], axis=1)
    return np.where(last_valid[:, :, None] >= 0, repeated, 0).astype(np.float32, copy=False)


def _merge(mode: str | None, forward: np.ndarray, backward: np.ndarray) -> np.ndarray | list[np.ndarray]:
    if mode == "concat":
        return np.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    if mode == "ave":
        return (forward + backward) / np.float32(2)
    return [forward, backward]


# ---- reading the settings ------------------------------------------------------------------------------------------


@dataclass
class _LayerEntry:
    """An LSTM or Bidirectional layer found in the serialized object: where its weights are and its settings."""

    name: str
    class_name: str
    config: dict[str, Any]
    #: which layer of its class it is in the model (0 for the first), by which Keras names its weights' group
    class_index: int = 0
    #: the object itself is the layer (its weights sit at the file's root, or on the object)
    top: bool = False


@dataclass
class _Structure:
    entries: list[_LayerEntry] = field(default_factory=list)
    mask_value: float | None = None
    name: str = ""


@dataclass
class _LstmSpec:
    """One Keras LSTM layer in our terms."""

    units: int
    input_size: int
    activations: tuple[tuple[str, float, float], ...]
    use_bias: bool
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    zero_output_for_mask: bool
    parameters: dict[str, np.ndarray]


def _where(name: str, class_name: str) -> str:
    return f"layer {name!r} ({class_name})"


def _check_keras_entry(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    """(class_name, config) of one serialized Keras object; refuses what Keras itself did not define."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) or "class_name" not in entry:
        raise ValueError(f"from_keras: {where}: not a serialized Keras object (expected class_name and config)")
    class_name = entry["class_name"]
    module = str(entry.get("module") or "")
    registered = entry.get("registered_name")
    if not module.startswith("keras") or registered not in (None, class_name):
        label = registered or class_name
        raise ValueError(
            f"from_keras: {where}: {label!r} from module {module!r} is a custom class; only Keras's own layers are "
            f"read ({_WHAT_IS_READ})"
        )
    return class_name, entry["config"]


def _structure(serialized: dict[str, Any]) -> _Structure:
    """The recurrent layers (and Masking) of a serialized layer, Sequential or functional model."""
    class_name, config = _check_keras_entry(serialized, "obj")
    name = str(config.get("name", ""))
    if class_name in _RECURRENT_CLASSES:
        return _Structure([_LayerEntry(name, class_name, config, top=True)], None, name)
    if class_name == "Sequential":
        return _sequential_structure(config)
    if class_name in ("Functional", "Model"):
        return _functional_structure(config)
    raise ValueError(
        f"from_keras: obj: {class_name} {name!r} is not supported: expected an LSTM or Bidirectional(LSTM) layer, "
        "a Sequential or a functional Model"
    )


def _sequential_structure(config: dict[str, Any]) -> _Structure:
    structure = _Structure(name=str(config.get("name", "")))
    class_counts: dict[str, int] = {}
    for position, entry in enumerate(config.get("layers", [])):
        class_name, layer_config = _check_keras_entry(entry, f"layer #{position}")
        where = _where(str(layer_config.get("name", f"#{position}")), class_name)
        if class_name == "InputLayer" and position == 0:
            continue
        if class_name == "Masking" and not structure.entries and structure.mask_value is None:
            structure.mask_value = _mask_value(layer_config, where)
            continue
        if class_name in _RECURRENT_CLASSES:
            index = class_counts.get(class_name, 0)
            class_counts[class_name] = index + 1
            structure.entries.append(_LayerEntry(str(layer_config.get("name")), class_name, layer_config, index))
            continue
        raise ValueError(f"from_keras: {where} is not supported here: {_WHAT_IS_READ}")
    if not structure.entries:
        raise ValueError(f"from_keras: the Sequential {structure.name!r} holds no LSTM or Bidirectional layer")
    return structure


def _mask_value(config: dict[str, Any], where: str) -> float:
    value = config.get("mask_value", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"from_keras: {where}: mask_value={value!r} is not a number")
    return float(value)


def _history(argument: Any) -> tuple[str, int, int] | None:
    """(layer name, node, tensor) a serialized functional-graph tensor comes from; None for anything else."""
    if isinstance(argument, dict) and argument.get("class_name") == "__keras_tensor__":
        history = argument.get("config", {}).get("keras_history")
        if isinstance(history, list) and len(history) == 3:
            return str(history[0]), int(history[1]), int(history[2])
    return None


def _functional_structure(config: dict[str, Any]) -> _Structure:
    """Checks that the graph is input -> [Masking] -> LSTM or Bidirectional -> the model's outputs, and nothing
    else, apart from the NotEqual and Any ops a functional model traces to compute the Masking layer's mask."""
    structure = _Structure(name=str(config.get("name", "")))
    layers: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}  # name: (class, config, the call's node)
    for position, entry in enumerate(config.get("layers", [])):
        class_name, layer_config = _check_keras_entry(entry, f"layer #{position}")
        name = str(entry.get("name", layer_config.get("name")))
        where = _where(name, class_name)
        if class_name not in ("InputLayer", "Masking", *_MASK_OPS, *_RECURRENT_CLASSES):
            raise ValueError(f"from_keras: {where} is not supported here: {_WHAT_IS_READ}")
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"from_keras: {where} is called {len(nodes)} times in the model; expected once")
        layers[name] = (class_name, layer_config, nodes[0] if nodes else {})

    def only(class_names: tuple[str, ...]) -> list[str]:
        return [name for name, (class_name, _, _) in layers.items() if class_name in class_names]

    inputs, maskings, recurrent = only(("InputLayer",)), only(("Masking",)), only(_RECURRENT_CLASSES)
    if len(inputs) != 1:
        raise ValueError(f"from_keras: the model has {len(inputs)} inputs; expected one")
    if len(recurrent) != 1:
        raise ValueError(
            f"from_keras: the functional model has {len(recurrent)} LSTM or Bidirectional layers; expected one "
            "LSTM layer (several are read from a Sequential only)"
        )
    if len(maskings) > 1:
        raise ValueError(f"from_keras: the model has {len(maskings)} Masking layers; expected at most one")
    input_name, lstm_name = inputs[0], recurrent[0]
    lstm_class, lstm_config, lstm_node = layers[lstm_name]
    where = _where(lstm_name, lstm_class)
    source = input_name
    if maskings:
        masking_name = maskings[0]
        _, masking_config, masking_node = layers[masking_name]
        structure.mask_value = _mask_value(masking_config, _where(masking_name, "Masking"))
        _expect_call(masking_node, [input_name], set(), _where(masking_name, "Masking"))
        source = masking_name
    mask_argument = (lstm_node.get("kwargs") or {}).get("mask")
    mask_source = _history(mask_argument)
    if mask_source is not None:
        if not maskings:
            raise ValueError(f"from_keras: {where}: its mask comes from the graph without a Masking layer")
        _check_mask_ops(layers, mask_source[0], input_name, structure.mask_value, where)
    elif only(_MASK_OPS) or mask_argument is not None:
        raise ValueError(f"from_keras: {where}: its mask is not the Masking layer's (model: {_WHAT_IS_READ})")
    _expect_call(lstm_node, [source], {"mask", "training"}, where)
    structure.entries.append(_LayerEntry(lstm_name, lstm_class, lstm_config))

    outputs = config.get("output_layers")
    if isinstance(outputs, list) and len(outputs) == 3 and isinstance(outputs[0], str):
        outputs = [outputs]  # a single output is stored unnested
    sources = [(str(item[0]), int(item[1]), int(item[2])) for item in outputs or []]
    if sources != [(lstm_name, 0, index) for index in range(len(sources))] or not sources:
        raise ValueError(
            f"from_keras: the model's outputs {sources} are not the outputs of {where} in their order"
        )
    return structure


def _expect_call(node: dict[str, Any], sources: list[str], allowed_kwargs: set[str], where: str) -> None:
    """The layer is called on exactly the outputs of ``sources``, with no keyword arguments but ``allowed_kwargs``."""
    arguments = node.get("args") or []
    found = [_history(argument) for argument in arguments]
    if found != [(source, 0, 0) for source in sources]:
        raise ValueError(f"from_keras: {where}: expected it to be called on the output of {sources}, got {arguments}")
    extra = sorted(set(node.get("kwargs") or {}) - allowed_kwargs)
    if extra:
        raise ValueError(f"from_keras: {where}: call arguments {extra} are not supported (e.g. initial_state)")


def _check_mask_ops(layers: dict, any_name: str, input_name: str, mask_value: float | None, where: str) -> None:
    """The LSTM's mask must be any(x != mask_value, axis=-1) of the input: what the Masking layer computes."""
    wrong = f"from_keras: {where}: its mask is not the Masking layer's any(x != mask_value, axis=-1)"
    any_class, any_config, any_node = layers.get(any_name, (None, {}, {}))
    if any_class != "Any" or any_config.get("axis") not in (-1, [-1]) or any_config.get("keepdims"):
        raise ValueError(wrong)
    arguments = any_node.get("args") or []
    source = _history(arguments[0]) if len(arguments) == 1 else None
    not_equal = layers.get(source[0]) if source else None
    if not_equal is None or not_equal[0] != "NotEqual":
        raise ValueError(wrong)
    operands = not_equal[2].get("args") or []
    if len(operands) != 2 or (_history(operands[0]) or ("",))[0] != input_name or operands[1] != mask_value:
        raise ValueError(wrong)
    used = {any_name, source[0]}
    unused = [name for name, (class_name, _, _) in layers.items() if class_name in _MASK_OPS and name not in used]
    if unused:
        raise ValueError(f"from_keras: the ops {unused} are not supported here: {_WHAT_IS_READ}")


# ---- the layers' settings and weights -------------------------------------------------------------------------------

#: Returns a layer's weights (kernel, recurrent kernel[, bias]): given the entry, and for a Bidirectional the sublayer
#: ("forward_layer" or "backward_layer").
_WeightReader = Callable[[_LayerEntry, "str | None"], list[np.ndarray]]


def _activation(value: Any, option: str, where: str) -> tuple[str, float, float]:
    if isinstance(value, str) and value in _ACTIVATIONS:
        return _ACTIVATIONS[value]
    shown = value
    if isinstance(value, dict):  # a serialized callable: show its name rather than the whole record
        inner = value.get("config")
        shown = inner if isinstance(inner, str) else value.get("registered_name") or "a lambda"
    raise ValueError(
        f"from_keras: {where}: {option}={shown!r} has no equivalent in fastlstm (supported: "
        f"{', '.join(sorted(_ACTIVATIONS))})"
    )


def _lstm_spec(config: dict[str, Any], where: str, weights: list[np.ndarray], *, zero_output: bool | None) -> _LstmSpec:
    """One LSTM layer's settings and parameters, or the ValueError that says what cannot be imported.
    zero_output: the value a Bidirectional forces on its layers, None to read the layer's own."""
    if config.get("stateful"):
        raise ValueError(
            f"from_keras: {where}: stateful=True (Keras keeps the state between calls) is not supported: import a "
            "copy of the layer with stateful=False and the same weights, then keep the state between calls with "
            "the returned .model's model.stream(batch_size) (forward layers), or pass initial_state on each call"
        )
    units = config.get("units")
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"from_keras: {where}: units={units!r} is not a positive int")
    activations = (
        _activation(config.get("recurrent_activation", "sigmoid"), "recurrent_activation", where),
        _activation(config.get("activation", "tanh"), "activation", where),
    )
    use_bias = bool(config.get("use_bias", True))
    if len(weights) != (3 if use_bias else 2):
        raise ValueError(
            f"from_keras: {where}: expected {'3' if use_bias else '2'} weights (kernel, recurrent_kernel"
            f"{', bias' if use_bias else ''}), found {len(weights)}; is the layer built?"
        )
    kernel, recurrent_kernel = (np.asarray(array, dtype=np.float32) for array in weights[:2])
    if kernel.ndim != 2 or kernel.shape[1] != 4 * units:
        raise ValueError(f"from_keras: {where}: kernel has shape {kernel.shape}, expected (input_size, {4 * units})")
    check_shape(recurrent_kernel, (units, 4 * units), f"from_keras: {where}: recurrent_kernel")
    parameters = {"weight_ih_l0": kernel.T, "weight_hh_l0": recurrent_kernel.T}
    if use_bias:
        bias = np.asarray(weights[2], dtype=np.float32)
        check_shape(bias, (4 * units,), f"from_keras: {where}: bias")
        parameters["bias_ih_l0"] = bias
        parameters["bias_hh_l0"] = np.zeros_like(bias)
    return _LstmSpec(
        units=units,
        input_size=kernel.shape[0],
        activations=(activations[0], activations[1], activations[1]),  # gates; candidate g and output share one
        use_bias=use_bias,
        return_sequences=bool(config.get("return_sequences", False)),
        return_state=bool(config.get("return_state", False)),
        go_backwards=bool(config.get("go_backwards", False)),
        zero_output_for_mask=bool(config.get("zero_output_for_mask", False)) if zero_output is None else zero_output,
        parameters=parameters,
    )


def _sublayer_config(config: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    entry = config.get(key)
    class_name, sub_config = _check_keras_entry(entry, f"{where}.{key}")
    if class_name != "LSTM":
        raise ValueError(f"from_keras: {where} wraps a {class_name}; only LSTM layers are read")
    return sub_config


@dataclass
class _Layer:
    """One recurrent layer of the import: one LSTM spec, or two for a Bidirectional."""

    where: str
    directions: list[_LstmSpec]
    merge_mode: str | None = None

    @property
    def first(self) -> _LstmSpec:
        return self.directions[0]


def _read_layer(entry: _LayerEntry, read_weights: _WeightReader) -> _Layer:
    where = _where(entry.name, entry.class_name)
    if entry.class_name == "LSTM":
        return _Layer(where, [_lstm_spec(entry.config, where, read_weights(entry, None), zero_output=None)])
    merge_mode = entry.config.get("merge_mode", "concat")
    if merge_mode not in _MERGE_MODES:
        raise ValueError(f"from_keras: {where}: merge_mode={merge_mode!r} is not one of {list(_MERGE_MODES)}")
    forward_config = _sublayer_config(entry.config, "layer", where)
    if "backward_layer" in entry.config:
        backward_config = _sublayer_config(entry.config, "backward_layer", where)
    else:  # Keras makes the backward layer from the forward one's config
        backward_config = {**forward_config, "go_backwards": not forward_config.get("go_backwards", False)}
    # Bidirectional forces zero_output_for_mask = return_sequences on both layers.
    zero_output = bool(forward_config.get("return_sequences", False))
    specs = [
        _lstm_spec(config, f"{where}.{key}", read_weights(entry, key), zero_output=zero_output)
        for config, key in ((forward_config, "forward_layer"), (backward_config, "backward_layer"))
    ]
    forward, backward = specs
    if forward.go_backwards or not backward.go_backwards:
        raise ValueError(
            f"from_keras: {where}: expected a forward layer with go_backwards=False and a backward layer with "
            f"go_backwards=True, got {forward.go_backwards} and {backward.go_backwards}"
        )
    for option in ("units", "activations", "use_bias", "return_sequences", "return_state"):
        if getattr(forward, option) != getattr(backward, option):
            raise ValueError(
                f"from_keras: {where}: the backward layer's {option} ({getattr(backward, option)!r}) differs from "
                f"the forward layer's ({getattr(forward, option)!r}); fastlstm runs both directions with one setting"
            )
    return _Layer(where, specs, merge_mode)


def _check_stack(layers: list[_Layer]) -> None:
    """Several Keras layers become one multi-layer LSTM only when that computes exactly what they compute."""
    first = layers[0]
    for index, layer in enumerate(layers):
        where = layer.where
        if len(layer.directions) != len(first.directions):
            raise ValueError(
                f"from_keras: {where}: a Sequential of several recurrent layers is read when all are LSTM or all "
                "are Bidirectional"
            )
        for option in ("units", "activations", "use_bias"):
            if getattr(layer.first, option) != getattr(first.first, option):
                raise ValueError(
                    f"from_keras: {where}: {option} ({getattr(layer.first, option)!r}) differs from the first "
                    f"layer's ({getattr(first.first, option)!r}); stacked layers must share it"
                )
        if len(layers) > 1 and len(layer.directions) == 1 and layer.first.go_backwards:
            raise ValueError(
                f"from_keras: {where}: go_backwards=True in a stack of several LSTM layers is not supported (each "
                "such layer reverses the time order the next one reads)"
            )
        if index < len(layers) - 1:
            if not layer.first.return_sequences or layer.first.return_state:
                raise ValueError(
                    f"from_keras: {where}: every LSTM layer but the last must have return_sequences=True and "
                    "return_state=False to feed the next one"
                )
            if len(layer.directions) == 2 and layer.merge_mode != "concat":
                raise ValueError(
                    f"from_keras: {where}: merge_mode={layer.merge_mode!r}: a Bidirectional layer that feeds "
                    "another must concatenate (merge_mode='concat')"
                )


def _build(structure: _Structure, read_weights: _WeightReader, threads: int | None, precision: str) -> KerasLSTM:
    from ..lstm import LSTM

    layers = [_read_layer(entry, read_weights) for entry in structure.entries]
    _check_stack(layers)
    first, last = layers[0].first, layers[-1].first
    bidirectional = len(layers[0].directions) == 2
    model = LSTM(
        first.input_size,
        first.units,
        num_layers=len(layers),
        bias=first.use_bias,
        batch_first=True,
        bidirectional=bidirectional,
        seed=0,  # the initial weights are replaced at once
        threads=threads,
        precision=precision,
        reverse=first.go_backwards and not bidirectional,
        activations=first.activations,
    )
    parameters = {}
    for index, layer in enumerate(layers):
        for direction, spec in enumerate(layer.directions):
            suffix = layer_suffix(index, direction)
            parameters.update({name.replace("_l0", suffix): value for name, value in spec.parameters.items()})
    try:
        model.load_state_dict(parameters)
    except ValueError as error:  # a layer's input size does not follow from the previous layer's output
        raise ValueError(f"from_keras: the layers do not fit together: {error}") from None
    return KerasLSTM(
        model,
        name=structure.name,
        return_sequences=last.return_sequences,
        return_state=last.return_state,
        go_backwards=last.go_backwards and not bidirectional,
        merge_mode=layers[-1].merge_mode if bidirectional else None,
        zero_output_for_mask=last.zero_output_for_mask,
        mask_value=structure.mask_value,
    )


# ---- the two sources: a live Keras object, a .keras file ---------------------------------------------------------


def from_keras(obj: Any, *, threads: int | None = None, precision: str = "fp32") -> KerasLSTM:
    """A ``KerasLSTM`` computing what a Keras 3 LSTM layer or model computes (see the module's documentation).

    Args:
        obj: a built ``keras.layers.LSTM`` or ``keras.layers.Bidirectional(LSTM)``, a ``keras.Sequential`` or
            functional ``keras.Model`` around one, or the path (str or os.PathLike) of a ``.keras`` file holding
            any of these; the file is read without keras (h5py is needed).
        threads: the model's thread count (see ``fastlstm.LSTM``).
        precision: the model's precision, "fp32" or "bf16" (see ``fastlstm.LSTM``).

    Returns a ``KerasLSTM``; its ``.model`` is the ``fastlstm.LSTM``.

    Raises:
        TypeError: obj is neither a Keras object nor a path.
        FileNotFoundError: the path does not exist (IsADirectoryError: it is a directory).
        ImportError: reading a file needs h5py.
        ValueError: something the import cannot reproduce exactly (the message names the layer and the option).
    """
    threads = check_threads(threads, "threads")
    precision = check_precision(precision)
    if isinstance(obj, (str, os.PathLike)):
        serialized, read_weights = _open_file(obj)
    elif type(obj).__module__.split(".")[0] == "keras":
        serialized, read_weights = _open_live(obj)
    else:
        raise TypeError(
            "from_keras: obj: expected a keras.layers.LSTM, a keras.layers.Bidirectional, a keras Sequential or "
            "functional Model holding one, or the path of a .keras file; got "
            f"{type(obj).__module__}.{type(obj).__qualname__}"
        )
    return _build(_structure(serialized), read_weights, threads, precision)


def _open_live(obj: Any) -> tuple[dict[str, Any], _WeightReader]:
    import keras  # obj is a Keras object, so keras is installed and imported already

    _check_keras_version(str(getattr(keras, "__version__", "")), "obj")
    if getattr(obj, "built", True) is False:
        raise ValueError(
            f"from_keras: obj: {type(obj).__name__} {getattr(obj, 'name', '')!r} is not built, so it has no weights "
            "yet: build it (or call it once on data) first"
        )
    serialized = keras.saving.serialize_keras_object(obj)

    def read_weights(entry: _LayerEntry, sublayer: str | None) -> list[np.ndarray]:
        layer = obj if entry.top else obj.get_layer(entry.name)
        if sublayer is not None:
            layer = getattr(layer, sublayer)
        # By name rather than by position in layer.weights, whose order follows which variables are trainable.
        cell = layer.cell
        variables = [cell.kernel, cell.recurrent_kernel] + ([cell.bias] if cell.bias is not None else [])
        return [_variable_array(variable) for variable in variables]

    return serialized, read_weights


def _check_keras_version(version: str, what: str) -> None:
    """Keras 2 wrote .keras files too, with other semantics (its hard_sigmoid is 0.2 x + 0.5): refuse them."""
    major = version.split(".")[0]
    if major.isdigit() and int(major) < 3:
        raise ValueError(f"from_keras: {what} comes from Keras {version}; only Keras 3 layers and files are read")


def _variable_array(variable: Any) -> np.ndarray:
    """A Keras variable's value as a float32 NumPy array, whatever the backend."""
    return float32_weights(variable, "a Keras variable")


def _open_file(path_like: Any) -> tuple[dict[str, Any], _WeightReader]:
    path = existing_file(path_like, "from_keras", "obj", "a .keras file")
    try:
        import h5py
    except ImportError:
        raise ImportError("from_keras: reading a .keras file needs the h5py package: pip install h5py") from None
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"from_keras: {path!r} is not a Keras 3 .keras file (a zip archive); legacy HDF5 (.h5) models are not read"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        missing = [name for name in (_CONFIG_FILE, _WEIGHTS_FILE) if name not in names]
        if missing:
            raise ValueError(f"from_keras: {path!r} lacks {missing} (it holds {names}); is it a .keras model file?")
        try:
            serialized = json.loads(archive.read(_CONFIG_FILE))
        except ValueError as error:
            raise ValueError(f"from_keras: {path!r}: {_CONFIG_FILE} is not valid JSON: {error}") from None
        weights_bytes = archive.read(_WEIGHTS_FILE)
        if _METADATA_FILE in names:
            try:
                version = json.loads(archive.read(_METADATA_FILE)).get("keras_version", "")
            except (ValueError, AttributeError):
                version = ""
            _check_keras_version(str(version), repr(path))

    # Every array and every group's recorded layer name, read at once so that no file stays open.
    arrays: dict[str, np.ndarray] = {}
    layer_names: dict[str, str] = {}

    def collect(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            arrays[name] = np.asarray(item[()])
        elif name.endswith("vars") and "name" in item.attrs:
            layer_names[name[: -len("vars")].rstrip("/")] = str(item.attrs["name"])

    with h5py.File(io.BytesIO(weights_bytes), "r") as store:
        store.visititems(collect)

    def read_weights(entry: _LayerEntry, sublayer: str | None) -> list[np.ndarray]:
        group = "" if entry.top else _layer_group(entry, layer_names)
        if sublayer is not None:
            group = f"{group}/{sublayer}" if group else sublayer
        prefix = f"{group}/cell/vars/" if group else "cell/vars/"
        found = {int(name[len(prefix):]): array for name, array in arrays.items()
                 if name.startswith(prefix) and name[len(prefix):].isdigit()}
        return [found[index] for index in sorted(found)]

    return serialized, read_weights


def _layer_group(entry: _LayerEntry, layer_names: dict[str, str]) -> str:
    """The h5 group of a model's layer: Keras names it by class (lstm, lstm_1, ...) and records the layer's own name
    in its vars group; the recorded name decides when present."""
    by_name = [group for group, name in layer_names.items() if name == entry.name and group.count("/") == 1
               and group.startswith("layers/")]
    if len(by_name) == 1:
        return by_name[0]
    base = "lstm" if entry.class_name == "LSTM" else "bidirectional"
    return f"layers/{base}" + (f"_{entry.class_index}" if entry.class_index else "")
