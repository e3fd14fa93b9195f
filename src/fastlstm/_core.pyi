"""Types of fastlstm._core, the C++ extension built from csrc/bindings.cc, csrc/step_bindings.cc and
csrc/testing_bindings.cc, for editors and type checkers.

An extension module takes a single stub file, so its submodules ``testing`` and ``calibration`` are declared here
as attributes typed by a class that lists their functions. tests/test_core_stub.py checks that this file names
exactly what the extension has, with the same parameters and defaults.
"""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_Floats: TypeAlias = npt.NDArray[np.float32]

__version__: str
#: The longest dot product precision int8 sums exactly (fastlstm/int8.h: kInt8MaxDepth).
INT8_MAX_DEPTH: int

def compiled_isas() -> list[str]:
    """Kernel variants compiled into this build."""

def supported_isas() -> list[str]:
    """Compiled variants this CPU can run, portable first."""

def best_isa() -> str:
    """The best variant for this CPU."""

def openmp_teams(on: bool) -> bool:
    """While on, this thread's calls run their threads on the OpenMP runtime loaded in the process (PyTorch's), where
    there is one; returns the previous setting."""

class PackedLinear:
    def __init__(self, isa: str, weight: _Floats, bias: _Floats | None) -> None: ...
    def forward(self, x: _Floats, softmax: bool, threads: int) -> _Floats:
        """x (rows, in_features) -> x W^T + b, or its softmax per row, (rows, out_features)."""

class PackedLstm:
    def __init__(
        self,
        isa: str,
        input_size: int,
        hidden_size: int,
        proj_size: int,
        num_layers: int,
        num_directions: int,
        reverse: bool = False,
        precision: str = "fp32",
    ) -> None: ...
    @property
    def isa(self) -> str: ...
    def pack_cell(
        self,
        layer: int,
        direction: int,
        w_ih: _Floats,
        w_hh: _Floats,
        b_ih: _Floats | None,
        b_hh: _Floats | None,
        w_hr: _Floats | None,
        peepholes: _Floats | None = None,
        activations: list[tuple[int, float, float]] | None = None,
        clip: float = 0.0,
        input_forget: bool = False,
    ) -> None:
        """Packs the weights of one layer and direction (PyTorch layout), with the cell's options: peepholes
        (3, H), activations [(kind, alpha, beta)] x 3 for gate, candidate, output (None: the standard cell),
        clip (0: none)."""
    def forward_in_place(self, x: _Floats, batch_first: bool, h: _Floats, c: _Floats, threads: int) -> _Floats: ...
    def forward(
        self,
        x: _Floats,
        batch_first: bool,
        h0: _Floats | None,
        c0: _Floats | None,
        threads: int,
        lengths: npt.NDArray[np.int64] | None = None,
    ) -> tuple[_Floats, _Floats, _Floats]:
        """Runs the sequence on up to `threads` threads (0: automatic); returns (y, h_n, c_n).
        x is (T, B, I), or (B, T, I) when batch_first."""
    def forward_plain(
        self,
        x: object,
        batch_first: bool,
        threads: int,
        cache: ForwardCache,
        h0: object = None,
        c0: object = None,
    ) -> tuple[_Floats, _Floats, _Floats] | None:
        """forward() for a plain x, from (h0, c0) or from zeros (both None): (y, h_n, c_n), or None unless x is
        C-contiguous, aligned float32 (T, B, I) (or (B, T, I) when batch_first) with T, B >= 1 and h0, c0 are
        None or such arrays of shapes (layers * directions, B, output size), (layers * directions, B, hidden
        size). Short calls keep their scratch in `cache`."""
    def forward_packed(
        self,
        x: _Floats,
        batch_sizes: npt.NDArray[np.int64],
        h0: _Floats,
        c0: _Floats,
        threads: int,
    ) -> tuple[_Floats, _Floats, _Floats]:
        """Runs a PackedSequence's rows, x (rows, I) with batch_sizes (T,) and h0, c0 in its rank order, where
        they are; returns (y (rows, directions * output_size), h_n, c_n), the states in rank order."""
    def automatic_threads(self, steps: int, batch: int, initial_state: bool) -> int:
        """The number of threads forward() uses with threads=0 (with h0 or without)."""
    def step_in_place(self, x: object, h: _Floats, c: _Floats, threads: int, cache: ForwardCache) -> _Floats | None:
        """One step of x (B, I) from the state (h, c), updated in place; None unless x is C-contiguous, aligned
        float32 of that shape."""
    def step_sessions(
        self,
        x: object,
        ids: object,
        generations: npt.NDArray[np.int64],
        h: _Floats,
        c: _Floats,
        threads: int,
        cache: ForwardCache,
    ) -> _Floats | None:
        """One step of the sessions `ids` (n,) int64 with frames x (n, I), their states rows of (h, c) updated
        in place; None unless x and ids are plain arrays of those shapes; KeyError for an id not open or
        listed twice."""

class ForwardCache:
    """Scratch kept between one caller's calls of the same shape (a stream's, a pool's)."""
    def __init__(self) -> None: ...

class SessionRows:
    """A pool's state arrays as queued steps see them, and the mutex that guards them."""
    def __init__(self) -> None: ...
    def attach(self, h: _Floats, c: _Floats, generations: npt.NDArray[np.int64]) -> None:
        """Point at the pool's h, c and generations (kept alive by the pool); call with the mutex held."""
    def __enter__(self) -> None: ...
    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None: ...

