"""Memory: no growth of resident memory over many calls or many models, and requests too large to allocate (or
to count in bytes) refused with a named error before any work.

Resident memory is read as the process's peak (``resource.getrusage``): after a warm-up, a leak of even a few bytes
per call would raise the peak by megabytes over 100,000 calls, while the allocator's own fluctuation stays far below
GROWTH_BOUND."""

from __future__ import annotations

import gc
import resource
import sys

import numpy as np
import pytest

import fastlstm

#: Largest rise of the peak resident memory allowed over a loop: 100,000 calls leaking 64 bytes each would be 6 MiB.
GROWTH_BOUND = 4 * 2**20


def _peak_resident_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _growth(loop) -> int:
    loop(200)  # warm-up: allocator pools, caches and the thread pool reach their size
    gc.collect()
    before = _peak_resident_bytes()
    loop(None)
    gc.collect()
    return _peak_resident_bytes() - before


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_no_growth_over_a_hundred_thousand_calls(precision):
    model = fastlstm.LSTM(8, 16, 2, seed=0, precision=precision)
    x = np.random.default_rng(0).standard_normal((5, 3, 8)).astype(np.float32)
    lengths = np.array([5, 2, 0])

    def loop(count):
        for i in range(count or 100_000):
            model(x, lengths=lengths if i % 2 else None, threads=1 + i % 2)

    assert _growth(loop) <= GROWTH_BOUND


def test_no_growth_over_a_thousand_models():
    x = np.random.default_rng(1).standard_normal((4, 2, 12)).astype(np.float32)

    def loop(count):
        for i in range(count or 1000):
            model = fastlstm.LSTM(12, 40, 2, bidirectional=bool(i % 2), seed=i, precision=("fp32", "bf16", "int8")[i % 3])
            model(x)
            stream = model.stream(2) if not model.bidirectional else None
            if stream is not None:
                stream.step(x[0])
            del model, stream

    assert _growth(loop) <= GROWTH_BOUND


def test_parameters_too_large_to_allocate_raise_memory_error_naming_the_sizes():
    with pytest.raises(MemoryError, match=r"input_size=100000, hidden_size=100000, num_layers=1: the parameters need 298.0 GiB"):
        fastlstm.LSTM(100_000, 100_000)


def test_sizes_whose_bytes_overflow_are_refused_before_allocating():
    with pytest.raises(ValueError, match=r"hidden_size=1099511627776.*more than this platform can address"):
        fastlstm.LSTM(3, 2**40)
    with pytest.raises(ValueError, match=r"input_size=4611686018427387904.*more than this platform can address"):
        fastlstm.LSTM(2**62, 3)


def test_a_call_too_large_to_allocate_raises_memory_error_naming_x():
    model = fastlstm.LSTM(1, 64, seed=0)
    x = np.broadcast_to(np.zeros(1, np.float32), (2**31, 2**10, 1))  # a view of one float; its copy alone is 8 TiB
    with pytest.raises(MemoryError, match=r"x: a call on shape \(2147483648, 1024, 1\) needs 524,288.0 GiB for its output"):
        model(x)
