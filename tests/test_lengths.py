"""``model(x, state, lengths=...)``: variable-length rows as PyTorch's packed sequences and onnxruntime's
``sequence_lens`` define them, at every ISA (onnxruntime's in test_lengths_onnxruntime.py, so that this module needs
no onnxruntime: tools/check_arm.sh runs it under emulation, where onnxruntime cannot start).

Tolerance: against the float64 reference (which runs each row alone on its own steps), ``float32_tolerance`` from
fastlstm.testing; against PyTorch or onnxruntime, twice that (both are float32 evaluations within it). The strong
checks are bitwise: a row's result does not depend on the other rows or on padding, because the kernels sum every
element in the same order whatever the batch (kernels.h)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastlstm
from fastlstm import reference
from fastlstm.testing import float32_tolerance, max_abs_difference

# (input_size, hidden_size, num_layers, bidirectional, proj_size, batch_first, lengths): batch 1, odd batches,
# zero lengths, ties, sizes off the vector widths
CASES = [
    (5, 7, 1, False, 0, False, [4]),
    (3, 17, 2, True, 0, False, [9, 0, 3, 9, 1]),
    (16, 33, 1, True, 5, True, [2, 7, 7]),
    (9, 8, 3, False, 0, True, [1, 6, 3, 0, 6, 2, 5]),
    (31, 64, 2, True, 9, False, [12, 11, 1]),
]


def _case_id(case):
    return "I{}-H{}-L{}-bi{}-P{}-bf{}-N{}".format(*case[:6], len(case[6]))


def _models(case, seed=0):
    input_size, hidden, layers, bidirectional, proj_size, batch_first, _ = case
    options = dict(bidirectional=bidirectional, proj_size=proj_size, batch_first=batch_first)
    model = fastlstm.LSTM(input_size, hidden, layers, seed=seed, **options)
    exact = reference.LSTM(input_size, hidden, layers, **options)
    float32 = reference.LSTM(input_size, hidden, layers, dtype=np.float32, **options)
    exact.load_state_dict(model.state_dict())
    float32.load_state_dict(model.state_dict())
    return model, exact, float32


def _inputs(rng, model, lengths, given_state):
    steps, batch = max(lengths, default=0) + 2, len(lengths)  # padding past the longest row too
    shape = (batch, steps, model.input_size) if model.batch_first else (steps, batch, model.input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    if not given_state:
        return x, None
    states = model.num_layers * model.num_directions
    h0 = rng.standard_normal((states, batch, model.output_size)).astype(np.float32)
    c0 = rng.standard_normal((states, batch, model.hidden_size)).astype(np.float32)
    return x, (h0, c0)


@pytest.mark.parametrize("given_state", [False, True], ids=["zeros", "state"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_against_the_reference_at_every_isa(isa, rng, case, given_state):
    model, exact, float32 = _models(case)
    lengths = np.array(case[6])
    x, state = _inputs(rng, model, lengths, given_state)
    ours = model(x, state, lengths=lengths)
    exact_result = exact(x, state, lengths=lengths)
    float32_result = float32(x, state, lengths=lengths)
    for got, want, want32 in zip(
        (ours[0], *ours[1]), (exact_result[0], *exact_result[1]), (float32_result[0], *float32_result[1])
    ):
        assert max_abs_difference(got, want) <= float32_tolerance(want, want32)
    time_axis = 1 if model.batch_first else 0
    for b, length in enumerate(lengths):  # zero past each row's length, exactly
        padding = np.take(ours[0], b, axis=1 - time_axis)[length:]
        assert not padding.any()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_a_row_is_computed_as_if_alone_bitwise(isa, rng, case, precision):
    model = _models(case)[0].astype(precision)
    lengths = np.array(case[6])
    x, state = _inputs(rng, model, lengths, given_state=True)
    output, (h_n, c_n) = model(x, state, lengths=lengths)
    time_axis = 1 if model.batch_first else 0
    for b, length in enumerate(lengths):
        row_x = np.take(x, [b], axis=1 - time_axis)
        row_x = row_x[:, :length] if model.batch_first else row_x[:length]
        row_output, (row_h, row_c) = model(row_x, (state[0][:, b : b + 1], state[1][:, b : b + 1]))
        row_ours = np.take(output, [b], axis=1 - time_axis)
        row_ours = row_ours[:, :length] if model.batch_first else row_ours[:length]
        assert np.array_equal(row_ours, row_output)
        assert np.array_equal(h_n[:, b : b + 1], row_h) and np.array_equal(c_n[:, b : b + 1], row_c)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_full_lengths_equal_no_lengths_bitwise_at_any_thread_count(rng, precision):
    model = fastlstm.LSTM(24, 40, 2, bidirectional=True, seed=5, precision=precision)
    x = rng.standard_normal((13, 6, 24)).astype(np.float32)
    plain, (h, c) = model(x, threads=1)
    for threads in (1, 2):
        output, (h_n, c_n) = model(x, lengths=np.full(6, 13), threads=threads)
        assert np.array_equal(output, plain) and np.array_equal(h_n, h) and np.array_equal(c_n, c)
        varied = model(x, lengths=[13, 2, 0, 7, 13, 5], threads=threads)
        if threads == 1:
            first = varied
        assert all(np.array_equal(a, b) for a, b in zip((varied[0], *varied[1]), (first[0], *first[1])))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_equals_pytorch_packed_sequences(rng, case):
    model, exact, float32 = _models(case)
    lengths = np.array(case[6])
    x, state = _inputs(rng, model, lengths, given_state=True)
    module = model.to_torch(module=True)
    runnable = lengths > 0  # pack_padded_sequence refuses empty rows; ours keep their initial state
    rows = np.flatnonzero(runnable)
    batch_axis = 0 if model.batch_first else 1
    x_rows = np.take(x, rows, axis=batch_axis)
    state_rows = tuple(s[:, rows] for s in state)
    packed = pack_padded_sequence(
        torch.from_numpy(x_rows), torch.from_numpy(lengths[rows]), batch_first=model.batch_first, enforce_sorted=False
    )
    with torch.inference_mode():
        packed_output, (h_n, c_n) = module(packed, tuple(torch.from_numpy(s) for s in state_rows))
        output, _ = pad_packed_sequence(
            packed_output, batch_first=model.batch_first, total_length=x.shape[1 - batch_axis]
        )
    ours = model(x, state, lengths=lengths)
    exact_result = exact(x, state, lengths=lengths)
    float32_result = float32(x, state, lengths=lengths)
    theirs = (output.numpy(), h_n.numpy(), c_n.numpy())
    for got, torch_rows, want, want32, axis in zip(
        (ours[0], *ours[1]),
        theirs,
        (exact_result[0], *exact_result[1]),
        (float32_result[0], *float32_result[1]),
        (batch_axis, 1, 1),
    ):
        tolerance = 2 * float32_tolerance(want, want32)
        assert max_abs_difference(np.take(got, rows, axis=axis), torch_rows) <= tolerance
    assert np.array_equal(ours[1][0][:, ~runnable], state[0][:, ~runnable])  # empty rows: the initial state


def test_bad_lengths_are_named():
    model = fastlstm.LSTM(3, 4)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\) \(one length per batch row\), got \(3,\)"):
        model(x, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match=r"lengths: expected integers, got dtype float64"):
        model(x, lengths=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=5\], got values from -1 to 2"):
        model(x, lengths=[-1, 2])
    with pytest.raises(ValueError, match=r"lengths: expected values in \[0, T=5\], got values from 6 to 6"):
        model(x, lengths=[6, 6])
    with pytest.raises(ValueError, match=r"lengths: needs a batched x"):
        model(np.zeros((5, 3), np.float32), lengths=[5])
    with pytest.raises(TypeError, match=r"lengths: expected integers, got dtype bool"):
        model(x, lengths=[True, False])
    output, (h_n, c_n) = model(x, lengths=[0, 0])  # nothing runs: zeros out, the initial (zero) state back
    assert not output.any() and not h_n.any() and not c_n.any()
