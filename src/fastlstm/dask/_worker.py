"""What runs inside the Dask tasks: the model behind a task's reference, unpickled once per worker process, and the
thread count of each call. This module imports NumPy and fastlstm only (Distributed lazily, to find the worker).

A graph names its model once, as one key: a ``SerializedModel`` (pickle bytes and their digest) or the caller's
future or delayed model. Every task of the graph depends on that key, so Dask sends it to a worker once, and the
per-process cache below turns the bytes into a model once per worker process and kernel variant, whatever the number
of tasks and calls of ``predict`` with the same model.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .._isa import active_isa, use_isa
from .._sequence import SequenceModel
from ..lstm import LSTM

#: Models kept per worker process: each holds its float32 parameters and packed weights, so the cache stays small;
#: a fifth model evicts the one used least recently.
CACHE_SIZE = 4

# One lock for the cache and for every load under ``use_isa``, which switches the variant of the whole process: two
# loads of this module never overlap, so neither packs for the other's variant. (A model that other code builds in
# another thread of the same worker during such a load is packed for that variant too: see the README on isa=.)
_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()  # key -> (source kept alive, model)
_counts = {"loads": 0, "repacks": 0, "hits": 0}


@dataclass(frozen=True)
class SerializedModel:
    """A model as the bytes of its pickle (``fastlstm._portable``: options and float32 parameters, never packed
    weights) and their SHA-256 digest, which names it in the graph and in each worker's cache."""

    digest: str
    data: bytes

    @classmethod
    def of(cls, model: Any) -> SerializedModel:
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(hashlib.sha256(data).hexdigest(), data)

    def __repr__(self) -> str:
        return f"SerializedModel({self.digest[:12]}, {len(self.data):,} bytes)"


def model_isa(model: Any) -> str:
    """The kernel variant a model's LSTM is packed for."""
    return model.lstm.isa if isinstance(model, SequenceModel) else model.isa


def model_for_task(source: Any, isa: str | None) -> Any:
    """The model a task runs: ``source`` itself, or the model that its bytes describe, packed for ``isa`` (None:
    this process's active variant, ``FASTLSTM_ISA`` or the best); loaded or repacked once per process and kept in
    the cache."""
    with _lock:
        if isinstance(source, SerializedModel):
            key: tuple[Any, ...] = ("bytes", source.digest, isa or active_isa())
        elif isinstance(source, (LSTM, SequenceModel)):
            if isa is None or model_isa(source) == isa:
                return source
            key = ("object", id(source), isa)  # the entry keeps the source alive, so its id stays its own
        else:
            raise TypeError(
                f"model: expected a fastlstm.LSTM or fastlstm.SequenceModel on the worker, got "
                f"{type(source).__module__}.{type(source).__qualname__}"
            )
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
            _counts["hits"] += 1
            return entry[1]
        with use_isa(isa) if isa is not None else contextlib.nullcontext():
            if isinstance(source, SerializedModel):
                model = pickle.loads(source.data)
                _counts["loads"] += 1
            else:
                model = copy.deepcopy(source)  # packs anew, for the variant in force (fastlstm._portable)
                _counts["repacks"] += 1
        _cache[key] = (source, model)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return model


def worker_cache_info() -> dict[str, int]:
    """This process's model cache: ``loads`` (models unpickled from a graph's bytes), ``repacks`` (a future's or
    delayed model repacked for ``isa=``), ``hits`` (tasks that found their model already there) and ``entries``.
    On a cluster, ``client.run(fastlstm.dask.worker_cache_info)`` gives it per worker."""
    with _lock:
        return {**_counts, "entries": len(_cache)}


def clear_worker_cache() -> None:
    """Drop this process's cached models and zero its counts (``client.run(fastlstm.dask.clear_worker_cache)`` on a
    cluster): the memory of models no longer used comes back at once instead of when newer models evict them."""
    with _lock:
        _cache.clear()
        _counts.update(dict.fromkeys(_counts, 0))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadPlan:
    """Threads per call on each worker, by worker address (see ``fastlstm.dask._cluster.thread_plan``)."""

    threads: tuple[tuple[str, int], ...]


def call_threads(requested: int | None, plan: ThreadPlan | None) -> int | None:
    """The ``threads=`` of a call in a task: the caller's count if given; in a Distributed worker, its share of the
    host's cores from ``plan``, or 1 (Dask's one core per task slot) for a worker the plan does not know; outside a
    worker (Dask's threaded or synchronous scheduler), None: fastlstm chooses, and its one thread pool per process
    runs one call's team at a time, so concurrent tasks do not oversubscribe the cores."""
    if requested is not None:
        return requested
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # ValueError: not running in a worker
        return None
    return dict(plan.threads).get(address, 1) if plan is not None else 1
