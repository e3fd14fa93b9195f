"""Fixtures of the pytest-benchmark suite: the implementation under test, built from the test's ``shape`` and
``implementation`` parameters, its input, and the NumPy reference output it must match before it is timed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import fastlstm
from fastlstm import bench

#: fastlstm implementations are named after the kernel variant they run, ``fastlstm-avx2``; peers by their name.
FASTLSTM_PREFIX = "fastlstm-"


@dataclass(frozen=True)
class Subject:
    """An implementation built for one shape, ready to time."""

    forward: bench.Forward
    isa: str | None  # the fastlstm kernel variant; None for peers
    threads: int | None  # the threads fastlstm uses; None for peers, which choose their own


@pytest.fixture
def model(shape: bench.Shape) -> fastlstm.LSTM:
    """The benchmark's fastlstm model of ``shape``, packed for the active variant."""
    return bench.build_model(shape)


@pytest.fixture
def subject(implementation: str, shape: bench.Shape, model: fastlstm.LSTM) -> Subject:
    """``implementation`` (see FASTLSTM_PREFIX) built for ``shape``; peers get the weights of ``model``."""
    if implementation.startswith(FASTLSTM_PREFIX):
        # A model keeps the variant it was packed for, so it runs it after the block too.
        with fastlstm.use_isa(implementation.removeprefix(FASTLSTM_PREFIX)):
            packed = bench.build_model(shape)
        return Subject(bench.fastlstm_forward(packed), packed.isa, bench.threads_used(packed, shape))
    peer = next(peer for peer in bench.PEERS if peer.name == implementation)
    return Subject(peer.build(model), None, None)


@pytest.fixture
def x(shape: bench.Shape) -> np.ndarray:
    return bench.make_input(shape)


@pytest.fixture
def reference_output(model: fastlstm.LSTM, x: np.ndarray) -> np.ndarray:
    """What every implementation must compute: the float32 NumPy reference on the same weights and input."""
    return bench.NUMPY.build(model)(x)
