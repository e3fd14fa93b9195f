"""Property tests (hypothesis): random models and calls against the float64 reference, and random odd or bad
inputs, which must give either the result of the same values as a plain float32 array or a TypeError/ValueError
naming the argument, never a crash or a wrong answer. PROPERTY_EXAMPLES cases in all (10,500)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlstm
from fastlstm import reference
from fastlstm.testing import float32_tolerance, max_abs_difference

VALID_EXAMPLES = 1500
ODD_INPUT_EXAMPLES = 9000
PROPERTY_EXAMPLES = VALID_EXAMPLES + ODD_INPUT_EXAMPLES


@st.composite
def models_and_calls(draw):
    hidden = draw(st.integers(1, 33))
    options = dict(
        num_layers=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        proj_size=draw(st.sampled_from([0, 0, max(0, hidden - 1), hidden // 2])),
    )
    if options["proj_size"] >= hidden:
        options["proj_size"] = 0
    input_size = draw(st.integers(1, 17))
    steps, batch = draw(st.integers(0, 6)), draw(st.integers(1, 4))
    given_state = draw(st.booleans())
    with_lengths = draw(st.booleans()) and steps > 0
    seed = draw(st.integers(0, 2**16))
    return input_size, hidden, options, steps, batch, given_state, with_lengths, seed


@settings(max_examples=VALID_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models_and_calls())
def test_random_models_match_the_float64_reference(case):
    input_size, hidden, options, steps, batch, given_state, with_lengths, seed = case
    rng = np.random.default_rng(seed)
    model = fastlstm.LSTM(input_size, hidden, seed=seed, **options)
    exact = reference.LSTM(input_size, hidden, **options)
    float32 = reference.LSTM(input_size, hidden, dtype=np.float32, **options)
    exact.load_state_dict(model.state_dict())
    float32.load_state_dict(model.state_dict())
    shape = (batch, steps, input_size) if options["batch_first"] else (steps, batch, input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    state = None
    if given_state:
        states = model.num_layers * model.num_directions
        state = (
            rng.standard_normal((states, batch, model.output_size)).astype(np.float32),
            rng.standard_normal((states, batch, hidden)).astype(np.float32),
        )
    lengths = rng.integers(0, steps + 1, batch) if with_lengths else None
    got = model(x, state, lengths=lengths)
    want = exact(x, state, lengths=lengths)
    calibration = float32(x, state, lengths=lengths)
    for value, expected, rounded in zip((got[0], *got[1]), (want[0], *want[1]), (calibration[0], *calibration[1])):
        assert value.dtype == np.float32 and value.shape == expected.shape
        assert max_abs_difference(value, expected) <= float32_tolerance(expected, rounded)


MODEL = fastlstm.LSTM(3, 5, 2, seed=0)
STATES = MODEL.num_layers * MODEL.num_directions


def _odd_array(draw, shape, *, allow_bad: bool):
    """An array of `shape` in some dtype and memory layout, or (allow_bad) of a wrong shape or kind."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.standard_normal(shape) * draw(st.sampled_from([1.0, 1e-30, 1e30, 1e300]))
    special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf]))
    if special is not None and values.size:
        values.reshape(-1)[rng.integers(0, values.size, 2)] = special
    kind = draw(
        st.sampled_from(
            ["float32", "float64", "float16", "int16", "uint8", "view", "negative", "readonly"]
            + (["complex", "bool", "object", "str", "rank", "features", "list"] if allow_bad else [])
        )
    )
    with np.errstate(over="ignore", invalid="ignore"):  # huge values and NaN cast to narrow types, on purpose
        return _as_kind(values, kind)


def _as_kind(values: np.ndarray, kind: str):
    if kind in ("float32", "float64", "float16"):
        return values.astype(kind)
    if kind in ("int16", "uint8"):
        return np.clip(values, 0 if kind == "uint8" else -100, 100).astype(kind)
    if kind == "view":
        return np.repeat(values.astype(np.float32), 2, axis=-1)[..., ::2]  # strided
    if kind == "negative":  # negative strides, same values
        return np.flip(np.ascontiguousarray(np.flip(values.astype(np.float32), 0)), 0)
    if kind == "readonly":
        array = values.astype(np.float32)
        array.setflags(write=False)
        return array
    if kind == "complex":
        return values.astype(np.complex64)
    if kind == "bool":
        return values > 0
    if kind == "object":
        return values.astype(object)
    if kind == "str":
        return values.astype(str)
    if kind == "rank":
        return values.reshape((*values.shape, 1))
    if kind == "features":
        return np.concatenate([values, values], axis=-1).astype(np.float32)
    return values.tolist()


@st.composite
def odd_calls(draw):
    steps, batch = draw(st.integers(0, 4)), draw(st.integers(1, 3))
    x = _odd_array(draw, (steps, batch, 3), allow_bad=True)
    state = None
    if draw(st.booleans()):
        state = (
            _odd_array(draw, (STATES, batch, 5), allow_bad=draw(st.booleans())),
            _odd_array(draw, (STATES, batch, 5), allow_bad=draw(st.booleans())),
        )
    lengths = None
    if draw(st.booleans()):
        lengths = draw(
            st.sampled_from(
                [
                    np.full(batch, steps),
                    np.arange(batch) % (steps + 1),
                    np.full(batch, steps + 1),
                    np.full(batch + 1, 0),
                    np.full(batch, -1),
                    np.zeros(batch, np.float32),
                    [steps] * batch,
                ]
            )
        )
    threads = draw(st.sampled_from([None, 1, 2, 0, -1, 1.5, "2"]))
    return x, state, lengths, threads


@settings(max_examples=ODD_INPUT_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_calls())
def test_odd_and_bad_inputs_give_the_plain_result_or_a_named_error(call):
    x, state, lengths, threads = call
    try:
        output, (h_n, c_n) = MODEL(x, state, lengths=lengths, threads=threads)
    except (TypeError, ValueError) as error:
        assert str(error).split(":")[0] in ("x", "state", "state[0] (h0)", "state[1] (c0)", "lengths", "threads"), error
        return

    # Accepted: the same as the values converted to a plain float32 array (as the documented conversion does).
    def plain(array):
        with np.errstate(over="ignore"):
            return None if array is None else np.ascontiguousarray(np.asarray(array), dtype=np.float32)

    plain_state = None if state is None else (plain(state[0]), plain(state[1]))
    expected, (h_expected, c_expected) = MODEL(plain(x), plain_state, lengths=lengths, threads=1)
    for value, want in ((output, expected), (h_n, h_expected), (c_n, c_expected)):
        np.testing.assert_array_equal(value, want)
