"""The functions the workers run: a model on one block of a dask array (``run_block``), on one partition of a bag
of ragged sequences (``run_partition``), and the pick of one result of several (``take``). Each takes its model
through ``_worker.model_for_task`` and its thread count through ``_worker.call_threads``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .._checks import shape_text
from .._sequence import SequenceModel
from ._worker import ThreadPlan, call_threads, model_for_task

#: The results that come from the hidden states of every step (the others, h_n and c_n, have no time axis).
STEP_OUTPUTS = ("output", "probabilities", "labels")


def _single(block: Any) -> Any:
    """The one block behind the lists that Dask's blockwise passes for each axis a task does not map (time and
    features: the graph keeps them whole)."""
    while isinstance(block, list):
        if len(block) != 1:
            raise AssertionError(f"expected one block along every unmapped axis, got {len(block)}")
        block = block[0]
    return block


def run_model(model: Any, x: Any, state: Any, lengths: Any, threads: int | None, outputs: Iterable[str]) -> dict:
    """The named results of one call (a SequenceModel's probabilities and labels are one call each, as in its own
    API, so that each is bitwise what that call gives)."""
    if isinstance(model, SequenceModel):
        results = {}
        if "probabilities" in outputs:
            results["probabilities"] = model.predict_proba(x, state, lengths=lengths, threads=threads)
        if "labels" in outputs:
            results["labels"] = model.predict(x, state, lengths=lengths, threads=threads)
        return results
    output, (h_n, c_n) = model(x, state, lengths=lengths, threads=threads)
    everything = {"output": output, "h_n": h_n, "c_n": c_n}
    return {name: everything[name] for name in outputs}


def run_block(
    source: Any,
    plan: ThreadPlan | None,
    x: Any,
    lengths: Any,
    h0: Any,
    c0: Any,
    *,
    outputs: tuple[str, ...],
    isa: str | None,
    threads: int | None,
) -> Any:
    """One block of ``predict``: the model over rows of x (every step, every feature). One result as an array;
    several as a dict, which ``take`` splits."""
    model = model_for_task(source, isa)
    h0, c0 = _single(h0), _single(c0)
    state = None if h0 is None else (h0, c0)
    results = run_model(model, _single(x), state, _single(lengths), call_threads(threads, plan), outputs)
    return results[outputs[0]] if len(outputs) == 1 else results


def take(results: dict, name: str) -> np.ndarray:
    return results[name]


def _sequence(item: Any, position: int, tokens: bool, input_size: int) -> np.ndarray:
    array = np.asarray(item)
    where = f"bag item {position} of its partition"
    if tokens:
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: expected a 1-D array of integer token ids (T,) (the model has an embedding), got "
                f"{array.ndim}-D shape {shape_text(array.shape)} of dtype {array.dtype}"
            )
    elif array.ndim != 2 or array.shape[1] != input_size or array.dtype.kind not in "iuf":
        raise ValueError(
            f"{where}: expected a real array (T, {input_size}) (input_size={input_size}), got shape "
            f"{shape_text(array.shape)} of dtype {array.dtype}"
        )
    return array


def _padded(sequences: list[np.ndarray], batch_first: bool, tokens: bool, input_size: int) -> np.ndarray:
    """The sequences as one batch, zero past each one's length (never read: the call gets lengths)."""
    steps = max((len(sequence) for sequence in sequences), default=0)
    rows = (len(sequences), steps) if batch_first else (steps, len(sequences))
    batch = np.zeros(rows if tokens else (*rows, input_size), np.int64 if tokens else np.float32)
    with np.errstate(over="ignore"):  # values beyond float32 become +-inf, as the model's own conversion makes them
        for row, sequence in enumerate(sequences):
            if batch_first:
                batch[row, : len(sequence)] = sequence
            else:
                batch[: len(sequence), row] = sequence
    return batch


def _row(value: np.ndarray, name: str, row: int, length: int, batch_first: bool) -> np.ndarray:
    """One sequence's part of a batch result, as an array of its own (so it does not keep the batch alive)."""
    if name not in STEP_OUTPUTS:
        return value[:, row].copy()
    return (value[row, :length] if batch_first else value[:length, row]).copy()


def run_partition(
    items: Iterable[Any],
    source: Any,
    plan: ThreadPlan | None,
    *,
    outputs: tuple[str, ...],
    isa: str | None,
    threads: int | None,
    batch_size: int | None,
    tuples: bool,
) -> list[Any]:
    """One partition of ``predict_bag``: its sequences padded into batches of at most ``batch_size`` (all at once
    when None; by increasing length otherwise, so a batch's rows are alike), each batch one call with lengths=;
    the results per sequence, in the partition's order: a tuple of ``outputs`` if ``tuples``, else the one array."""
    model = model_for_task(source, isa)
    lstm = model.lstm if isinstance(model, SequenceModel) else model
    tokens = isinstance(model, SequenceModel) and model.embedding is not None
    sequences = [_sequence(item, position, tokens, lstm.input_size) for position, item in enumerate(items)]
    lengths = np.array([len(sequence) for sequence in sequences], np.int64)
    order = np.argsort(lengths, kind="stable") if batch_size else np.arange(len(sequences))
    size = batch_size or max(1, len(sequences))
    threads = call_threads(threads, plan)
    results: list[Any] = [None] * len(sequences)
    for start in range(0, len(sequences), size):
        rows = order[start : start + size]
        batch = _padded([sequences[row] for row in rows], lstm.batch_first, tokens, lstm.input_size)
        batch_results = run_model(model, batch, None, lengths[rows], threads, outputs)
        for position, row in enumerate(rows):
            parts = tuple(_row(batch_results[name], name, position, lengths[row], lstm.batch_first) for name in outputs)
            results[row] = parts if tuples else parts[0]
    return results
