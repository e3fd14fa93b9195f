"""``fastlstm.dask.predict``: a model over a dask array of sequences, as a lazy dask array per result."""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np

from .._checks import check_pair, check_threads, shape_text
from ._client import ModelInfo, check_isa, model_reference, thread_plan_key
from ._tasks import run_block, take


def check_outputs(output: Any, info: ModelInfo) -> tuple[str, ...]:
    """``output=`` as a tuple of result names: None gives the model's default, a name one result, a tuple or list
    of names several (computed by one call per block)."""
    names = (info.outputs[0],) if output is None else (output,) if isinstance(output, str) else output
    kind = "fastlstm.LSTM" if info.kind == "lstm" else "fastlstm.SequenceModel"
    if not isinstance(names, (tuple, list)) or not names or not all(isinstance(name, str) for name in names):
        raise TypeError(f"output: expected None, a result name or a tuple of them, got {output!r}")
    unknown = [name for name in names if name not in info.outputs]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"output: expected distinct names among {list(info.outputs)} (a {kind}), got {output!r}")
    return tuple(names)


def _check_x(x: Any, info: ModelInfo) -> da.Array:
    if not isinstance(x, da.Array):
        raise TypeError(
            f"X: expected a dask.array.Array, got {type(x).__module__}.{type(x).__qualname__} (wrap a NumPy array "
            "with dask.array.from_array(x, chunks=...), splitting the batch axis)"
        )
    layout = "(N, T" if info.batch_first else "(T, N"
    if info.tokens:
        if x.ndim != 2 or x.dtype.kind not in "iu":
            raise ValueError(
                f"X: expected integer token ids {layout}) (the model has an embedding), got {x.ndim}-D shape "
                f"{shape_text(x.shape)} of dtype {x.dtype}"
            )
    elif x.ndim != 3 or x.shape[2] != info.input_size or x.dtype.kind not in "iuf":
        raise ValueError(
            f"X: expected a real array {layout}, {info.input_size}) (input_size={info.input_size}), got "
            f"{x.ndim}-D shape {shape_text(x.shape)} of dtype {x.dtype}"
        )
    time_axis = 1 if info.batch_first else 0
    if math.isnan(x.shape[time_axis]):
        raise ValueError("X: the length of the time axis is unknown; call X.compute_chunk_sizes() first")
    return x


def _aligned(value: Any, name: str, shape: tuple, batch_axis: int, rows: tuple, integers: bool) -> da.Array:
    """``value`` (a NumPy or dask array) as a dask array of ``shape`` chunked like X's rows on ``batch_axis`` and
    whole on the other axes."""
    if not isinstance(value, da.Array):
        value = np.asarray(value)
    kinds, kind_text = ("iu", "integers") if integers else ("iuf", "real numbers")
    if value.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected {kind_text}, got dtype {value.dtype}")
    if value.ndim != len(shape) or any(
        want != got for want, got in zip(shape, value.shape) if not (math.isnan(want) or math.isnan(got))
    ):
        raise ValueError(f"{name}: expected shape {shape_text(shape)}, got {shape_text(value.shape)}")
    chunks = tuple(rows if axis == batch_axis else -1 for axis in range(len(shape)))
    if any(math.isnan(size) for size in rows):
        raise ValueError(f"{name}: X's rows have unknown chunk sizes; call X.compute_chunk_sizes() first")
    if isinstance(value, da.Array):
        return value.rechunk(chunks)
    return da.from_array(value, chunks=chunks)


def _layout(name: str, info: ModelInfo, steps: int) -> tuple[str, dict[str, int], np.dtype]:
    """A result's blockwise index (``b``: X's rows; capitals: axes the result adds), their sizes and its dtype."""
    time = "bT" if info.batch_first else "Tb"
    if name in ("h_n", "c_n"):
        return "SbH", {"S": info.states, "H": info.output_size if name == "h_n" else info.hidden_size}, np.float32
    if name == "labels":
        return time, {"T": steps}, np.dtype(np.int64)
    classes_or_features = info.num_classes if name == "probabilities" else info.features
    return time + "F", {"T": steps, "F": classes_or_features}, np.dtype(np.float32)


