"""``fastlstm.torch`` runs its calls' threads on torch's OpenMP runtime (``_core.openmp_teams``): the results are
bitwise those of one thread, the runtime is used where torch loaded one, and a process without one runs on
fastlstm's own threads."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastlstm.torch
from fastlstm import _core


@pytest.fixture
def torch_threads():
    """torch's intra-op thread count, restored after the test."""
    previous = torch.get_num_threads()
    try:
        yield torch.set_num_threads
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize(
    "input_size, hidden, layers, bidirectional",
    # Directions as pieces of two threads; a team splitting one direction's hidden units.
    [(16, 64, 2, True), (33, 255, 1, False), (9, 31, 3, False)],
)
def test_optimized_lstm_on_torch_threads_is_bitwise_one_thread(
    torch_threads, input_size, hidden, layers, bidirectional
):
    torch.manual_seed(6)
    module = fastlstm.torch.optimize(torch.nn.LSTM(input_size, hidden, layers, bidirectional=bidirectional).eval())
    x = torch.randn(40, 5, input_size)
    lengths = torch.tensor([40, 3, 17, 40, 9])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.inference_mode():
        torch_threads(1)
        single, single_packed = module(x), module(packed)
        torch_threads(2)
        before = _core.testing.openmp_team_calls_so_far()
        for _ in range(5):
            output, (h_n, c_n) = module(x)
            assert torch.equal(output, single[0])
            assert torch.equal(h_n, single[1][0]) and torch.equal(c_n, single[1][1])
            output, (h_n, c_n) = module(packed)
            assert torch.equal(output.data, single_packed[0].data)
            assert torch.equal(h_n, single_packed[1][0]) and torch.equal(c_n, single_packed[1][1])
    if sys.platform.startswith("linux"):  # where the core looks for the runtime (csrc/openmp_team.cc)
        assert _core.testing.openmp_team_calls_so_far() > before  # the calls ran on torch's OpenMP threads


def test_the_setting_belongs_to_the_calling_thread():
    seen = []
    assert _core.openmp_teams(True) is False
    try:
        worker = threading.Thread(target=lambda: seen.append(_core.openmp_teams(False)))
        worker.start()
        worker.join()
        assert seen == [False]  # off in another thread
    finally:
        assert _core.openmp_teams(False) is True


def test_without_an_openmp_runtime_calls_run_on_fastlstm_threads():
    """A process that never loaded torch (nor any OpenMP runtime): the setting changes nothing but where it
    could, and the results stay bitwise those of one thread."""
    script = """
import sys
import numpy as np
import fastlstm
from fastlstm import _core
if sys.platform.startswith("linux"):
    assert not any("gomp" in line or "libomp" in line for line in open("/proc/self/maps"))
model = fastlstm.LSTM(33, 255, seed=1)
x = np.random.default_rng(0).standard_normal((30, 4, 33)).astype(np.float32)
single = model(x, threads=1)[0]
_core.openmp_teams(True)
for _ in range(5):
    assert np.array_equal(model(x, threads=2)[0], single)
assert _core.testing.openmp_team_calls_so_far() == 0
assert "torch" not in sys.modules
print("own threads")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "own threads"
