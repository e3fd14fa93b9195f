"""The benchmark of ``python -m fastlstm bench``: fastlstm against other LSTM implementations ("peers") over a matrix
of shapes, with a correctness check before any timing.

For every shape, one fastlstm model is built with a fixed seed; every peer is built from that model's configuration
and ``state_dict``, so all of them compute the same function on the same random input. Each implementation is timed
with ``time.perf_counter`` over whole calls (one warm-up, then at least ``MIN_RUNS`` runs and ``repeat_seconds`` of
running) and summarised by its median, which a noisy shared machine disturbs least.

To compare with another runtime, add a ``Peer`` to ``PEERS``: a name, a builder that turns a fastlstm model into a
callable ``x -> output`` of that runtime, and a check that the runtime is installed. The report, the JSON and the
pytest-benchmark suite (``benchmarks/``) pick it up from there.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import fastlstm

from . import reference

#: Largest max |output difference| between fastlstm and a peer for the results to count as agreeing. Far above the
#: float32 rounding of these shapes (about 1e-6), far below what a wrong gate or a lost step produces.
TOLERANCE = 1e-4
#: Seed of the models' weights and of the inputs: every run measures the same problems.
SEED = 0
#: Timed runs per implementation and shape: at least MIN_RUNS for a meaningful median, at most MAX_RUNS so that a
#: call of a few microseconds does not loop for the whole repeat time.
MIN_RUNS = 5
MAX_RUNS = 10_000
#: Environment variables that pin OpenBLAS to another core type or cache size than the machine's; they can make
#: NumPy's BLAS, the baseline, much slower. The header reports them; the benchmark never changes them.
BLAS_TUNING_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---- shapes -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One benchmark problem: an LSTM of ``num_layers`` layers over ``steps`` steps of ``batch`` sequences."""

    batch: int
    steps: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def label(self) -> str:
        """For people: ``B=8 T=100 I=H=256``, ``B=1 T=100 I=H=256 L=2 bidir``."""
        if self.input_size == self.hidden_size:
            sizes = f"I=H={self.hidden_size}"
        else:
            sizes = f"I={self.input_size} H={self.hidden_size}"
        text = f"B={self.batch} T={self.steps} {sizes}"
        if self.num_layers > 1:
            text += f" L={self.num_layers}"
        if self.bidirectional:
            text += " bidir"
        return text

    @property
    def key(self) -> str:
        """For test ids: ``8x100x256`` (as ``--shapes`` takes it when I = H), ``1x100x256-L2``, ``...-bidir``."""
        sizes = (
            f"{self.hidden_size}"
            if self.input_size == self.hidden_size
            else f"{self.input_size}x{self.hidden_size}"
        )
        text = f"{self.batch}x{self.steps}x{sizes}"
        if self.num_layers > 1:
            text += f"-L{self.num_layers}"
        if self.bidirectional:
            text += "-bidir"
        return text

    @property
    def flops(self) -> int:
        """Floating-point operations of one call: per layer and direction, the 4H gate pre-activations take
        (I_layer + H) multiply-adds each (2 flops), for every batch row and step. The element-wise cell arithmetic
        is O(H) per step and left out, as is usual for GEMM-bound kernels."""
        total = 0
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.num_directions * self.hidden_size
            per_direction = 8 * self.hidden_size * (layer_input + self.hidden_size) * self.batch * self.steps
            total += per_direction * self.num_directions
        return total


QUICK_SHAPES: tuple[Shape, ...] = (
    Shape(1, 1, 256, 256),  # one step: call overhead
    Shape(1, 100, 128, 128),
    Shape(1, 100, 256, 256),  # a streaming model: latency of the recurrence
    Shape(8, 100, 256, 256),
    Shape(64, 50, 256, 256),  # a batch: throughput
)

FULL_SHAPES: tuple[Shape, ...] = QUICK_SHAPES + (
    Shape(1, 100, 512, 512),
    Shape(1, 100, 1024, 1024),
    Shape(8, 100, 512, 512),
    Shape(64, 100, 512, 512),
    Shape(256, 50, 1024, 1024),
    Shape(1, 100, 256, 256, bidirectional=True),
    Shape(1, 100, 256, 256, num_layers=2),
)


def parse_shapes(text: str) -> list[Shape]:
    """``"1x100x256,8x100x512"`` (BxTxH, with I = H) as shapes; raises ValueError naming the bad item."""
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(f"expected BxTxH with positive integers, such as 8x100x256, got {item.strip()!r}")
        batch, steps, hidden = (int(part) for part in parts)
        shapes.append(Shape(batch, steps, hidden, hidden))
    return shapes


