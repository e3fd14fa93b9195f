"""``fastlstm.torch``: what runs torch's own forward (bitwise torch), what ``optimize`` replaces and keeps, when the
packed weights are rebuilt (and when not), threads, reduced precisions, and the errors of bad arguments."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import pytest
import torch
from test_precision import BOUNDS

import fastlstm.torch

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")


def lstm(**options) -> torch.nn.LSTM:
    torch.manual_seed(7)
    return torch.nn.LSTM(9, 17, **{"num_layers": 2, "bidirectional": True, **options}).eval()


def x_of(module, batch=3, steps=8, dtype=torch.float32):
    torch.manual_seed(11)
    return torch.randn(steps, batch, module.input_size, dtype=dtype)


def assert_bitwise(first, second):
    """Outputs and states identical, bit for bit."""
    (output, (h, c)), (other_output, (other_h, other_c)) = first, second
    for ours, theirs in ((output, other_output), (h, other_h), (c, other_c)):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


def raised(module, arguments):
    """The type and message of the exception ``module(*arguments)`` raises."""
    with pytest.raises(Exception) as error:
        module(*arguments)
    return type(error.value), str(error.value)


# ---- fallbacks: torch's own forward -----------------------------------------------------------------------------


def test_training_mode_and_gradients_run_torch_itself():
    module = lstm(proj_size=5)
    optimized = fastlstm.torch.optimize(module)
    x = x_of(module)
    # eval mode, but gradients requested (parameters require grad, grad mode on): torch's autograd path
    assert_bitwise(optimized(x), module(x))
    assert optimized(x)[0].grad_fn is not None
    # input requiring grad, parameters frozen
    for value in module.parameters():
        value.requires_grad_(False)
    assert_bitwise(optimized(x.clone().requires_grad_()), module(x.clone().requires_grad_()))
    # training mode, even without gradients
    module.train(), optimized.train()
    with torch.no_grad():
        assert_bitwise(optimized(x), module(x))
    assert optimized.fastlstm_packs == 0
    module.eval(), optimized.eval()
    with torch.no_grad():
        optimized(x)
    assert optimized.fastlstm_packs == 1  # and eval mode without gradients is the fast path


def test_float64_runs_torch_itself_and_mismatches_raise_torchs_own_errors():
    module = lstm().double()
    optimized = fastlstm.torch.optimize(module)
    with torch.inference_mode():
        assert_bitwise(optimized(x_of(module, dtype=torch.float64)), module(x_of(module, dtype=torch.float64)))
        float32_module = lstm()
        float32_optimized = fastlstm.torch.optimize(float32_module)
        bad_state = (torch.zeros(4, 2, 17), torch.zeros(4, 2, 17))  # batch 2 for an input of batch 3
        calls = [(x_of(module, dtype=torch.float64),), (torch.randn(8, 3, 4),), (torch.randn(2, 8, 3, 9),)]
        calls.append((x_of(module), bad_state))
        for arguments in calls:
            assert raised(float32_optimized, arguments) == raised(float32_module, arguments)
    assert optimized.fastlstm_packs == 0 and float32_optimized.fastlstm_packs == 0


# ---- what optimize replaces and keeps ----------------------------------------------------------------------------


class Tagger(torch.nn.Module):
    def __init__(self, lstm_module, cells):
        super().__init__()
        self.embedding = torch.nn.Embedding(50, 9)
        self.encoder = torch.nn.Sequential(torch.nn.Identity(), lstm_module)
        self.cells = torch.nn.ModuleList(cells)
        self.head = torch.nn.Linear(34, 5)


class OwnLSTM(torch.nn.LSTM):
    """A user's subclass, which may compute something else: left alone."""


