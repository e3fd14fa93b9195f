"""pytest-benchmark suite: one full forward call per round, for every shape of ``python -m fastlstm bench`` (quick
and full matrices: odd sizes, bidirectional and 2-layer models included), at 1 and 2 threads (as far as the machine
has them), and every implementation: fastlstm at each kernel variant this CPU runs, and each installed peer, checked
against the NumPy reference before it is timed. Results are grouped by shape and thread count so that the
implementations appear side by side; extra_info holds flops, threads, implementation and GFLOP/s, and with
``--benchmark-json`` each peer's ``fastlstm_speedup`` (see conftest).

    python -m pytest benchmarks --benchmark-min-rounds=10 [-k 1x100x128] [--benchmark-json FILE]
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastlstm
from fastlstm import bench

#: fastlstm at every kernel variant this CPU runs, then every installed peer (names as conftest's ``subject`` takes)
IMPLEMENTATIONS = [f"fastlstm-{isa}" for isa in fastlstm.available_isas()] + [
    peer.name for peer in bench.available_peers()
]
#: Every shape of the quick and the full matrix, each once.
SHAPES = list(dict.fromkeys(bench.QUICK_SHAPES + bench.FULL_SHAPES))
THREAD_COUNTS = [threads for threads in (1, 2) if threads <= (os.cpu_count() or 1)]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("threads", THREAD_COUNTS, ids=lambda threads: f"{threads}t")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.key)
def test_forward(
    benchmark,
    shape: bench.Shape,
    threads: int,
    implementation: str,
    subject,
    x: np.ndarray,
    reference_output: np.ndarray,
) -> None:
    benchmark.group = f"{shape.label}, {threads} thread(s)"
    benchmark.extra_info.update(
        shape=shape.key, implementation=implementation, isa=subject.isa, threads=threads, flops=shape.flops
    )
    with subject.limit_threads():
        difference = bench.output_difference(subject.forward(x), reference_output)
        assert difference < bench.TOLERANCE, f"{implementation} differs from the NumPy reference by {difference:.3g}"
        benchmark(subject.forward, x)
    # The rate needs the median, known only now. --benchmark-disable runs the call once untimed and keeps no stats.
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = shape.flops / benchmark.stats.stats.median / 1e9


#: Variable lengths: the same padded batch without lengths, with every row at full length, and with lengths drawn
#: uniformly from 1..T (about half the steps valid). The issue's bound: lengths cost at most 1.2x the padded call.
LENGTHS_SHAPES = [bench.Shape(64, 100, 256, 256), bench.Shape(8, 100, 512, 512), bench.Shape(1, 100, 256, 256)]


@pytest.mark.parametrize("lengths", ["padded", "full", "random"])
@pytest.mark.parametrize("threads", THREAD_COUNTS, ids=lambda threads: f"{threads}t")
@pytest.mark.parametrize("shape", LENGTHS_SHAPES, ids=lambda shape: shape.key)
def test_lengths(benchmark, shape: bench.Shape, threads: int, lengths: str) -> None:
    model = fastlstm.LSTM(shape.input_size, shape.hidden_size, seed=0, threads=threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.steps, shape.batch, shape.input_size)).astype(np.float32)
    row_lengths = {
        "padded": None,
        "full": np.full(shape.batch, shape.steps),
        "random": rng.integers(1, shape.steps + 1, shape.batch),
    }[lengths]
    benchmark.group = f"lengths {shape.label}, {threads} thread(s)"
    benchmark.extra_info.update(shape=shape.key, threads=threads, lengths=lengths)
    if row_lengths is not None:
        benchmark.extra_info["valid_fraction"] = float(row_lengths.sum() / (shape.batch * shape.steps))
    benchmark(model, x, lengths=row_lengths)
