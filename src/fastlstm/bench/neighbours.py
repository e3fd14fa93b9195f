"""``python -m fastlstm bench --neighbours``: fastlstm calls next to other libraries' threads. In a real program,
NumPy's BLAS, torch's OpenMP pool or onnxruntime run just before fastlstm, and their worker threads keep spinning on
the cores for a while after their own call; another process may hold a core. Each case times a fastlstm call right
after its neighbour (or while it runs) at 1 and 2 threads, against the same call undisturbed.

The cases take turns call by call (ROUNDS rounds, each case and thread count once per round, in a rotating order), so
that a slow spell of a shared machine falls on all of them alike; each call starts SETTLE_SECONDS after the previous
one, long enough for every neighbour's threads to go idle (see timing.SETTLE_SECONDS), then runs the neighbour,
then the timed call. Medians are reported.

Each case also times a yardstick: work of the same CPU time as the 1-thread call, on 2 threads that take small
pieces of it whenever they are free and never wait for each other (``_core.calibration.shared_work``). No 2-thread
job of that much work does better beside the same neighbour, so its slowdown ("floor") is the least slowdown a
2-thread fastlstm call could have there: on 2 cores with another library's thread spinning, 3 threads share 2 cores."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from .peers import Forward, Unsupported, fastlstm_forward
from .shapes import Shape, build_model, make_input

#: The shape of the issue that asked for this benchmark: 2-layer bidirectional, I = 128, H = 256, B = 8, T = 100.
NEIGHBOURS_SHAPE = Shape(8, 100, 128, 256, num_layers=2, bidirectional=True)
THREAD_COUNTS = (1, 2)
#: The yardstick's key among a case's thread counts (see the module's doc).
SHARED_WORK = "shared work"
#: The yardstick's pieces: about this long each, so that the last one keeps a thread waiting little.
SHARED_WORK_PIECE_SECONDS = 50e-6
ROUNDS = 30
#: Pause before each neighbour's run: longer than any neighbour's spinning lasts (OpenBLAS: about 0.1 s).
SETTLE_SECONDS = 0.25
#: The NumPy neighbour: a 512 x 512 float32 matrix product, which OpenBLAS runs on all its threads.
MATMUL_SIZE = 512


@dataclass(frozen=True)
class Neighbour:
    """One case: ``prepare(shape, threads)`` returns what runs right before each fastlstm call (None: nothing), in
    the context ``around`` (which, for the busy process, keeps it running through the timings)."""

    name: str
    modules: tuple[str, ...]
    prepare: Callable[[Shape, int], Callable[[], object] | None]
    around: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext

    def is_available(self) -> bool:
        import importlib.util

        return all(importlib.util.find_spec(module) is not None for module in self.modules)


def _nothing(shape: Shape, threads: int) -> None:
    return None


def _numpy_matmul(shape: Shape, threads: int) -> Callable[[], object]:
    a = np.random.default_rng(0).standard_normal((MATMUL_SIZE, MATMUL_SIZE)).astype(np.float32)
    return lambda: a @ a


def _torch_embedding(shape: Shape, threads: int) -> Callable[[], object]:
    import torch

    # torch at its default thread count: features looked up for the batch, as a model's front end does.
    embedding = torch.nn.Embedding(1000, shape.input_size)
    tokens = torch.randint(0, 1000, (shape.batch, shape.steps), generator=torch.Generator().manual_seed(0))

    def look_up() -> object:
        with torch.inference_mode():
            return embedding(tokens)

    return look_up


def _numpy_matmul_one_thread(shape: Shape, threads: int) -> Callable[[], object]:
    import threadpoolctl

    matmul = _numpy_matmul(shape, threads)

    def held_to_one_thread() -> object:
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            return matmul()

    return held_to_one_thread


def _torch_embedding_one_thread(shape: Shape, threads: int) -> Callable[[], object]:
    import torch

    look_up = _torch_embedding(shape, threads)

    def held_to_one_thread() -> object:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return look_up()
        finally:
            torch.set_num_threads(previous)

    return held_to_one_thread


def _onnxruntime_run(shape: Shape, threads: int, spinning: bool = True) -> Callable[[], object]:
    import onnxruntime

    from .peers import INPUT_NAME, OUTPUT_NAME, _onnx_bytes

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2  # onnxruntime on every core, its usual setting
    if not spinning:  # its workers sleep as soon as they have nothing to do
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(_onnx_bytes(build_model(shape)), options, providers=["CPUExecutionProvider"])
    x = make_input(shape)
    return lambda: session.run([OUTPUT_NAME], {INPUT_NAME: x})


def _onnxruntime_run_without_spinning(shape: Shape, threads: int) -> Callable[[], object]:
    return _onnxruntime_run(shape, threads, spinning=False)


@contextlib.contextmanager
def busy_process() -> Iterator[None]:
    """Another process spinning on one core while the block runs."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # started and spinning
        yield
    finally:
        process.kill()
        process.wait()