def build_model(shape: Shape, threads: int | None = None) -> fastlstm.LSTM:
    """The fastlstm model of ``shape`` with the benchmark's fixed weights, packed for the active ISA."""
    return fastlstm.LSTM(
        shape.input_size,
        shape.hidden_size,
        shape.num_layers,
        bidirectional=shape.bidirectional,
        seed=SEED,
        threads=threads,
    )


def make_input(shape: Shape) -> np.ndarray:
    """Standard normal float32 input (T, N, I) of ``shape``, the same in every run."""
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((shape.steps, shape.batch, shape.input_size)).astype(np.float32)


def threads_used(model: fastlstm.LSTM, shape: Shape) -> int:
    """The threads a call of ``model`` on ``shape`` runs on: the model's count or the global one, capped at the
    cores (as the C++ side caps it), else the automatic choice for the problem size."""
    requested = model.threads if model.threads is not None else fastlstm.get_num_threads()
    if requested is None:
        return model.automatic_threads(shape.steps, shape.batch)
    return min(requested, os.cpu_count() or 1)


# ---- peers ------------------------------------------------------------------------------------------------------

#: A callable taking x (T, N, I) float32 and returning the output (T, N, num_directions * H) as a NumPy array.
Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Peer:
    """Another LSTM implementation to compare fastlstm with."""

    name: str
    #: builds the peer's forward pass for the configuration and weights (``state_dict``) of a fastlstm model
    build: Callable[[fastlstm.LSTM], Forward]
    #: whether the peer can run here (its package is installed); unavailable peers are skipped and reported
    is_available: Callable[[], bool]


def _build_numpy(model: fastlstm.LSTM) -> Forward:
    # float32, not the reference's default float64: the fair baseline is the same arithmetic in plain NumPy.
    baseline = reference.LSTM(
        model.input_size,
        model.hidden_size,
        model.num_layers,
        bias=model.bias,
        batch_first=model.batch_first,
        bidirectional=model.bidirectional,
        proj_size=model.proj_size,
        dtype=np.float32,
    )
    baseline.load_state_dict(model.state_dict())
    return lambda x: baseline(x)[0]


NUMPY = Peer("numpy", build=_build_numpy, is_available=lambda: True)
PEERS: tuple[Peer, ...] = (NUMPY,)


def available_peers() -> list[Peer]:
    return [peer for peer in PEERS if peer.is_available()]


def fastlstm_forward(model: fastlstm.LSTM) -> Forward:
    return lambda x: model(x)[0]


def output_difference(output: np.ndarray, expected: np.ndarray) -> float:
    """max |output - expected|; inf when the shapes differ and NaN when either holds NaN, so that a broken output
    fails ``< TOLERANCE`` instead of stopping the benchmark."""
    if output.shape != expected.shape:
        return math.inf
    return float(np.max(np.abs(output.astype(np.float64) - expected), initial=0.0))


# ---- timing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    median_seconds: float
    min_seconds: float
    runs: int


def time_calls(forward: Forward, x: np.ndarray, repeat_seconds: float) -> Timing:
    """Time ``forward(x)`` after one warm-up call (first touch of buffers, thread start-up, BLAS initialisation)
    until at least MIN_RUNS runs and ``repeat_seconds`` of running, or MAX_RUNS runs."""
    forward(x)
    times: list[float] = []
    while len(times) < MIN_RUNS or (sum(times) < repeat_seconds and len(times) < MAX_RUNS):
        start = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), len(times))


# ---- one shape --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerResult:
    peer: str
    timing: Timing
    #: output_difference of the peer's output from fastlstm's, measured before timing
    max_abs_diff: float

    @property
    def agrees(self) -> bool:
        return self.max_abs_diff < TOLERANCE


@dataclass(frozen=True)
class Row:
    """The results of one shape."""

    shape: Shape
    isa: str
    threads: int
    fastlstm: Timing
    peers: tuple[PeerResult, ...]

    @property
    def gflops(self) -> float:
        return self.shape.flops / self.fastlstm.median_seconds / 1e9

    def speedup(self, peer: PeerResult) -> float:
        """How many times faster fastlstm is than ``peer``: peer median / fastlstm median."""
        return peer.timing.median_seconds / self.fastlstm.median_seconds

    @property
    def agrees(self) -> bool:
        return all(peer.agrees for peer in self.peers)


