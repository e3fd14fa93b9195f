"""The model call's one-C++-call path: a plain float32 x without lengths, and no state or a tuple of two plain
float32 arrays of the batched state shapes, goes straight to the core, which keeps the scratch of short calls (at
most 256 rows, steps times batch) in the model for its next call. Every other input takes the validating path. Both
must give the same bits, and the kept scratch must never leak one call's shape or values into another's."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastlstm


def _fresh_call(model, x, threads):
    """The same call on a deep copy of the model: packed anew, with nothing kept from earlier calls."""
    output, (h_n, c_n) = copy.deepcopy(model)(x, threads=threads)
    return output, h_n, c_n


def _assert_same(result, expected):
    for got, want in zip(result, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("batch_first", [False, True])
def test_every_input_form_gives_the_plain_float32_bits(isa, rng, batch_first):
    model = fastlstm.LSTM(6, 9, 2, batch_first=batch_first, seed=1)
    x = rng.standard_normal((5, 3, 6))
    forms = [
        x.astype(np.float32),  # the one-call path
        x,  # float64
        np.asfortranarray(x.astype(np.float32)),  # not C-contiguous
        x.astype(np.float32).astype(">f4"),  # the other byte order
        np.frombuffer(b"\0" + x.astype(np.float32).tobytes(), np.float32, offset=1).reshape(5, 3, 6),  # misaligned
        x.astype(np.float32).tolist(),
    ]
    results = []
    for form in forms:
        output, (h_n, c_n) = model(form)
        results.append((output, h_n, c_n))
    for result in results[1:]:
        _assert_same(result, results[0])
    # An explicit zero state (the one-call path too), and the model's forward, give the same bits.
    batch = 5 if batch_first else 3
    state = (np.zeros((2, batch, 9), np.float32), np.zeros((2, batch, 9), np.float32))
    output, (h_n, c_n) = model(x.astype(np.float32), state)
    _assert_same((output, h_n, c_n), results[0])
    output, (h_n, c_n) = model.forward(x.astype(np.float32))
    _assert_same((output, h_n, c_n), results[0])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_call_from_a_state_continues_the_sequence_bitwise(isa, rng, batch_first, threads):
    # Two calls, the second from the first's final state, give the bits of one call over the whole sequence: the
    # state is read, and read where it lies.
    model = fastlstm.LSTM(5, 7, 2, batch_first=batch_first, seed=3)
    x = rng.standard_normal((9, 3, 5)).astype(np.float32)
    if batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    first, second = (x[:, :4], x[:, 4:]) if batch_first else (x[:4], x[4:])
    whole, (h_n, c_n) = model(x, threads=threads)
    head, state = model(np.ascontiguousarray(first), threads=threads)
    tail, (h_end, c_end) = model(np.ascontiguousarray(second), state, threads=threads)
    _assert_same((np.concatenate([head, tail], axis=1 if batch_first else 0), h_end, c_end), (whole, h_n, c_n))


def test_every_state_form_gives_the_plain_float32_bits(isa, rng):
    model = fastlstm.LSTM(6, 9, 2, seed=1)
    x = rng.standard_normal((4, 3, 6)).astype(np.float32)
    h0, c0 = rng.standard_normal((2, 2, 3, 9))
    plain = (h0.astype(np.float32), c0.astype(np.float32))

    def misaligned(a):
        return np.frombuffer(b"\0" + a.astype(np.float32).tobytes(), np.float32, offset=1).reshape(a.shape)

    forms = [
        plain,  # the one-call path
        list(plain),  # a list: the validating path
        (h0, c0),  # float64
        (np.asfortranarray(plain[0]), plain[1]),  # not C-contiguous
        (plain[0], plain[1].astype(">f4")),  # the other byte order
        (misaligned(h0), plain[1]),
        (h0.tolist(), c0.tolist()),
    ]
    results = [model(x, form) for form in forms]
    for output, (h_n, c_n) in results[1:]:
        _assert_same((output, h_n, c_n), (results[0][0], *results[0][1]))
    # Not the zero state's bits: the state was used.
    assert not np.array_equal(results[0][0], model(x)[0])


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize(
    "options",
    [{}, {"num_layers": 2, "bidirectional": True}, {"num_layers": 2, "proj_size": 4}],
    ids=["plain", "bidirectional", "projection"],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_a_zero_h0_runs_as_no_state_and_its_last_value_counts(isa, rng, precision, options, threads):
    # The core skips the first recurrent product of an h0 of zeros (+0 and -0), as it does without a state: the same
    # bits as no state, with and without lengths. One nonzero value, in h0's last row and column of the last layer
    # and direction, is read.
    model = fastlstm.LSTM(6, 9, seed=4, precision=precision, **options)
    x = rng.standard_normal((5, 3, 6)).astype(np.float32)
    states = model.num_layers * model.num_directions
    h0 = np.zeros((states, 3, model.proj_size or 9), np.float32)
    h0[::2] = -0.0
    c0 = np.zeros((states, 3, 9), np.float32)
    lengths = np.array([5, 2, 4])
    for kwargs in ({}, {"lengths": lengths}):
        output, (h_n, c_n) = model(x, (h0, c0), threads=threads, **kwargs)
        expected, (h_expected, c_expected) = model(x, threads=threads, **kwargs)
        _assert_same((output, h_n, c_n), (expected, h_expected, c_expected))
        nearly = h0.copy()
        nearly[-1, -1, -1] = 0.5
        output, _ = model(x, (nearly, c0), threads=threads, **kwargs)
        assert not np.array_equal(output, expected)


def test_a_zero_h0_with_infinite_recurrent_weights_still_multiplies(rng):
    # 0 * inf is NaN: with an infinite recurrent weight, a zero h0 is multiplied, as no state is.
    model = fastlstm.LSTM(5, 9, seed=2)
    parameters = model.state_dict()
    parameters["weight_hh_l0"][3, 2] = np.inf
    model.load_state_dict(parameters)
    x = rng.standard_normal((2, 2, 5)).astype(np.float32)
    zeros = (np.zeros((1, 2, 9), np.float32), np.zeros((1, 2, 9), np.float32))
    output, _ = model(x, zeros)
    assert np.isnan(output[0, :, 3]).all() and np.isfinite(output[0, :, :3]).all()
    np.testing.assert_array_equal(output, model(x)[0])


def test_a_plain_state_takes_one_call(monkeypatch, rng):
    model = fastlstm.LSTM(6, 9, seed=1)
    x = rng.standard_normal((4, 3, 6)).astype(np.float32)
    state = tuple(rng.standard_normal((2, 1, 3, 9)).astype(np.float32))
    expected = model(x, list(state))

    def refuse(*args, **kwargs):
        raise AssertionError("the validating path ran")

    monkeypatch.setattr(fastlstm._module.LSTMBase, "__call__", refuse)
    output, (h_n, c_n) = model(x, state)
    _assert_same((output, h_n, c_n), (expected[0], *expected[1]))
    with pytest.raises(AssertionError, match="the validating path ran"):
        model(x, list(state))


def test_state_refusals_are_those_of_the_validating_path():
    model = fastlstm.LSTM(6, 9)
    x = np.zeros((4, 2, 6), np.float32)
    with pytest.raises(TypeError, match=r"state\[0\] \(h0\): expected a real numeric array"):
        model(x, (None, None))
    with pytest.raises(ValueError, match=r"state\[0\] \(h0\): expected shape \(1, 2, 9\) .* got \(1, 3, 9\)"):
        model(x, (np.zeros((1, 3, 9), np.float32), np.zeros((1, 2, 9), np.float32)))
    with pytest.raises(ValueError, match=r"state\[1\] \(c0\): expected shape \(1, 2, 9\) .* got \(1, 2, 8\)"):
        model(x, (np.zeros((1, 2, 9), np.float32), np.zeros((1, 2, 8), np.float32)))
    with pytest.raises(TypeError, match=r"state: expected a pair \(h0, c0\)"):
        model(x, (np.zeros((1, 2, 9), np.float32),))


def test_refusals_are_those_of_the_validating_path():
    model = fastlstm.LSTM(6, 9)
    with pytest.raises(ValueError, match=r"x: expected 6 features on the last axis \(input_size=6\), got shape"):
        model(np.zeros((4, 2, 7), np.float32))
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(T, N, I\) or a 2-D unbatched array"):
        model(np.zeros((4, 2, 6, 1), np.float32))
    with pytest.raises(TypeError, match="x: expected a real numeric array"):
        model(np.zeros((4, 2, 6), np.complex64))
    with pytest.raises(ValueError, match="threads: expected an int >= 1, got 0"):
        model(np.zeros((4, 2, 6), np.float32), threads=0)


# (steps, batch) in the order called: the plan changes with the batch (look-ahead at 1, fused steps from 3 rows),
# with T = 1, and past 256 rows (a call that keeps nothing), and the calls return to earlier shapes after others.
CALLS = [(1, 1), (40, 1), (1, 1), (7, 3), (40, 2), (300, 1), (40, 1), (9, 33), (1, 5), (7, 3), (200, 3), (40, 1)]


@pytest.mark.parametrize("threads", [1, 2])
def test_calls_of_changing_shapes_equal_fresh_calls_bitwise(isa, rng, threads):
    """Each call equals the same call on a freshly packed copy, whatever the calls before it left in the scratch:
    a kept workspace of another shape would be caught here, and so would state carried over between calls."""
    for hidden, layers in ((17, 2), (64, 1)):
        model = fastlstm.LSTM(11, hidden, layers, seed=hidden)
        for steps, batch in CALLS:
            x = rng.standard_normal((steps, batch, 11)).astype(np.float32)
            output, (h_n, c_n) = model(x, threads=threads)
            _assert_same((output, h_n, c_n), _fresh_call(model, x, threads))


def test_repeated_calls_are_bitwise_the_same(isa, rng):
    """The kept scratch alternates the order of a step's panels from one call to the next (for the cache), which
    must not change a bit: ten calls in a row, each compared with the first."""
    model = fastlstm.LSTM(20, 50, 2, bidirectional=True, seed=5)
    x = rng.standard_normal((12, 2, 20)).astype(np.float32)
    first = model(x)
    for _ in range(10):
        output, (h_n, c_n) = model(x)
        _assert_same((output, h_n, c_n), (first[0], *first[1]))


def test_new_weights_take_effect_in_the_next_call(rng):
    model = fastlstm.LSTM(5, 8, seed=1)
    x = rng.standard_normal((3, 2, 5)).astype(np.float32)
    model(x)
    other = fastlstm.LSTM(5, 8, seed=2)
    model.load_state_dict(other.state_dict())
    _assert_same(model(x)[0:1], other(x)[0:1])
