"""The environment of a run: the versions, the machine and the settings that its numbers depend on."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import fastlstm

from .peers import Peer, numpy_threads_limitable, relevant_peers

#: Environment variables that pin OpenBLAS to another core type or cache size than the machine's; they can make
#: NumPy's BLAS, the baseline, much slower. The header reports them; the benchmark never changes them.
BLAS_TUNING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_info() -> list[dict[str, Any]] | None:
    """NumPy's BLAS libraries as threadpoolctl sees them, or None when threadpoolctl is not installed."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return [
        {
            "internal_api": info.get("internal_api"),
            "version": info.get("version"),
            "architecture": info.get("architecture"),  # OpenBLAS's core type; other libraries have none
            "num_threads": info.get("num_threads"),
        }
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    ]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(
    peaks: dict[int, float], peers: Sequence[Peer], precisions: Sequence[str] = ("fp32",)
) -> dict[str, Any]:
    """Versions, machine and settings that the numbers depend on."""
    return {
        "fastlstm": fastlstm.__version__,
        "isa": fastlstm.active_isa(),
        "available_isas": fastlstm.available_isas(),
        "threads": list(peaks),
        "precisions": list(precisions),
        "fma_peak_gflops": {str(threads): gflops for threads, gflops in peaks.items()},
        "numpy": np.__version__,
        "blas": blas_info(),
        "numpy_threads_limited": numpy_threads_limitable(),
        "blas_tuning_variables": {name: os.environ[name] for name in BLAS_TUNING_VARIABLES if name in os.environ},
        "peers": {peer.name: peer.version for peer in peers},
        "peer_precisions": {peer.name: peer.precision for peer in peers},
        "baseline_peers": [peer.name for peer in peers if peer.baseline],
        "unavailable_peers": [peer.name for peer in relevant_peers(precisions) if peer not in peers],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
