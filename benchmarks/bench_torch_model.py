"""A whole PyTorch model before and after ``fastlstm.torch.optimize`` (``python -m fastlstm bench --torch-model``
prints the same cases as one table, with the threads' time): the tagger of ``fastlstm.bench.torch_model``
(Embedding -> 2-layer bidirectional LSTM H=256 -> Linear) under ``torch.inference_mode``, batches 1, 8 and 32 of
T=100 and a PackedSequence batch of mixed lengths, at 1 and 2 threads (``torch.set_num_threads``).

Each case times the original and the optimized model taking turns call by call (``time_turns``: a shared machine's
slow spells fall on both), and records their medians and the speed-up in ``extra_info``; the benchmark's own timing
is the optimized model's call."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

import fastlstm.torch  # noqa: E402
from fastlstm.bench import torch_model  # noqa: E402

THREAD_COUNTS = [threads for threads in torch_model.THREAD_COUNTS if threads <= (os.cpu_count() or 1)]


@pytest.fixture(scope="module")
def models():
    original = torch_model.build_tagger()
    return original, fastlstm.torch.optimize(original)


@pytest.mark.parametrize("threads", THREAD_COUNTS)
@pytest.mark.parametrize("case", torch_model.CASES, ids=lambda case: case[0].replace(" ", "-"))
def test_tagger_original_against_optimized(benchmark, models, case, threads):
    name, batch, packed = case
    original, optimized = models
    arguments = torch_model.make_inputs(batch, packed)
    calls = {
        label: torch_model._inference_call(model, arguments)
        for label, model in (("torch", original), ("fastlstm", optimized))
    }
    previous = torch.get_num_threads()
    try:
        timings = torch_model.time_turns(calls, torch_model.ROUNDS, threads_of=lambda key: threads)
        torch.set_num_threads(threads)
        benchmark.group = f"PyTorch tagger, {name}, T={torch_model.STEPS}, {threads} threads"
        benchmark.extra_info.update(
            case=name,
            threads=threads,
            torch_ms=timings["torch"].seconds * 1e3,
            optimized_ms=timings["fastlstm"].seconds * 1e3,
            speedup=timings["torch"].seconds / timings["fastlstm"].seconds,
            load_average=os.getloadavg()[0],
        )
        benchmark.pedantic(calls["fastlstm"], rounds=torch_model.ROUNDS, warmup_rounds=1)
    finally:
        torch.set_num_threads(previous)
