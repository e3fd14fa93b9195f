"""The dtype policy (fastlstm.lstm's _DTYPE_POLICY): any real input (float64, float16, integers, non-contiguous or
transposed views, lists) gives the result of its float32 C-contiguous copy, and outputs are fresh float32
C-contiguous arrays owned by the caller. Refused dtypes: test_errors.py."""

from __future__ import annotations

import numpy as np
import pytest
from small_models import H, I, N, P, T, good_state, make_model, outputs

import fastlstm

# ---- dtype policy -----------------------------------------------------------------------------------------------


def misaligned(array: np.ndarray, dtype=np.float32) -> np.ndarray:
    """A C-contiguous copy of ``array`` in ``dtype`` whose data starts one byte past an aligned address, as arrays
    read from a byte stream at any offset can (pickle-5 buffers, np.frombuffer): the core must never read it as it
    is (a misaligned load), so the conversion copies it."""
    values = np.ascontiguousarray(array, dtype=dtype)
    storage = np.zeros(values.nbytes + 1, np.uint8)
    view = np.frombuffer(storage.data, dtype, count=values.size, offset=1).reshape(values.shape)
    view[...] = values
    assert not view.flags.aligned and view.flags.c_contiguous
    return view


def input_forms(array: np.ndarray) -> dict[str, object]:
    """The same values as ``array`` in every accepted form; all but the float32 copy need a conversion."""
    strided = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), np.float64)
    strided[..., ::2] = array
    return {
        "float64": array.astype(np.float64),
        "float16": array.astype(np.float16),
        "int32": array.astype(np.int32),
        "uint8": (array - array.min()).astype(np.uint8),
        "strided view": strided[..., ::2],
        "fortran order": np.asfortranarray(array),
        "swapped axes view": np.ascontiguousarray(np.swapaxes(array, 0, 1)).swapaxes(0, 1),
        "reversed view": array[::-1].copy()[::-1],
        "list": array.tolist(),
        "misaligned float32": misaligned(array),
    }


FORMS = list(input_forms(np.zeros((1, 1))))


def float32_copy(value) -> np.ndarray:
    return np.array(value, dtype=np.float32, order="C", copy=True)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_accepts_any_real_input_form(isa, rng, form, batch_first):
    model = fastlstm.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, batch_first=batch_first, seed=5)
    # small integers, so that the integer forms are not all zeros
    x = rng.integers(-3, 4, (N, T, I) if batch_first else (T, N, I)).astype(np.float32)
    h0 = rng.integers(-1, 2, (4, N, P)).astype(np.float32)
    c0 = rng.integers(-2, 3, (4, N, H)).astype(np.float32)
    x_form, h0_form, c0_form = (input_forms(a)[form] for a in (x, h0, c0))

    got = outputs(model, x_form, (h0_form, c0_form))
    expected = outputs(model, float32_copy(x_form), (float32_copy(h0_form), float32_copy(c0_form)))
    for a, b in zip(got, expected):
        assert a.dtype == np.float32 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", FORMS)
def test_cell_accepts_any_real_input_form(isa, rng, form):
    cell = fastlstm.LSTMCell(I, H, seed=6)
    x = rng.integers(-3, 4, (N, I)).astype(np.float32)
    h = rng.integers(-1, 2, (N, H)).astype(np.float32)
    c = rng.integers(-2, 3, (N, H)).astype(np.float32)
    x_form, h_form, c_form = (input_forms(a)[form] for a in (x, h, c))

    got = cell(x_form, (h_form, c_form))
    expected = cell(float32_copy(x_form), (float32_copy(h_form), float32_copy(c_form)))
    for a, b in zip(got, expected):
        assert a.dtype == np.float32 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)


def test_float16_is_converted_exactly(isa, rng):
    """float16 inputs are not rounded again: same result as their exact float32 values."""
    model = fastlstm.LSTM(I, H, seed=7)
    x16 = rng.standard_normal((T, N, I)).astype(np.float16)
    np.testing.assert_array_equal(model(x16)[0], model(x16.astype(np.float32))[0])


