"""The peers: the other LSTM implementations that fastlstm is compared with, each built from a fastlstm model's
configuration and weights, and the comparison of their outputs."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import io
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastlstm

from .. import reference
from ..interop.onnx_export import INPUT_NAME, OUTPUT_NAME, lstm_to_onnx

#: A callable taking x (T, N, I) float32 and returning the output (T, N, num_directions * H_out) as a NumPy array.
Forward = Callable[[np.ndarray], np.ndarray]


class Unsupported(Exception):
    """Raised by a peer's builder for a model that the peer cannot express (such as ONNX and a projection)."""


def _no_thread_setting(threads: int) -> AbstractContextManager[None]:
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
    limit_threads: Callable[[int], AbstractContextManager[Any]] = _no_thread_setting
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


def _numpy_threads(threads: int) -> AbstractContextManager[Any]:
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
