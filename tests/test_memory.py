"""Memory: no growth of resident memory over many calls or many models, and requests too large to allocate (or
to count in bytes) refused with a named error before any work.

Resident memory is read as the process's peak (``getrusage`` on Linux and macOS, the peak working set on Windows):
after a warm-up, a leak of even a few bytes per call would raise the peak by megabytes over 100,000 calls, while the
allocator's own fluctuation stays far below GROWTH_BOUND.

The requests too large to allocate exceed 256 TiB, more than a 48-bit address space holds: every operating system
refuses them at once, including those (macOS) that would grant a few hundred GiB of address space and only fail
once the memory is touched."""

from __future__ import annotations

import ctypes
import gc
import sys

import numpy as np
import pytest

import fastlstm

#: Largest rise of the peak resident memory allowed over a loop: 100,000 calls leaking 64 bytes each would be 6 MiB.
GROWTH_BOUND = 4 * 2**20


def _peak_resident_bytes() -> int:
    if sys.platform == "win32":
        return _peak_working_set_bytes()
    import resource  # POSIX only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


class _ProcessMemoryCounters(ctypes.Structure):  # PROCESS_MEMORY_COUNTERS of the Windows API (psapi.h)
    _fields_ = [
        ("cb", ctypes.c_uint32),
        ("PageFaultCount", ctypes.c_uint32),
        ("PeakWorkingSetSize", ctypes.c_size_t),
        ("WorkingSetSize", ctypes.c_size_t),
        ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
        ("QuotaPagedPoolUsage", ctypes.c_size_t),
        ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
        ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
        ("PagefileUsage", ctypes.c_size_t),
        ("PeakPagefileUsage", ctypes.c_size_t),
    ]


def _peak_working_set_bytes() -> int:
    counters = _ProcessMemoryCounters(cb=ctypes.sizeof(_ProcessMemoryCounters))
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetCurrentProcess.restype = ctypes.c_void_p
    get_process_memory_info = (
        kernel32.K32GetProcessMemoryInfo
    )  # psapi's GetProcessMemoryInfo, in kernel32 since Windows 7
    get_process_memory_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ProcessMemoryCounters), ctypes.c_uint32]
    if not get_process_memory_info(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
        raise OSError(ctypes.get_last_error(), "GetProcessMemoryInfo failed")
    return counters.PeakWorkingSetSize


def _growth(loop) -> int:
    loop(200)  # warm-up: allocator pools, caches and the thread pool reach their size
    gc.collect()
    before = _peak_resident_bytes()
    loop(None)
    gc.collect()
    return _peak_resident_bytes() - before


@pytest.mark.resident_memory
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_no_growth_over_a_hundred_thousand_calls(precision):
    model = fastlstm.LSTM(8, 16, 2, seed=0, precision=precision)
    x = np.random.default_rng(0).standard_normal((5, 3, 8)).astype(np.float32)
    lengths = np.array([5, 2, 0])

    def loop(count):
        for i in range(count or 100_000):
            model(x, lengths=lengths if i % 2 else None, threads=1 + i % 2)

    assert _growth(loop) <= GROWTH_BOUND


@pytest.mark.resident_memory
def test_no_growth_over_a_thousand_models():
    x = np.random.default_rng(1).standard_normal((4, 2, 12)).astype(np.float32)

    def loop(count):
        for i in range(count or 1000):
            model = fastlstm.LSTM(
                12, 40, 2, bidirectional=bool(i % 2), seed=i, precision=("fp32", "bf16", "int8")[i % 3]
            )
            model(x)
            stream = model.stream(2) if not model.bidirectional else None
            if stream is not None:
                stream.step(x[0])
            del model, stream

    assert _growth(loop) <= GROWTH_BOUND


def test_parameters_too_large_to_allocate_raise_memory_error_naming_the_sizes():
    with pytest.raises(
        MemoryError, match=r"input_size=4000000, hidden_size=4000000, num_layers=1: the parameters need 476,837.3 GiB"
    ):
        fastlstm.LSTM(4_000_000, 4_000_000)


def test_sizes_whose_bytes_overflow_are_refused_before_allocating():
    with pytest.raises(ValueError, match=r"hidden_size=1099511627776.*more than this platform can address"):
        fastlstm.LSTM(3, 2**40)
    with pytest.raises(ValueError, match=r"input_size=4611686018427387904.*more than this platform can address"):
        fastlstm.LSTM(2**62, 3)


def test_a_call_too_large_to_allocate_raises_memory_error_naming_x():
    model = fastlstm.LSTM(1, 64, seed=0)
    x = np.broadcast_to(np.zeros(1, np.float32), (2**31, 2**10, 1))  # a view of one float; its copy alone is 8 TiB
    with pytest.raises(
        MemoryError, match=r"x: a call on shape \(2147483648, 1024, 1\) needs 524,288.0 GiB for its output"
    ):
        model(x)
