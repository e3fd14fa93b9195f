"""What a reduced precision costs in accuracy, measured on the user's own model and data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import check_precision


@dataclass(frozen=True)
class QuantizationError:
    """The difference between a model run in ``precision`` and the same model in fp32, on one input.

    ``max_abs[name]`` is max |a - b| over the elements of ``name`` ("output", "h_n", "c_n"); ``max_relative[name]``
    is that divided by max |b|, the fp32 result's own scale (an element-wise ratio would blow up where the fp32
    value is near zero). ``max_abs_all`` is the largest of the three."""

    precision: str
    max_abs: dict[str, float]
    max_relative: dict[str, float]

    @property
    def max_abs_all(self) -> float:
        return max(self.max_abs.values())

    def __str__(self) -> str:
        parts = ", ".join(
            f"{name} {self.max_abs[name]:.3g} ({100 * self.max_relative[name]:.3g}%)" for name in self.max_abs
        )
        return f"{self.precision} vs fp32: max |difference| {parts}"


def quantization_error(
    model: Any, x: Any, precision: str = "bf16", *, state: Any = None, lengths: Any = None
) -> QuantizationError:
    """Run ``model`` (a ``fastlstm.LSTM``) on ``x`` in fp32 and in ``precision`` ("bf16" or "int8"; "fp32" gives
    zeros) and report how far apart the outputs and final states are: ``QuantizationError.max_abs`` and
    ``max_relative`` per result. ``state`` and ``lengths`` are passed to both calls. The model itself is not
    changed."""
    precision = check_precision(precision)
    astype = getattr(model, "astype", None)
    if astype is None or not hasattr(model, "precision"):
        raise TypeError(f"model: expected a fastlstm.LSTM, got {type(model).__module__}.{type(model).__qualname__}")
    exact_output, (exact_h, exact_c) = astype("fp32")(x, state, lengths=lengths)
    output, (h_n, c_n) = astype(precision)(x, state, lengths=lengths)
    max_abs, max_relative = {}, {}
    for name, value, exact in (("output", output, exact_output), ("h_n", h_n, exact_h), ("c_n", c_n, exact_c)):
        difference = np.abs(value.astype(np.float64) - exact.astype(np.float64))
        max_abs[name] = float(np.max(difference, initial=0.0))
        scale = float(np.max(np.abs(exact), initial=0.0))
        max_relative[name] = max_abs[name] / scale if scale > 0 else (0.0 if max_abs[name] == 0 else float("inf"))
    return QuantizationError(precision, max_abs, max_relative)