def measure_shape(shape: Shape, peers: Sequence[Peer], repeat_seconds: float, threads: int | None) -> Row:
    """Build fastlstm and every peer for ``shape``, compare their outputs, then time each of them."""
    model = build_model(shape, threads)
    x = make_input(shape)
    run_fastlstm = fastlstm_forward(model)
    expected = run_fastlstm(x)
    peer_forwards = [(peer.name, peer.build(model)) for peer in peers]
    differences = [output_difference(forward(x), expected) for _, forward in peer_forwards]

    fastlstm_timing = time_calls(run_fastlstm, x, repeat_seconds)
    peer_results = tuple(
        PeerResult(name, time_calls(forward, x, repeat_seconds), difference)
        for (name, forward), difference in zip(peer_forwards, differences)
    )
    return Row(shape, model.isa, threads_used(model, shape), fastlstm_timing, peer_results)


def measure(
    shapes: Sequence[Shape],
    peers: Sequence[Peer],
    repeat_seconds: float,
    threads: int | None,
    progress: TextIO = sys.stderr,
) -> list[Row]:
    """Measure every shape, printing a progress line per shape to ``progress``."""
    rows = []
    for number, shape in enumerate(shapes, start=1):
        print(f"[{number}/{len(shapes)}] {shape.label} ...", end="", file=progress, flush=True)
        start = time.perf_counter()
        rows.append(measure_shape(shape, peers, repeat_seconds, threads))
        print(f" {time.perf_counter() - start:.1f} s", file=progress, flush=True)
    return rows


# ---- environment ------------------------------------------------------------------------------------------------


def blas_info() -> list[dict[str, Any]] | None:
    """NumPy's BLAS libraries as threadpoolctl sees them, or None when threadpoolctl is not installed."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return [
        {
            "internal_api": info.get("internal_api"),
            "version": info.get("version"),
            "architecture": info.get("architecture"),  # OpenBLAS's core type; other libraries have none
            "num_threads": info.get("num_threads"),
        }
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    ]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(threads: int | None, peers: Sequence[Peer]) -> dict[str, Any]:
    """Versions, machine and settings that the numbers depend on; ``threads`` as requested (None: automatic)."""
    return {
        "fastlstm": fastlstm.__version__,
        "isa": fastlstm.active_isa(),
        "available_isas": fastlstm.available_isas(),
        "threads": threads if threads is not None else fastlstm.get_num_threads(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "blas_tuning_variables": {name: os.environ[name] for name in BLAS_TUNING_VARIABLES if name in os.environ},
        "peers": [peer.name for peer in peers],
        "unavailable_peers": [peer.name for peer in PEERS if peer not in peers],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


# ---- report -----------------------------------------------------------------------------------------------------


def _describe_blas(blas: list[dict[str, Any]] | None) -> str:
    if blas is None:
        return "unknown (threadpoolctl is not installed)"
    if not blas:
        return "none found by threadpoolctl"
    return "; ".join(
        f"{info['internal_api']} {info['version']}"
        + (f" ({info['architecture']})" if info["architecture"] else "")
        + f", {info['num_threads']} threads"
        for info in blas
    )


def header_lines(env: dict[str, Any], repeat_seconds: float) -> list[str]:
    threads = env["threads"]
    threads_text = "automatic, per shape (column 'threads')" if threads is None else f"{threads} per call"
    lines = [
        f"fastlstm {env['fastlstm']}   ISA {env['isa']} (available: {', '.join(env['available_isas'])})"
        f"   threads: {threads_text}",
        f"numpy {env['numpy']}   BLAS: {_describe_blas(env['blas'])}",
        f"python {env['python']}   {env['platform']}   {env['cpu']}, {env['cpu_count']} CPUs",
        f"timing: median of >= {MIN_RUNS} runs and >= {repeat_seconds:g} s per implementation, after a warm-up",
    ]
    if env["unavailable_peers"]:
        lines.append(f"peers not installed, skipped: {', '.join(env['unavailable_peers'])}")
    for name, value in env["blas_tuning_variables"].items():
        lines.append(f"note: {name}={value} is set; it can slow NumPy's BLAS (the baseline) on this machine")
    return lines


def _milliseconds(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]
    left: bool = False  # text columns are left-aligned, numbers right-aligned


def columns(peer_names: Sequence[str]) -> list[Column]:
    """The table's columns; a new measurement (such as percent of FMA peak) is one more Column here."""

    def peer_result(row: Row, name: str) -> PeerResult:
        return next(result for result in row.peers if result.peer == name)

    table = [
        Column("shape", lambda row: row.shape.label, left=True),
        Column("threads", lambda row: str(row.threads)),
        Column("fastlstm ms", lambda row: _milliseconds(row.fastlstm.median_seconds)),
        Column("GFLOP/s", lambda row: f"{row.gflops:.1f}"),
    ]
    for name in peer_names:
        # Default arguments bind this peer's name; a closure would see the loop's last one.
        table += [
            Column(f"{name} ms", lambda row, name=name: _milliseconds(peer_result(row, name).timing.median_seconds)),
            Column(f"speed-up vs {name}", lambda row, name=name: f"{row.speedup(peer_result(row, name)):.2f}x"),
        ]
    table.append(
        Column("max |diff|", lambda row: f"{max(p.max_abs_diff for p in row.peers):.1e}" + ("" if row.agrees else " !"))
    )
    return table


