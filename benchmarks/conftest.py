"""Fixtures of the pytest-benchmark suite: the implementation under test, built from the test's ``shape``,
``threads``, ``implementation`` and ``precision`` parameters, its input, and the float32 NumPy reference output it
must match before it is timed; and, in the JSON of ``--benchmark-json``, the ratios between peers and fastlstm."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

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
    precision: str  # what the implementation computes in (see bench.PRECISIONS)
    #: the context in which the implementation runs on the test's thread count (see bench.Peer.limit_threads)
    limit_threads: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext


@pytest.fixture
def model(shape: bench.Shape) -> fastlstm.LSTM:
    """The benchmark's float32 fastlstm model of ``shape``, packed for the active variant; the peers get its
    weights."""
    return bench.build_model(shape)


@pytest.fixture
def precision() -> str:
    """The precision of the fastlstm implementations under test; a test parametrizes it to run another."""
    return "fp32"


@pytest.fixture
def subject(implementation: str, shape: bench.Shape, threads: int, precision: str, model: fastlstm.LSTM) -> Subject:
    """``implementation`` (see FASTLSTM_PREFIX) built for ``shape`` on ``threads`` threads; fastlstm in
    ``precision``, a peer in its own."""
    if implementation.startswith(FASTLSTM_PREFIX):
        # A model keeps the variant it was packed for, so it runs it after the block too.
        with fastlstm.use_isa(implementation.removeprefix(FASTLSTM_PREFIX)):
            packed = bench.build_model(shape, threads, precision)
        return Subject(bench.fastlstm_forward(packed), packed.isa, precision)
    peer = next(peer for peer in bench.PEERS if peer.name == implementation)
    try:
        forward = peer.build(model, threads)
    except bench.Unsupported as reason:
        pytest.skip(f"{implementation} cannot express this model: {reason}")
    return Subject(forward, None, peer.precision, lambda: peer.limit_threads(threads))


@pytest.fixture
def x(shape: bench.Shape) -> np.ndarray:
    return bench.make_input(shape)


@pytest.fixture
def reference_output(model: fastlstm.LSTM, x: np.ndarray) -> np.ndarray:
    """What every implementation must compute (within the tolerance of its precision): the float32 NumPy reference
    on the same weights and input."""
    return bench.NUMPY.build(model, 1)(x)


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    """Adds the ratios of the JSON's medians that the benchmark is about, so that they need no post-processing;
    all against fastlstm at the active variant, on the same shape and threads:

    - to each peer's extra_info, ``fastlstm_speedup``: the peer's median / fastlstm's in the peer's precision (so
      openvino-bf16 against fastlstm in bf16), and for float32 peers ``fastlstm_<precision>_speedup`` for each
      reduced precision fastlstm ran in (``fastlstm_bf16_speedup``, ``fastlstm_int8_speedup``), the same over
      fastlstm in that precision;
    - to fastlstm's extra_info in each reduced precision, ``best_fp32_peer`` and ``best_fp32_peer_speedup``: the
      fastest float32 peer other than the baseline and its median / fastlstm's."""
    entries = output_json["benchmarks"]
    peers = {peer.name: peer for peer in bench.PEERS}
    reduced_precisions = [precision for precision in bench.PRECISIONS if precision != "fp32"]
    active = FASTLSTM_PREFIX + fastlstm.active_isa()
    fastlstm_entries: dict[tuple[str, int, str], dict] = {}  # (shape, threads, precision) -> entry
    for entry in entries:
        info = entry["extra_info"]
        if info.get("implementation") == active:
            fastlstm_entries[info["shape"], info["threads"], info["precision"]] = entry
    best_fp32_peers: dict[tuple[str, int], dict] = {}  # (shape, threads) -> the fastest competitor's entry
    for entry in entries:
        info = entry["extra_info"]
        peer = peers.get(info.get("implementation"))
        if peer is None:  # fastlstm, or a test that times no implementation
            continue
        key = (info["shape"], info["threads"])
        same_precision = fastlstm_entries.get((*key, peer.precision))
        if same_precision is not None:
            info["fastlstm_speedup"] = entry["stats"]["median"] / same_precision["stats"]["median"]
        if peer.precision != "fp32":
            continue
        for precision in reduced_precisions:
            reduced = fastlstm_entries.get((*key, precision))
            if reduced is not None:
                info[f"fastlstm_{precision}_speedup"] = entry["stats"]["median"] / reduced["stats"]["median"]
        best = best_fp32_peers.get(key)
        if not peer.baseline and (best is None or entry["stats"]["median"] < best["stats"]["median"]):
            best_fp32_peers[key] = entry
    for (shape, threads), best in best_fp32_peers.items():
        for precision in reduced_precisions:
            reduced = fastlstm_entries.get((shape, threads, precision))
            if reduced is not None:
                reduced["extra_info"]["best_fp32_peer"] = best["extra_info"]["implementation"]
                reduced["extra_info"]["best_fp32_peer_speedup"] = best["stats"]["median"] / reduced["stats"]["median"]
