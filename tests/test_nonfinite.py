"""NaN, inf and huge values in x or the state are not errors: they give the same results as the float64 reference,
NaN and inf in the same places."""

from __future__ import annotations

import numpy as np
import pytest
from small_models import H, I, N, P, T, outputs

import fastlstm
from fastlstm.testing import max_abs_difference

NONFINITE_TOLERANCE = 1e-5  # for finite positions when the inputs hold NaN, inf or huge values


def reference_for(model):
    """The float64 reference with the same geometry and weights as a fastlstm model."""
    if isinstance(model, fastlstm.LSTMCell):
        reference = fastlstm.reference.LSTMCell(model.input_size, model.hidden_size, model.bias)
    else:
        reference = fastlstm.reference.LSTM(
            model.input_size,
            model.hidden_size,
            model.num_layers,
            model.bias,
            model.batch_first,
            model.bidirectional,
            model.proj_size,
            dtype=np.float64,
        )
    reference.load_state_dict(model.state_dict())
    return reference


def assert_matches_reference(model, x, state=None) -> None:
    """Same NaN/inf positions and values as the float64 reference (max_abs_difference raises otherwise), finite
    positions within NONFINITE_TOLERANCE."""
    got = outputs(model, x, state)
    # The reference must not warn about the inf - inf it meets in its products (warnings are errors here).
    expected = outputs(reference_for(model), x, state)
    for name, a, b in zip(("output", "h_n", "c_n"), got, expected):
        assert max_abs_difference(a, b) <= NONFINITE_TOLERANCE, name


# ---- NaN, inf and huge values: same results as the float64 reference --------------------------------------------

MODEL_OPTIONS = [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"num_layers": 2, "bidirectional": True, "proj_size": P, "batch_first": True},
]


@pytest.mark.parametrize("options", MODEL_OPTIONS)
def test_nan_and_inf_in_x_match_the_reference(isa, rng, options):
    model = fastlstm.LSTM(I, H, seed=1, **options)
    x = rng.standard_normal((T + 3, N + 2, I)).astype(np.float32)
    if model.batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    x[1, 0, 2] = np.nan
    x[2, 1, 0] = np.inf  # one infinite term: saturated gates, finite outputs
    x[3, 2, 4] = -np.inf
    x[4, 3, 0], x[4, 3, 1] = np.inf, -np.inf  # inf - inf: NaN from then on
    y, _ = model(x)
    assert np.isnan(y).any() and np.isfinite(y).any()
    assert_matches_reference(model, x)


def test_nan_and_inf_in_state_match_the_reference(isa, rng):
    model = fastlstm.LSTM(I, H, num_layers=2, bidirectional=True, seed=2)
    x = rng.standard_normal((T, N + 1, I))
    h0, c0 = rng.standard_normal((4, N + 1, H)), rng.standard_normal((4, N + 1, H))
    h0[0, 0, 1] = np.nan
    h0[1, 1, 0] = np.inf
    c0[2, 2, 3] = -np.inf
    _, (_, c_n) = model(x, (h0, c0))
    assert np.isnan(c_n).any() and np.isfinite(c_n).any()
    assert_matches_reference(model, x, (h0, c0))


def test_nan_and_inf_in_cell_input_match_the_reference(isa, rng):
    cell = fastlstm.LSTMCell(I, H, seed=3)
    x = rng.standard_normal((N + 1, I))
    x[0, 1], x[1, 2], x[2, 0], x[2, 3] = np.nan, np.inf, np.inf, -np.inf
    h, _ = cell(x)
    assert np.isnan(h[0]).all() and np.isfinite(h[1]).all() and np.isfinite(h[3]).all()
    assert_matches_reference(cell, x)


@pytest.mark.parametrize("options", MODEL_OPTIONS)
@pytest.mark.parametrize("value", [1e30, -1e30])
def test_huge_inputs_saturate_the_gates(isa, rng, options, value):
    model = fastlstm.LSTM(I, H, seed=4, **options)
    x = rng.standard_normal((T + 3, N, I)).astype(np.float32)
    x[1:4, 0, :] = value  # whole steps of one sequence
    x[2, 1, 3] = value  # a single feature
    x[5, 2, ::2] = -value  # mixed signs
    for array in outputs(model, x):
        assert np.isfinite(array).all()
    assert_matches_reference(model, x)
