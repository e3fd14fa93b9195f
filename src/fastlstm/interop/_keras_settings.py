"""The Keras importer's reading of each layer: an LSTM's settings and weights in our terms (``_LstmSpec``), a
Bidirectional's two, and the check that several layers stack into one multi-layer ``fastlstm.LSTM``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_shape
from ._keras_config import _check_keras_entry, _LayerEntry, _where

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
