"""The problems the benchmark measures: ``Shape``, the quick and full matrices, the parsing of ``--shapes`` and
``--threads``, and the model and input built for a shape."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import fastlstm

from .precisions import GATE_WEIGHT_BYTES, PROJECTION_WEIGHT_BYTES

#: Seed of the models' weights and of the inputs: every run measures the same problems.
SEED = 0


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
            f"{self.hidden_size}" if self.input_size == self.hidden_size else f"{self.input_size}x{self.hidden_size}"
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
    Shape(7, 500, 50, 65),  # odd sizes, a small model over long sequences: the per-step costs weigh most
    Shape(13, 50, 77, 333),  # odd sizes, a middling batch
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
        if len(options_list) != len({option[0] for option in options_list}):
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


def threads_text(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


def row_text(shape: Shape, threads: int, precision: str) -> str:
    """``B=1 T=100 I=H=512, 2 threads``, then ``, bf16`` in a reduced precision (fp32, the default, is implicit)."""
    text = f"{shape.label}, {threads_text(threads)}"
    return text if precision == "fp32" else f"{text}, {precision}"