def predict(
    model: Any,
    X: Any,
    *,
    lengths: Any = None,
    state: Any = None,
    output: str | tuple[str, ...] | None = None,
    threads: int | None = None,
    isa: str | None = None,
) -> Any:
    """A lazy dask array of ``model`` over ``X``, one task per block of rows, bitwise what one direct call on the
    whole of X gives.

    Args:
        model: a ``fastlstm.LSTM`` or ``SequenceModel``; or a Distributed future of one (``client.scatter(model,
            broadcast=True)``, reused by every call); or a ``dask.delayed`` one (``dask.delayed(fastlstm.load)(path)``
            reads the file on the workers). A model object travels as its pickle, one graph key that each worker
            receives once and unpickles once (per process; later calls with the same model find it cached).
        X: a dask array (T, N, input_size), or (N, T, input_size) for a batch_first model; integer token ids
            (T, N) / (N, T) for a SequenceModel with an embedding. Its chunks should split the batch axis only;
            time and features are rechunked whole.
        lengths: (N,) integers, a NumPy or dask array: each row's length, as in the model's call.
        state: (h0, c0), NumPy or dask arrays of the model's state shapes (batch on axis 1).
        output: the result: for an LSTM "output" (default), "h_n" or "c_n"; for a SequenceModel "labels" (default)
            or "probabilities". A tuple of names returns a tuple of arrays from one call per block: compute them
            together (``dask.compute(a, b)``) to run the model once.
        threads: threads per call; None gives each call its worker's share of the host's cores (see README).
        isa: None runs the kernel variant active on each worker (``FASTLSTM_ISA`` there, else its best); a name
            repacks the model for that variant on every worker, for bitwise equal results across different CPUs.
    """
    info, source = model_reference(model)
    outputs = check_outputs(output, info)
    threads = check_threads(threads, "threads")
    isa = check_isa(isa)
    X = _check_x(X, info)
    batch_axis, time_axis = (0, 1) if info.batch_first else (1, 0)
    X = X.rechunk({axis: -1 for axis in range(X.ndim) if axis != batch_axis})
    rows, batch, steps = X.chunks[batch_axis], X.shape[batch_axis], X.shape[time_axis]
    x_index = ("bt" if info.batch_first else "tb") + ("" if info.tokens else "f")
    arguments: list[Any] = [X, x_index]
    if lengths is None:
        arguments += [None, None]
    else:
        arguments += [_aligned(lengths, "lengths", (batch,), 0, rows, integers=True), "b"]
    if state is None:
        arguments += [None, None, None, None]
    else:
        h0, c0 = check_pair(state, "state", "(h0, c0)", optional=True)
        h_shape, c_shape = (info.states, batch, info.output_size), (info.states, batch, info.hidden_size)
        arguments += [_aligned(h0, "state[0] (h0)", h_shape, 1, rows, integers=False), "pbq"]
        arguments += [_aligned(c0, "state[1] (c0)", c_shape, 1, rows, integers=False), "rbs"]
    plan = thread_plan_key(threads)
    options = dict(outputs=outputs, isa=isa, threads=threads, concatenate=False)
    if len(outputs) == 1:
        index, new_axes, dtype = _layout(outputs[0], info, steps)
        meta = np.empty((0,) * len(index), dtype)
        result = da.blockwise(
            run_block, index, source, None, plan, None, *arguments, new_axes=new_axes, meta=meta, **options
        )
        return result if isinstance(output, str) or output is None else (result,)
    runs = da.blockwise(run_block, "b", source, None, plan, None, *arguments, meta=np.empty((0,), object), **options)
    results = []
    for name in outputs:
        index, new_axes, dtype = _layout(name, info, steps)
        meta = np.empty((0,) * len(index), dtype)
        results.append(da.blockwise(take, index, runs, "b", name, None, new_axes=new_axes, meta=meta))
    return tuple(results)
