"""Fixtures of the pytest-benchmark suite: the implementation under test, built from the test's ``shape``,
``threads`` and ``implementation`` parameters, its input, and the NumPy reference output it must match before it is
timed; and, in the JSON of ``--benchmark-json``, each peer's ratio to fastlstm."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ContextManager

import numpy as np
import pytest

import fastlstm
from fastlstm import bench

#: fastlstm implementations are named after the kernel variant they run, ``fastlstm-avx2``; peers by their name.
FASTLSTM_PREFIX = "fastlstm-"


@dataclass(frozen=True)
class Subject:
    """An implementation built for one shape and thread count, ready to time."""

    forward: bench.Forward
    isa: str | None  # the fastlstm kernel variant; None for peers
    #: the context in which the implementation runs on the test's thread count (see bench.Peer.limit_threads)
    limit_threads: Callable[[], ContextManager[Any]] = contextlib.nullcontext


@pytest.fixture
def model(shape: bench.Shape) -> fastlstm.LSTM:
    """The benchmark's fastlstm model of ``shape``, packed for the active variant; the peers get its weights."""
    return bench.build_model(shape)


@pytest.fixture
def subject(implementation: str, shape: bench.Shape, threads: int, model: fastlstm.LSTM) -> Subject:
    """``implementation`` (see FASTLSTM_PREFIX) built for ``shape`` on ``threads`` threads."""
    if implementation.startswith(FASTLSTM_PREFIX):
        # A model keeps the variant it was packed for, so it runs it after the block too.
        with fastlstm.use_isa(implementation.removeprefix(FASTLSTM_PREFIX)):
            packed = bench.build_model(shape, threads)
        return Subject(bench.fastlstm_forward(packed), packed.isa)
    peer = next(peer for peer in bench.PEERS if peer.name == implementation)
    try:
        forward = peer.build(model, threads)
    except bench.Unsupported as reason:
        pytest.skip(f"{implementation} cannot express this model: {reason}")
    return Subject(forward, None, lambda: peer.limit_threads(threads))


@pytest.fixture
def x(shape: bench.Shape) -> np.ndarray:
    return bench.make_input(shape)


@pytest.fixture
def reference_output(model: fastlstm.LSTM, x: np.ndarray) -> np.ndarray:
    """What every implementation must compute: the float32 NumPy reference on the same weights and input."""
    return bench.NUMPY.build(model, 1)(x)


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """Adds ``fastlstm_speedup`` (the peer's median / fastlstm's at the active variant, same shape and threads) to
    each peer's extra_info in the JSON, so that the ratios need no post-processing."""
    entries = output_json["benchmarks"]
    fastlstm_medians = {
        (entry["extra_info"]["shape"], entry["extra_info"]["threads"]): entry["stats"]["median"]
        for entry in entries
        if entry["extra_info"].get("implementation") == FASTLSTM_PREFIX + fastlstm.active_isa()
    }
    for entry in entries:
        info = entry["extra_info"]
        if info.get("implementation", "").startswith(FASTLSTM_PREFIX):
            continue
        fastlstm_median = fastlstm_medians.get((info.get("shape"), info.get("threads")))
        if fastlstm_median is not None:
            info["fastlstm_speedup"] = entry["stats"]["median"] / fastlstm_median
