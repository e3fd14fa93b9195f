"""``python -m fastlstm bench --torch-model``: a whole PyTorch model, as written, against the same model after
``fastlstm.torch.optimize``: a tagger (``nn.Embedding`` -> 2-layer bidirectional ``nn.LSTM`` -> ``nn.Linear``)
under ``torch.inference_mode``, at batches of one length and on a ``PackedSequence`` of mixed lengths, at 1 and 2
threads (``torch.set_num_threads``, which the optimized model follows).

The two models and every case take turns call by call, in a rotating order, so that a slow spell of a shared
machine falls on all of them alike; each turn makes a warm-up call and then times ``CALLS_PER_TURN`` calls back to
back, as a server does (torch's pool is then warm, and its threads are still spinning from the previous call's
embedding when the LSTM starts). Medians are reported, with the threads' time on a CPU and waiting runnable for one
(``neighbours.thread_times``). torch is imported only when this runs."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .neighbours import THREAD_GROUPS, CaseTiming, ThreadTotals, in_turns, thread_times

VOCABULARY, EMBEDDING, HIDDEN, TAGS, STEPS = 1000, 128, 256, 32, 100
#: (name, batch, packed): batches of T = STEPS, and a PackedSequence batch of lengths drawn from [10, STEPS]
CASES = (("B=1", 1, False), ("B=8", 8, False), ("B=32", 32, False), ("packed B=32", 32, True))
THREAD_COUNTS = (1, 2)
ROUNDS = 12
CALLS_PER_TURN = 3


def build_tagger(seed: int = 0):
    """The tagger of the benchmark, in eval mode, with torch's initialisation from ``seed``."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCABULARY, EMBEDDING)
            self.lstm = torch.nn.LSTM(EMBEDDING, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)
            self.head = torch.nn.Linear(2 * HIDDEN, TAGS)

        def forward(self, tokens, lengths=None):
            features = self.embedding(tokens)
            if lengths is None:
                return self.head(self.lstm(features)[0])
            packed = pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
            output, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=tokens.shape[1])
            return self.head(output)

    torch.manual_seed(seed)
    return Tagger().eval()


