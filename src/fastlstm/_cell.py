"""Cell options beyond ``torch.nn.LSTM``'s standard cell, as ONNX's LSTM (and Keras layers) define them: other
activation functions, gate clipping, coupled input and forget gates, peepholes; and their NumPy forms for the
reference.

With options, one step computes (z_* the gate pre-activations, p_* the peephole vectors)::

    i = gate(clip(z_i + p_i * c_{t-1})),  f = 1 - i if input_forget else gate(clip(z_f + p_f * c_{t-1}))
    g = candidate(clip(z_g)),  c_t = f * c_{t-1} + i * g,  o = gate(clip(z_o + p_o * c_t)),  h_t = o * output(c_t)

where clip clamps to [-clip, clip] when clip is set. The standard cell is gate = sigmoid, candidate = output = tanh,
no clip, no coupling, no peepholes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


class ActivationFunction(NamedTuple):
    kind: int  # the core's Activation value (csrc/include/fastlstm/kernels.h)
    onnx_name: str
    default_alpha: float
    default_beta: float
    numpy: Callable[[np.ndarray, float, float], np.ndarray]
    # Which of ONNX's activation_alpha / activation_beta lists the function takes a value from: onnxruntime hands
    # out the values in order, only to the functions that read them.
    reads_alpha: bool = False
    reads_beta: bool = False


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)); exp overflows to inf for very negative z, which correctly gives 0."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _softplus(x, alpha, beta):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _elu(x, alpha, beta):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x < 0, alpha * (np.exp(np.minimum(x, 0)) - 1), x)


#: Every activation, by our name; alpha and beta default to those of the ONNX operator of the same name.
ACTIVATIONS: dict[str, ActivationFunction] = {
    "sigmoid": ActivationFunction(0, "Sigmoid", 0.0, 0.0, lambda x, a, b: sigmoid(x)),
    "tanh": ActivationFunction(1, "Tanh", 0.0, 0.0, lambda x, a, b: np.tanh(x)),
    "relu": ActivationFunction(2, "Relu", 0.0, 0.0, lambda x, a, b: np.where(x < 0, 0, x)),
    "affine": ActivationFunction(3, "Affine", 1.0, 0.0, lambda x, a, b: a * x + b, True, True),
    "leaky_relu": ActivationFunction(4, "LeakyRelu", 0.01, 0.0, lambda x, a, b: np.where(x < 0, a * x, x), True),
    "thresholded_relu": ActivationFunction(5, "ThresholdedRelu", 1.0, 0.0, lambda x, a, b: np.where(x > a, x, 0), True),
    "scaled_tanh": ActivationFunction(6, "ScaledTanh", 1.0, 1.0, lambda x, a, b: a * np.tanh(b * x), True, True),
    "hard_sigmoid": ActivationFunction(
        7, "HardSigmoid", 0.2, 0.5, lambda x, a, b: np.clip(a * x + b, 0, 1), True, True
    ),
    "elu": ActivationFunction(8, "Elu", 1.0, 0.0, _elu, True),
    "softsign": ActivationFunction(9, "Softsign", 0.0, 0.0, lambda x, a, b: x / (1 + np.abs(x))),
    "softplus": ActivationFunction(10, "Softplus", 0.0, 0.0, _softplus),
}
#: Our name of each ONNX activation, by its lower-case ONNX name (onnxruntime reads the names case-insensitively).
ONNX_NAMES = {function.onnx_name.lower(): name for name, function in ACTIVATIONS.items()}

#: One activation with its parameters: (name, alpha, beta).
Activation = tuple[str, float, float]
#: torch.nn.LSTM's activations: gate sigmoid, candidate and output tanh.
STANDARD_ACTIVATIONS: tuple[Activation, Activation, Activation] = (
    ("sigmoid", 0.0, 0.0),
    ("tanh", 0.0, 0.0),
    ("tanh", 0.0, 0.0),
)
_ROLES = ("gate", "candidate", "output")


def is_standard(
    activations: tuple[Activation, ...],
    *,
    clip: float | None = None,
    input_forget: bool = False,
    peepholes: bool = False,
) -> bool:
    """Whether these options make torch.nn.LSTM's cell: STANDARD_ACTIVATIONS, no clip, no coupled input and forget
    gates, no peepholes. Options left out are the standard ones, so ``is_standard(activations)`` asks about the
    activations alone."""
    return tuple(activations) == STANDARD_ACTIVATIONS and clip is None and not input_forget and not peepholes


def check_activation(value: Any, name: str) -> Activation:
    """A name, or (name, alpha) or (name, alpha, beta), as (name, alpha, beta) with the defaults filled in."""
    spec = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (tuple, list)) else None
    if not spec or not isinstance(spec[0], str) or spec[0] not in ACTIVATIONS or len(spec) > 3:
        raise ValueError(
            f"{name}: expected one of {sorted(ACTIVATIONS)}, or (name, alpha) or (name, alpha, beta), got {value!r}"
        )
    function = ACTIVATIONS[spec[0]]
    parameters = [function.default_alpha, function.default_beta]
    for index, parameter in enumerate(spec[1:]):
        if isinstance(parameter, bool) or not isinstance(parameter, (int, float, np.number)):
            raise TypeError(f"{name}: alpha and beta must be numbers, got {parameter!r}")
        parameters[index] = float(parameter)
    return (spec[0], *parameters)


def check_activations(value: Any) -> tuple[Activation, Activation, Activation]:
    """``activations``: None (standard), or three activations for the gates (i, f, o), the candidate g and the
    output (applied to c)."""
    if value is None:
        return STANDARD_ACTIVATIONS
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(
            "activations: expected three activations (gate, candidate, output), e.g. ('sigmoid', 'tanh', 'tanh'), "
            f"got {value!r}"
        )
    return tuple(check_activation(item, f"activations[{index}] ({_ROLES[index]})") for index, item in enumerate(value))


def check_clip(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
        raise ValueError(f"clip: expected None or a number > 0, got {value!r}")
    return float(value)


def core_activations(activations: tuple[Activation, ...]) -> list[tuple[int, float, float]]:
    return [(ACTIVATIONS[name].kind, alpha, beta) for name, alpha, beta in activations]


def apply(activation: Activation, x: np.ndarray) -> np.ndarray:
    name, alpha, beta = activation
    with np.errstate(over="ignore", invalid="ignore"):
        return ACTIVATIONS[name].numpy(x, alpha, beta)