NEIGHBOURS: tuple[Neighbour, ...] = (
    Neighbour("alone", (), _nothing),
    Neighbour("after a NumPy matmul", (), _numpy_matmul),
    Neighbour("after a torch op", ("torch",), _torch_embedding),
    Neighbour("after an onnxruntime run", ("onnxruntime", "onnx"), _onnxruntime_run),
    # What users can do: the same neighbours told not to leave threads spinning.
    Neighbour("after a NumPy matmul on 1 BLAS thread", ("threadpoolctl",), _numpy_matmul_one_thread),
    Neighbour("after a torch op on 1 torch thread", ("torch",), _torch_embedding_one_thread),
    Neighbour("after onnxruntime, allow_spinning=0", ("onnxruntime", "onnx"), _onnxruntime_run_without_spinning),
    Neighbour("another process busy on one core", (), _nothing, around=busy_process),
)


def blas_description() -> str:
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel (the CPU type it chose) and threads."""
    try:
        import threadpoolctl
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    infos = [info for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    return "; ".join(
        f"{info.get('internal_api')} {info.get('version')} kernel {info.get('architecture')}, "
        f"{info.get('num_threads')} threads"
        for info in infos
    )


#: The threads of this process, as the table's last columns group them: the calling thread, fastlstm's workers
#: (named fastlstm-N) and the others (the neighbours' worker threads).
THREAD_GROUPS = ("caller", "fastlstm workers", "other threads")


def thread_times() -> np.ndarray | None:
    """Nanoseconds that each of THREAD_GROUPS has run on a CPU and waited runnable for one (a row each), from
    Linux's /proc/self/task/*/schedstat; None where there is none."""
    totals = np.zeros((len(THREAD_GROUPS), 2), np.int64)
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat") as file:
                on_cpu, waiting = (int(field) for field in file.read().split()[:2])
            with open(f"/proc/self/task/{task}/comm") as file:
                name = file.read().strip()
        except (OSError, ValueError):
            continue  # a thread that ended meanwhile, or no schedstat
        group = 0 if int(task) == os.getpid() else 1 if name.startswith("fastlstm-") else 2
        totals[group] += (on_cpu, waiting)
    return totals


