"""Accuracy of the step kernel's sigmoid and tanh at every ISA, against float64, over a sweep of float32 inputs and
the special values. The bounds are the ones stated in csrc/kernels/f32_activations-inl.h (SIMD) and
f32_activations__portable.h (the same algorithms in plain C++)."""

from __future__ import annotations

import numpy as np
import pytest

import fastlstm
from fastlstm import _core

MAX_ULP = 3.0  # stated bound for both functions at every ISA


def _sweep() -> np.ndarray:
    """Every 997th float32 in [-20, 20] (about 2.2 million, all binades from the smallest denormal up), every float
    near the places where the SIMD code switches method (|x| = 0.625 for tanh) or clamps (-87, 88), and 0."""
    largest = np.float32(20).view(np.int32)
    positive = np.arange(0, largest + 1, 997, dtype=np.int32).view(np.float32)
    edges = [np.float32(v) for v in (0.625, 43.5, 44.0, 87.0, 88.0, 9.0, 1.0)]
    near = np.concatenate([np.arange(e.view(np.int32) - 2000, e.view(np.int32) + 2000, dtype=np.int32) for e in edges])
    positive = np.concatenate([positive, near.view(np.float32)])
    return np.concatenate([positive, -positive])


SWEEP = _sweep()


def _ulp_error(result: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|result - exact| in units of the float32 spacing at |exact|."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(result.astype(np.float64) - exact) / spacing


def _sigmoid64(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


@pytest.mark.parametrize("isa", fastlstm.available_isas())
def test_sigmoid_within_3_ulp(isa):
    result = _core.testing.activation(isa, "sigmoid", SWEEP)
    exact = _sigmoid64(SWEEP)
    accurate_range = SWEEP >= -87  # below, the SIMD exp is clamped: checked in absolute terms
    assert _ulp_error(result[accurate_range], exact[accurate_range]).max() <= MAX_ULP
    assert np.abs(result[~accurate_range] - exact[~accurate_range]).max(initial=0) < 1e-38
    assert np.all((result >= 0) & (result <= 1))


@pytest.mark.parametrize("isa", fastlstm.available_isas())
def test_tanh_within_3_ulp(isa):
    result = _core.testing.activation(isa, "tanh", SWEEP)
    exact = np.tanh(SWEEP.astype(np.float64))
    assert _ulp_error(result, exact).max() <= MAX_ULP
    assert np.all(np.abs(result) <= 1)
    np.testing.assert_array_equal(np.sign(result), np.sign(exact))  # odd, and tanh(x) = 0 only at 0


@pytest.mark.parametrize("isa", fastlstm.available_isas())
def test_special_values(isa):
    # Lengths 1..33 so that every lane position and the masked tail of each ISA sees the special values.
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 17.05, -17.05, 1e-45, -1e-45], np.float32)
    for n in range(1, 34):
        x = np.resize(specials, n)
        sig = _core.testing.activation(isa, "sigmoid", x)
        tanh = _core.testing.activation(isa, "tanh", x)
        np.testing.assert_array_equal(np.isnan(sig), np.isnan(x))
        np.testing.assert_array_equal(np.isnan(tanh), np.isnan(x))
        finite = ~np.isnan(x)
        np.testing.assert_allclose(sig[finite], _sigmoid64(x[finite]), rtol=4e-7, atol=1e-38)
        np.testing.assert_allclose(tanh[finite], np.tanh(x[finite].astype(np.float64)), rtol=4e-7, atol=0)
    np.testing.assert_array_equal(
        _core.testing.activation(isa, "tanh", np.array([np.inf, -np.inf], np.float32)), [1, -1]
    )
    np.testing.assert_array_equal(_core.testing.activation(isa, "sigmoid", np.array([np.inf], np.float32)), [1])
    assert np.signbit(_core.testing.activation(isa, "tanh", np.array([-0.0], np.float32))[0])


def test_activation_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown activation"):
        _core.testing.activation("portable", "relu", np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="unknown ISA"):
        _core.testing.activation("sse9", "tanh", np.zeros(3, np.float32))
