"""``model.stream(batch_size)``: a sequence fed in chunks of any sizes, or a step at a time, gives bitwise the output
and state of one call on the whole sequence, at every ISA; reset, state and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlstm

# (input_size, hidden_size, num_layers, proj_size, batch_first, batch): sizes off the vector widths, batch 1 and odd
CONFIGURATIONS = [
    (7, 9, 1, 0, False, 1),
    (16, 33, 2, 0, True, 3),
    (5, 17, 3, 4, False, 5),
    (33, 64, 1, 0, False, 2),
]


def _model(input_size, hidden, layers, proj_size, batch_first, seed=0, precision="fp32"):
    return fastlstm.LSTM(
        input_size, hidden, layers, batch_first=batch_first, proj_size=proj_size, seed=seed, precision=precision
    )


def _sequence(rng, model, batch, steps):
    shape = (batch, steps, model.input_size) if model.batch_first else (steps, batch, model.input_size)
    return rng.standard_normal(shape).astype(np.float32)


def _split(x, model, bounds):
    """x cut at ``bounds`` along time."""
    axis = 1 if model.batch_first else 0
    return np.split(x, bounds, axis=axis), axis


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda c: "I{}-H{}-L{}-P{}-bf{}-N{}".format(*c))
def test_chunks_and_steps_equal_one_call_bitwise(isa, rng, configuration, precision):
    *options, batch = configuration
    model = _model(*options, precision=precision)
    x = _sequence(rng, model, batch, 40)
    expected, (h_n, c_n) = model(x)
    stream = model.stream(batch)
    chunks, axis = _split(x, model, [1, 9, 10, 17, 33])
    outputs = [stream.feed(chunk) for chunk in chunks]
    assert np.array_equal(np.concatenate(outputs, axis=axis), expected)
    assert np.array_equal(stream.state[0], h_n) and np.array_equal(stream.state[1], c_n)

    stream.reset()
    steps = [stream.step(x[:, t] if model.batch_first else x[t]) for t in range(x.shape[axis])]
    assert np.array_equal(np.stack(steps, axis=axis), expected)
    assert np.array_equal(stream.state[0], h_n) and np.array_equal(stream.state[1], c_n)


@pytest.mark.parametrize("batch", [1, 3, 16])
def test_steps_of_a_cell_with_options_equal_one_call_bitwise(isa, rng, batch):
    # A step takes its input projection inside the kernel (kernels.h: LstmStepArgs::x), a sequence's chunks before
    # their steps; the sums and the cell update with options must be the same, bitwise.
    options = dict(peepholes=True, clip=1.5, input_forget=True, activations=("hard_sigmoid", "softsign", "tanh"))
    model = fastlstm.LSTM(19, 33, 2, seed=4, **options)
    x = rng.standard_normal((12, batch, 19)).astype(np.float32)
    expected, (h_n, c_n) = model(x)
    stream = model.stream(batch)
    assert np.array_equal(np.stack([stream.step(x[t]) for t in range(12)]), expected)
    assert np.array_equal(stream.state[0], h_n) and np.array_equal(stream.state[1], c_n)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_chunkings(data):
    configuration = data.draw(st.sampled_from(CONFIGURATIONS))
    *options, batch = configuration
    model = _model(*options, seed=data.draw(st.integers(0, 3)))
    steps = data.draw(st.integers(0, 30))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = _sequence(rng, model, batch, steps)
    bounds = sorted(data.draw(st.lists(st.integers(0, steps), max_size=6)))  # empty chunks included
    expected, (h_n, c_n) = model(x)
    stream = model.stream(batch)
    chunks, axis = _split(x, model, bounds)
    output = np.concatenate([stream.feed(chunk) for chunk in chunks], axis=axis)
    assert np.array_equal(output, expected)
    assert np.array_equal(stream.state[0], h_n) and np.array_equal(stream.state[1], c_n)


def test_state_and_reset(rng):
    model = _model(6, 10, 2, 0, False)
    x = _sequence(rng, model, 4, 12)
    h0 = rng.standard_normal((2, 4, 10)).astype(np.float32)
    c0 = rng.standard_normal((2, 4, 10)).astype(np.float32)
    stream = model.stream(4)
    stream.state = (h0, c0)
    expected, (h_n, c_n) = model(x, (h0, c0))
    assert np.array_equal(stream.feed(x), expected)
    h, c = stream.state
    assert np.array_equal(h, h_n) and np.array_equal(c, c_n)
    h[...] = 7.0  # a copy: the stream's own state is untouched
    assert np.array_equal(stream.state[0], h_n)

    # Rows 1 and 3 restart from zeros; rows 0 and 2 carry on.
    mask = np.array([False, True, False, True])
    stream.reset(mask)
    carried, _ = model(x, (h_n, c_n))
    fresh, _ = model(x)
    both = stream.feed(x)
    assert np.array_equal(both[:, ~mask], carried[:, ~mask]) and np.array_equal(both[:, mask], fresh[:, mask])


def test_stream_follows_the_models_weights(rng):
    model = _model(4, 8, 1, 0, False, seed=1)
    other = _model(4, 8, 1, 0, False, seed=2)
    x = _sequence(rng, model, 2, 5)
    stream = model.stream(2)
    model.load_state_dict(other.state_dict())
    assert np.array_equal(stream.feed(x), other(x)[0])


def test_refusals_name_the_argument():
    model = _model(4, 8, 2, 0, False)
    with pytest.raises(ValueError, match="bidirectional"):
        fastlstm.LSTM(4, 8, bidirectional=True).stream(1)
    with pytest.raises(ValueError, match=r"batch_size: expected an int >= 1, got 0"):
        model.stream(0)
    stream = model.stream(3)
    with pytest.raises(
        ValueError,
        match=r"chunk: expected shape \(T, batch_size, input_size\) with batch_size=3, "
        r"input_size=4, got \(5, 2, 4\)",
    ):
        stream.feed(np.zeros((5, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"chunk: .* got \(5, 3\)"):
        stream.feed(np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match=r"chunk: expected a real numeric array"):
        stream.feed(np.zeros((5, 3, 4), np.complex64))
    with pytest.raises(ValueError, match=r"x: expected shape \(3, 4\) \(batch_size, input_size\), got \(3, 5\)"):
        stream.step(np.zeros((3, 5), np.float32))
    with pytest.raises(TypeError, match=r"mask: expected a boolean array of shape \(3,\), got dtype int64"):
        stream.reset(np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"mask: expected shape \(3,\)"):
        stream.reset(np.array([True, False]))
    with pytest.raises(ValueError, match=r"state\[1\] \(c\): expected shape \(2, 3, 8\)"):
        stream.state = (np.zeros((2, 3, 8)), np.zeros((2, 3, 9)))
    with pytest.raises(TypeError, match=r"state: expected a pair"):
        stream.state = np.zeros((2, 3, 8))
    assert np.array_equal(stream.state[0], np.zeros((2, 3, 8)))  # nothing changed by the refused calls


def test_step_takes_every_input_form_and_refuses_the_wrong_ones_as_before(rng):
    """Plain float32 frames take the one-call path, every other form the validating one: same bits, same errors."""
    model = _model(6, 9, 2, 0, False)
    x = rng.standard_normal((3, 6))
    forms = [
        x.astype(np.float32),
        x,  # float64
        np.asfortranarray(x.astype(np.float32)),  # not C-contiguous
        x.astype(np.float32).astype(">f4"),  # the other byte order
        np.frombuffer(b"\0" + x.astype(np.float32).tobytes(), np.float32, offset=1).reshape(3, 6),  # misaligned
        x.astype(np.float32).tolist(),
    ]
    results = [model.stream(3).step(form) for form in forms]
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])
    stream = model.stream(3)
    for wrong in (np.zeros((2, 6), np.float32), np.zeros((3, 6, 1), np.float32), np.zeros(6, np.float32)):
        with pytest.raises(ValueError, match=r"x: expected shape \(3, 6\) \(batch_size, input_size\)"):
            stream.step(wrong)
    with pytest.raises(TypeError, match="x: expected a real numeric array"):
        stream.step(np.zeros((3, 6), np.complex64))
    with pytest.raises(ValueError, match="threads: expected an int >= 1, got 0"):
        stream.step(np.zeros((3, 6), np.float32), threads=0)
    assert not stream.state[0].any()  # nothing stepped by the refused calls
