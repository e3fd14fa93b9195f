"""pytest-benchmark suite: one full forward call per round, for every quick shape of ``python -m fastlstm bench`` and
every implementation (fastlstm at each kernel variant this CPU runs, and each installed peer). Results are grouped
by shape so that the implementations of a shape appear side by side.

    python -m pytest benchmarks --benchmark-min-rounds=10
"""

from __future__ import annotations

import numpy as np
import pytest

import fastlstm
from fastlstm import bench

#: fastlstm at every kernel variant this CPU runs, then every installed peer (names as conftest's ``subject`` takes)
IMPLEMENTATIONS = [f"fastlstm-{isa}" for isa in fastlstm.available_isas()] + [
    peer.name for peer in bench.available_peers()
]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", bench.QUICK_SHAPES, ids=lambda shape: shape.key)
def test_forward(
    benchmark, shape: bench.Shape, implementation: str, subject, x: np.ndarray, reference_output: np.ndarray
) -> None:
    difference = bench.output_difference(subject.forward(x), reference_output)
    assert difference < bench.TOLERANCE, f"{implementation} differs from the NumPy reference by {difference:.3g}"

    benchmark.group = shape.label
    benchmark.extra_info.update(
        shape=shape.label, implementation=implementation, isa=subject.isa, threads=subject.threads, flops=shape.flops
    )
    benchmark(subject.forward, x)
    # The rate needs the median, known only now. --benchmark-disable runs the call once untimed and keeps no stats.
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = shape.flops / benchmark.stats.stats.median / 1e9
