"""``fastlstm.dask.predict_bag``: a model over a dask bag of sequences of different lengths."""

from __future__ import annotations

from typing import Any

import dask.bag as db

from .._checks import check_int, check_threads
from ._arrays import check_outputs
from ._client import check_isa, model_reference, thread_plan_key
from ._tasks import run_partition


def predict_bag(
    model: Any,
    bag: Any,
    *,
    output: str | tuple[str, ...] | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    isa: str | None = None,
) -> Any:
    """A lazy dask bag of ``model``'s results per sequence, for a bag of sequences of different lengths: arrays
    (T_i, input_size), or (T_i,) integer token ids for a SequenceModel with an embedding.

    Each partition is padded into batches and run with ``lengths=``; result i is bitwise what a call on sequence i
    alone gives: ``output`` (T_i, features), ``h_n`` / ``c_n`` (num_layers * num_directions, size),
    ``probabilities`` (T_i, classes), ``labels`` (T_i,). ``output``, ``threads`` and ``isa`` as in ``predict``
    (a tuple of names gives a tuple per sequence). ``batch_size`` bounds the rows of one call: a partition's
    sequences are then sorted by length and run in batches of that many, which keeps the padding small; None runs
    each partition as one batch.
    """
    if not isinstance(bag, db.Bag):
        raise TypeError(
            f"bag: expected a dask.bag.Bag of sequences, got {type(bag).__module__}.{type(bag).__qualname__}"
        )
    info, source = model_reference(model)
    outputs = check_outputs(output, info)
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
    threads = check_threads(threads, "threads")
    isa = check_isa(isa)
    plan = thread_plan_key(threads)
    tuples = not (output is None or isinstance(output, str))
    return bag.map_partitions(
        run_partition, source, plan, outputs=outputs, isa=isa, threads=threads, batch_size=batch_size, tuples=tuples
    )
