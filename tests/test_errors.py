"""Bad arguments and edge cases.

Every bad argument gets a ValueError or TypeError whose message starts with the argument's name and states what was
expected and what was given. Inputs that are unusual but valid (an empty sequence or batch, NaN and inf, huge
values, any real dtype, views, lists) are not errors: they give the same results as the reference or as a float32
C-contiguous copy, in fresh float32 arrays.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastlstm
from fastlstm.testing import max_abs_difference

I, H, P = 5, 6, 3  # input_size, hidden_size, proj_size of the models under test
T, N = 4, 3  # steps and batch of the inputs under test
NONFINITE_TOLERANCE = 1e-5  # for finite positions when the inputs hold NaN, inf or huge values

BAD_DTYPES = {
    "complex128": lambda shape: np.zeros(shape, np.complex128),
    "<U1": lambda shape: np.full(shape, "a"),
    "object": lambda shape: np.zeros(shape, dtype=object),
    "bool": lambda shape: np.zeros(shape, bool),
}


def raises(error: type[Exception], name: str, *fragments: str):
    """pytest.raises(error) whose message starts with ``name`` and then contains every fragment, in order."""
    return pytest.raises(error, match="^" + ".*".join(re.escape(text) for text in (name, *fragments)))


def shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


@pytest.fixture(params=["fastlstm", "reference"])
def lstm_class(request, isa):
    """fastlstm.LSTM and fastlstm.reference.LSTM: argument checking is shared, so both must refuse the same way."""
    return {"fastlstm": fastlstm.LSTM, "reference": fastlstm.reference.LSTM}[request.param]


@pytest.fixture(params=["fastlstm", "reference"])
def cell_class(request, isa):
    return {"fastlstm": fastlstm.LSTMCell, "reference": fastlstm.reference.LSTMCell}[request.param]


def outputs(model, x, state=None) -> tuple[np.ndarray, ...]:
    """(output, h_n, c_n) of an LSTM or (h, c) of a cell, flat."""
    result = model(x, state)
    return (result[0], *result[1]) if isinstance(result[1], tuple) else tuple(result)


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


# ---- constructor arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["input_size", "hidden_size", "num_layers"])
@pytest.mark.parametrize("value", [0, -1])
def test_lstm_sizes_must_be_positive(lstm_class, argument, value):
    arguments = {"input_size": I, "hidden_size": H, "num_layers": 2, argument: value}
    with raises(ValueError, f"{argument}:", "expected an int >= 1", f"got {value}"):
        lstm_class(**arguments)


@pytest.mark.parametrize("argument", ["input_size", "hidden_size"])
@pytest.mark.parametrize("value", [0, -2])
def test_cell_sizes_must_be_positive(cell_class, argument, value):
    arguments = {"input_size": I, "hidden_size": H, argument: value}
    with raises(ValueError, f"{argument}:", "expected an int >= 1", f"got {value}"):
        cell_class(**arguments)


NOT_INTS = [(3.0, "float 3.0"), ("3", "str '3'"), (True, "bool True"), (None, "NoneType")]


@pytest.mark.parametrize("argument", ["input_size", "hidden_size", "num_layers", "proj_size"])
@pytest.mark.parametrize("value, shown", NOT_INTS)
def test_lstm_sizes_must_be_ints(lstm_class, argument, value, shown):
    arguments = {"input_size": I, "hidden_size": H, "num_layers": 1, "proj_size": 0, argument: value}
    with raises(TypeError, f"{argument}:", "expected an int", f"got {shown}"):
        lstm_class(**arguments)


@pytest.mark.parametrize("argument", ["input_size", "hidden_size"])
@pytest.mark.parametrize("value, shown", NOT_INTS)
def test_cell_sizes_must_be_ints(cell_class, argument, value, shown):
    arguments = {"input_size": I, "hidden_size": H, argument: value}
    with raises(TypeError, f"{argument}:", "expected an int", f"got {shown}"):
        cell_class(**arguments)


@pytest.mark.parametrize("proj_size", [H, H + 1])
def test_proj_size_must_be_below_hidden_size(lstm_class, proj_size):
    with raises(ValueError, "proj_size:", f"< hidden_size={H}", f"got {proj_size}"):
        lstm_class(I, H, proj_size=proj_size)


def test_proj_size_must_not_be_negative(lstm_class):
    with raises(ValueError, "proj_size:", "expected an int >= 0", "got -1"):
        lstm_class(I, H, proj_size=-1)


# ---- x ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(I,), (2, T, N, I), ()], ids=["1-D", "4-D", "0-D"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_x_must_be_2d_or_3d(lstm_class, shape, batch_first):
    model = lstm_class(I, H, batch_first=batch_first, seed=0)
    layout = "(N, T, I)" if batch_first else "(T, N, I)"
    actual = f"got {len(shape)}-D shape {shape_text(shape)}"
    with raises(ValueError, "x:", f"3-D array {layout}", f"(T, I) with I={I}", actual):
        model(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(T, N, I + 1), (T, N, I - 1), (T, I + 1), (T, N, 0)])
def test_lstm_x_must_have_input_size_features(lstm_class, shape):
    model = lstm_class(I, H, seed=0)
    with raises(ValueError, "x:", f"expected {I} features", f"got shape {shape_text(shape)}"):
        model(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(), (T, N, I), (N, I + 1), (I - 1,)])
def test_cell_x_must_be_n_by_input_size(cell_class, shape):
    cell = cell_class(I, H, seed=0)
    with raises(ValueError, "x:", f"expected shape (N, {I}) or unbatched ({I},)", f"got {shape_text(shape)}"):
        cell(np.zeros(shape, np.float32))


@pytest.mark.parametrize("dtype", BAD_DTYPES)
def test_lstm_x_must_be_real(lstm_class, dtype):
    model = lstm_class(I, H, seed=0)
    with raises(TypeError, "x:", "expected a real numeric array", f"got dtype {dtype}"):
        model(BAD_DTYPES[dtype]((T, N, I)))


@pytest.mark.parametrize("dtype", BAD_DTYPES)
def test_cell_x_must_be_real(cell_class, dtype):
    cell = cell_class(I, H, seed=0)
    with raises(TypeError, "x:", "expected a real numeric array", f"got dtype {dtype}"):
        cell(BAD_DTYPES[dtype]((N, I)))


@pytest.mark.parametrize("value, dtype", [([[True] * I] * T, "bool"), ([["1"] * I] * T, "<U1")])
def test_lists_of_non_numbers_are_refused(lstm_class, value, dtype):
    with raises(TypeError, "x:", "real numeric array", f"got dtype {dtype} from list"):
        lstm_class(I, H, seed=0)(value)


# ---- state ------------------------------------------------------------------------------------------------------


def good_state(num_states, batch, proj_size, unbatched):
    """Correct (h0, c0) shapes for an LSTM: (states, [batch,] H_out) and (states, [batch,] hidden_size)."""
    middle = () if unbatched else (batch,)
    return (num_states, *middle, proj_size or H), (num_states, *middle, H)


@pytest.mark.parametrize("proj_size", [0, P])
@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("which", [0, 1], ids=["h0", "c0"])
@pytest.mark.parametrize("defect", ["batch", "size", "other_size", "states"])
def test_lstm_state_shapes_are_checked(lstm_class, proj_size, unbatched, which, defect):
    model = lstm_class(I, H, num_layers=2, bidirectional=True, proj_size=proj_size, seed=0)
    x = np.zeros((T, I) if unbatched else (T, N, I), np.float32)
    shapes = good_state(4, N, proj_size, unbatched)
    good = shapes[which]
    bad = {
        # batched: one row too many; unbatched: an N axis that x does not have
        "batch": (good[0], 1, good[-1]) if unbatched else (good[0], N + 1, good[-1]),
        "size": (*good[:-1], good[-1] + 1),
        # the width of the other state: with proj_size, h0 is proj_size wide and c0 hidden_size wide
        "other_size": (*good[:-1], shapes[1 - which][-1] if proj_size else good[-1] - 1),
        "states": (good[0] - 2, *good[1:]),
    }[defect]
    state = [np.zeros(shapes[0]), np.zeros(shapes[1])]
    state[which] = np.zeros(bad)
    name = ["state[0] (h0)", "state[1] (c0)"][which]
    with raises(ValueError, f"{name}:", f"expected shape {shape_text(good)}", f"got {shape_text(bad)}"):
        model(x, tuple(state))


@pytest.mark.parametrize("unbatched", [False, True])
@pytest.mark.parametrize("which", [0, 1], ids=["h", "c"])
@pytest.mark.parametrize("defect", ["batch", "size"])
def test_cell_state_shapes_are_checked(cell_class, unbatched, which, defect):
    cell = cell_class(I, H, seed=0)
    x = np.zeros((I,) if unbatched else (N, I), np.float32)
    good = (H,) if unbatched else (N, H)
    bad = {
        "batch": (1, H) if unbatched else (N + 1, H),
        "size": (*good[:-1], H + 1),
    }[defect]
    state = [np.zeros(good), np.zeros(good)]
    state[which] = np.zeros(bad)
    name = ["state[0] (h)", "state[1] (c)"][which]
    with raises(ValueError, f"{name}:", f"expected shape {shape_text(good)}", f"got {shape_text(bad)}"):
        cell(x, tuple(state))


NOT_PAIRS = {
    "array": (lambda h, c: h, "ndarray"),
    "1-tuple": (lambda h, c: (h,), "tuple"),
    "3-tuple": (lambda h, c: (h, c, c), "tuple"),
    "dict": (lambda h, c: {"h": h, "c": c}, "dict"),
    "str": (lambda h, c: "hc", "str"),
    "number": (lambda h, c: 0.0, "float"),
}


@pytest.mark.parametrize("kind", NOT_PAIRS)
def test_lstm_state_must_be_a_pair(lstm_class, kind):
    model = lstm_class(I, H, seed=0)
    make, shown = NOT_PAIRS[kind]
    with raises(TypeError, "state:", "expected a pair (h0, c0) or None", f"got {shown}"):
        model(np.zeros((T, N, I)), make(np.zeros((1, N, H)), np.zeros((1, N, H))))


@pytest.mark.parametrize("kind", NOT_PAIRS)
def test_cell_state_must_be_a_pair(cell_class, kind):
    cell = cell_class(I, H, seed=0)
    make, shown = NOT_PAIRS[kind]
    with raises(TypeError, "state:", "expected a pair (h, c) or None", f"got {shown}"):
        cell(np.zeros((N, I)), make(np.zeros((N, H)), np.zeros((N, H))))


@pytest.mark.parametrize("dtype", BAD_DTYPES)
@pytest.mark.parametrize("which", [0, 1], ids=["h0", "c0"])
def test_lstm_state_must_be_real(lstm_class, dtype, which):
    model = lstm_class(I, H, seed=0)
    state = [np.zeros((1, N, H)), np.zeros((1, N, H))]
    state[which] = BAD_DTYPES[dtype]((1, N, H))
    name = ["state[0] (h0)", "state[1] (c0)"][which]
    with raises(TypeError, f"{name}:", "expected a real numeric array", f"got dtype {dtype}"):
        model(np.zeros((T, N, I)), tuple(state))


@pytest.mark.parametrize("dtype", BAD_DTYPES)
@pytest.mark.parametrize("which", [0, 1], ids=["h", "c"])
def test_cell_state_must_be_real(cell_class, dtype, which):
    cell = cell_class(I, H, seed=0)
    state = [np.zeros((N, H)), np.zeros((N, H))]
    state[which] = BAD_DTYPES[dtype]((N, H))
    name = ["state[0] (h)", "state[1] (c)"][which]
    with raises(TypeError, f"{name}:", "expected a real numeric array", f"got dtype {dtype}"):
        cell(np.zeros((N, I)), tuple(state))


# ---- load_state_dict --------------------------------------------------------------------------------------------


def make_model(kind, cls, seed):
    if kind == "lstm":
        return cls(I, H, num_layers=2, bidirectional=True, proj_size=P, seed=seed)
    return cls(I, H, seed=seed)


def load_cases(model):
    """(description, state_dict, error, message fragments) of bad loads. Every good entry comes from another seed, so
    that a load that applied part of its entries before failing would change the outputs."""
    other = type(model)(**_constructor_arguments(model), seed=99).state_dict()
    names = list(other)
    last = names[-1]  # the last parameter checked: every other one has been read when it fails
    shape = other[last].shape
    cases = {
        "missing": ({k: v for k, v in other.items() if k != last}, ValueError, ["state_dict:", f"missing [{last!r}]"]),
        "unexpected": ({**other, "bias_extra": other[last]}, ValueError, ["state_dict:", "unexpected ['bias_extra']"]),
        "missing and unexpected": (
            {("weight_ih_l9" if k == names[0] else k): v for k, v in other.items()},
            ValueError,
            ["state_dict:", f"missing [{names[0]!r}]", "unexpected ['weight_ih_l9']"],
        ),
        "wrong shape": (
            {**other, last: other[last].T.copy() if len(shape) == 2 else other[last][:-1]},
            ValueError,
            [f"state_dict[{last!r}]:", f"expected shape {shape_text(shape)}"],
        ),
        "extra axis": (
            {**other, last: other[last][None]},
            ValueError,
            [f"state_dict[{last!r}]:", f"expected shape {shape_text(shape)}", f"got {shape_text((1, *shape))}"],
        ),
        "not a mapping": (list(other.items()), TypeError, ["state_dict:", "expected a mapping", "got list"]),
        "None": (None, TypeError, ["state_dict:", "expected a mapping", "got NoneType"]),
    }
    for dtype, make in BAD_DTYPES.items():
        cases[dtype] = (
            {**other, last: make(shape)},
            TypeError,
            [f"state_dict[{last!r}]:", "expected a real numeric array", f"got dtype {dtype}"],
        )
    return cases


def _constructor_arguments(model):
    if isinstance(model, (fastlstm.LSTMCell, fastlstm.reference.LSTMCell)):
        return {"input_size": model.input_size, "hidden_size": model.hidden_size}
    return {
        "input_size": model.input_size,
        "hidden_size": model.hidden_size,
        "num_layers": model.num_layers,
        "bidirectional": model.bidirectional,
        "proj_size": model.proj_size,
    }


LOAD_CASES = [
    "missing",
    "unexpected",
    "missing and unexpected",
    "wrong shape",
    "extra axis",
    "not a mapping",
    "None",
    *BAD_DTYPES,
]


@pytest.mark.parametrize("case", LOAD_CASES)
@pytest.mark.parametrize("kind", ["lstm", "cell"])
@pytest.mark.parametrize("implementation", ["fastlstm", "reference"])
def test_failed_load_state_dict_changes_nothing(isa, rng, case, kind, implementation):
    module = fastlstm if implementation == "fastlstm" else fastlstm.reference
    model = make_model(kind, module.LSTM if kind == "lstm" else module.LSTMCell, seed=0)
    x = rng.standard_normal((T, N, I) if kind == "lstm" else (N, I))
    before = outputs(model, x)
    weights_before = model.state_dict()

    state_dict, error, fragments = load_cases(model)[case]
    with raises(error, *fragments):
        model.load_state_dict(state_dict)

    for a, b in zip(outputs(model, x), before):
        np.testing.assert_array_equal(a, b)
    assert model.state_dict().keys() == weights_before.keys()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights_before[name])


def test_cell_messages_use_cell_parameter_names(isa):
    """LSTMCell loads through a one-layer LSTM; its messages must still name weight_hh, not weight_hh_l0."""
    cell = fastlstm.LSTMCell(I, H, seed=0)
    state_dict = {**cell.state_dict(), "weight_hh": np.zeros((H, 4 * H))}
    with raises(ValueError, "state_dict['weight_hh']:", f"expected shape ({4 * H}, {H})", f"got ({H}, {4 * H})"):
        cell.load_state_dict(state_dict)
    with raises(ValueError, "state_dict:", "unexpected ['weight_ih_l0']"):
        cell.load_state_dict({**cell.state_dict(), "weight_ih_l0": np.zeros((4 * H, I))})


# ---- empty sequence and empty batch: not errors -----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True, "proj_size": P}])
def test_empty_sequence_returns_the_initial_state(lstm_class, rng, layout, with_state, options):
    model = lstm_class(I, H, batch_first=layout == "batch_first", seed=0, **options)
    states, width = model.num_layers * model.num_directions, model.num_directions * model.output_size
    x_shape, y_shape = {
        "time_major": ((0, N, I), (0, N, width)),
        "batch_first": ((N, 0, I), (N, 0, width)),
        "unbatched": ((0, I), (0, width)),
    }[layout]
    h_shape, c_shape = good_state(states, N, options.get("proj_size", 0), layout == "unbatched")
    state = (rng.standard_normal(h_shape), rng.standard_normal(c_shape)) if with_state else None

    y, (h_n, c_n) = model(np.zeros(x_shape, np.float32), state)

    assert y.shape == y_shape
    expected_h, expected_c = state if with_state else (np.zeros(h_shape), np.zeros(c_shape))
    # the state goes through the model's dtype unchanged
    np.testing.assert_array_equal(h_n, expected_h.astype(h_n.dtype))
    np.testing.assert_array_equal(c_n, expected_c.astype(c_n.dtype))
    assert h_n.shape == h_shape and c_n.shape == c_shape


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("steps", [0, T])
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True, "proj_size": P}])
def test_empty_batch_returns_empty_arrays(lstm_class, batch_first, steps, options):
    model = lstm_class(I, H, batch_first=batch_first, seed=0, **options)
    states, width = model.num_layers * model.num_directions, model.num_directions * model.output_size
    x = np.zeros((0, steps, I) if batch_first else (steps, 0, I), np.float32)
    h_shape, c_shape = good_state(states, 0, options.get("proj_size", 0), False)
    for state in (None, (np.zeros(h_shape), np.zeros(c_shape))):
        y, (h_n, c_n) = model(x, state)
        assert y.shape == ((0, steps, width) if batch_first else (steps, 0, width))
        assert h_n.shape == h_shape and c_n.shape == c_shape


def test_cell_empty_batch_returns_empty_arrays(cell_class):
    cell = cell_class(I, H, seed=0)
    for state in (None, (np.zeros((0, H)), np.zeros((0, H)))):
        h, c = cell(np.zeros((0, I)), state)
        assert h.shape == (0, H) and c.shape == (0, H)


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


# ---- dtype policy -----------------------------------------------------------------------------------------------


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
    model.load_state_dict(source)
    expected = outputs(model, x)
    for state_dict in (as_lists, as_float64_views):
        model.load_state_dict(state_dict)
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