class StepQueue:
    """Session steps run in order by a thread of the queue's own, which never takes the GIL."""
    def __init__(self) -> None: ...
    def push_sessions(
        self,
        lstm: PackedLstm,
        rows: SessionRows,
        x: _Floats,
        ids: npt.NDArray[np.int64],
        threads: int,
        cache: ForwardCache,
    ) -> tuple[int, _Floats]:
        """Queue one step of the sessions `ids` of `rows`; returns (ticket, y), y written once the ticket is
        reported finished. RuntimeError in a process forked since the queue started."""
    def wait_finished(self, timeout: float) -> list[tuple[int, str | None, list[int]]]:
        """[(ticket, error or None, skipped rows)] of the steps finished since the last call; when none, first
        waits for one, for nudge() or for `timeout` seconds (negative: no limit), without the GIL."""
    def nudge(self) -> None:
        """End the current or next wait_finished early."""
    def take_finished(self) -> list[tuple[int, str | None, list[int]]]:
        """wait_finished's report of the steps finished since the last report, without waiting."""
    def set_wakeup_fd(self, fd: int, grace: float) -> None:
        """With fd >= 0, a byte written to fd as each step finishes, and wait_finished leaving a finished step
        to take_finished for `grace` seconds; fd < 0: neither. A former fd may be closed once this returns."""
    @property
    def outstanding(self) -> int:
        """Steps pushed and not yet reported by wait_finished or take_finished."""
    @property
    def busy_seconds(self) -> float:
        """Seconds the queue's thread has spent stepping so far."""

class _Testing:
    """Hooks into the core for the tests: single kernels, roundings."""

    @staticmethod
    def softmax_rows(isa: str, x: _Floats) -> _Floats:
        """The softmax of each row of x with one variant's kernel."""
    @staticmethod
    def round_to_bf16(x: _Floats) -> _Floats:
        """x rounded to bf16 as the core rounds (ties to even), as float32."""
    @staticmethod
    def quantize_to_int8(x: _Floats) -> tuple[npt.NDArray[np.int8], _Floats]:
        """(codes, scales) of each row of x as the core quantizes to int8."""
    @staticmethod
    def look_ahead_loop(isa: str, recurrent: _Floats, inputs: _Floats, h: _Floats, x: _Floats, steps: int) -> float:
        """The sum of everything the ISA's look-ahead loop (the calibration kernel) multiplies and adds."""
    @staticmethod
    def activation(isa: str, function: str, x: _Floats) -> _Floats:
        """The step kernel's sigmoid or tanh of one ISA, applied to an array."""
    @staticmethod
    def handoff_every_step(on: bool) -> None:
        """While on, a bidirectional call's two threads hand its directions to each other after nearly every step,
        and help with each other's chunk projections whenever idle; a team that splits the hidden units shrinks to
        its first member at the end of every chunk and grows back at the next one that finds the others waiting."""
    @staticmethod
    def team_shrinks_so_far() -> int:
        """How many times a team that split the hidden units shrank to its first member, in this process."""
    @staticmethod
    def team_regrowths_so_far() -> int:
        """How many times the other members of such a team joined it again after it shrank, in this process."""
    @staticmethod
    def late_join(on: bool) -> None:
        """While on, the other members of a team that splits the hidden units join its first member no earlier than
        before its second chunk, as a worker that starts late does."""
    @staticmethod
    def late_joins_so_far() -> int:
        """How many times members joined a team that splits the hidden units after its first had started alone, in
        this process."""
    @staticmethod
    def openmp_team_calls_so_far() -> int:
        """How many calls ran their threads on the process's OpenMP runtime (openmp_teams), in this process."""
    @staticmethod
    def handoffs_so_far() -> int:
        """How many times a direction of a bidirectional call has changed threads between two steps, in this
        process."""
    @staticmethod
    def streamed_look_ahead_runs_so_far() -> int:
        """How many directions of calls ran the look-ahead step with its input weights streamed (weights past the
        cache-resident size), in this process."""
    @staticmethod
    def helped_projection_blocks_so_far() -> int:
        """How many blocks of a chunk's input projection a thread ran for the other one's direction, in this
        process."""

class _Calibration:
    """The benchmark's calibration: FMA peak, read bandwidth, the batch-1 look-ahead loop."""

    @staticmethod
    def fma_peak_gflops(isa: str, threads: int, seconds: float) -> float:
        """GFLOP/s of `threads` threads running the ISA's FMA calibration kernel for about `seconds`."""
    @staticmethod
    def read_bandwidth_gbs(isa: str, threads: int, bytes_per_thread: int, seconds: float) -> float:
        """GB/s of `threads` threads each reading its own array of `bytes_per_thread` bytes again and again."""
    @staticmethod
    def look_ahead_loop_step_seconds(isa: str, input_size: int, hidden_size: int, seconds: float) -> float:
        """Seconds per batch-1 step of the ISA's look-ahead loop: the step's loads and multiply-adds alone, no cells."""
    @staticmethod
    def shared_work(isa: str, threads: int, units: int, iterations: int) -> None:
        """`units` runs of `iterations` of the FMA kernel, each taken by whichever of `threads` threads is free."""

testing: _Testing
calibration: _Calibration
