"""fastlstm against torch.nn.LSTM / torch.nn.LSTMCell (loaded with the same weights) and against the float64 NumPy
reference, over a grid of options, sizes that hit SIMD tails, batch sizes, states and sequence lengths, at every ISA.

The tolerance is derived in fastlstm.testing: ``float32_tolerance`` for a float32 result against the float64
reference; two float32 implementations that each meet it differ by at most twice that. PyTorch must meet it too,
which checks the error model itself. torch is required (the "peers" extra): these tests must not be skipped."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import zlib

import numpy as np
import pytest

import fastlstm
from fastlstm import reference
from fastlstm.testing import SIMD_TAIL_SIZES, UNIT_ROUNDOFF, float32_tolerance, max_abs_difference

try:
    import torch
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError("the parity tests need PyTorch: pip install '.[test,peers]'") from error


@dataclasses.dataclass(frozen=True)
class Case:
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    proj_size: int
    bias: bool
    layout: str  # "time_major", "batch_first" or "unbatched"
    batch: int
    steps: int
    given_state: bool

    @property
    def options(self) -> dict:
        return dict(
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.layout == "batch_first",
            bidirectional=self.bidirectional,
            proj_size=self.proj_size,
        )

    def __str__(self) -> str:
        return (
            f"I{self.input_size}-H{self.hidden_size}-L{self.num_layers}-{'bi' if self.bidirectional else 'uni'}"
            f"-P{self.proj_size}-{'bias' if self.bias else 'nobias'}-{self.layout}-N{self.batch}-T{self.steps}"
            f"-{'state' if self.given_state else 'zeros'}"
        )


def _grid() -> list[Case]:
    """Every combination of layers x direction x projection x bias, each with its own sizes, layout, batch and
    state (cycled so that every size appears as input and hidden size, and every layout meets both kinds of
    state), at T = 1 and T = 1000."""
    sizes = SIMD_TAIL_SIZES
    layouts = ("time_major", "batch_first", "unbatched")
    structures = itertools.product((1, 2, 3), (False, True), (False, True), (True, False))
    cases = []
    for i, (layers, bidirectional, projected, bias) in enumerate(structures):
        hidden = sizes[(5 * i + 3) % len(sizes)]
        if projected and hidden == 1:
            hidden = 3  # proj_size must be below hidden_size
        layout = layouts[i % 3]
        for steps in (1, 1000):
            cases.append(
                Case(
                    input_size=sizes[i % len(sizes)],
                    hidden_size=hidden,
                    num_layers=layers,
                    bidirectional=bidirectional,
                    proj_size=max(1, hidden // 3) if projected else 0,
                    bias=bias,
                    layout=layout,
                    batch=1 if layout == "unbatched" else (1, 3, 5)[(i // 3) % 3],
                    steps=steps,
                    given_state=i % 2 == 0,
                )
            )
    return cases


GRID = _grid()


def _inputs(case: Case):
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    num_states = case.num_layers * (2 if case.bidirectional else 1)
    h_out = case.proj_size or case.hidden_size
    if case.layout == "unbatched":
        x = rng.standard_normal((case.steps, case.input_size))
        state_shapes = ((num_states, h_out), (num_states, case.hidden_size))
    else:
        seq = (case.batch, case.steps) if case.layout == "batch_first" else (case.steps, case.batch)
        x = rng.standard_normal((*seq, case.input_size))
        state_shapes = ((num_states, case.batch, h_out), (num_states, case.batch, case.hidden_size))
    state = None
    if case.given_state:
        state = tuple(rng.uniform(-1, 1, shape).astype(np.float32) for shape in state_shapes)
    return x.astype(np.float32), state


@functools.lru_cache(maxsize=4)
def _expected(case: Case):
    """(state_dict, x, state, float64 reference, float32 reference, torch) for a case, computed once for all ISAs."""
    weights = reference.LSTM(case.input_size, case.hidden_size, seed=7, **case.options).state_dict()
    x, state = _inputs(case)
    results = {}
    for dtype in (np.float64, np.float32):
        model = reference.LSTM(case.input_size, case.hidden_size, dtype=dtype, **case.options)
        model.load_state_dict(weights)
        results[dtype] = _flatten(model(x, state))
    module = torch.nn.LSTM(case.input_size, case.hidden_size, **case.options)
    module.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
    with torch.inference_mode():
        torch_state = None if state is None else tuple(torch.from_numpy(s) for s in state)
        torch_result = _flatten(module(torch.from_numpy(x), torch_state))
    return weights, x, state, results[np.float64], results[np.float32], [r.numpy() for r in torch_result]


def _flatten(result):
    output, (h_n, c_n) = result
    return [output, h_n, c_n]


def _assert_matches(fast, exact, float32, torch_result, names=("output", "h_n", "c_n")):
    for name, f, e, r32, t in zip(names, fast, exact, float32, torch_result):
        assert f.dtype == np.float32 and f.flags.c_contiguous, name
        assert f.shape == t.shape == e.shape, (name, f.shape, t.shape)
        tol = float32_tolerance(e, r32)
        assert max_abs_difference(f, e) <= tol, (name, max_abs_difference(f, e), tol)
        assert max_abs_difference(t, e) <= tol, (name, "torch", max_abs_difference(t, e), tol)
        assert max_abs_difference(f, t) <= 2 * tol, (name, max_abs_difference(f, t), tol)


@pytest.mark.parametrize("case", GRID, ids=str)
def test_lstm_matches_torch_and_float64_reference(case, isa):
    weights, x, state, exact, float32, torch_result = _expected(case)
    model = fastlstm.LSTM(case.input_size, case.hidden_size, **case.options)
    model.load_state_dict(weights)
    assert model.isa == isa
    fast = _flatten(model(x, state))
    _assert_matches(fast, exact, float32, torch_result)

    if case.steps == 1000:
        # No drift: the error over the last 100 steps is no larger than over steps 100-200 (by when the error
        # from the exact zero start has reached its steady level), up to the rounding floor.
        time_axis = 1 if case.layout == "batch_first" else 0
        error = np.abs(fast[0].astype(np.float64) - exact[0])
        late = np.take(error, range(900, 1000), axis=time_axis).max()
        early = np.take(error, range(100, 200), axis=time_axis).max()
        assert late <= 2 * early + 16 * UNIT_ROUNDOFF, (late, early)


def test_grid_covers_every_option_and_layout(isa):
    """The grid holds every option, layout and initial state the parity check covers: 1 to 3 layers, both
    directions, with and without projection and bias (guards against a shrinking grid)."""
    assert {c.num_layers for c in GRID} == {1, 2, 3}
    assert {c.bidirectional for c in GRID} == {False, True}
    assert {c.proj_size > 0 for c in GRID} == {False, True}
    assert {c.bias for c in GRID} == {False, True}
    assert {(c.layout, c.given_state) for c in GRID} == {
        (layout, given) for layout in ("time_major", "batch_first", "unbatched") for given in (False, True)
    }
    assert {c.steps for c in GRID} == {1, 1000}
    assert {c.batch for c in GRID} >= {1, 3, 5}
    assert {c.input_size for c in GRID} == set(SIMD_TAIL_SIZES)
    assert {c.hidden_size for c in GRID} == set(SIMD_TAIL_SIZES)


CELL_CASES = [
    (input_size, hidden_size, bias, batch, given_state)
    for i, (input_size, hidden_size) in enumerate(zip(SIMD_TAIL_SIZES, SIMD_TAIL_SIZES[::-1]))
    for bias, batch, given_state in [((True, False)[i % 2], (None, 1, 3, 5)[i % 4], (False, True)[(i // 2) % 2])]
]


@pytest.mark.parametrize("input_size, hidden_size, bias, batch, given_state", CELL_CASES)
def test_lstm_cell_matches_torch_and_float64_reference(input_size, hidden_size, bias, batch, given_state, isa, rng):
    weights = reference.LSTMCell(input_size, hidden_size, bias=bias, seed=3).state_dict()
    lead = () if batch is None else (batch,)
    x = rng.standard_normal((*lead, input_size)).astype(np.float32)
    state = None
    if given_state:
        state = tuple(rng.uniform(-1, 1, (*lead, hidden_size)).astype(np.float32) for _ in range(2))

    results = {}
    for dtype in (np.float64, np.float32):
        cell = reference.LSTMCell(input_size, hidden_size, bias=bias, dtype=dtype)
        cell.load_state_dict(weights)
        results[dtype] = list(cell(x, state))
    module = torch.nn.LSTMCell(input_size, hidden_size, bias=bias)
    module.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
    with torch.inference_mode():
        torch_state = None if state is None else tuple(torch.from_numpy(s) for s in state)
        torch_result = [r.numpy() for r in module(torch.from_numpy(x), torch_state)]

    cell = fastlstm.LSTMCell(input_size, hidden_size, bias=bias)
    cell.load_state_dict(weights)
    fast = list(cell(x, state))
    _assert_matches(fast, results[np.float64], results[np.float32], torch_result, names=("h", "c"))


def test_state_dict_round_trips_through_torch(isa):
    """A torch model is one line away: its state_dict (as NumPy) loads, and ours loads into torch with strict names."""
    module = torch.nn.LSTM(9, 17, num_layers=2, bidirectional=True, proj_size=5)
    weights = {name: tensor.detach().numpy() for name, tensor in module.state_dict().items()}
    model = fastlstm.LSTM(9, 17, num_layers=2, bidirectional=True, proj_size=5)
    model.load_state_dict(weights)
    assert list(model.state_dict()) == list(weights)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, weights[name])
    module.load_state_dict({name: torch.from_numpy(value) for name, value in model.state_dict().items()}, strict=True)


def test_initialisation_is_pytorch_uniform_and_seeded(isa):
    model = fastlstm.LSTM(31, 64, num_layers=2, seed=11)
    again = fastlstm.LSTM(31, 64, num_layers=2, seed=11)
    other = fastlstm.LSTM(31, 64, num_layers=2, seed=12)
    bound = 1 / np.sqrt(64)
    for name, value in model.state_dict().items():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound
        assert np.abs(value).max() > 0.9 * bound  # spread over the whole range, not a narrower one
        np.testing.assert_array_equal(value, again.state_dict()[name])
        assert not np.array_equal(value, other.state_dict()[name])
    torch_shapes = {name: tuple(t.shape) for name, t in torch.nn.LSTM(31, 64, num_layers=2).state_dict().items()}
    assert {name: v.shape for name, v in model.state_dict().items()} == torch_shapes