def test_optimize_replaces_nested_modules_and_keeps_the_state_dict():
    torch.manual_seed(5)
    shared = torch.nn.LSTMCell(9, 17)
    model = Tagger(lstm(), [shared, shared, OwnLSTM(9, 4)]).eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimized = fastlstm.torch.optimize(model)
    assert optimized is not model and type(model.encoder[1]) is torch.nn.LSTM  # a deep copy; the original is as was
    assert type(optimized.encoder[1]) is fastlstm.torch.LSTM and type(optimized.cells[0]) is fastlstm.torch.LSTMCell
    assert optimized.cells[0] is optimized.cells[1]  # one module used twice stays one module
    assert type(optimized.cells[2]) is OwnLSTM
    state = optimized.state_dict()
    assert list(state) == list(before)
    assert all(torch.equal(state[name], value) for name, value in before.items())
    assert [name for name, _ in optimized.named_parameters()] == [name for name, _ in model.named_parameters()]
    assert repr(optimized) == repr(model)
    optimized.load_state_dict(before)  # the same keys load back

    same = fastlstm.torch.optimize(model, inplace=True)
    assert same is model and type(model.encoder[1]) is fastlstm.torch.LSTM


def test_optimize_a_bare_module_and_from_module_share_the_parameters():
    module = lstm(batch_first=True, proj_size=3)
    optimized = fastlstm.torch.optimize(module, inplace=True)
    assert type(optimized) is fastlstm.torch.LSTM and type(module) is torch.nn.LSTM  # a bare module is replaced
    assert all(ours is theirs for ours, theirs in zip(optimized.parameters(), module.parameters()))
    assert repr(optimized) == repr(module)
    again = fastlstm.torch.optimize(optimized, precision="bf16", threads=1)
    assert type(again) is fastlstm.torch.LSTM and again.fastlstm_precision == "bf16" and again.fastlstm_threads == 1
    cell = fastlstm.torch.LSTMCell.from_module(torch.nn.LSTMCell(3, 4))
    assert isinstance(cell, torch.nn.LSTMCell) and repr(cell) == "LSTMCell(3, 4)"


def test_copies_and_pickles_pack_their_own_weights():
    optimized = fastlstm.torch.optimize(lstm())
    x = x_of(optimized)
    with torch.inference_mode():
        expected = optimized(x)
    copies = [copy.deepcopy(optimized), pickle.loads(pickle.dumps(optimized))]
    with torch.inference_mode():  # copies made here hold inference tensors, which have no version counter
        copies += [copy.deepcopy(optimized), pickle.loads(pickle.dumps(optimized))]
    for other in copies:
        with torch.inference_mode():
            assert other._fastlstm_key != optimized._fastlstm_key
            assert_bitwise(other(x), expected)
            assert other.fastlstm_packs == 1
            other.weight_hh_l0.zero_()  # in place: a new version, or for an inference tensor new values
            changed = other(x)
            assert not torch.equal(changed[0], expected[0]) and other.fastlstm_packs == 2
            assert_bitwise(other(x), changed)
            assert other.fastlstm_packs == 2
    with torch.inference_mode():
        assert_bitwise(optimized(x), expected)


# ---- the packed weights follow the parameters --------------------------------------------------------------------


def test_weights_are_packed_again_only_after_a_change():
    module = lstm(proj_size=4)
    optimized = fastlstm.torch.optimize(module)
    x = x_of(module)

    def run_and_compare(packs):
        for value in module.parameters():  # the original follows the same weights
            value.requires_grad_(False)
        with torch.inference_mode():
            ours, theirs = optimized(x), module(x)
        assert (ours[0] - theirs[0]).abs().max() < 1e-5  # a stale pack would differ by the change, far more
        assert optimized.fastlstm_packs == packs

    run_and_compare(1)
    run_and_compare(1)  # nothing changed: no repack
    changed = {name: value * 1.5 for name, value in module.state_dict().items()}
    module.load_state_dict(changed)
    optimized.load_state_dict(changed)
    run_and_compare(2)
    with torch.no_grad():
        optimized.weight_ih_l1_reverse.add_(0.25)  # in place
        module.weight_ih_l1_reverse.add_(0.25)
    run_and_compare(3)
    for value in optimized.parameters():  # an optimizer step, gradients from a training call
        value.requires_grad_(True)
    optimized.train()
    optimizer = torch.optim.SGD(optimized.parameters(), lr=0.5)
    optimized(x)[0].square().sum().backward()
    optimizer.step()
    optimized.eval()
    module.load_state_dict(optimized.state_dict())
    run_and_compare(4)
    optimized.bias_hh_l0 = torch.nn.Parameter(torch.ones_like(optimized.bias_hh_l0))  # a new Parameter object
    module.bias_hh_l0 = torch.nn.Parameter(torch.ones_like(module.bias_hh_l0))
    run_and_compare(5)
    run_and_compare(5)


