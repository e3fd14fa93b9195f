"""One row of the report: fastlstm and its peers on one shape at one thread count and precision, checked against
fastlstm's float32 output and then timed (``measure_shape``), and the rows of a whole run (``measure``)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from .peers import Peer, Unsupported, fastlstm_forward, output_difference
from .precisions import MULTIPLY_ADDS_PER_LANE, TOLERANCES
from .shapes import Shape, build_model, make_input, row_text
from .timing import Timing, read_bandwidth, time_interleaved


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
        traffic = self.shape.input_traffic_bytes(self.precision) / (
            self.bandwidth_gbs * 1e9
        ) + self.shape.recurrent_traffic_bytes(self.precision) / (self.recurrent_bandwidth_gbs * 1e9)
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
        where = row_text(shape, threads, precision)
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
                bandwidths[key] = max(bandwidths.get(key, 0.0), read_bandwidth(*key))
            row = measure_shape(shape, threads, peaks[threads], peers, repeat_seconds, precision)
            for key in distinct:
                bandwidths[key] = max(bandwidths[key], read_bandwidth(*key))
            rows.append(
                dataclasses.replace(row, bandwidth_gbs=bandwidths[keys[0]], recurrent_bandwidth_gbs=bandwidths[keys[1]])
            )
        print(f" {time.perf_counter() - start:.1f} s", file=progress, flush=True)
    return rows
