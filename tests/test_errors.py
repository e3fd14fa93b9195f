"""Bad arguments, and the edge cases that are not errors (an empty sequence or batch).

Every bad argument gets a ValueError or TypeError whose message starts with the argument's name and states what was
expected and what was given. An empty sequence or batch gives empty outputs and the initial state.
NaN, inf and huge values: test_nonfinite.py; real dtypes, views and lists, and fresh outputs: test_dtype_policy.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from small_models import H, I, N, P, T, good_state, make_model, outputs

import fastlstm

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
