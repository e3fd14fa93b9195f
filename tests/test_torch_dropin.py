"""``fastlstm.torch``: an optimized torch module computes what the original computes, over the parity grid (layers,
directions, projection, batch_first, given states, unbatched inputs, PackedSequence sorted and unsorted), at every
kernel variant, and the packed output is torch's own PackedSequence (same batch_sizes and indices).

Tolerance: the optimized module (fastlstm's core) and the original (torch) are both float32 evaluations of the same
equations; each lies within ``float32_tolerance`` (fastlstm.testing, derived there and capped at 1e-5) of the float64
reference on the problem, so ours is checked against the reference within it and against torch within twice it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fastlstm.torch
from fastlstm import reference
from fastlstm.testing import float32_tolerance, max_abs_difference

# (input_size, hidden_size, num_layers, bidirectional, proj_size, batch_first): SIMD tails 1, 7, 17, 33
CONFIGURATIONS = [
    (1, 7, 1, False, 0, False),
    (7, 17, 2, True, 0, True),
    (17, 33, 2, False, 7, False),
    (33, 17, 1, True, 1, True),
    (7, 33, 2, True, 17, False),
]
BATCH, STEPS = 3, 9
#: lengths of the packed inputs: sorted (enforce_sorted either way), unsorted, and one row of length 1
LENGTHS = {"sorted": [9, 5, 1], "unsorted": [4, 9, 1]}
INPUTS = ["tensor", "tensor+hx", "unbatched", "unbatched+hx", "packed-sorted", "packed-sorted-unenforced"]
INPUTS += ["packed-unsorted", "packed-unsorted+hx"]


def torch_module(configuration) -> torch.nn.LSTM:
    input_size, hidden, layers, bidirectional, proj_size, batch_first = configuration
    torch.manual_seed(input_size * 100 + hidden)
    module = torch.nn.LSTM(
        input_size, hidden, layers, batch_first=batch_first, bidirectional=bidirectional, proj_size=proj_size
    )
    return module.eval()


def references(module: torch.nn.LSTM):
    """The float64 reference of the module and its float32 counterpart (which calibrates the tolerance)."""
    options = dict(
        num_layers=module.num_layers,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
        proj_size=module.proj_size,
    )
    exact = reference.LSTM(module.input_size, module.hidden_size, **options)
    exact.load_state_dict({name: value.detach().numpy() for name, value in module.state_dict().items()})
    float32 = reference.LSTM(module.input_size, module.hidden_size, **options, dtype=np.float32)
    float32.load_state_dict(exact.state_dict())
    return exact, float32


def random_state(rng, module, batch: int | None):
    directions = 2 if module.bidirectional else 1
    middle = () if batch is None else (batch,)
    shape = (module.num_layers * directions, *middle)
    h0 = rng.uniform(-1, 1, (*shape, module.proj_size or module.hidden_size)).astype(np.float32)
    c0 = rng.standard_normal((*shape, module.hidden_size)).astype(np.float32)
    return h0, c0


def check_close(ours, theirs, exact, float32, name):
    """ours within the tolerance of the reference, and within twice it of torch (see the module docstring)."""
    tolerance = float32_tolerance(exact, float32)
    assert max_abs_difference(ours, exact) <= tolerance, name
    assert max_abs_difference(ours, theirs) <= 2 * tolerance, name


def run_both(module, optimized, argument, state):
    with torch.inference_mode():
        hx = None if state is None else tuple(torch.from_numpy(s) for s in state)
        return module(argument, hx), optimized(argument, hx)


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda c: "I{}-H{}-L{}-bi{}-P{}-bf{}".format(*c))
def test_the_optimized_module_computes_what_torch_computes(rng, configuration, kind):
    module = torch_module(configuration)
    optimized = fastlstm.torch.optimize(module)
    assert type(optimized) is fastlstm.torch.LSTM and isinstance(optimized, torch.nn.LSTM)
    exact, float32 = references(module)
    unbatched = kind.startswith("unbatched")
    shape = (STEPS, module.input_size) if unbatched else (STEPS, BATCH, module.input_size)
    x = rng.standard_normal(shape).astype(np.float32)
    if module.batch_first and not unbatched:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    state = random_state(rng, module, None if unbatched else BATCH) if kind.endswith("+hx") else None
    if kind.startswith("packed"):
        lengths = np.array(LENGTHS["unsorted" if "unsorted" in kind else "sorted"])
        check_packed(module, optimized, x, state, lengths, enforce_sorted=kind == "packed-sorted")
        return
    (expected, (h_torch, c_torch)), (output, (h_n, c_n)) = run_both(module, optimized, torch.from_numpy(x), state)
    want, calibration = _flat(exact(x, state)), _flat(float32(x, state))
    for name, ours, theirs, value, rounded in zip(
        ("output", "h_n", "c_n"), (output, h_n, c_n), (expected, h_torch, c_torch), want, calibration
    ):
        check_close(ours.numpy(), theirs.numpy(), value, rounded, name)
    assert optimized.fastlstm_packs == 1  # the fast path ran (fallbacks are tested bitwise elsewhere)


def _flat(result):
    output, (h_n, c_n) = result
    return output, h_n, c_n


def check_packed(module, optimized, x, state, lengths, *, enforce_sorted):
    batch_first = module.batch_first
    sequence = pack_padded_sequence(
        torch.from_numpy(x), torch.from_numpy(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted
    )
    (expected, (h_torch, c_torch)), (output, (h_n, c_n)) = run_both(module, optimized, sequence, state)
    assert isinstance(output, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(output.batch_sizes, expected.batch_sizes)
    for name in ("sorted_indices", "unsorted_indices"):  # None for enforce_sorted=True, as torch gives
        ours, theirs = getattr(output, name), getattr(expected, name)
        assert (ours is None and theirs is None) if enforce_sorted else torch.equal(ours, theirs), name
    exact, float32 = references(module)
    want = _flat(exact(x, state, lengths=lengths))
    calibration = _flat(float32(x, state, lengths=lengths))
    padded, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=STEPS)
    padded_torch, _ = pad_packed_sequence(expected, batch_first=batch_first, total_length=STEPS)
    for name, ours, theirs, value, rounded in zip(
        ("output", "h_n", "c_n"), (padded, h_n, c_n), (padded_torch, h_torch, c_torch), want, calibration
    ):
        check_close(ours.numpy(), theirs.numpy(), value, rounded, name)
    # the rows themselves, in torch's packed order
    tolerance = float32_tolerance(want[0], calibration[0])
    assert max_abs_difference(output.data.numpy(), expected.data.numpy()) <= 2 * tolerance
    assert optimized.fastlstm_packs == 1


@pytest.mark.parametrize("lengths", [[9, 5, 1], [4, 9, 1], [9, 9, 9], [2, 9, 7, 7, 1, 9]], ids=str)
def test_packed_sequences_at_every_kernel_variant(rng, isa, lengths):
    """The core's run of a PackedSequence's rows (unequal lengths, and all equal: the plain run) at each ISA."""
    module = torch_module((7, 17, 2, True, 5, False))
    optimized = fastlstm.torch.optimize(module)
    x = rng.standard_normal((STEPS, len(lengths), 7)).astype(np.float32)
    check_packed(module, optimized, x, random_state(rng, module, len(lengths)), np.array(lengths), enforce_sorted=False)
    assert optimized.fastlstm_core().isa == isa


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["batched", "batched+hx", "unbatched", "unbatched+hx"])
def test_the_optimized_cell_computes_what_torch_computes(rng, bias, kind):
    torch.manual_seed(3)
    module = torch.nn.LSTMCell(17, 33, bias=bias).eval()
    optimized = fastlstm.torch.optimize(module)
    assert type(optimized) is fastlstm.torch.LSTMCell
    unbatched = kind.startswith("unbatched")
    x = rng.standard_normal((17,) if unbatched else (7, 17)).astype(np.float32)
    state = None
    if kind.endswith("+hx"):
        shape = (33,) if unbatched else (7, 33)
        state = (rng.uniform(-1, 1, shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32))
    (h_torch, c_torch), (h, c) = run_both(module, optimized, torch.from_numpy(x), state)
    exact = reference.LSTMCell(17, 33, bias=bias)
    exact.load_state_dict({name: value.detach().numpy() for name, value in module.state_dict().items()})
    float32 = reference.LSTMCell(17, 33, bias=bias, dtype=np.float32)
    float32.load_state_dict(exact.state_dict())
    want, calibration = exact(x, state), float32(x, state)
    for name, ours, theirs, value, rounded in zip(("h", "c"), (h, c), (h_torch, c_torch), want, calibration):
        assert ours.shape == theirs.shape
        check_close(ours.numpy(), theirs.numpy(), value, rounded, name)
    assert optimized.fastlstm_packs == 1


def test_tensors_reach_the_core_without_copies_and_the_core_checks_packed_rows():
    from fastlstm.torch import _ops

    x = torch.randn(5, 3, 7)
    assert np.shares_memory(_ops._numpy(x), x.numpy())  # a contiguous float32 tensor is read where it is
    assert not np.shares_memory(_ops._numpy(x.transpose(0, 1)), x.numpy())  # a transposed view is copied once
    optimized = fastlstm.torch.optimize(torch_module((7, 17, 1, False, 0, False)))
    core = optimized.fastlstm_core()
    rows = np.zeros((6, 7), np.float32)
    state = np.zeros((1, 3, 17), np.float32)
    for sizes, message in (([3, 3, 1], "add up"), ([1, 3, 2], "non-increasing"), ([3, 0, 3], "positive")):
        with pytest.raises(ValueError, match=message):
            core.forward_packed(rows, np.array(sizes, np.int64), state, state, 1)
    with pytest.raises(ValueError, match="h0 has the wrong shape"):
        core.forward_packed(rows, np.array([3, 2, 1], np.int64), state[:, :2], state, 1)