def make_inputs(batch: int, packed: bool, seed: int = 1) -> tuple[Any, ...]:
    """(tokens,) or (tokens, lengths) for a case."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCABULARY, (batch, STEPS), generator=generator)
    if not packed:
        return (tokens,)
    return tokens, torch.randint(10, STEPS + 1, (batch,), generator=generator)


#: a median call and its threads' ms per call (neighbours.CaseTiming)
Timing = CaseTiming


def time_turns(calls: dict[Any, Callable[[], object]], rounds: int, threads_of: Callable[[Any], int]) -> dict:
    """Each call's median time and its threads' times; the calls take turns (see the module's doc)."""
    import torch

    keys = list(calls)
    times: dict[Any, list[float]] = {key: [] for key in keys}
    threads = {key: ThreadTotals() for key in keys}
    for round_number in range(rounds):
        for key in in_turns(keys, round_number):
            torch.set_num_threads(threads_of(key))
            calls[key]()  # warm-up: torch's pool at this count, caches
            before = thread_times()
            for _ in range(CALLS_PER_TURN):
                start = time.perf_counter()
                calls[key]()
                times[key].append(time.perf_counter() - start)
            threads[key].add(before, thread_times())
    return {
        key: Timing(statistics.median(runs), threads[key].per_call_ms(rounds * CALLS_PER_TURN))
        for key, runs in times.items()
    }


def measure_torch_model(rounds: int = ROUNDS, progress: TextIO = sys.stderr) -> dict:
    """{(case name, threads, "torch" or "fastlstm"): Timing}, after checking that the two models agree."""
    import torch

    import fastlstm.torch

    original = build_tagger()
    optimized = fastlstm.torch.optimize(original)
    calls = {}
    previous = torch.get_num_threads()
    try:
        for name, batch, packed in CASES:
            arguments = make_inputs(batch, packed)
            with torch.inference_mode():
                difference = float((original(*arguments) - optimized(*arguments)).abs().max())
            if not difference < 1e-4:  # both float32: far below this; a wrong result is far above
                raise AssertionError(f"{name}: the optimized tagger differs from the original by {difference:.3g}")
            for threads in THREAD_COUNTS:
                for label, model in (("torch", original), ("fastlstm", optimized)):
                    calls[(name, threads, label)] = _inference_call(model, arguments)
        print(f"torch model: {len(calls)} cases x {rounds} rounds ...", file=progress, flush=True)
        return time_turns(calls, rounds, threads_of=lambda key: key[1])
    finally:
        torch.set_num_threads(previous)


def _inference_call(model, arguments) -> Callable[[], object]:
    import torch

    def call() -> object:
        with torch.inference_mode():
            return model(*arguments)

    return call


def torch_model_report(results: dict) -> str:
    """The table: per case and thread count, the medians, the speed-up, and the optimized calls' threads."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    lines = [
        f"PyTorch tagger (Embedding {VOCABULARY}x{EMBEDDING} -> 2-layer bidirectional LSTM H={HIDDEN} -> Linear "
        f"{2 * HIDDEN}x{TAGS}), T={STEPS}, torch.inference_mode, median ms per call; {os.cpu_count()} CPUs, load "
        f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"torch's OpenMP: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, GOMP_SPINCOUNT="
        f"{os.environ.get('GOMP_SPINCOUNT', 'unset')} (how long its idle workers spin after each of its ops)",
        "Last columns, optimized calls: ms per call each group of threads ran on a CPU / waited runnable for one "
        "(fastlstm's calls run their threads on torch's OpenMP workers, among the other threads)",
        "",
        f"{'case':12s} {'threads':>7s} {'torch':>8s} {'optimized':>9s} {'speed-up':>8s}"
        + "".join(f" {group:>16s}" for group in THREAD_GROUPS),
    ]
    for name, _, _ in CASES:
        for threads in THREAD_COUNTS:
            ours, theirs = results[(name, threads, "fastlstm")], results[(name, threads, "torch")]
            line = (
                f"{name:12s} {threads:7d} {theirs.seconds * 1e3:8.2f} {ours.seconds * 1e3:9.2f} "
                f"{theirs.seconds / ours.seconds:7.2f}x"
            )
            if ours.thread_ms is not None:
                line += "".join(f" {f'{on_cpu:.1f} / {waiting:.1f}':>16s}" for on_cpu, waiting in ours.thread_ms)
            lines.append(line)
    return "\n".join(lines) + "\n"


#: The case of the thread-sharing section: the batch at which torch's spinning workers cost fastlstm most.
SHARING_BATCH = 8


def measure_thread_sharing(rounds: int = ROUNDS, progress: TextIO = sys.stderr) -> dict[str, Timing]:
    """At B=SHARING_BATCH and 2 threads, taking turns: the original and optimized models, the optimized model with
    fastlstm held to 1 thread, and the optimized model's LSTM alone on the embedded input (no torch op before it)."""
    import torch

    import fastlstm.torch

    original = build_tagger()
    optimized = fastlstm.torch.optimize(original)
    one_thread = fastlstm.torch.optimize(original, threads=1)
    arguments = make_inputs(SHARING_BATCH, False)
    with torch.inference_mode():
        features = original.embedding(arguments[0])
    calls = {
        "original model": _inference_call(original, arguments),
        "optimized model": _inference_call(optimized, arguments),
        "optimized, fastlstm on 1 thread": _inference_call(one_thread, arguments),
        "its LSTM alone (no torch op before)": _inference_call(optimized.lstm, (features,)),
    }
    print(f"torch model: thread sharing, {len(calls)} cases x {rounds} rounds ...", file=progress, flush=True)
    previous = torch.get_num_threads()
    try:
        return time_turns(calls, rounds, threads_of=lambda key: 2)
    finally:
        torch.set_num_threads(previous)


def thread_sharing_report(results: dict[str, Timing]) -> str:
    lines = [
        "",
        f"Sharing the cores with torch's pool: B={SHARING_BATCH}, T={STEPS}, torch at 2 threads, median ms per call",
        "",
        f"{'case':36s} {'ms':>8s}" + "".join(f" {group:>16s}" for group in THREAD_GROUPS),
    ]
    for name, timing in results.items():
        line = f"{name:36s} {timing.seconds * 1e3:8.2f}"
        if timing.thread_ms is not None:
            line += "".join(f" {f'{on_cpu:.1f} / {waiting:.1f}':>16s}" for on_cpu, waiting in timing.thread_ms)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_torch_model(out: TextIO | None = None, progress: TextIO | None = None, rounds: int | None = None) -> int:
    """Measures and prints the table (``out``: stdout, progress: stderr); returns the exit status (2 without
    torch)."""
    out = out or sys.stdout
    progress = progress or sys.stderr
    try:
        import torch  # noqa: F401
    except ImportError:
        print("python -m fastlstm bench --torch-model: needs PyTorch: pip install torch", file=progress)
        return 2
    out.write(torch_model_report(measure_torch_model(rounds or ROUNDS, progress)))
    out.write(thread_sharing_report(measure_thread_sharing(rounds or ROUNDS, progress)))
    return 0
