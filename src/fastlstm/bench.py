"""The benchmark of ``python -m fastlstm bench``: fastlstm against other LSTM implementations ("peers") over a matrix
of shapes and thread counts, with a correctness check before any peer is timed.

For every shape, one fastlstm model is built with a fixed seed; every peer is built from that model's configuration
and ``state_dict``, so all of them compute the same function on the same random input. Each shape is measured at
each requested thread count and precision: fastlstm calls with ``threads=`` that count, and every peer is limited to
it. A row in a reduced precision (bf16, int8) times fastlstm built in it, with the float32 peers and the peers of that
precision, all compared with fastlstm's float32 output of the same weights. Each
implementation is timed with ``time.perf_counter`` over whole calls (after a warm-up, at least ``MIN_RUNS`` runs and
``repeat_seconds`` of running, the implementations of a row taking turns in ``ROUNDS`` rounds) and summarised by its
median, which a noisy shared machine disturbs least.

To compare with another runtime, add a ``Peer`` to ``PEERS``: a name, the modules it needs, a builder that turns a
fastlstm model and a thread count into a callable ``x -> output`` of that runtime, and, for a runtime whose thread
count is a process-wide setting, a context that applies it. The report, the JSON, the plot and the pytest-benchmark
suite (``benchmarks/``) pick it up from there.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ContextManager, TextIO

import numpy as np

import fastlstm

from . import _core, reference
from ._checks import PRECISIONS as MODEL_PRECISIONS
from .interop.onnx_export import INPUT_NAME, OUTPUT_NAME, lstm_to_onnx

#: Largest max |output difference| of a float32 output (a peer's) from fastlstm's float32 one for the results to
#: count as agreeing. Far above the float32 rounding of these shapes (about 1e-6), far below what a wrong gate or a
#: lost step produces.
TOLERANCE = 1e-4
#: The same for bf16 outputs (fastlstm in bf16 and bf16 peers) against the float32 result. bf16 keeps 8 significant
#: bits, so each rounded weight, x and h is off by up to 2^-8 relative: measured here, fastlstm's bf16 output differs
#: from its float32 one by about 2.6e-3 and openvino's with the bf16 hint by about 3.5e-3 (fastlstm.LSTM documents
#: at most 4e-3). The limit leaves room for that and is still far below what a wrong gate or a lost step produces.
BF16_TOLERANCE = 1e-2
#: The same for fastlstm's int8 output against its float32 one. Quantizing the weights per gate row and x and h per
#: row and step to 8 bits (scale max|row| / 127) costs more than bf16's rounding: measured on the benchmark shapes,
#: the outputs differ by up to about 1.4e-2 (c_n by up to 2e-2, see README). The limit leaves room for that and is
#: still far below what a wrong gate, a wrong scale or a lost step produces (differences of order 1).
INT8_TOLERANCE = 5e-2
#: The precisions a row can run fastlstm in (see fastlstm.LSTM), and the tolerance of outputs computed in each.
PRECISIONS: tuple[str, ...] = tuple(MODEL_PRECISIONS)
TOLERANCES = {"fp32": TOLERANCE, "bf16": BF16_TOLERANCE, "int8": INT8_TOLERANCE}
#: Bytes of a packed gate (input or recurrent) weight in each precision. The projection weights stay float32 in
#: every precision.
GATE_WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
PROJECTION_WEIGHT_BYTES = 4
#: The instruction that multiplies and adds in each precision, and how many multiply-adds it does per 32-bit lane,
#: relative to the FMA's one: vdpbf16ps sums two bf16 products into each float32 lane, vpdpbusd four byte products
#: into each int32 lane. That many times the FMA peak is thus the arithmetic ceiling of a precision, the least time a
#: call in it can take for its arithmetic on any ISA (those without AVX512-BF16 or AVX512-VNNI compute the same
#: products in wider lanes, which is slower still).
MULTIPLY_ADD_INSTRUCTIONS = {"fp32": "vfmadd231ps", "bf16": "vdpbf16ps", "int8": "vpdpbusd"}
MULTIPLY_ADDS_PER_LANE = {"fp32": 1, "bf16": 2, "int8": 4}
#: Seed of the models' weights and of the inputs: every run measures the same problems.
SEED = 0
#: Timed runs per implementation and shape: at least MIN_RUNS for a meaningful median, at most MAX_RUNS so that a
#: call of a few microseconds does not loop for the whole repeat time.
MIN_RUNS = 5
MAX_RUNS = 10_000
#: Rounds in which the implementations of a row take turns, and the untimed warm-up of each turn as a fraction of
#: its timed part (see time_interleaved).
ROUNDS = 4
WARM_UP_FRACTION = 0.5
#: Idle time before each turn. Measured: onnxruntime's spinning workers made the next 10 calls of a 2-thread
#: fastlstm 2.3x slower with no pause, and not at all after 10 ms.
SETTLE_SECONDS = 0.05
#: Seconds of the FMA calibration kernel per thread count, for "% peak".
PEAK_SECONDS = 0.3
#: Seconds of the read-bandwidth calibration kernel per working set, for the batch-1 bound ("% bound").
BANDWIDTH_SECONDS = 0.1
#: Widest table (characters) that keeps every peer's time; a wider one shows only the speed-ups (times stay in JSON).
TABLE_WIDTH = 160
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
    proj_size: int = 0

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of h for one direction."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

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
        if self.proj_size > 0:
            text += f" P={self.proj_size}"
        if self.bidirectional:
            text += " bidir"
        return text

    @property
    def key(self) -> str:
        """For test ids and ``--shapes``: ``8x100x256`` (I = H), ``8x100x40x256``, ``1x100x256-L2-bidir``."""
        sizes = (
            f"{self.hidden_size}"
            if self.input_size == self.hidden_size
            else f"{self.input_size}x{self.hidden_size}"
        )
        text = f"{self.batch}x{self.steps}x{sizes}"
        if self.num_layers > 1:
            text += f"-L{self.num_layers}"
        if self.proj_size > 0:
            text += f"-P{self.proj_size}"
        if self.bidirectional:
            text += "-bidir"
        return text

    @property
    def flops(self) -> int:
        """Floating-point operations of one call: per layer, direction, batch row and step, the 4H gate
        pre-activations take (I_layer + H_out) multiply-adds each and a projection P*H more (2 flops per
        multiply-add). The element-wise cell arithmetic is O(H) per step and left out, as is usual for GEMM-bound
        kernels. One multiply-add per weight of every layer and direction, per batch row and step."""
        weights = sum(sum(self._layer_weights(layer)) for layer in range(self.num_layers))
        return 2 * weights * self.batch * self.steps * self.num_directions

    def _layer_weights(self, layer: int) -> tuple[int, int, int]:
        """Floats of one direction's input, recurrent and projection weights in ``layer``."""
        layer_input = self.input_size if layer == 0 else self.num_directions * self.output_size
        hidden = self.hidden_size
        return 4 * hidden * layer_input, 4 * hidden * self.output_size, self.proj_size * hidden

    def _layer_weight_bytes(self, layer: int, precision: str) -> tuple[int, int, int]:
        """Bytes of one direction's input, recurrent and projection weights in ``layer`` as packed in
        ``precision``."""
        input_weights, recurrent, projection = self._layer_weights(layer)
        gate_bytes = GATE_WEIGHT_BYTES[precision]
        return gate_bytes * input_weights, gate_bytes * recurrent, PROJECTION_WEIGHT_BYTES * projection

    def input_traffic_bytes(self, precision: str = "fp32") -> int:
        """Bytes of input weights in ``precision`` that must reach the cores in one call: every layer and
        direction's once (a perfect kernel would reuse them for all steps)."""
        layers = range(self.num_layers)
        return self.num_directions * sum(self._layer_weight_bytes(layer, precision)[0] for layer in layers)

    def recurrent_traffic_bytes(self, precision: str = "fp32") -> int:
        """Bytes of recurrent and projection weights in ``precision`` that must reach the cores in one call: at
        every step (h_t is known only after step t), but for the first recurrent product, which the zero initial
        state makes zero."""
        steps_with_product = max(0, self.steps - 1)
        total = 0
        for layer in range(self.num_layers):
            _, recurrent, projection = self._layer_weight_bytes(layer, precision)
            total += recurrent * steps_with_product + projection * self.steps
        return self.num_directions * total

    def weight_traffic_bytes(self, precision: str = "fp32") -> int:
        """The fewest bytes of weights in ``precision`` that must reach the cores in one call. At batch 1 this
        traffic, not the arithmetic, bounds the time."""
        return self.input_traffic_bytes(precision) + self.recurrent_traffic_bytes(precision)

    def _thread_share(self, threads: int, total_bytes: int) -> int:
        # The two directions run on different threads when there are several.
        sharing = max(1, threads // 2) if self.bidirectional and threads > 1 else threads
        return total_bytes // sharing

    def working_set_bytes(self, threads: int, precision: str = "fp32") -> int:
        """The weights one of ``threads`` threads reads in ``precision``: its share of one layer and direction's
        weights (the largest layer; the recurrent ones only if there is more than one step)."""
        largest = 0
        for layer in range(self.num_layers):
            input_weights, recurrent, projection = self._layer_weight_bytes(layer, precision)
            largest = max(largest, input_weights + projection + (recurrent if self.steps > 1 else 0))
        return self._thread_share(threads, largest)

    def recurrent_set_bytes(self, threads: int, precision: str = "fp32") -> int:
        """The weights one of ``threads`` threads re-reads at every step in ``precision``: its share of one layer
        and direction's recurrent and projection weights (the largest layer; the recurrent ones only if there is
        more than one step). A kernel that keeps only these in cache streams them from the level that holds this
        much."""
        largest = 0
        for layer in range(self.num_layers):
            _, recurrent, projection = self._layer_weight_bytes(layer, precision)
            largest = max(largest, projection + (recurrent if self.steps > 1 else 0))
        return self._thread_share(threads, largest)


QUICK_SHAPES: tuple[Shape, ...] = (
    Shape(1, 1, 256, 256),  # one step: call overhead
    Shape(1, 100, 128, 128),
    Shape(1, 100, 256, 256),  # a streaming model: latency of the recurrence
    Shape(1, 100, 256, 256, bidirectional=True),
    Shape(8, 100, 256, 256),
    Shape(64, 50, 256, 256),  # a batch: throughput
)

FULL_SHAPES: tuple[Shape, ...] = (
    Shape(1, 1, 256, 256),
    Shape(1, 100, 128, 128),
    Shape(1, 100, 512, 512),
    Shape(1, 100, 1024, 1024),
    Shape(8, 100, 512, 512),
    Shape(64, 100, 512, 512),
    Shape(256, 50, 1024, 1024),
    Shape(1, 100, 256, 256, bidirectional=True),
    Shape(1, 100, 256, 256, num_layers=2),
    Shape(3, 100, 255, 255),  # odd sizes: partial vector tiles everywhere
)

_SHAPE_PATTERN = re.compile(r"(\d+)x(\d+)x(\d+)(?:x(\d+))?((?:-(?:L\d+|P\d+|bidir))*)")


def parse_shapes(text: str) -> list[Shape]:
    """Shapes written as ``Shape.key``, separated by commas: ``BxTxH`` (input size = hidden size) or ``BxTxIxH``,
    then optionally ``-L<layers>``, ``-P<proj_size>`` and ``-bidir``, such as ``1x100x256,8x100x40x512-L2-bidir``.
    Raises ValueError naming the bad item."""
    shapes = []
    for item in text.split(","):
        item = item.strip()
        match = _SHAPE_PATTERN.fullmatch(item)
        if match is None:
            raise ValueError(
                "expected BxTxH or BxTxIxH with positive integers, optionally followed by -L<layers>, "
                f"-P<proj_size> and -bidir (such as 8x100x256 or 1x100x256-L2-bidir), got {item!r}"
            )
        batch, steps, first, second, options = match.groups()
        input_size, hidden_size = (int(first), int(second)) if second else (int(first), int(first))
        options_list = options.split("-")[1:]
        layers = [int(option[1:]) for option in options_list if option.startswith("L")]
        projections = [int(option[1:]) for option in options_list if option.startswith("P")]
        if len(options_list) != len(set(option[0] for option in options_list)):
            raise ValueError(f"each of -L, -P and -bidir at most once, got {item!r}")
        shape = Shape(
            int(batch),
            int(steps),
            input_size,
            hidden_size,
            num_layers=layers[0] if layers else 1,
            bidirectional="bidir" in options_list,
            proj_size=projections[0] if projections else 0,
        )
        if min(shape.batch, shape.steps, shape.input_size, shape.hidden_size, shape.num_layers) < 1:
            raise ValueError(f"batch, steps, sizes and layers must be >= 1, got {item!r}")
        if shape.proj_size >= shape.hidden_size:
            raise ValueError(f"the projection must be smaller than the hidden size, got {item!r}")
        shapes.append(shape)
    return shapes


def default_thread_counts() -> list[int]:
    """One thread, and every CPU of the machine when it has more than one."""
    cpus = os.cpu_count() or 1
    return [1, cpus] if cpus > 1 else [1]


def check_thread_counts(counts: Sequence[int]) -> None:
    """Raises ValueError unless every count is between 1 and the machine's CPUs: fastlstm never runs more threads
    than the machine has, so a larger count would compare it with oversubscribed peers."""
    cpus = os.cpu_count() or 1
    bad = [count for count in counts if not 1 <= count <= cpus]
    if bad or not counts:
        raise ValueError(f"thread counts must be between 1 and {cpus} (the CPUs of this machine), got {list(counts)}")


def parse_precisions(text: str) -> list[str]:
    """Precisions separated by commas (``int8``, ``fp32,bf16,int8``), each once in the given order. Raises
    ValueError naming the bad item."""
    items = [item.strip() for item in text.split(",")]
    for item in items:
        if item not in PRECISIONS:
            raise ValueError(
                f"expected {_listed(PRECISIONS, 'or')}, or several separated by commas (such as fp32,int8), "
                f"got {item!r}"
            )
    return list(dict.fromkeys(items))


def check_precisions(precisions: Sequence[str]) -> None:
    """Raises ValueError unless ``precisions`` holds one or more of PRECISIONS."""
    bad = [precision for precision in precisions if precision not in PRECISIONS]
    if bad or not precisions:
        raise ValueError(f"precisions: expected one or more of {list(PRECISIONS)}, got {list(precisions)}")


def build_model(shape: Shape, threads: int | None = None, precision: str = "fp32") -> fastlstm.LSTM:
    """The fastlstm model of ``shape`` in ``precision`` with the benchmark's fixed weights, packed for the active
    ISA. The weights do not depend on the precision: a bf16 model rounds those of the fp32 one, an int8 model
    quantizes them."""
    return fastlstm.LSTM(
        shape.input_size,
        shape.hidden_size,
        shape.num_layers,
        bidirectional=shape.bidirectional,
        proj_size=shape.proj_size,
        seed=SEED,
        threads=threads,
        precision=precision,
    )


def make_input(shape: Shape) -> np.ndarray:
    """Standard normal float32 input (T, N, I) of ``shape``, the same in every run."""
    rng = np.random.default_rng(SEED)
    return rng.standard_normal((shape.steps, shape.batch, shape.input_size)).astype(np.float32)


# ---- peers ------------------------------------------------------------------------------------------------------

#: A callable taking x (T, N, I) float32 and returning the output (T, N, num_directions * H_out) as a NumPy array.
Forward = Callable[[np.ndarray], np.ndarray]


class Unsupported(Exception):
    """Raised by a peer's builder for a model that the peer cannot express (such as ONNX and a projection)."""


def _no_thread_setting(threads: int) -> ContextManager[None]:
    """For runtimes that take their thread count when built."""
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Peer:
    """Another LSTM implementation to compare fastlstm with."""

    name: str
    #: the modules the peer imports, the runtime first (whose version the report shows); the peer is available
    #: when all of them are installed, and skipped otherwise
    modules: tuple[str, ...]
    #: builds the peer's forward pass for the configuration and weights (``state_dict``) of a fastlstm model, running
    #: on the given number of threads when the runtime takes it per model; raises Unsupported for a model it cannot
    #: express
    build: Callable[[fastlstm.LSTM, int], Forward]
    #: a context in which the peer's calls run on the given number of threads, for runtimes where that is a
    #: process-wide setting; it is entered around the correctness check and the timing
    limit_threads: Callable[[int], ContextManager[Any]] = _no_thread_setting
    #: a baseline to put numbers in perspective rather than a competitor: left out of "vs best peer"
    baseline: bool = False
    #: the precision the peer computes in (one of PRECISIONS); its output must agree with fastlstm's float32 one
    #: within TOLERANCES of it
    precision: str = "fp32"

    def is_available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.modules)

    def takes_part_in(self, row_precision: str) -> bool:
        """Whether the peer is measured in rows where fastlstm runs in ``row_precision``: a float32 peer in every
        row, what a reduced precision must beat; a reduced-precision peer only in rows of its precision, since it
        would not compute the same numbers as fastlstm in float32."""
        return self.precision == "fp32" or self.precision == row_precision

    @property
    def version(self) -> str:
        return importlib.metadata.version(self.modules[0])