class ThreadTotals:
    """The sum of thread_times() over timed spans (added as before/after pairs); None for good once a reading is
    missing."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = np.zeros((len(THREAD_GROUPS), 2))

    def add(self, before: np.ndarray | None, after: np.ndarray | None) -> None:
        if before is None or after is None or self.total is None:
            self.total = None
        else:
            self.total += after - before

    def per_call_ms(self, calls: int) -> np.ndarray | None:
        return None if self.total is None else self.total / (calls * 1e6)


def in_turns(keys: list, round_number: int) -> list:
    """The keys in round `round_number`'s order: the list rotated by one more place each round, so that no case
    always follows the same one."""
    shift = round_number % len(keys)
    return keys[shift:] + keys[:shift]


@dataclass(frozen=True)
class CaseTiming:
    seconds: float  # the median call
    #: per call (mean), ms on a CPU and ms waiting runnable for one of each of THREAD_GROUPS; None without schedstat
    thread_ms: np.ndarray | None


def time_cases(
    cases: dict[tuple[str, int | str], tuple[Forward, Callable[[], object] | None]], x: np.ndarray, rounds: int
) -> dict[tuple[str, int | str], CaseTiming]:
    """Each case's median call and its threads' times, the cases taking turns call by call (see the module's
    doc)."""
    keys = list(cases)
    times: dict[tuple[str, int | str], list[float]] = {key: [] for key in keys}
    threads = {key: ThreadTotals() for key in keys}
    for round_number in range(rounds):
        for key in in_turns(keys, round_number):
            forward, before = cases[key]
            time.sleep(SETTLE_SECONDS)
            if before is not None:
                before()
            threads_before = thread_times()
            start = time.perf_counter()
            forward(x)
            times[key].append(time.perf_counter() - start)
            threads[key].add(threads_before, thread_times())
    return {key: CaseTiming(statistics.median(runs), threads[key].per_call_ms(rounds)) for key, runs in times.items()}


def two_models_overlap(shape: Shape, threads: int, calls: int = 10, repeats: int = 5) -> tuple[float, float]:
    """(seconds per call, overlap) of two models on ``threads`` threads each, called ``calls`` times each from two
    Python threads at once; overlap is the time of the same calls one model after the other over the time together
    (2: the two ran side by side at full speed; 1: one waited for the other)."""
    models = [fastlstm_forward(build_model(shape, threads)) for _ in range(2)]
    x = make_input(shape)

    def serially() -> None:
        for forward in models:
            for _ in range(calls):
                forward(x)

    def together() -> None:
        workers = [threading.Thread(target=lambda f=forward: [f(x) for _ in range(calls)]) for forward in models]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    serial, joint = [], []
    for _ in range(repeats):  # interleaved, so that a slow spell falls on both
        for run, runs in ((serially, serial), (together, joint)):
            start = time.perf_counter()
            run()
            runs.append(time.perf_counter() - start)
    return statistics.median(joint) / (2 * calls), statistics.median(serial) / statistics.median(joint)


def shared_work_like(forward: Forward, x: np.ndarray, threads: int = 2) -> Forward:
    """The yardstick job (see the module's doc) of as much work as ``forward(x)`` on one thread: ``threads``
    threads taking pieces of about SHARED_WORK_PIECE_SECONDS of the FMA calibration kernel."""
    import fastlstm
    from fastlstm import _core

    isa = fastlstm.active_isa()

    def thread_seconds(run: Callable[[], object]) -> float:
        runs = []
        for _ in range(5):
            start = time.thread_time()
            run()
            runs.append(time.thread_time() - start)
        return statistics.median(runs)

    # CPU time of this thread, so that a busy machine scales both alike.
    probe = 20_000
    piece_iterations = max(
        1,
        round(
            probe * SHARED_WORK_PIECE_SECONDS / thread_seconds(lambda: _core.calibration.shared_work(isa, 1, 1, probe))
        ),
    )
    piece_seconds = thread_seconds(lambda: _core.calibration.shared_work(isa, 1, 1, piece_iterations))
    pieces = max(1, round(thread_seconds(lambda: forward(x)) / piece_seconds))
    return lambda _: _core.calibration.shared_work(isa, threads, pieces, piece_iterations)


def measure_neighbours(
    shape: Shape = NEIGHBOURS_SHAPE, rounds: int = ROUNDS, progress: TextIO = sys.stderr
) -> dict[str, dict[int | str, CaseTiming]]:
    """A fastlstm call of ``shape`` at each of THREAD_COUNTS, and the SHARED_WORK yardstick, in each available
    neighbour case."""
    models = {threads: fastlstm_forward(build_model(shape, threads)) for threads in THREAD_COUNTS}
    x = make_input(shape)
    jobs: dict[int | str, Forward] = dict(models)
    if 2 in models:
        jobs[SHARED_WORK] = shared_work_like(models[1], x)
    results: dict[str, dict[int | str, CaseTiming]] = {}
    plain = [n for n in NEIGHBOURS if n.is_available() and n.around is contextlib.nullcontext]
    surrounded = [n for n in NEIGHBOURS if n.is_available() and n.around is not contextlib.nullcontext]
    # The cases that run in the same surroundings take turns; each surrounded case is timed by itself.
    for group in [plain] + [[n] for n in surrounded]:
        print(f"neighbours: {', '.join(n.name for n in group)} ...", file=progress, flush=True)
        cases: dict[tuple[str, int | str], tuple[Forward, Callable[[], object] | None]] = {}
        for neighbour in group:
            for job, forward in jobs.items():
                threads = 2 if job == SHARED_WORK else int(job)
                try:
                    cases[(neighbour.name, job)] = (forward, neighbour.prepare(shape, threads))
                except Unsupported:
                    continue
        with group[0].around():
            for (name, threads), timing in time_cases(cases, x, rounds).items():
                results.setdefault(name, {})[threads] = timing
    return results


def neighbours_report(
    shape: Shape, results: dict[str, dict[int | str, CaseTiming]], two_models: tuple[float, float]
) -> str:
    """The table of ``measure_neighbours``' results, each case against the undisturbed 1- and 2-thread calls, the
    yardstick's slowdown in the same case (the floor of the 2-thread call's), and where the 2-thread calls' threads
    spent the time: ms per call on a CPU / waiting runnable for one."""
    alone = {job: timing.seconds for job, timing in results["alone"].items()}
    lines = [
        f"fastlstm next to other libraries' threads: {shape.label}, median ms per call, {os.cpu_count()} CPUs",
        f"NumPy's BLAS: {blas_description()}",
        "floor: the same case's slowdown of 2 threads sharing as much work without ever waiting for each other "
        "(no 2-thread call can beat it there)",
        "Last columns, 2-thread calls: ms per call each group of this process's threads ran on a CPU / waited "
        "runnable for one",
        "",
        f"{'case':38s} {'1 thread':>8s} {'2 threads':>9s} {'/alone 2t':>9s} {'/alone 1t':>9s} {'floor':>6s}"
        + "".join(f" {group:>16s}" for group in THREAD_GROUPS),
    ]
    nan = float("nan")
    for name, by_threads in results.items():
        one = by_threads[1].seconds if 1 in by_threads else nan
        two = by_threads[2].seconds if 2 in by_threads else nan
        shared = by_threads[SHARED_WORK].seconds if SHARED_WORK in by_threads else nan
        floor = shared / alone[SHARED_WORK] if SHARED_WORK in alone else nan
        line = f"{name:38s} {one * 1e3:8.1f} {two * 1e3:9.1f} {two / alone[2]:9.2f} {two / alone[1]:9.2f} {floor:6.2f}"
        thread_ms = by_threads[2].thread_ms if 2 in by_threads else None
        if thread_ms is not None:
            line += "".join(f" {f'{on_cpu:.1f} / {waiting:.1f}':>16s}" for on_cpu, waiting in thread_ms)
        lines.append(line)
    per_call, overlap = two_models
    lines.append(f"{'two 1-thread models, two Py threads':38s} {per_call * 1e3:8.1f}   overlap {overlap:.2f}x")
    return "\n".join(lines) + "\n"


def run_neighbours(shape: Shape = NEIGHBOURS_SHAPE, out: TextIO | None = None, progress: TextIO | None = None) -> int:
    """Measures every case and prints the table to ``out`` (default: stdout; progress to stderr); returns the exit
    status."""
    out = out or sys.stdout
    progress = progress or sys.stderr
    results = measure_neighbours(shape, progress=progress)
    print("neighbours: two models in two Python threads ...", file=progress, flush=True)
    out.write(neighbours_report(shape, results, two_models_overlap(shape, 1)))
    return 0
