"""Cell options (fastlstm._cell): other activations, clip, input_forget, peepholes and a reverse-only direction,
computed by the kernels at every ISA as the NumPy reference computes them, with lengths too; bad options named.

Tolerance: ``float32_tolerance`` against the float64 reference (fastlstm.testing). The piecewise activations (relu,
hard_sigmoid, thresholded_relu) have kinks, where a float32 rounding of the pre-activation can move the output by a
slope jump times that rounding: within the same bound."""

from __future__ import annotations

import numpy as np
import pytest

import fastlstm
from fastlstm import reference
from fastlstm._cell import ACTIVATIONS
from fastlstm.testing import float32_tolerance, max_abs_difference

SPECS = [
    *ACTIVATIONS,
    ("affine", 0.5, 0.1),
    ("leaky_relu", 0.1),
    ("thresholded_relu", 0.3),
    ("scaled_tanh", 1.5, 0.7),
    ("hard_sigmoid", 1 / 6, 0.5),
    ("elu", 0.8),
]
OPTIONS = (
    [dict(activations=(spec, "tanh", "tanh")) for spec in SPECS]
    + [dict(activations=("sigmoid", spec, spec)) for spec in SPECS]
    + [
        dict(clip=0.7),
        dict(input_forget=True),
        dict(peepholes=True),
        dict(reverse=True),
        dict(
            reverse=True,
            peepholes=True,
            clip=1.2,
            input_forget=True,
            activations=("hard_sigmoid", "softsign", "softplus"),
        ),
        dict(bidirectional=True, peepholes=True, activations=(("hard_sigmoid", 0.25, 0.5), "elu", "tanh")),
    ]
)


def _compare(model, options, x, **call):
    exact = reference.LSTM(model.input_size, model.hidden_size, model.num_layers, **options)
    float32 = reference.LSTM(model.input_size, model.hidden_size, model.num_layers, dtype=np.float32, **options)
    exact.load_state_dict(model.state_dict())
    float32.load_state_dict(model.state_dict())
    ours, want, want32 = model(x, **call), exact(x, **call), float32(x, **call)
    for got, expected, expected32 in zip((ours[0], *ours[1]), (want[0], *want[1]), (want32[0], *want32[1])):
        assert max_abs_difference(got, expected) <= float32_tolerance(expected, expected32)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: str(o).replace(" ", ""))
def test_options_match_the_reference_at_every_isa(isa, rng, options):
    model = fastlstm.LSTM(7, 17, 2, seed=3, **options)
    # Gates that are not bounded to [0, 1] (relu, softplus, ... as the gate function) let c grow step after step,
    # and with it the float32 error of the problem itself, past what a float32 comparison can resolve: 4 steps.
    gate = options.get("activations", ("sigmoid",))[0]
    bounded = (gate if isinstance(gate, str) else gate[0]) in ("sigmoid", "hard_sigmoid")
    x = rng.standard_normal((11 if bounded else 4, 3, 7)).astype(np.float32)
    _compare(model, options, x)


@pytest.mark.parametrize("options", [dict(reverse=True), dict(reverse=True, peepholes=True, clip=1.0)])
def test_reverse_with_lengths(isa, rng, options):
    model = fastlstm.LSTM(5, 9, 2, seed=1, **options)
    x = rng.standard_normal((8, 4, 5)).astype(np.float32)
    _compare(model, options, x, lengths=np.array([8, 0, 3, 5]))


def test_reverse_reads_the_sequence_backwards(rng):
    forward = fastlstm.LSTM(4, 6, seed=2)
    backward = fastlstm.LSTM(4, 6, seed=2, reverse=True)
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    assert np.array_equal(backward(x)[0], forward(x[::-1])[0][::-1])


def test_peepholes_are_parameters(rng):
    model = fastlstm.LSTM(3, 5, 2, bidirectional=True, peepholes=True, seed=0)
    assert model.parameter_shapes()["peephole_l1_reverse"] == (3, 5)
    state = model.state_dict()
    state["peephole_l0"] = np.zeros((3, 5), np.float32)
    for name in ("peephole_l0_reverse", "peephole_l1", "peephole_l1_reverse"):
        state[name] = np.zeros((3, 5), np.float32)
    model.load_state_dict(state)
    plain = fastlstm.LSTM(3, 5, 2, bidirectional=True, seed=0)
    plain.load_state_dict({name: value for name, value in state.items() if not name.startswith("peephole")})
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    # zero peepholes compute the standard cell (through the general path: the same values to rounding)
    assert max_abs_difference(model(x)[0], plain(x)[0]) <= 1e-6


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"activations\[2\] \(output\): expected one of .*got 'gelu'"):
        fastlstm.LSTM(3, 4, activations=("sigmoid", "tanh", "gelu"))
    with pytest.raises(ValueError, match=r"activations: expected three activations"):
        fastlstm.LSTM(3, 4, activations=("sigmoid", "tanh"))
    with pytest.raises(TypeError, match=r"activations\[0\] \(gate\): alpha and beta must be numbers"):
        fastlstm.LSTM(3, 4, activations=(("hard_sigmoid", "x"), "tanh", "tanh"))
    with pytest.raises(ValueError, match=r"clip: expected None or a number > 0, got -1"):
        fastlstm.LSTM(3, 4, clip=-1)
    with pytest.raises(ValueError, match=r"reverse: a bidirectional model"):
        fastlstm.LSTM(3, 4, bidirectional=True, reverse=True)
    with pytest.raises(TypeError, match=r"input_forget: expected a bool"):
        fastlstm.LSTM(3, 4, input_forget="yes")
    with pytest.raises(ValueError, match=r"stream: a reverse model"):
        fastlstm.LSTM(3, 4, reverse=True).stream(1)
    with pytest.raises(ValueError, match=r"to_torch: torch.nn.LSTM cannot express"):
        fastlstm.LSTM(3, 4, clip=2.0).to_torch()
    assert "clip=2.0" in repr(fastlstm.LSTM(3, 4, clip=2.0))


@pytest.mark.parametrize("batch", [1, 3, 16])  # 16 rows of a small model take the batch split on 2 threads
def test_bitwise_equal_across_thread_counts(isa, rng, batch):
    options = dict(peepholes=True, clip=1.5, input_forget=True, activations=("hard_sigmoid", "softsign", "tanh"))
    for model in (fastlstm.LSTM(6, 20, 2, seed=1, **options), fastlstm.LSTM(6, 20, 1, seed=1, reverse=True)):
        x = rng.standard_normal((12, batch, 6)).astype(np.float32)
        lengths = rng.integers(0, 13, batch)
        for call in (dict(), dict(lengths=lengths)):
            one = model(x, threads=1, **call)
            two = model(x, threads=2, **call)
            assert all(np.array_equal(a, b) for a, b in zip((one[0], *one[1]), (two[0], *two[1])))