def _build_numpy(model: fastlstm.LSTM, threads: int) -> Forward:
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


def numpy_threads_limitable() -> bool:
    """Whether NumPy's BLAS can be held to a thread count: that needs threadpoolctl."""
    return importlib.util.find_spec("threadpoolctl") is not None


def _numpy_threads(threads: int) -> ContextManager[Any]:
    if not numpy_threads_limitable():
        return contextlib.nullcontext()  # the report says that NumPy ran on its own thread count
    import threadpoolctl

    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


def _build_torch(model: fastlstm.LSTM, threads: int) -> Forward:
    import torch

    # With a projection, torch says once that it falls back from oneDNN to its own implementation; that is what it
    # runs, and the warning would only cut into the progress lines.
    warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN", UserWarning)

    module = model.to_torch(module=True)  # in eval mode

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x))[0].numpy()

    return forward


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _onnx_bytes(model: fastlstm.LSTM) -> bytes:
    try:
        return lstm_to_onnx(model).SerializeToString()
    except ValueError as error:  # a model that ONNX cannot express
        raise Unsupported(str(error)) from None


def _build_onnxruntime(model: fastlstm.LSTM, threads: int) -> Forward:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # a chain of LSTM nodes has nothing to run in parallel
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(_onnx_bytes(model), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _build_openvino(model: fastlstm.LSTM, threads: int, inference_precision: str = "f32") -> Forward:
    import openvino

    core = openvino.Core()
    config = {
        "INFERENCE_NUM_THREADS": threads,
        # "f32" for the openvino peer: without it, CPUs with bf16 support (AMX, AVX512-BF16) compute in bf16, off by
        # ~1e-3 from float32. "bf16" for openvino-bf16, openvino's own reduced precision.
        "INFERENCE_PRECISION_HINT": inference_precision,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(core.read_model(io.BytesIO(_onnx_bytes(model))), "CPU", config)
    request = compiled.create_infer_request()
    # share_inputs: the request reads x in place; the output is copied out, a new array as every other peer returns.
    return lambda x: request.infer({0: x}, share_inputs=True)[0]


NUMPY = Peer("numpy", ("numpy",), _build_numpy, limit_threads=_numpy_threads, baseline=True)
OPENVINO_BF16 = Peer(
    "openvino-bf16",
    ("openvino", "onnx"),
    functools.partial(_build_openvino, inference_precision="bf16"),
    precision="bf16",
)
PEERS: tuple[Peer, ...] = (
    NUMPY,
    Peer("torch", ("torch",), _build_torch, limit_threads=_torch_threads),
    Peer("onnxruntime", ("onnxruntime", "onnx"), _build_onnxruntime),
    Peer("openvino", ("openvino", "onnx"), _build_openvino),
    OPENVINO_BF16,
)


def relevant_peers(precisions: Sequence[str]) -> list[Peer]:
    """The peers that take part in rows of at least one of ``precisions``, installed or not."""
    return [peer for peer in PEERS if any(peer.takes_part_in(precision) for precision in precisions)]


def available_peers(precisions: Sequence[str] = ("fp32",)) -> list[Peer]:
    """The installed peers that take part in rows of at least one of ``precisions``."""
    return [peer for peer in relevant_peers(precisions) if peer.is_available()]


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


def time_interleaved(forwards: dict[str, Forward], x: np.ndarray, repeat_seconds: float) -> dict[str, Timing]:
    """Time each of ``forwards`` on ``x`` for at least ``repeat_seconds`` and MIN_RUNS runs (at most MAX_RUNS),
    in ROUNDS rounds that take the implementations in turn (in a rotating order): a slow spell of the shared machine
    then falls on all of them alike instead of on whichever was being timed, so their ratios hold. Each turn starts
    with SETTLE_SECONDS of sleep, for the worker threads of the previous runtime, which spin on the cores for a
    while after their last call, to go idle; then untimed calls, at least one and WARM_UP_FRACTION of the turn's
    time: the first calls pay for caches that the previous implementation filled, for first touch of buffers, and
    for a thread count that just changed (torch's OpenMP team)."""
    names = list(forwards)
    turn_seconds = repeat_seconds / ROUNDS
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(ROUNDS):
        rotated = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in rotated:
            forward, runs = forwards[name], times[name]
            time.sleep(SETTLE_SECONDS)
            warm_up_end = time.perf_counter() + WARM_UP_FRACTION * turn_seconds
            forward(x)
            while time.perf_counter() < warm_up_end:
                forward(x)
            # This turn's share of the runs: the rest of MIN_RUNS spread over the rounds left.
            minimum_runs = max(1, math.ceil((MIN_RUNS - len(runs)) / (ROUNDS - round_number)))
            turn_end = time.perf_counter() + turn_seconds
            done = 0
            while done < minimum_runs or (time.perf_counter() < turn_end and len(runs) < MAX_RUNS):
                start = time.perf_counter()
                forward(x)
                runs.append(time.perf_counter() - start)
                done += 1
    return {name: Timing(statistics.median(runs), min(runs), len(runs)) for name, runs in times.items()}


def measure_peaks(isa: str, thread_counts: Sequence[int]) -> dict[int, float]:
    """GFLOP/s of our FMA calibration kernel for ``isa`` at each thread count: the ceiling of "% peak"."""
    return {threads: _core.fma_peak_gflops(isa, threads, seconds=PEAK_SECONDS) for threads in thread_counts}


# ---- one shape --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerResult:
    peer: str
    #: the peer's time, or None when it cannot express the model (reported as "n/a")
    timing: Timing | None
    #: output_difference of the peer's output from fastlstm's float32 one, measured before timing (NaN when not
    #: measured)
    max_abs_diff: float = math.nan
    #: why the peer cannot express the model, when it cannot
    unsupported: str = ""
    baseline: bool = False
    #: the precision the peer computes in (Peer.precision)
    precision: str = "fp32"

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.precision]

    @property
    def agrees(self) -> bool:
        """False only when the peer ran and its output differed from fastlstm's float32 one by its tolerance or
        more."""
        return self.timing is None or self.max_abs_diff < self.tolerance


@dataclass(frozen=True)
class Row:
    """The results of one shape at one thread count and precision."""

    shape: Shape
    isa: str
    threads: int
    #: GFLOP/s of the FMA calibration kernel at this thread count
    peak_gflops: float
    fastlstm: Timing
    peers: tuple[PeerResult, ...]
    #: batch 1 only: GB/s that ``threads`` threads read from a working set of ``shape.working_set_bytes(threads)``
    #: per thread (all weights), and of ``shape.recurrent_set_bytes(threads)`` (the weights re-read every step),
    #: with our calibration kernel (None for larger batches)
    bandwidth_gbs: float | None = None
    recurrent_bandwidth_gbs: float | None = None
    #: the precision fastlstm ran in (one of PRECISIONS)
    precision: str = "fp32"
    #: output_difference of fastlstm's output in ``precision`` from its float32 one (None in float32 rows, whose
    #: fastlstm output is the reference itself)
    fastlstm_diff: float | None = None

    @property
    def gflops(self) -> float:
        return self.shape.flops / self.fastlstm.median_seconds / 1e9

    @property
    def percent_of_peak(self) -> float | None:
        """Of the FMA peak; None in reduced-precision rows, whose instructions do more than one multiply-add per
        lane (see MULTIPLY_ADDS_PER_LANE), so that the FMA peak is no ceiling for them."""
        if self.precision != "fp32":
            return None
        return 100 * self.gflops / self.peak_gflops

    @property
    def bound_seconds(self) -> float | None:
        """Batch 1: the least time the call can take on this machine, the larger of its arithmetic at the row's
        arithmetic ceiling (the FMA peak times MULTIPLY_ADDS_PER_LANE) and its weight traffic in the row's
        precision (both can proceed at once): the input weights (Shape.input_traffic_bytes) at the read bandwidth
        measured for all of a thread's weights, plus the recurrent ones (recurrent_traffic_bytes) at the bandwidth
        measured for just those, the level they could stay in if nothing else did."""
        if self.bandwidth_gbs is None or self.recurrent_bandwidth_gbs is None:
            return None
        arithmetic = self.shape.flops / (self.peak_gflops * MULTIPLY_ADDS_PER_LANE[self.precision] * 1e9)
        traffic = (self.shape.input_traffic_bytes(self.precision) / (self.bandwidth_gbs * 1e9)
                   + self.shape.recurrent_traffic_bytes(self.precision) / (self.recurrent_bandwidth_gbs * 1e9))
        return max(arithmetic, traffic)

    @property
    def percent_of_bound(self) -> float | None:
        bound = self.bound_seconds
        return None if bound is None else 100 * bound / self.fastlstm.median_seconds

    def peer(self, name: str) -> PeerResult | None:
        """The result of peer ``name``; None when that peer takes no part in rows of this precision."""
        return next((result for result in self.peers if result.peer == name), None)

    def speedup(self, peer: PeerResult | None) -> float | None:
        """How many times faster fastlstm is than ``peer``: peer median / fastlstm median (None: not measured, or
        no peer of this row)."""
        if peer is None or peer.timing is None:
            return None
        return peer.timing.median_seconds / self.fastlstm.median_seconds

    @property
    def best_peer(self) -> PeerResult | None:
        """The fastest float32 competitor measured on this row (baselines and reduced-precision peers excluded),
        or None."""
        measured = [
            peer for peer in self.peers if peer.timing is not None and not peer.baseline and peer.precision == "fp32"
        ]
        return min(measured, key=lambda peer: peer.timing.median_seconds, default=None)

    @property
    def peers_agree(self) -> bool:
        return all(peer.agrees for peer in self.peers)

    @property
    def fastlstm_agrees(self) -> bool:
        """False only when fastlstm in a reduced precision differed from its float32 output by the tolerance of
        that precision or more."""
        return self.fastlstm_diff is None or self.fastlstm_diff < TOLERANCES[self.precision]

    @property
    def agrees(self) -> bool:
        return self.peers_agree and self.fastlstm_agrees


def measure_shape(
    shape: Shape,
    threads: int,
    peak_gflops: float,
    peers: Sequence[Peer],
    repeat_seconds: float,
    precision: str = "fp32",
) -> Row:
    """Build fastlstm for ``shape`` at ``threads`` threads in ``precision``, and every peer of ``peers`` that takes
    part in rows of that precision from its float32 model; check each output (fastlstm's own in a reduced
    precision too) against fastlstm's float32 one; then time them all, taking turns (time_interleaved), each peer
    held to ``threads`` threads."""
    model = build_model(shape, threads, precision)
    x = make_input(shape)
    forwards = {"fastlstm": fastlstm_forward(model)}
    if precision == "fp32":
        float32_model = model
        expected = forwards["fastlstm"](x)
        fastlstm_diff = None
    else:
        # The peers compute in float32 (or reduce it themselves, as openvino-bf16): they get the float32 model.
        float32_model = build_model(shape, threads)
        expected = fastlstm_forward(float32_model)(x)
        fastlstm_diff = output_difference(forwards["fastlstm"](x), expected)
    peers = [peer for peer in peers if peer.takes_part_in(precision)]
    unsupported: dict[str, str] = {}
    differences: dict[str, float] = {}
    with contextlib.ExitStack() as limits:
        for peer in peers:
            try:
                forward = peer.build(float32_model, threads)
            except Unsupported as reason:
                unsupported[peer.name] = str(reason)
                continue
            limits.enter_context(peer.limit_threads(threads))
            differences[peer.name] = output_difference(forward(x), expected)
            forwards[peer.name] = forward
        timings = time_interleaved(forwards, x, repeat_seconds)
    peer_results = tuple(
        PeerResult(
            peer.name, None, unsupported=unsupported[peer.name], baseline=peer.baseline, precision=peer.precision
        )
        if peer.name in unsupported
        else PeerResult(
            peer.name, timings[peer.name], differences[peer.name], baseline=peer.baseline, precision=peer.precision
        )
        for peer in peers
    )
    return Row(
        shape,
        model.isa,
        threads,
        peak_gflops,
        timings["fastlstm"],
        peer_results,
        precision=precision,
        fastlstm_diff=fastlstm_diff,
    )


def measure(
    shapes: Sequence[Shape],
    peaks: dict[int, float],
    peers: Sequence[Peer],
    repeat_seconds: float,
    progress: TextIO = sys.stderr,
    *,
    precisions: Sequence[str] = ("fp32",),
) -> list[Row]:
    """Measure every shape at every thread count of ``peaks`` (thread count -> peak GFLOP/s) in each of
    ``precisions`` (the rows of a shape and thread count next to each other), printing a progress line per row to
    ``progress``. Batch-1 rows also get the read bandwidth of their working set (Row.bound_seconds), measured before
    and after the row."""
    plan = [(shape, threads, precision) for shape in shapes for threads in peaks for precision in precisions]
    bandwidths: dict[tuple[int, int], float] = {}
    rows = []
    for number, (shape, threads, precision) in enumerate(plan, start=1):
        where = _row_text(shape, threads, precision)
        print(f"[{number}/{len(plan)}] {where} ...", end="", file=progress, flush=True)
        start = time.perf_counter()
        if shape.batch != 1:
            rows.append(measure_shape(shape, threads, peaks[threads], peers, repeat_seconds, precision))
        else:
            # The best of every measurement of each working set, before and after the row: a slow spell of the
            # shared machine makes one read low, which would make the bound look reachable when it is not.
            # (At T = 1 nothing is re-read: the recurrent "set" is empty and takes the reading of all weights.)
            working_set = shape.working_set_bytes(threads, precision)
            recurrent_set = shape.recurrent_set_bytes(threads, precision) or working_set
            keys = [(threads, working_set), (threads, recurrent_set)]
            distinct = list(dict.fromkeys(keys))
            for key in distinct:
                bandwidths[key] = max(bandwidths.get(key, 0.0), _read_bandwidth(*key))
            row = measure_shape(shape, threads, peaks[threads], peers, repeat_seconds, precision)
            for key in distinct:
                bandwidths[key] = max(bandwidths[key], _read_bandwidth(*key))
            rows.append(dataclasses.replace(row, bandwidth_gbs=bandwidths[keys[0]],
                                            recurrent_bandwidth_gbs=bandwidths[keys[1]]))
        print(f" {time.perf_counter() - start:.1f} s", file=progress, flush=True)
    return rows


def _read_bandwidth(threads: int, bytes_per_thread: int) -> float:
    time.sleep(SETTLE_SECONDS)  # after a runtime's timing: its worker threads may still spin on the cores
    return _core.read_bandwidth_gbs(fastlstm.active_isa(), threads, bytes_per_thread, seconds=BANDWIDTH_SECONDS)


def _threads_text(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


def _row_text(shape: Shape, threads: int, precision: str) -> str:
    """``B=1 T=100 I=H=512, 2 threads``, then ``, bf16`` in a reduced precision (fp32, the default, is implicit)."""
    text = f"{shape.label}, {_threads_text(threads)}"
    return text if precision == "fp32" else f"{text}, {precision}"


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


def environment(
    peaks: dict[int, float], peers: Sequence[Peer], precisions: Sequence[str] = ("fp32",)
) -> dict[str, Any]:
    """Versions, machine and settings that the numbers depend on."""
    return {
        "fastlstm": fastlstm.__version__,
        "isa": fastlstm.active_isa(),
        "available_isas": fastlstm.available_isas(),
        "threads": list(peaks),
        "precisions": list(precisions),
        "fma_peak_gflops": {str(threads): gflops for threads, gflops in peaks.items()},
        "numpy": np.__version__,
        "blas": blas_info(),
        "numpy_threads_limited": numpy_threads_limitable(),
        "blas_tuning_variables": {name: os.environ[name] for name in BLAS_TUNING_VARIABLES if name in os.environ},
        "peers": {peer.name: peer.version for peer in peers},
        "peer_precisions": {peer.name: peer.precision for peer in peers},
        "baseline_peers": [peer.name for peer in peers if peer.baseline],
        "unavailable_peers": [peer.name for peer in relevant_peers(precisions) if peer not in peers],
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
        f"{info['internal_api']} {info['version']}" + (f" ({info['architecture']})" if info["architecture"] else "")
        for info in blas
    )


def header_lines(env: dict[str, Any], repeat_seconds: float) -> list[str]:
    peaks = ", ".join(
        f"{gflops:.1f} at {_threads_text(int(threads))}" for threads, gflops in env["fma_peak_gflops"].items()
    )
    peers = ", ".join(
        f"{name} {version}" + (" (baseline)" if name in env["baseline_peers"] else "")
        for name, version in env["peers"].items()
    )
    lines = [
        f"fastlstm {env['fastlstm']}   ISA {env['isa']} (available: {', '.join(env['available_isas'])})   threads: "
        f"{', '.join(map(str, env['threads']))} (each shape at each count, every implementation held to it)",
        f"FMA peak GFLOP/s of this machine ({env['isa']} calibration kernel): {peaks}",
        f"peers: {peers}   BLAS: {_describe_blas(env['blas'])}",
        f"python {env['python']}   {env['platform']}   {env['cpu']}, {env['cpu_count']} CPUs",
        f"timing: median of >= {MIN_RUNS} runs and >= {repeat_seconds:g} s per implementation, after a warm-up, "
        f"the implementations of a row taking turns in {ROUNDS} rounds",
    ]
    if env["precisions"] != ["fp32"]:
        lines.append(
            f"precisions: {', '.join(env['precisions'])} (each shape and thread count in each; every output compared "
            "with fastlstm's fp32 one, a peer of a reduced precision in rows of that precision only)"
        )
    if env["unavailable_peers"]:
        lines.append(f"peers not installed, skipped: {', '.join(env['unavailable_peers'])}")
    if "numpy" in env["peers"] and not env["numpy_threads_limited"]:
        lines.append("note: threadpoolctl is not installed, so NumPy's BLAS ran on its own thread count in every row")
    for name, value in env["blas_tuning_variables"].items():
        lines.append(f"note: {name}={value} is set; it can slow NumPy's BLAS (the baseline) on this machine")
    return lines


def _milliseconds(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _competitors(env: dict[str, Any]) -> list[str]:
    """The peers that "vs best peer" takes the fastest of: float32 ones other than baselines."""
    return [
        name
        for name in env["peers"]
        if name not in env["baseline_peers"] and env["peer_precisions"][name] == "fp32"
    ]


def _reduced_precisions(rows: Sequence[Row]) -> list[str]:
    """The precisions other than fp32 that fastlstm ran in on ``rows``, in the order of PRECISIONS."""
    ran = {row.precision for row in rows}
    return [precision for precision in PRECISIONS if precision != "fp32" and precision in ran]


def _listed(items: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]
    left: bool = False  # text columns are left-aligned, numbers right-aligned


def columns(
    peer_names: Sequence[str], competitors: Sequence[str], peer_times: bool, reduced_precision: bool = False
) -> list[Column]:
    """The table's columns: per peer its time (when ``peer_times``) and fastlstm's speed-up over it, and, when
    ``competitors`` (float32 peers other than baselines) are installed, the speed-up over the fastest of them. With
    ``reduced_precision`` (some rows are not fp32), also each row's precision and fastlstm's difference from its
    fp32 output, and the best peer is called the best fp32 peer."""

    def peer_cell(row: Row, name: str, cell: Callable[[PeerResult], str]) -> str:
        peer = row.peer(name)
        return "-" if peer is None else cell(peer)

    def peer_time(peer: PeerResult) -> str:
        return "n/a" if peer.timing is None else _milliseconds(peer.timing.median_seconds)

    def best_speedup(row: Row) -> str:
        best = row.best_peer
        return "n/a" if best is None else _ratio(row.speedup(best))

    def largest_difference(row: Row) -> str:
        differences = [peer.max_abs_diff for peer in row.peers if peer.timing is not None]
        if not differences:
            return "-"
        return f"{max(differences):.1e}" + ("" if row.peers_agree else " !")

    def fastlstm_difference(row: Row) -> str:
        if row.fastlstm_diff is None:
            return "-"
        return f"{row.fastlstm_diff:.1e}" + ("" if row.fastlstm_agrees else " !")

    table = [
        Column("shape", lambda row: row.shape.label, left=True),
        Column("threads", lambda row: str(row.threads)),
    ]
    if reduced_precision:
        table.append(Column("precision", lambda row: row.precision, left=True))
    table += [
        Column("fastlstm ms", lambda row: _milliseconds(row.fastlstm.median_seconds)),
        Column("GFLOP/s", lambda row: f"{row.gflops:.1f}"),
        Column("% peak", lambda row: _percent(row.percent_of_peak)),
        Column("% bound", lambda row: _percent(row.percent_of_bound)),
    ]
    for name in peer_names:
        # Default arguments bind this peer's name; a closure would see the loop's last one.
        if peer_times:
            table.append(Column(f"{name} ms", lambda row, name=name: peer_cell(row, name, peer_time)))
        table.append(
            Column(f"vs {name}", lambda row, name=name: peer_cell(row, name, lambda peer: _ratio(row.speedup(peer))))
        )
    if competitors:
        best = "best fp32 peer" if reduced_precision else "best peer"
        table += [
            Column(f"vs {best}", best_speedup),
            Column(best, lambda row: row.best_peer.peer if row.best_peer else "-", left=True),
        ]
    table.append(Column("max |diff|", largest_difference))
    if reduced_precision:
        table.append(Column("fastlstm |diff|", fastlstm_difference))
    return table


def format_table(table: Sequence[Column], rows: Sequence[Row]) -> list[str]:
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


def table_lines(rows: Sequence[Row], env: dict[str, Any]) -> tuple[list[str], bool]:
    """The table, with every peer's time if that fits in TABLE_WIDTH characters, else with the speed-ups only;
    and whether the peers' times are in it."""
    peer_names = list(env["peers"])
    competitors = _competitors(env)
    reduced_precision = bool(_reduced_precisions(rows))
    lines = format_table(columns(peer_names, competitors, True, reduced_precision), rows)
    if max(map(len, lines)) <= TABLE_WIDTH:
        return lines, True
    return format_table(columns(peer_names, competitors, False, reduced_precision), rows), False


def _per_precision(table: dict[str, Any], precisions: Sequence[str]) -> str:
    """``bf16 2, int8 1``: the entry of each of ``precisions`` in ``table``."""
    return ", ".join(f"{precision} {table[precision]}" for precision in precisions)


def footer_lines(rows: Sequence[Row], env: dict[str, Any], peer_times: bool) -> list[str]:
    competitors = _competitors(env)
    reduced = _reduced_precisions(rows)
    peak_note = bound_note = speedup_note = ""
    if reduced:
        first, *others = reduced
        multiply_adds = _listed(
            [f"{MULTIPLY_ADD_INSTRUCTIONS[first]} does {MULTIPLY_ADDS_PER_LANE[first]} multiply-adds per lane"]
            + [f"{MULTIPLY_ADD_INSTRUCTIONS[precision]} {MULTIPLY_ADDS_PER_LANE[precision]}" for precision in others]
        )
        peak_note = f" - in {_listed(reduced)} rows: {multiply_adds}, so the FMA peak is no ceiling there."
        bound_note = (
            f" In {_listed(reduced)} rows: bytes per gate weight {_per_precision(GATE_WEIGHT_BYTES, reduced)} instead "
            f"of {GATE_WEIGHT_BYTES['fp32']} (the projection stays float32), and the arithmetic at the FMA peak times "
            f"the multiply-adds per lane ({_per_precision(MULTIPLY_ADDS_PER_LANE, reduced)})."
        )
        speedup_note = (
            f" In {_listed(reduced)} rows fastlstm runs in the row's precision; - where X takes no part in it (a "
            "peer of a reduced precision takes part in rows of that precision only)."
        )
    lines = [
        "GFLOP/s: 2 flops per multiply-add of the gate products (8*H*(I+H)*B*T per layer and direction without a "
        "projection) / fastlstm median time.   % peak: of the FMA peak at the row's thread count." + peak_note,
        "% bound (batch 1): the least possible time / fastlstm median time; the least possible time is the larger of "
        "the arithmetic at the FMA peak and the weights that must be read: input weights once, at the read bandwidth "
        "measured for a thread's share of a layer's weights, and recurrent ones every step after the first, at the "
        "bandwidth measured for its share of those alone." + bound_note,
        "vs X: X median time / fastlstm median time (higher: fastlstm is faster)."
        + ("" if peer_times else " The peers' times are in the JSON (--json).")
        + speedup_note,
    ]
    if competitors:
        best = "best fp32 peer" if reduced else "best peer"
        lines.append(
            f"vs {best}: the same over the fastest of {', '.join(competitors)} on the row (the baseline left out)."
        )
    if reduced:
        # A reduced-precision peer takes part in rows of its precision only, so its precision is among ``reduced``.
        peer_precisions = {peer.precision for row in rows for peer in row.peers}
        peer_limits = "".join(
            f"; {precision} peers {TOLERANCES[precision]:.0e}" for precision in reduced if precision in peer_precisions
        )
        fastlstm_limits = ", ".join(f"{precision} {TOLERANCES[precision]:.0e}" for precision in reduced)
        lines += [
            f"max |diff|: largest difference of any peer's output from fastlstm's fp32 one, checked before timing "
            f"(limit {TOLERANCE:.0e}{peer_limits}).",
            f"fastlstm |diff|: of fastlstm's output in the row's precision from its fp32 one, checked before timing "
            f"(limit {fastlstm_limits}).",
        ]
    else:
        lines.append(
            f"max |diff|: largest output difference from any peer, checked before timing (limit {TOLERANCE:.0e})."
        )
    reasons: dict[str, list[str]] = {}
    for row in rows:
        where = _row_text(row.shape, row.threads, row.precision)
        reference = "fastlstm" if row.precision == "fp32" else "fastlstm fp32"
        if not row.fastlstm_agrees:
            difference = f"{row.fastlstm_diff:.3g} >= {TOLERANCES[row.precision]:.0e}"
            lines.append(f"! {where}: fastlstm {row.precision} and fastlstm fp32 differ by {difference}")
        for peer in row.peers:
            if peer.timing is None and peer.peer not in reasons.get(peer.unsupported, []):
                reasons.setdefault(peer.unsupported, []).append(peer.peer)
            if not peer.agrees:
                difference = f"{peer.max_abs_diff:.3g} >= {peer.tolerance:.0e}"
                lines.append(f"! {where}: {reference} and {peer.peer} differ by {difference}")
    for reason, names in reasons.items():
        lines.append(f"n/a ({', '.join(names)}): {reason}")
    return lines


def report(rows: Sequence[Row], env: dict[str, Any], repeat_seconds: float) -> str:
    table, peer_times = table_lines(rows, env)
    lines = [*header_lines(env, repeat_seconds), "", *table, "", *footer_lines(rows, env, peer_times)]
    return "\n".join(lines) + "\n"


def _peer_record(row: Row, peer: PeerResult) -> dict[str, Any]:
    if peer.timing is None:
        return {"supported": False, "reason": peer.unsupported}
    return {
        "supported": True,
        **asdict(peer.timing),
        "max_abs_diff": peer.max_abs_diff,
        "agrees": peer.agrees,
        "speedup": row.speedup(peer),
    }


def _row_record(row: Row) -> dict[str, Any]:
    best = row.best_peer
    shape, precision = row.shape, row.precision
    return {
        "label": shape.label,
        "key": shape.key,
        "shape": asdict(shape),
        "flops": shape.flops,
        "isa": row.isa,
        "threads": row.threads,
        "precision": precision,
        "fma_peak_gflops": row.peak_gflops,
        "fastlstm": {
            **asdict(row.fastlstm),
            "gflops": row.gflops,
            "percent_of_peak": row.percent_of_peak,
            # None in fp32 rows: there fastlstm's output is the reference
            "max_abs_diff_from_fp32": row.fastlstm_diff,
            "agrees": row.fastlstm_agrees,
        },
        "batch1_bound": None
        if row.bandwidth_gbs is None
        else {
            "read_bandwidth_gbs": row.bandwidth_gbs,
            "working_set_bytes_per_thread": shape.working_set_bytes(row.threads, precision),
            "recurrent_read_bandwidth_gbs": row.recurrent_bandwidth_gbs,
            "recurrent_set_bytes_per_thread": shape.recurrent_set_bytes(row.threads, precision),
            "input_traffic_bytes": shape.input_traffic_bytes(precision),
            "recurrent_traffic_bytes": shape.recurrent_traffic_bytes(precision),
            "weight_traffic_bytes": shape.weight_traffic_bytes(precision),
            "bound_seconds": row.bound_seconds,
            "percent_of_bound": row.percent_of_bound,
        },
        "peers": {peer.peer: _peer_record(row, peer) for peer in row.peers},
        "best_peer": None if best is None else {"name": best.peer, "speedup": row.speedup(best)},
    }


def write_json(path: Path, rows: Sequence[Row], env: dict[str, Any], repeat_seconds: float) -> None:
    document = {
        "environment": env,
        "settings": {
            "repeat_seconds": repeat_seconds,
            "min_runs": MIN_RUNS,
            "max_runs": MAX_RUNS,
            "tolerance": TOLERANCE,
            "tolerances": TOLERANCES,
            "seed": SEED,
            "peak_seconds": PEAK_SECONDS,
            "bandwidth_seconds": BANDWIDTH_SECONDS,
        },
        "rows": [_row_record(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# ---- plot -------------------------------------------------------------------------------------------------------


def plotting_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(path: Path, rows: Sequence[Row], env: dict[str, Any]) -> None:
    """A horizontal bar chart of fastlstm's speed-up over each peer, one group of bars per (shape, threads). Bars
    grow from 1 (as fast) to the right where fastlstm is faster and to the left where it is slower, on a log scale
    so that ratios near 1 (the runtimes) and far above (the NumPy baseline) both read well."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    peer_names = list(env["peers"])
    bar_height = 0.8 / len(peer_names)
    figure, axes = plt.subplots(figsize=(10, 1.5 + 0.2 * len(rows) * len(peer_names)))
    shown = [1.0]  # every speed-up drawn, and 1, to leave room for the labels at the bars' ends
    for index, name in enumerate(peer_names):
        positions, speedups = [], []
        for row_number, row in enumerate(rows):
            speedup = row.speedup(row.peer(name))
            if speedup is not None:  # the peer cannot express this model, or takes no part in the row's precision
                positions.append(row_number - 0.4 + (index + 0.5) * bar_height)
                speedups.append(speedup)
        shown += speedups
        widths = [speedup - 1 for speedup in speedups]
        bars = axes.barh(positions, widths, left=1, height=bar_height, label=name, color=f"C{index}")
        axes.bar_label(bars, labels=[f"{speedup:.2f}" for speedup in speedups], padding=2, fontsize=7)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlim(min(shown) / 1.3, max(shown) * 1.4)
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    labels = [_row_text(row.shape, row.threads, row.precision) for row in rows]
    axes.set_yticks(range(len(rows)), labels, fontsize=8)
    axes.set_ylim(len(rows) - 0.5, -0.5)  # first row at the top, as in the table
    axes.set_xlabel("speed-up of fastlstm: peer median time / fastlstm median time (> 1: fastlstm is faster)")
    title = f"fastlstm {env['fastlstm']} ({env['isa']}) vs peers, {env['cpu']}, {env['cpu_count']} CPUs"
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes.grid(axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---- entry point ------------------------------------------------------------------------------------------------


def run(
    shapes: Sequence[Shape],
    *,
    thread_counts: Sequence[int] | None = None,
    precisions: Sequence[str] = ("fp32",),
    repeat_seconds: float = 0.2,
    isa: str | None = None,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    out: TextIO = sys.stdout,
    progress: TextIO = sys.stderr,
) -> int:
    """Measure ``shapes`` at each of ``thread_counts`` (default: ``default_thread_counts()``) and fastlstm in each of
    ``precisions``, print the report to ``out`` and optionally write JSON and a plot (which needs matplotlib).
    Returns the exit status: 0, or 1 when some output disagreed with fastlstm's fp32 one."""
    thread_counts = list(dict.fromkeys(thread_counts or default_thread_counts()))
    check_thread_counts(thread_counts)
    precisions = list(dict.fromkeys(precisions))
    check_precisions(precisions)
    peers = available_peers(precisions)
    with fastlstm.use_isa(isa) if isa else contextlib.nullcontext():
        print("measuring the FMA peak ...", end="", file=progress, flush=True)
        peaks = measure_peaks(fastlstm.active_isa(), thread_counts)
        print(" done", file=progress, flush=True)
        env = environment(peaks, peers, precisions)
        rows = measure(shapes, peaks, peers, repeat_seconds, progress, precisions=precisions)
    out.write(report(rows, env, repeat_seconds))
    if json_path is not None:
        write_json(json_path, rows, env, repeat_seconds)
    if plot_path is not None:
        write_plot(plot_path, rows, env)
    return 0 if all(row.agrees for row in rows) else 1
