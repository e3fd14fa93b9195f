"""What ``predict`` and ``predict_bag`` work out on the client before building a graph: what the model looks like
(``ModelInfo``), the one graph key that carries it, and the thread count of each worker's calls."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import dask
from dask.delayed import Delayed

from .._isa import compiled_isas
from .._sequence import SequenceModel
from ..lstm import LSTM
from ._worker import SerializedModel, ThreadPlan, model_isa, usable_cores


@dataclass(frozen=True)
class ModelInfo:
    """The shapes a model takes and gives, which the graph needs before any worker has the model."""

    kind: str  # "lstm" (fastlstm.LSTM) or "sequence" (fastlstm.SequenceModel)
    batch_first: bool
    input_size: int
    tokens: bool  # a SequenceModel with an embedding: x holds integer token ids, (T, N) or (N, T)
    features: int  # output features: num_directions * H_out
    states: int  # num_layers * num_directions: the first axis of h_n and c_n
    output_size: int  # H_out: the last axis of h_n
    hidden_size: int  # the last axis of c_n
    num_classes: int  # a SequenceModel's classes; 0 for an LSTM
    isa: str  # the variant the model was packed for where it was described

    @property
    def outputs(self) -> tuple[str, ...]:
        """The results ``output=`` may name; the first is the default."""
        return ("output", "h_n", "c_n") if self.kind == "lstm" else ("labels", "probabilities")


def describe(model: Any) -> ModelInfo:
    """The ModelInfo of a fastlstm.LSTM or SequenceModel; a TypeError naming what was given otherwise."""
    if isinstance(model, SequenceModel):
        lstm, kind = model.lstm, "sequence"
    elif isinstance(model, LSTM):
        lstm, kind = model, "lstm"
    else:
        hint = " (a KerasLSTM runs its .model, a fastlstm.LSTM)" if type(model).__name__ == "KerasLSTM" else ""
        raise TypeError(
            f"model: expected a fastlstm.LSTM or fastlstm.SequenceModel, a dask future of one or a dask.delayed "
            f"one, got {type(model).__module__}.{type(model).__qualname__}{hint}"
        )
    return ModelInfo(
        kind=kind,
        batch_first=lstm.batch_first,
        input_size=lstm.input_size,
        tokens=kind == "sequence" and model.embedding is not None,
        features=lstm.num_directions * lstm.output_size,
        states=lstm.num_layers * lstm.num_directions,
        output_size=lstm.output_size,
        hidden_size=lstm.hidden_size,
        num_classes=model.num_classes if kind == "sequence" else 0,
        isa=model_isa(model),
    )


def _is_future(value: Any) -> bool:
    try:
        from distributed import Future
    except ImportError:
        return False
    return isinstance(value, Future)


def model_reference(model: Any) -> tuple[ModelInfo, Any]:
    """The model's ModelInfo, and what the graph's tasks take as their model: one key, which Dask sends to each
    worker once.

    - a model: its pickle bytes (``SerializedModel``) under the key ``fastlstm-model-<digest>``; each worker process
      unpickles them once (``_worker.model_for_task``);
    - a Distributed future of a model (``client.scatter(model, broadcast=True)``): used as it is, and described by a
      small task on the cluster; the model stays where it was scattered;
    - a ``dask.delayed`` model (``dask.delayed(fastlstm.load)(path)``, which reads the file on the cluster):
      described by computing it once, then computed again as part of the graph.
    """
    if isinstance(model, (LSTM, SequenceModel)):
        info = describe(model)
        payload = SerializedModel.of(model)
        return info, dask.delayed(payload, name=f"fastlstm-model-{payload.digest}", traverse=False)
    if _is_future(model):
        return model.client.submit(describe, model, pure=False).result(), model
    if isinstance(model, Delayed):
        return dask.delayed(describe)(model).compute(), model
    return describe(model), model  # raises the TypeError


def check_isa(isa: Any) -> str | None:
    """None, or the name of a variant compiled into fastlstm (whether a worker's CPU runs it, the worker checks)."""
    if isa is None:
        return None
    if not isinstance(isa, str) or isa not in compiled_isas():
        raise ValueError(f"isa: expected None or one of {compiled_isas()}, got {isa!r}")
    return isa


def _current_client() -> Any:
    """The Distributed client that computes graphs here (``client.as_current()``'s, else the default one), or None."""
    try:
        from distributed import Client
    except ImportError:
        return None
    try:
        return Client.current(allow_global=True)
    except ValueError:  # no client: Dask's local schedulers run the graph
        return None


def thread_plan() -> ThreadPlan | None:
    """Threads per call for each worker of the current Distributed client (None without one): the cores of the
    worker's host divided by the task slots on that host (the sum of its workers' nthreads), at least 1. One worker
    of one thread on a 2-core machine calls with 2 threads; two such workers with 1 each; a worker of 2 threads
    with 1 per call, since it runs two tasks at once. So the machine's cores are shared, never oversubscribed."""
    client = _current_client()
    if client is None:
        return None
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(usable_cores)
    slots: dict[str, int] = defaultdict(int)
    host_cores: dict[str, int] = defaultdict(int)
    for address, worker in workers.items():
        slots[worker["host"]] += worker["nthreads"]
        host_cores[worker["host"]] = max(host_cores[worker["host"]], cores.get(address, 1))
    plan = {
        address: max(1, host_cores[worker["host"]] // max(1, slots[worker["host"]]))
        for address, worker in workers.items()
    }
    return ThreadPlan(tuple(sorted(plan.items())))


def thread_plan_key(threads: int | None) -> Any:
    """The thread plan as one graph key that every task reads, or None: when ``threads`` is given (every call uses
    it) or there is no Distributed client."""
    plan = None if threads is not None else thread_plan()
    if plan is None:
        return None
    return dask.delayed(plan, name=f"fastlstm-threads-{dask.base.tokenize(plan)}", traverse=False)
