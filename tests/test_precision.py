"""The reduced precisions bf16 and int8 (``precision=``): the rounding and quantization, the kernels at every ISA
against the NumPy reference that emulates them, the error against fp32 that users are promised, and the API
(astype, importers, quantization_error).

Two kinds of check, because rounding or quantizing h is discontinuous:
- One step from a given state (T = 1, one layer): the kernels and the reference round (or quantize) the very same x
  and h_0, so their products are the same values (exact in float32 for bf16, exact integers for int8) and only the
  float32 sums and scalings differ. The float32 tolerance of fastlstm.testing applies unchanged (the float32
  reference, emulating the precision too, calibrates it).
- Longer sequences: an h_t that the kernel and the reference compute 1 ulp apart can round to neighbouring bf16
  values (2^-8 apart) or int8 codes, so their later steps may differ far more than float32 rounding and no float32
  tolerance holds. There the promise to users is checked instead: within BOUNDS of fp32 on outputs and states, on
  every benchmark shape and over T = 1000."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fastlstm
from fastlstm import _core, bench, reference
from fastlstm.testing import float32_tolerance, max_abs_difference

#: Largest |bf16 - fp32| allowed per result on the benchmark inputs (standard normal x, PyTorch's initialisation).
#: Where it comes from: rounding the weights and rounding x each change a gate pre-activation by about
#: sqrt(K) * rms(w) * rms(x) * 2^-9 (rounding h adds little: |h| < 1), and c, a running sum, keeps the effect of
#: those errors over many steps. Measured maxima on the benchmark shapes: output 3.6e-3 (openvino's bf16 mode:
#: 4.2e-3 at 64x100x512), h_n 2.5e-3, c_n 4.3e-3 (at batch 64 and 256; 3.0e-3 at batch 1), and over T = 1000 at
#: batch 1 3.1e-3. Weights alone (x kept exact) would give 3.0e-3 on c_n at batch 64, but x exact costs a second
#: dot product per pair in the input projection, which at batch 64 is half the work.
BF16_BOUNDS = {"output": 4e-3, "h_n": 4e-3, "c_n": 4.5e-3}
#: The same for int8, promised to users at 2e-2 (fastlstm.LSTM's docstring). A weight row's step is max|row| / 127
#: and a row of x or h is quantized against its own largest value, so the rounding errors are about 4x (weights) and
#: 8x (x, standard normal with max ~3.5 per row) those of bf16; x dominates. Measured maxima on the benchmark shapes:
#: output 1.4e-2, h_n 1.4e-2, c_n 2.0e-2 (1.98e-2 at 256x50x1024; 1.0e-2 at batch 1 and over T = 1000).
#: Both sets of maxima are fastlstm.quantization_error on the models and inputs of the tests
#: test_the_error_stays_within_the_bound_on_the_benchmark_shapes and
#: test_the_error_does_not_drift_over_a_thousand_steps; openvino's is the max |diff| of
#: `python -m fastlstm bench --shapes 64x100x512 --precision bf16`.
INT8_BOUNDS = {"output": 2e-2, "h_n": 2e-2, "c_n": 2e-2}
BOUNDS = {"bf16": BF16_BOUNDS, "int8": INT8_BOUNDS}
REDUCED = ("bf16", "int8")


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, np.float32).view(np.uint32)


def test_rounding_is_to_nearest_even_and_the_same_in_the_core_and_the_reference():
    rng = np.random.default_rng(1)
    specials = np.array(
        [
            0x00000000,
            0x80000000,
            0x7F800000,
            0xFF800000,
            0x7FC00000,
            0x7F800001,
            0xFFFFFFFF,
            0x7F7FFFFF,
            0x00000001,
            0x807FFFFF,
            0x3F808000,
            0x3F818000,
            0x3F808001,
            0x3F817FFF,
            0x7F7F8000,
            0x7F7F7FFF,
        ],
        np.uint32,
    )
    bits = np.concatenate([specials, rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)])
    values = bits.view(np.float32)
    core, ours = _core.testing.round_to_bf16(values), reference.round_to_bf16(values)
    np.testing.assert_array_equal(_bits(core), _bits(ours))
    assert not np.any(_bits(core) & 0xFFFF)  # the low half is gone
    # Ties go to even: 1 + 2^-8 (halfway, kept part even) stays 1, 1 + 3 * 2^-8 (kept part odd) goes up.
    assert _bits(core)[10] == 0x3F800000 and _bits(core)[11] == 0x3F820000
    assert _bits(core)[12] == 0x3F810000 and _bits(core)[13] == 0x3F810000  # past or short of the tie
    assert np.isposinf(core[14]) and core[15] == np.float32(3.3895314e38)  # past the largest bf16: inf
    assert all(np.isnan(core[4:7])) and np.isposinf(core[2]) and np.isneginf(core[3])  # NaN never becomes inf
    finite = np.isfinite(values) & (np.abs(values) > 1e-37) & (np.abs(values) < 3e38)
    relative = np.abs(core[finite].astype(np.float64) / values[finite] - 1)
    assert relative.max() <= 2.0**-8  # half an ulp of 8 significant bits


# (input, hidden, bidirectional, proj_size, batch): SIMD tails in both sizes, batch 1 and odd, both directions
STEP_CASES = [
    (1, 1, False, 0, 1),
    (3, 7, True, 0, 3),
    (8, 9, False, 0, 7),
    (15, 16, False, 0, 1),
    (17, 17, True, 0, 2),
    (31, 33, False, 5, 3),
    (33, 31, False, 0, 8),
    (64, 64, True, 0, 1),
    (255, 15, False, 0, 5),
    (9, 255, False, 0, 1),
]


def test_int8_codes_are_the_same_in_the_core_and_the_reference():
    rng = np.random.default_rng(2)
    rows = [
        rng.standard_normal(37),
        rng.uniform(-1, 1, 64) * 1e-30,
        np.zeros(9),
        np.full(5, 1e-40),  # denormal: a zero row
        np.array([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, 63.5]),  # ties to even: max 127 makes the inverse exactly 1
        np.array([1.0, np.inf, 2.0]),
        np.array([np.nan, 0.0, 1.0]),
        np.array([3.4e38, -3.4e38, 1.0]),
    ]
    for row in rows:
        values = row.astype(np.float32)[None, :]
        codes, scales = _core.testing.quantize_to_int8(values)
        expected_codes, expected_scales = reference.quantize_to_int8(values)
        np.testing.assert_array_equal(codes, expected_codes.astype(np.int8))
        np.testing.assert_array_equal(scales, expected_scales[:, 0])
    ties = _core.testing.quantize_to_int8(rows[4].astype(np.float32)[None, :])[0][0]
    np.testing.assert_array_equal(ties, [127, 0, 2, 2, 0, -2, 64])
    assert np.isnan(_core.testing.quantize_to_int8(rows[5].astype(np.float32)[None, :])[1][0])
    random = rng.standard_normal((500, 301)).astype(np.float32) * rng.uniform(1e-3, 1e3, (500, 1)).astype(np.float32)
    codes, scales = _core.testing.quantize_to_int8(random)
    expected_codes, expected_scales = reference.quantize_to_int8(random)
    np.testing.assert_array_equal(codes, expected_codes.astype(np.int8))
    np.testing.assert_array_equal(scales, expected_scales[:, 0])
    # half a step at most, and the largest magnitude of a row is exact
    assert np.all(np.abs(codes * scales[:, None] - random) <= scales[:, None] / 2 * (1 + 1e-6))
    assert np.all(np.abs(codes).max(axis=1) == 127)


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("input_size, hidden, bidirectional, proj_size, batch", STEP_CASES)
def test_a_step_equals_the_reference_at_every_isa(
    isa, rng, input_size, hidden, bidirectional, proj_size, batch, precision
):
    options = dict(bidirectional=bidirectional, proj_size=proj_size, precision=precision)
    model = fastlstm.LSTM(input_size, hidden, seed=3, **options)
    exact = reference.LSTM(input_size, hidden, **options)
    float32 = reference.LSTM(input_size, hidden, dtype=np.float32, **options)
    exact.load_state_dict(model.state_dict())
    float32.load_state_dict(model.state_dict())
    states = model.num_directions
    x = rng.standard_normal((1, batch, input_size)).astype(np.float32)
    state = (
        rng.uniform(-1, 1, (states, batch, model.output_size)).astype(np.float32),
        rng.standard_normal((states, batch, hidden)).astype(np.float32),
    )
    tolerances = []
    for given in (state, None):
        expected, (h_expected, c_expected) = exact(x, given)
        rounded, (h_rounded, c_rounded) = float32(x, given)
        output, (h_n, c_n) = model(x, given)
        for name, value, want, calibration in (
            ("output", output, expected, rounded),
            ("h_n", h_n, h_expected, h_rounded),
            ("c_n", c_n, c_expected, c_rounded),
        ):
            tolerance = float32_tolerance(want, calibration)
            assert max_abs_difference(value, want) <= tolerance, name
            tolerances.append(tolerance)
    # the precision is really in effect: the fp32 model is far outside the tolerance of its reference (except for
    # int8 rows of one value, which quantize exactly: the value is its row's largest, code 127)
    fp32_output = model.astype("fp32")(x, state)[0]
    if not (precision == "int8" and input_size == hidden == 1):
        assert max_abs_difference(fp32_output, exact(x, state)[0]) > 10 * tolerances[0]


def _check_error(model: fastlstm.LSTM, x: np.ndarray, precision: str, state=None) -> None:
    error = fastlstm.quantization_error(model, x, precision, state=state)
    assert error.max_abs_all > 1e-5  # rounding happened
    for name, bound in BOUNDS[precision].items():
        assert error.max_abs[name] <= bound, str(error)


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("shape", bench.FULL_SHAPES + bench.QUICK_SHAPES, ids=lambda shape: shape.key)
def test_the_error_stays_within_the_bound_on_the_benchmark_shapes(shape, precision):
    _check_error(bench.build_model(shape), bench.make_input(shape), precision)


@pytest.mark.parametrize("precision", REDUCED)
@pytest.mark.parametrize("hidden", [256, 512])
def test_the_error_does_not_drift_over_a_thousand_steps(isa, hidden, precision):
    shape = bench.Shape(1, 1000, hidden, hidden)
    _check_error(bench.build_model(shape), bench.make_input(shape), precision)


@pytest.mark.parametrize("precision", REDUCED)
def test_the_error_from_a_given_state_and_with_options(rng, precision):
    model = fastlstm.LSTM(40, 96, 2, bidirectional=True, seed=1, peepholes=True, clip=3.0)
    x = rng.standard_normal((200, 3, 40)).astype(np.float32)
    states = model.num_layers * model.num_directions
    state = (
        rng.uniform(-1, 1, (states, 3, 96)).astype(np.float32),
        rng.standard_normal((states, 3, 96)).astype(np.float32),
    )
    _check_error(model, x, precision, state)


@pytest.mark.parametrize("precision", ["fp32", *REDUCED])
def test_non_finite_weights_and_inputs_propagate_as_in_the_reference(isa, rng, precision):
    model = fastlstm.LSTM(5, 9, seed=2, precision=precision)
    parameters = model.state_dict()
    parameters["weight_hh_l0"][3, 2] = np.inf  # h starts at zero: 0 * inf is NaN, as in the reference
    parameters["weight_ih_l0"][1, 4] = 3.4e38  # past the largest bf16: inf in bf16
    model.load_state_dict(parameters)
    exact = reference.LSTM(5, 9, precision=precision)
    exact.load_state_dict(parameters)
    float32 = reference.LSTM(5, 9, precision=precision, dtype=np.float32)
    float32.load_state_dict(parameters)
    x = rng.standard_normal((4, 2, 5)).astype(np.float32)
    x[2, 1, 0] = np.nan
    output, (h_n, c_n) = model(x)
    expected, (h_expected, c_expected) = exact(x)
    for value, want in ((output, expected), (h_n, h_expected), (c_n, c_expected)):
        assert np.array_equal(np.isnan(value), np.isnan(want))
        assert np.isnan(value).any()
    # The first step's finite units read h_0 = 0 exactly (not whatever lies past a zero buffer).
    first = output[0]
    assert np.isfinite(first).sum() >= 8  # only unit 3's gate row holds the infinity
    tolerance = float32_tolerance(expected[0], float32(x)[0][0])
    assert max_abs_difference(first, expected[0]) <= tolerance


@pytest.mark.parametrize("precision", REDUCED)
def test_astype_keeps_the_parameters_and_round_trips(rng, precision):
    model = fastlstm.LSTM(12, 20, 2, seed=4, threads=1)
    x = rng.standard_normal((6, 2, 12)).astype(np.float32)
    reduced = model.astype(precision)
    assert (model.precision, reduced.precision, reduced.threads) == ("fp32", precision, 1)
    assert repr(reduced) == f"fastlstm.LSTM(12, 20, num_layers=2, precision='{precision}')"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(reduced.state_dict()[name], value)  # unrounded
    back = reduced.astype("fp32")
    for a, b in zip(model(x)[0:1] + model(x)[1], back(x)[0:1] + back(x)[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(reduced(x)[0], model(x)[0])
    # loading new weights into a reduced model keeps its precision
    reduced.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(reduced(x)[0], model.astype(precision)(x)[0])


def test_precision_is_checked_by_name():
    with pytest.raises(ValueError, match=r"precision: expected one of \['fp32', 'bf16', 'int8'\], got 'int4'"):
        fastlstm.LSTM(3, 4, precision="int4")
    with pytest.raises(TypeError, match=r"precision: expected one of .*, got int 16"):
        fastlstm.LSTM(3, 4).astype(16)
    with pytest.raises(ValueError, match="precision"):
        fastlstm.from_torch(torch.nn.LSTM(3, 4), precision="half")
    with pytest.raises(TypeError, match=r"model: expected a fastlstm\.LSTM"):
        fastlstm.quantization_error(object(), np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"precision: 'int8' sums at most 65536 products .* input_size is 70000"):
        fastlstm.LSTM(70000, 2, precision="int8")


def test_the_core_refuses_int8_depths_past_its_limit():
    """The core enforces the int8 limit itself, so that a direct _core caller cannot overflow the int32 sums."""
    from fastlstm import _core

    with pytest.raises(ValueError, match=r"precision int8 sums at most 65536 products .* widest layer input is 70000"):
        _core.PackedLstm("portable", 70000, 2, 0, 1, 1, precision="int8")
    with pytest.raises(ValueError, match=r"precision int8 sums at most 65536 products .* recurrent size is 65537"):
        _core.PackedLstm("portable", 2, 65537, 0, 1, 1, precision="int8")
    assert _core.PackedLstm("portable", 65536, 2, 0, 1, 1, precision="int8").isa == "portable"  # the limit fits


@pytest.mark.parametrize("precision", REDUCED)
def test_cells_streams_and_importers_carry_the_precision(rng, precision):
    cell = fastlstm.LSTMCell(6, 10, seed=1, precision=precision)
    assert cell.precision == precision and repr(cell) == f"fastlstm.LSTMCell(6, 10, precision='{precision}')"
    x = rng.standard_normal((4, 6)).astype(np.float32)
    h, c = cell(x)
    lstm = fastlstm.LSTM(6, 10, precision=precision)
    lstm.load_state_dict({f"{name}_l0": value for name, value in cell.state_dict().items()})
    _, (h_lstm, c_lstm) = lstm(x[None])
    np.testing.assert_array_equal(h, h_lstm[0])
    np.testing.assert_array_equal(c, c_lstm[0])
    np.testing.assert_array_equal(cell.astype("fp32")(x)[0], fastlstm.LSTMCell(6, 10, seed=1)(x)[0])

    module = torch.nn.LSTM(6, 10, num_layers=2)
    imported = fastlstm.from_torch(module, precision=precision)
    assert imported.precision == precision
    sequence = rng.standard_normal((9, 2, 6)).astype(np.float32)
    np.testing.assert_array_equal(imported(sequence)[0], fastlstm.from_torch(module).astype(precision)(sequence)[0])
    assert fastlstm.from_torch(module.state_dict(), precision=precision).precision == precision
    assert fastlstm.from_onnx(fastlstm.from_torch(module).to_onnx(), precision=precision).precision == precision

    stream = imported.stream(2)
    chunks = [stream.feed(sequence[:4]), stream.feed(sequence[4:])]
    np.testing.assert_array_equal(np.concatenate(chunks), imported(sequence)[0])


def test_quantization_error_reports_each_result():
    model = fastlstm.LSTM(16, 32, seed=0)
    x = np.random.default_rng(0).standard_normal((30, 2, 16)).astype(np.float32)
    error = fastlstm.quantization_error(model, x)
    assert error.precision == "bf16" and set(error.max_abs) == {"output", "h_n", "c_n"}
    output = model(x)[0]
    direct = float(np.abs(model.astype("bf16")(x)[0].astype(np.float64) - output).max())
    assert error.max_abs["output"] == direct
    assert error.max_relative["output"] == pytest.approx(direct / np.abs(output).max())
    assert error.max_abs_all == max(error.max_abs.values())
    assert str(error).startswith("bf16 vs fp32: max |difference| output ")
    assert fastlstm.quantization_error(model, x, "fp32").max_abs_all == 0.0
    assert fastlstm.quantization_error(model, x, "int8").max_abs_all > error.max_abs_all  # coarser than bf16
    assert model.precision == "fp32"  # unchanged