def test_state_dict_entries_of_any_real_form_are_accepted(isa, rng):
    model = fastlstm.LSTM(I, H, seed=8)
    source = fastlstm.LSTM(I, H, seed=9).state_dict()
    x = rng.standard_normal((T, N, I))
    as_lists = {name: value.tolist() for name, value in source.items()}
    as_float64_views = {name: np.asfortranarray(value.astype(np.float64)) for name, value in source.items()}
    misaligned_arrays = {name: misaligned(value) for name, value in source.items()}
    model.load_state_dict(source)
    expected = outputs(model, x)
    for state_dict in (as_lists, as_float64_views, misaligned_arrays):
        model.load_state_dict(state_dict)
        for a, b in zip(outputs(model, x), expected):
            np.testing.assert_array_equal(a, b)
    # The path of unpickling and fastlstm.load keeps the arrays it is given when it may: misaligned ones are copied.
    model._set_parameters(misaligned_arrays, copy=False)
    assert all(value.flags.aligned for value in model._parameters.values())
    for a, b in zip(outputs(model, x), expected):
        np.testing.assert_array_equal(a, b)


# ---- outputs are fresh arrays -----------------------------------------------------------------------------------


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_outputs_are_fresh_float32_arrays(isa, rng, unbatched, with_state):
    model = fastlstm.LSTM(I, H, num_layers=2, bidirectional=True, proj_size=P, seed=10)
    x = rng.standard_normal((T, I) if unbatched else (T, N, I)).astype(np.float32)
    h_shape, c_shape = good_state(4, N, P, unbatched)
    state = (rng.standard_normal(h_shape).astype(np.float32), rng.standard_normal(c_shape).astype(np.float32))
    state = state if with_state else None
    inputs = [x, *(state or ())]

    first = outputs(model, x, state)
    expected = [a.copy() for a in first]
    for a in first:
        assert a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
        assert not any(np.shares_memory(a, b) for b in inputs)
    for i, a in enumerate(first):
        assert not any(np.shares_memory(a, b) for b in first[i + 1 :])
        a[...] = 123.0  # the caller owns the outputs: writing into them changes nothing else
    second = outputs(model, x, state)
    for a, b in zip(second, expected):
        np.testing.assert_array_equal(a, b)
    assert not any(np.shares_memory(a, b) for a in first for b in second)


@pytest.mark.parametrize("unbatched", [False, True])
def test_cell_outputs_are_fresh_float32_arrays(isa, rng, unbatched):
    cell = fastlstm.LSTMCell(I, H, seed=11)
    x = rng.standard_normal((I,) if unbatched else (N, I)).astype(np.float32)
    state = tuple(rng.standard_normal((H,) if unbatched else (N, H)).astype(np.float32) for _ in range(2))
    h, c = cell(x, state)
    expected = (h.copy(), c.copy())
    for a in (h, c):
        assert a.dtype == np.float32 and a.flags.c_contiguous
        assert not any(np.shares_memory(a, b) for b in (x, *state))
    assert not np.shares_memory(h, c)
    h[...], c[...] = 7.0, -7.0
    for a, b in zip(cell(x, state), expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "cell"])
def test_parameters_do_not_alias_the_callers_arrays(isa, rng, kind):
    """state_dict() returns copies and load_state_dict copies what it is given."""
    model = make_model(kind, fastlstm.LSTM if kind == "lstm" else fastlstm.LSTMCell, seed=12)
    x = rng.standard_normal((T, N, I) if kind == "lstm" else (N, I)).astype(np.float32)
    given = make_model(kind, type(model), seed=13).state_dict()
    model.load_state_dict(given)
    expected = outputs(model, x)
    for value in given.values():
        value[...] = 0.5
    for value in model.state_dict().values():
        value[...] = -0.5
    for a, b in zip(outputs(model, x), expected):
        np.testing.assert_array_equal(a, b)


def test_misaligned_lengths_are_copied(isa, rng):
    model = fastlstm.LSTM(I, H, seed=10)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    lengths = rng.integers(0, T + 1, N)
    got, expected = model(x, lengths=misaligned(lengths, np.int64)), model(x, lengths=lengths)
    for a, b in zip((got[0], *got[1]), (expected[0], *expected[1])):
        np.testing.assert_array_equal(a, b)
