"""pytest-benchmark suite: one full forward call per round, for every shape of ``python -m fastlstm bench`` (quick
and full matrices: odd sizes, bidirectional and 2-layer models included), at 1 and 2 threads (as far as the machine
has them), and every implementation: fastlstm at each kernel variant this CPU runs, and each installed peer, checked
against the NumPy reference before it is timed. Results are grouped by shape and thread count so that the
implementations appear side by side; extra_info holds flops, threads, implementation, precision and GFLOP/s, and
with ``--benchmark-json`` the ratios of peers and fastlstm (see conftest).

fastlstm in the reduced precisions (``test_forward_reduced_precision``, bf16 and int8) runs on the shapes of their
acceptance figures, next to the float32 peers of ``test_forward`` and the peers of its precision (openvino in bf16;
there is no int8 peer). At batch 1 (T = 100, H = 512 and 1024) and for the single step (1, 1, 256), at 1 and 2
threads: bf16 >= 1.7x the fastest float32 peer (fastlstm's ``best_fp32_peer_speedup``) and >= 1.2x openvino-bf16
(its ``fastlstm_speedup``), int8 >= 2.5x the fastest float32 peer; at batch 64, H = 512, bf16 >= 1.0x openvino-bf16.
Select both tests with ``-k`` on a shape (``-k "reduced_precision and int8"`` selects the int8 cases alone; ``bf16``
also matches the ISA ``avx512bf16``):

    python -m pytest benchmarks --benchmark-min-rounds=10 [-k 1x100x512] [--benchmark-json FILE]
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastlstm
from fastlstm import bench

#: fastlstm at every kernel variant this CPU runs, then every installed peer (names as conftest's ``subject`` takes)
FASTLSTM_IMPLEMENTATIONS = [f"fastlstm-{isa}" for isa in fastlstm.available_isas()]
IMPLEMENTATIONS = FASTLSTM_IMPLEMENTATIONS + [peer.name for peer in bench.available_peers()]


def _implementations_in(precision: str) -> list[str]:
    """fastlstm in ``precision`` at every kernel variant, and the installed peers that compute in it (openvino-bf16
    in bf16); the float32 peers they are compared with are timed by test_forward."""
    peers = [peer.name for peer in bench.available_peers([precision]) if peer.precision == precision]
    return FASTLSTM_IMPLEMENTATIONS + peers


#: (precision, implementation) for each reduced precision and each implementation computing in it.
REDUCED_PRECISION_CASES = [
    (precision, implementation)
    for precision in bench.PRECISIONS
    if precision != "fp32"
    for implementation in _implementations_in(precision)
]
#: Every shape of the quick and the full matrix, each once.
SHAPES = list(dict.fromkeys(bench.QUICK_SHAPES + bench.FULL_SHAPES))
THREAD_COUNTS = [threads for threads in (1, 2) if threads <= (os.cpu_count() or 1)]
#: The shapes of the reduced precisions' acceptance figures (all in the full matrix too, where test_forward times the
#: float32 peers).
REDUCED_PRECISION_SHAPES = [
    bench.Shape(1, 1, 256, 256),
    bench.Shape(1, 100, 512, 512),
    bench.Shape(1, 100, 1024, 1024),
    bench.Shape(64, 100, 512, 512),
]


def _time_forward(
    benchmark, shape: bench.Shape, threads: int, implementation: str, subject, x: np.ndarray, reference: np.ndarray
) -> None:
    """Check ``subject`` against the float32 ``reference`` within the tolerance of its precision, then time it."""
    benchmark.group = f"{shape.label}, {threads} thread(s)"
    benchmark.extra_info.update(
        shape=shape.key,
        implementation=implementation,
        isa=subject.isa,
        threads=threads,
        precision=subject.precision,
        flops=shape.flops,
    )
    with subject.limit_threads():
        difference = bench.output_difference(subject.forward(x), reference)
        tolerance = bench.TOLERANCES[subject.precision]
        assert difference < tolerance, (
            f"{implementation} in {subject.precision} differs from the float32 NumPy reference by {difference:.3g}, "
            f"expected < {tolerance:.0e}"
        )
        benchmark(subject.forward, x)
    # The rate needs the median, known only now. --benchmark-disable runs the call once untimed and keeps no stats.
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = shape.flops / benchmark.stats.stats.median / 1e9


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
    _time_forward(benchmark, shape, threads, implementation, subject, x, reference_output)


@pytest.mark.parametrize("precision, implementation", REDUCED_PRECISION_CASES)
@pytest.mark.parametrize("threads", THREAD_COUNTS, ids=lambda threads: f"{threads}t")
@pytest.mark.parametrize("shape", REDUCED_PRECISION_SHAPES, ids=lambda shape: shape.key)
def test_forward_reduced_precision(
    benchmark,
    shape: bench.Shape,
    threads: int,
    implementation: str,
    precision: str,
    subject,
    x: np.ndarray,
    reference_output: np.ndarray,
) -> None:
    _time_forward(benchmark, shape, threads, implementation, subject, x, reference_output)


#: Variable lengths: the same padded batch without lengths, with every row at full length, and with lengths drawn
#: uniformly from 1..T (about half the steps valid). The target: a call with lengths takes at most 1.2x the padded
#: call of its group (compare them in ``python -m pytest benchmarks -k test_lengths``).
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


#: Two models, each called on its own Python thread with one kernel thread: the calls release the GIL, so on a machine
#: with two cores the pair should take about the time of one ("overlap" in extra_info: serial time / concurrent
#: time, 2.0 for a perfect overlap, 1.0 for none).
OVERLAP_SHAPES = [bench.Shape(1, 100, 256, 256), bench.Shape(8, 100, 256, 256)]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two models overlap only on two or more cores")
@pytest.mark.parametrize("shape", OVERLAP_SHAPES, ids=lambda shape: shape.key)
def test_two_models_in_two_python_threads(benchmark, shape: bench.Shape) -> None:
    import threading
    import time

    models = [fastlstm.LSTM(shape.input_size, shape.hidden_size, seed=seed, threads=1) for seed in (0, 1)]
    x = np.random.default_rng(0).standard_normal((shape.steps, shape.batch, shape.input_size)).astype(np.float32)
    calls = 20

    def call_both_serially():
        for model in models:
            for _ in range(calls):
                model(x)

    def call_both_together():
        threads = [threading.Thread(target=lambda m=m: [m(x) for _ in range(calls)]) for m in models]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    serial = []
    for _ in range(5):
        start = time.perf_counter()
        call_both_serially()
        serial.append(time.perf_counter() - start)
    benchmark.group = f"two models in two Python threads, {shape.label}"
    benchmark.extra_info.update(shape=shape.key, calls_per_model=calls)
    benchmark(call_both_together)
    if benchmark.stats is not None:
        benchmark.extra_info["overlap"] = float(np.median(serial)) / benchmark.stats.stats.median


#: fastlstm's first calls right after onnxruntime's, after no pause, 10 ms, and the pause that the bench command takes
#: before each implementation's turn (bench.timing.SETTLE_SECONDS): onnxruntime's worker threads spin on the cores for
#: a while after its last call, and slow down whatever runs next on them until they sleep.
SETTLE_PAUSES = [0.0, 0.01, bench.timing.SETTLE_SECONDS]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two threads of fastlstm need two cores")
@pytest.mark.parametrize("pause_seconds", SETTLE_PAUSES, ids=lambda seconds: f"{seconds * 1e3:g}ms")
def test_fastlstm_right_after_onnxruntime(benchmark, pause_seconds: float) -> None:
    import time

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    shape, threads, calls = bench.Shape(1, 100, 256, 256), 2, 10
    model = bench.build_model(shape, threads)
    x = bench.make_input(shape)
    onnxruntime = next(peer for peer in bench.PEERS if peer.name == "onnxruntime").build(model, threads)
    forward = bench.fastlstm_forward(model)

    def onnxruntime_then_pause():
        for _ in range(calls):
            onnxruntime(x)
        time.sleep(pause_seconds)

    def fastlstm_calls():
        for _ in range(calls):
            forward(x)

    benchmark.group = f"{calls} fastlstm calls right after onnxruntime's, {shape.label}, {threads} threads"
    benchmark.extra_info.update(shape=shape.key, threads=threads, calls=calls, pause_seconds=pause_seconds)
    benchmark.pedantic(fastlstm_calls, setup=onnxruntime_then_pause, rounds=20)


#: The classifier head (SequenceModel's linear layer and softmax) at 1 and 2 threads, over work sizes rows x in x out
#: around csrc/linear.cc's kLinearMinWorkForThreads (the size from which its automatic count takes every core):
#: compare the two thread counts of one size.
HEAD_SIZES = [(4, 256, 64), (4, 256, 256), (8, 256, 256), (16, 256, 256), (64, 256, 256), (256, 256, 256)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", HEAD_SIZES, ids=lambda size: "x".join(map(str, size)))
def test_classifier_head_threads(benchmark, size: tuple[int, int, int], threads: int) -> None:
    rows, in_features, out_features = size
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
    head = fastlstm._core.PackedLinear(fastlstm.active_isa(), weight, np.zeros(out_features, np.float32))
    x = rng.standard_normal((rows, in_features)).astype(np.float32)
    benchmark.group = f"classifier head {rows}x{in_features}x{out_features}"
    benchmark.extra_info.update(work=rows * in_features * out_features, threads=threads)
    benchmark(head.forward, x, True, threads)
