"""Argument checks shared by the models and the reference: every message names the argument, what was expected
and what was given."""

from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

# dtype kinds accepted as real numbers: signed and unsigned integers, floating point.
_REAL_KINDS = "iuf"


def check_int(value: Any, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int, refusing bools, floats and anything below ``minimum``."""
    # A plain int skips numbers.Integral's ABC check (0.5 us of a 3 us call).
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


#: The precisions of a model's weights (see fastlstm.LSTM): name -> what it stores and multiplies.
PRECISIONS = {
    "fp32": "float32 weights and products",
    "bf16": "bf16 weights times bf16-rounded inputs and h, float32 sums, activations and state",
    "int8": "int8 weights (a scale per row) times inputs and h quantized per row, int32 sums, float32 state",
}


def check_precision(value: Any, name: str = "precision") -> str:
    """One of PRECISIONS' names."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {list(PRECISIONS)}, got {type(value).__name__} {value!r}")
    if value not in PRECISIONS:
        raise ValueError(f"{name}: expected one of {list(PRECISIONS)}, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool; accepts Python and NumPy bools and the ints 0 and 1."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name}: expected a bool, got {type(value).__name__} {value!r}")


def real_array(value: Any, name: str) -> np.ndarray:
    """View ``value`` as a NumPy array of real numbers (ints or floats), without converting it yet."""
    try:
        array = np.asarray(value)
    except Exception as error:  # objects NumPy cannot view, such as tensors that require grad
        raise TypeError(f"{name}: expected a real numeric array, got {type(value).__name__} ({error})") from None
    if array.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            f"{name}: expected a real numeric array (float or int dtype), got dtype {array.dtype}"
            + (f" from {type(value).__name__}" if not isinstance(value, np.ndarray) else "")
        )
    return array


def aligned_contiguous(array: np.ndarray, dtype: Any) -> np.ndarray:
    """``array`` as a C-contiguous, aligned array of ``dtype``, copied only when it is not one already. Alignment
    matters: an array read from a byte stream (a pickle-5 buffer, np.frombuffer at an offset) can start at any
    address, and the core reads its arrays as arrays of their type (a misaligned load is undefined behaviour)."""
    return np.require(array, dtype, ["C_CONTIGUOUS", "ALIGNED"])


def missing_and_unexpected(given: Any, expected: Any) -> str:
    """ "missing [...]; unexpected [...]": how the keys of ``given`` differ from ``expected`` (both iterables of
    names, in their own orders); empty when they are the same."""
    missing = [name for name in expected if name not in given]
    unexpected = [name for name in given if name not in expected]
    parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else [])
    return "; ".join(parts)


def shape_text(shape: tuple[Any, ...]) -> str:
    """``(5, 3, 16)``, with symbolic entries left as they are: ``(T, N, 16)``."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape(array: np.ndarray, expected: tuple[int, ...], name: str, *, hint: str = "") -> None:
    """Raise a ValueError naming ``name`` unless ``array.shape == expected``."""
    if array.shape != tuple(expected):
        suffix = f" ({hint})" if hint else ""
        raise ValueError(f"{name}: expected shape {shape_text(expected)}{suffix}, got {shape_text(array.shape)}")


def describe(value: Any) -> str:
    """'tuple of length 3', 'ndarray', ...: what a caller passed, for a message."""
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of length {len(value)}"
    return type(value).__name__


def check_pair(value: Any, name: str, items: str, *, optional: bool) -> tuple[Any, Any]:
    """``value``'s two items, or a TypeError unless it is a tuple or list of two: "state: expected a pair (h, c) or
    None, got ..." with ``items`` "(h, c)" and ``optional`` (whether the caller also takes None, checked by it)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        alternative = " or None" if optional else ""
        raise TypeError(f"{name}: expected a pair {items}{alternative}, got {describe(value)}")
    return value[0], value[1]


def check_threads(value: Any, name: str) -> int | None:
    """None (let the library choose) or a thread count >= 1."""
    return None if value is None else check_int(value, name, minimum=1)


def float32_weights(value: Any, name: str) -> np.ndarray:
    """A framework's weight as a float32 NumPy array: a torch tensor (any dtype or device, grad or not; bfloat16
    has no NumPy dtype), a Keras variable (its ``.value``), or anything NumPy reads as real numbers."""
    value = getattr(value, "value", value) if not isinstance(value, np.ndarray) else value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch: NumPy's own conversion warns with NumPy 2
        value = value.detach().cpu().float().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"{name}: expected a real (float or integer) tensor or array, got dtype {array.dtype}")
    return array.astype(np.float32)


def existing_file(path_like: Any, who: str, name: str, kind: str) -> str:
    """``path_like`` as a str path to an existing file, or FileNotFoundError / IsADirectoryError / TypeError that
    name the function ``who``, the argument ``name`` and the ``kind`` of file expected (e.g. "a .onnx file")."""
    path = os.fspath(path_like)
    if not isinstance(path, str):  # a PathLike of bytes
        raise TypeError(f"{who}: {name}: expected a str path, got a path of {type(path).__name__}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{who}: {name}: no such file: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{who}: {name}: {path!r} is a directory, not {kind}")
    return path