# ---- threads, precisions, errors ---------------------------------------------------------------------------------


def test_results_are_bitwise_the_same_for_any_thread_count():
    module = lstm(proj_size=6)
    x = torch.randn(40, 8, 9)
    sequence = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([40, 3, 17, 40, 1, 33, 8, 9]), False, False)
    with torch.inference_mode():
        one, two = (fastlstm.torch.optimize(module, threads=threads) for threads in (1, 2))
        assert_bitwise(one(x), two(x))
        packed_one, packed_two = one(sequence), two(sequence)
        assert torch.equal(packed_one[0].data, packed_two[0].data)
        default = fastlstm.torch.optimize(module)  # threads=None: torch's count at each call
        previous = torch.get_num_threads()
        try:
            results = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                results.append(default(x))
        finally:
            torch.set_num_threads(previous)
        assert_bitwise(*results)
        assert_bitwise(results[0], one(x))


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precisions_stay_within_their_bounds(precision):
    """Within the bounds promised in fastlstm.LSTM's docstring (tests/test_precision.py derives them) of the
    original fp32 module, on inputs like the ones they were measured on (standard normal x, torch's initialisation),
    and really rounded (an error above float32's)."""
    torch.manual_seed(2)
    module = torch.nn.LSTM(64, 128, 2, bidirectional=True).eval()
    optimized = fastlstm.torch.optimize(module, precision=precision)
    x = torch.randn(100, 4, 64)
    with torch.inference_mode():
        ours, theirs = optimized(x), module(x)
    for name, first, second in zip(("output", "h_n", "c_n"), (ours[0], *ours[1]), (theirs[0], *theirs[1])):
        error = float((first - second).abs().max())
        assert 1e-5 < error <= BOUNDS[precision][name], name


def test_bad_arguments_name_the_argument():
    module = lstm()
    with pytest.raises(TypeError, match=r"^model: expected a torch.nn.Module, got builtins.int"):
        fastlstm.torch.optimize(3)
    with pytest.raises(ValueError, match=r"^precision: expected one of \['fp32', 'bf16', 'int8'\], got 'fp16'"):
        fastlstm.torch.optimize(module, precision="fp16")
    with pytest.raises(ValueError, match=r"^threads: .*got 0"):
        fastlstm.torch.optimize(module, threads=0)
    with pytest.raises(TypeError, match=r"^threads: "):
        fastlstm.torch.optimize(module, threads=1.5)
    with pytest.raises(TypeError, match=r"^inplace: expected a bool, got str 'yes'"):
        fastlstm.torch.optimize(module, inplace="yes")
    with pytest.raises(TypeError, match=r"^module: expected a torch.nn.modules.rnn.LSTM, got torch.nn.modules.rnn.GRU"):
        fastlstm.torch.LSTM.from_module(torch.nn.GRU(3, 4))
    with pytest.raises(TypeError, match=r"^module: expected a torch.nn.modules.rnn.LSTMCell, got .*LSTM$"):
        fastlstm.torch.LSTMCell.from_module(module)


def test_importing_fastlstm_does_not_import_torch():
    code = "import sys, fastlstm; assert 'torch' not in sys.modules; import fastlstm.torch; assert 'torch' in "
    code += "sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
