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

To compare with another runtime, add a ``Peer`` to ``PEERS`` in ``peers.py``: a name, the modules it needs, a builder
that turns a fastlstm model and a thread count into a callable ``x -> output`` of that runtime, and, for a runtime
whose thread count is a process-wide setting, a context that applies it. The report, the JSON, the plot and the
pytest-benchmark suite (``benchmarks/``) pick it up from there.

The modules, in the order a run uses them:

- ``precisions``: the precisions a row can run in, their tolerances, weight bytes and multiply-add instructions;
- ``shapes``: ``Shape``, the quick and full matrices, ``--shapes`` and ``--threads``, the model and input of a shape;
- ``peers``: ``Peer``, the implementations fastlstm is compared with, and the comparison of outputs;
- ``timing``: the interleaved timing of a row's implementations and the calibration kernels (FMA peak, bandwidth);
- ``rows``: ``Row``, one shape at one thread count and precision, checked and timed, and the rows of a run;
- ``machine``: the versions and machine a run's numbers depend on;
- ``report``: the text report and the JSON; ``plot``: the bar chart;
- ``cli``: the arguments of ``python -m fastlstm bench`` and ``run``, which does all of the above;
- ``neighbours``: ``--neighbours``, fastlstm calls right after other libraries' threads ran, against undisturbed ones;
- ``streaming``: ``--streaming``, live streams: a step from a kept state against the peers' (``step_peers``), sessions
  stepped together, the dynamic batcher.
"""

from .cli import run
from .machine import environment
from .peers import (
    NUMPY,
    OPENVINO_BF16,
    PEERS,
    Forward,
    Peer,
    Unsupported,
    available_peers,
    fastlstm_forward,
    output_difference,
    relevant_peers,
)
from .plot import write_plot
from .precisions import (
    BF16_TOLERANCE,
    GATE_WEIGHT_BYTES,
    INT8_TOLERANCE,
    MULTIPLY_ADD_INSTRUCTIONS,
    MULTIPLY_ADDS_PER_LANE,
    PRECISIONS,
    TOLERANCE,
    TOLERANCES,
    parse_precisions,
)
from .report import columns, report, write_json
from .rows import measure, measure_shape
from .shapes import (
    FULL_SHAPES,
    QUICK_SHAPES,
    Shape,
    build_model,
    check_thread_counts,
    default_thread_counts,
    make_input,
    parse_shapes,
)

__all__ = [
    "BF16_TOLERANCE",
    "FULL_SHAPES",
    "GATE_WEIGHT_BYTES",
    "INT8_TOLERANCE",
    "MULTIPLY_ADDS_PER_LANE",
    "MULTIPLY_ADD_INSTRUCTIONS",
    "NUMPY",
    "OPENVINO_BF16",
    "PEERS",
    "PRECISIONS",
    "QUICK_SHAPES",
    "TOLERANCE",
    "TOLERANCES",
    "Forward",
    "Peer",
    "Shape",
    "Unsupported",
    "available_peers",
    "build_model",
    "check_thread_counts",
    "columns",
    "default_thread_counts",
    "environment",
    "fastlstm_forward",
    "make_input",
    "measure",
    "measure_shape",
    "output_difference",
    "parse_precisions",
    "parse_shapes",
    "relevant_peers",
    "report",
    "run",
    "write_json",
    "write_plot",
]
