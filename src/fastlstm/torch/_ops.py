"""The fast path as torch operators: ``fastlstm::lstm`` (a sequence tensor) and ``fastlstm::lstm_packed`` (a
PackedSequence's rows), registered with ``torch.library.custom_op`` and a fake implementation, so that
``torch.compile(fullgraph=True)`` and ``torch.export`` see one opaque operator each.

A packed model is no tensor and cannot be an operator's argument: each ``fastlstm.torch`` module registers itself
under an int key (weakly: the registry never keeps a module alive), and the operators take the key. The key is a
constant of a traced graph, and inductor's graph cache lives on disk, shared by every process of a user: it holds
a fingerprint of the module's geometry besides a count, so that a graph cached by another process for a different
model (with the same count there) never matches, and never lends this one its output shapes. The real
implementation asks the module for its current packed weights (repacked there when a parameter changed, so that a
compiled or exported graph never computes with stale weights) and runs the core on the tensors' own memory:
``Tensor.numpy()`` and ``torch.from_numpy`` share it, so a contiguous float32 input is never copied.
"""

import itertools
import weakref
import zlib

import numpy as np
import torch

from .. import _core

#: key -> the fastlstm.torch module (weakly held)
_MODULES: "weakref.WeakValueDictionary[int, torch.nn.Module]" = weakref.WeakValueDictionary()
_KEYS = itertools.count(1)


def register(module: torch.nn.Module) -> int:
    """A new key under which the operators find ``module`` (for as long as it lives): a 31-bit fingerprint of its
    geometry (what the fake implementations read) above a 32-bit count of this process's registrations, so an int64
    for 2^32 registrations a process."""
    fingerprint = zlib.crc32(repr(tuple(module.fastlstm_geometry())).encode()) & 0x7FFF_FFFF
    key = fingerprint << 32 | next(_KEYS)
    _MODULES[key] = module
    return key


_dynamo_told = False


def let_dynamo_trace_lstm_modules() -> None:
    """Dynamo refuses any ``torch.nn.LSTM`` module, ours included (they subclass it), unless
    ``torch._dynamo.config.allow_rnn`` is set, so that ``torch.compile(fullgraph=True)`` of an optimized model would
    fail. The first ``fastlstm.torch.LSTM`` of a process sets it, once: whoever sets it back gets dynamo's refusal
    again. Dynamo then also traces a plain ``torch.nn.LSTM`` compiled in this process (its experimental support)
    instead of leaving it out of the graph. Importing dynamo takes about a second, once."""
    global _dynamo_told
    if _dynamo_told:
        return
    _dynamo_told = True
    import torch._dynamo

    torch._dynamo.config.allow_rnn = True


def registered(key: int) -> torch.nn.Module:
    module = _MODULES.get(key)
    if module is None:
        raise RuntimeError(
            f"fastlstm: key {key}: the fastlstm.torch module this graph was traced from no longer exists; trace "
            "(torch.compile, torch.export) the live model again"
        )
    return module


def _numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    """The tensor's own memory as a C-contiguous float32 array (a copy only for a non-contiguous tensor)."""
    return None if tensor is None else tensor.detach().contiguous().numpy()


def _threads(requested: int) -> int:
    """0 follows torch's own thread count at the time of the call (torch.get_num_threads)."""
    return requested if requested > 0 else torch.get_num_threads()


_torch_uses_openmp: bool | None = None


def _on_torch_threads(call):
    """call() with the core's threads taken from torch's OpenMP runtime when torch's intra-op backend is OpenMP (the
    wheels' default): right after torch's ops its workers still spin, each on a core, and a team of fastlstm's own
    threads would share a core with one of them at every step (README, "In a PyTorch model")."""
    global _torch_uses_openmp
    if _torch_uses_openmp is None:
        _torch_uses_openmp = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    if not _torch_uses_openmp:
        return call()
    previous = _core.openmp_teams(True)
    try:
        return call()
    finally:
        _core.openmp_teams(previous)


@torch.library.custom_op(
    "fastlstm::lstm",
    mutates_args=(),
    schema="(Tensor x, Tensor? h0, Tensor? c0, int key, bool batch_first, int threads) -> (Tensor, Tensor, Tensor)",
)
def lstm(x, h0, c0, key, batch_first, threads):
    """x (T, B, I), or (B, T, I) when batch_first, and states (layers*directions, B, size) or None -> (y, h_n,
    c_n), computed by the core with the packed weights of module ``key``."""
    core = registered(key).fastlstm_core()
    x, h0, c0 = _numpy(x), _numpy(h0), _numpy(c0)
    y, h_n, c_n = _on_torch_threads(lambda: core.forward(x, batch_first, h0, c0, _threads(threads), None))
    return torch.from_numpy(y), torch.from_numpy(h_n), torch.from_numpy(c_n)


@lstm.register_fake
def _lstm_fake(x, h0, c0, key, batch_first, threads):
    states, output_size, hidden_size, width = registered(key).fastlstm_geometry()
    steps, batch = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
    y_shape = (batch, steps, width) if batch_first else (steps, batch, width)
    return x.new_empty(y_shape), x.new_empty((states, batch, output_size)), x.new_empty((states, batch, hidden_size))


@torch.library.custom_op(
    "fastlstm::lstm_packed",
    mutates_args=(),
    schema="(Tensor data, Tensor batch_sizes, Tensor h0, Tensor c0, int key, int threads) -> (Tensor, Tensor, Tensor)",
)
def lstm_packed(data, batch_sizes, h0, c0, key, threads):
    """A PackedSequence's rows ``data`` (rows, I) with its ``batch_sizes``, and states in its sorted order ->
    (output rows, h_n, c_n), the states in sorted order: the core runs the rows where they are, without padding."""
    core = registered(key).fastlstm_core()
    sizes = batch_sizes.detach().contiguous().numpy().astype(np.int64, copy=False)
    data, h0, c0 = _numpy(data), _numpy(h0), _numpy(c0)
    y, h_n, c_n = _on_torch_threads(lambda: core.forward_packed(data, sizes, h0, c0, _threads(threads)))
    return torch.from_numpy(y), torch.from_numpy(h_n), torch.from_numpy(c_n)


@lstm_packed.register_fake
def _lstm_packed_fake(data, batch_sizes, h0, c0, key, threads):
    width = registered(key).fastlstm_geometry()[3]
    return data.new_empty((data.shape[0], width)), h0.new_empty(h0.shape), c0.new_empty(c0.shape)