def format_table(rows: Sequence[Row], peer_names: Sequence[str]) -> list[str]:
    table = columns(peer_names)
    cells = [[column.cell(row) for column in table] for row in rows]
    widths = [max([len(column.header), *(len(line[i]) for line in cells)]) for i, column in enumerate(table)]

    def line(texts: Sequence[str]) -> str:
        aligned = (
            text.ljust(width) if column.left else text.rjust(width)
            for text, width, column in zip(texts, widths, table)
        )
        return "  ".join(aligned).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line([column.header for column in table]), rule, *(line(texts) for texts in cells)]


def footer_lines(rows: Sequence[Row]) -> list[str]:
    lines = [
        "GFLOP/s: 8*H*(I+H)*B*T per layer and direction / fastlstm median time.",
        "speed-up vs X: X median time / fastlstm median time (higher: fastlstm is faster).",
        f"max |diff|: largest output difference from any peer, checked before timing (limit {TOLERANCE:.0e}).",
    ]
    for row in rows:
        for peer in row.peers:
            if not peer.agrees:
                difference = f"{peer.max_abs_diff:.3g} >= {TOLERANCE:.0e}"
                lines.append(f"! {row.shape.label}: fastlstm and {peer.peer} differ by {difference}")
    return lines


def report(rows: Sequence[Row], env: dict[str, Any], repeat_seconds: float) -> str:
    peer_names = env["peers"]
    lines = [
        *header_lines(env, repeat_seconds),
        "",
        *format_table(rows, peer_names),
        "",
        *footer_lines(rows),
    ]
    return "\n".join(lines) + "\n"


def _row_record(row: Row) -> dict[str, Any]:
    return {
        "label": row.shape.label,
        "shape": asdict(row.shape),
        "flops": row.shape.flops,
        "isa": row.isa,
        "threads": row.threads,
        "fastlstm": {**asdict(row.fastlstm), "gflops": row.gflops},
        "peers": {
            peer.peer: {
                **asdict(peer.timing),
                "max_abs_diff": peer.max_abs_diff,
                "agrees": peer.agrees,
                "speedup": row.speedup(peer),
            }
            for peer in row.peers
        },
    }


def write_json(path: Path, rows: Sequence[Row], env: dict[str, Any], repeat_seconds: float) -> None:
    document = {
        "environment": env,
        "settings": {
            "repeat_seconds": repeat_seconds,
            "min_runs": MIN_RUNS,
            "max_runs": MAX_RUNS,
            "tolerance": TOLERANCE,
            "seed": SEED,
        },
        "rows": [_row_record(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# ---- entry point ------------------------------------------------------------------------------------------------


def run(
    shapes: Sequence[Shape],
    *,
    repeat_seconds: float = 0.2,
    isa: str | None = None,
    threads: int | None = None,
    json_path: Path | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Measure ``shapes``, print the report to ``out`` and optionally write JSON. Returns the exit status: 0, or 1
    when some peer's output disagreed with fastlstm's."""
    peers = available_peers()
    with fastlstm.use_isa(isa) if isa else contextlib.nullcontext():
        env = environment(threads, peers)
        rows = measure(shapes, peers, repeat_seconds, threads)
    out.write(report(rows, env, repeat_seconds))
    if json_path is not None:
        write_json(json_path, rows, env, repeat_seconds)
    return 0 if all(row.agrees for row in rows) else 1
