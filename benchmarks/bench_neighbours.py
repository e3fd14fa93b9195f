"""fastlstm next to other libraries' threads (``python -m fastlstm bench --neighbours`` prints the same cases as one
table): a call right after a NumPy matmul, a torch op at torch's default threads, an onnxruntime run, and next to a
process busy on one core, at 1 and 2 threads; compare each with the ``alone`` case of the same thread count. Every
round starts after a pause long enough for the neighbour's threads to go idle, then runs the neighbour, then times
one fastlstm call. Timing next to NumPy, run it with OpenBLAS's own CPU detection (no OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE in the environment); the JSON's extra_info names the BLAS kernel that ran:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest benchmarks/bench_neighbours.py
"""

from __future__ import annotations

import os
import time

import pytest

from fastlstm import bench
from fastlstm.bench import neighbours

CASES = list(neighbours.NEIGHBOURS)
THREAD_COUNTS = [threads for threads in neighbours.THREAD_COUNTS if threads <= (os.cpu_count() or 1)]


@pytest.mark.parametrize("threads", THREAD_COUNTS)
@pytest.mark.parametrize("neighbour", CASES, ids=lambda neighbour: neighbour.name.replace(" ", "-"))
def test_fastlstm_next_to(benchmark, neighbour: neighbours.Neighbour, threads: int) -> None:
    for module in neighbour.modules:
        pytest.importorskip(module)
    shape = neighbours.NEIGHBOURS_SHAPE
    forward = bench.fastlstm_forward(bench.build_model(shape, threads))
    x = bench.make_input(shape)
    before = neighbour.prepare(shape, threads)

    def settle_then_neighbour() -> None:
        time.sleep(neighbours.SETTLE_SECONDS)
        if before is not None:
            before()

    benchmark.group = f"fastlstm next to other threads, {shape.label}, {threads} threads"
    benchmark.extra_info.update(
        shape=shape.key, threads=threads, case=neighbour.name, numpy_blas=neighbours.blas_description()
    )
    with neighbour.around():
        benchmark.pedantic(lambda: forward(x), setup=settle_then_neighbour, rounds=neighbours.ROUNDS)
