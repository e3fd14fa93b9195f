"""``fastlstm.torch.LSTM`` and ``LSTMCell``: ``torch.nn.LSTM`` and ``torch.nn.LSTMCell`` whose inference runs in
fastlstm's core.

They hold the very Parameter objects of the module they replace, so ``state_dict``, ``named_parameters``,
``load_state_dict``, ``repr`` and ``isinstance`` checks see the original module. The core's packed copy of the
weights is a cache: it is built on the first fast call and rebuilt whenever a parameter's version counter or storage
changed since (``load_state_dict``, an optimizer step, any in-place edit, a replaced Parameter), never otherwise.

The fast path runs when nothing needs torch's own implementation: eval mode, no gradient to record (no_grad,
inference_mode, or no input or parameter requiring grad), CPU float32 inputs and parameters, and arguments of the
shapes torch accepts. Anything else (training, autograd, another device or dtype, a malformed argument) calls
torch's own forward, which computes (or raises) exactly as the original module does.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_precision, check_threads
from ..interop.pytorch import from_torch
from . import _ops


class _FastlstmModule:
    """What both modules share: options, the registry key, the packed-weights cache and the fast-path test."""

    def _fastlstm_setup(self, precision: str, threads: int | None) -> None:
        self.fastlstm_precision = check_precision(precision)
        self.fastlstm_threads = check_threads(threads, "threads")
        self._fastlstm_key = _ops.register(self)
        self._fastlstm_cache = None  # (parameter signature, packed core model)
        self._fastlstm_lock = threading.Lock()
        self.fastlstm_packs = 0  # how many times the weights were packed
        if isinstance(self, torch.nn.LSTM):
            _ops.let_dynamo_trace_lstm_modules()

    @classmethod
    def from_module(cls, module: Any, *, precision: str = "fp32", threads: int | None = None):
        """A module of this class holding ``module``'s Parameter objects, options and hooks (the original is left
        as it was; both then share the parameters). precision: "fp32", "bf16" or "int8" (see fastlstm.LSTM);
        threads: the count for fastlstm's calls, None for torch.get_num_threads() at each call."""
        base = cls.__mro__[2]  # torch.nn.LSTM or torch.nn.LSTMCell
        if not isinstance(module, base):
            raise TypeError(
                f"module: expected a {base.__module__}.{base.__qualname__}, got "
                f"{type(module).__module__}.{type(module).__qualname__}"
            )
        precision = check_precision(precision)
        threads = check_threads(threads, "threads")
        new = cls.__new__(cls)
        # Containers are copied (adding a hook or a parameter to one module leaves the other as it is); the
        # Parameters, buffers and submodules in them are the original's own objects.
        private = ("_fastlstm_key", "_fastlstm_cache", "_fastlstm_lock")
        new.__dict__.update(
            {
                name: copy.copy(value) if isinstance(value, (dict, list)) else value
                for name, value in module.__dict__.items()
                if name not in private
            }
        )
        new._fastlstm_setup(precision, threads)
        return new

    # deepcopy and pickle carry the parameters; the copy registers itself and packs its own weights when first used.
    def __getstate__(self):
        state = dict(super().__getstate__())  # torch.nn.LSTM's leaves out its weak references
        for name in ("_fastlstm_key", "_fastlstm_cache", "_fastlstm_lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._fastlstm_key = _ops.register(self)
        self._fastlstm_cache = None
        self._fastlstm_lock = threading.Lock()
        self.fastlstm_packs = 0

    def _fastlstm_parameters(self) -> dict[str, torch.Tensor]:
        return {name: value for name, value in self._parameters.items() if value is not None}

    def fastlstm_core(self):
        """The core's packed model of the current weights, packed again if any parameter changed since."""
        parameters = self._fastlstm_parameters()
        signature = tuple((id(value), value.data_ptr(), _version(value)) for value in parameters.values())
        with self._fastlstm_lock:
            cached = self._fastlstm_cache
            if cached is not None and cached[0] == signature and _same_values(parameters, cached[1]):
                return cached[2]
            batch_first = getattr(self, "batch_first", None)
            model = from_torch(parameters, batch_first=batch_first, precision=self.fastlstm_precision)
            lstm = getattr(model, "_lstm", model)  # a fastlstm.LSTMCell wraps a one-layer LSTM
            suffix = "" if lstm is model else "_l0"  # the cell's names carry no layer suffix
            packed_from = {name: lstm._parameters[name + suffix] for name in parameters}
            self._fastlstm_cache = (signature, packed_from, lstm._packed)
            self.fastlstm_packs += 1
            return lstm._packed

    def _fastlstm_runs(self, tensors) -> bool:
        """Whether the core can compute this call exactly as torch's forward would (see the module docstring)."""
        if self.training or torch.jit.is_scripting():
            return False
        parameters = tuple(self._fastlstm_parameters().values())
        everything = (*tensors, *parameters)
        if any(t.dtype != torch.float32 or t.device.type != "cpu" or t.layout != torch.strided for t in everything):
            return False
        return not (torch.is_grad_enabled() and any(t.requires_grad for t in everything))

    def _fastlstm_thread_argument(self) -> int:
        return self.fastlstm_threads or 0  # 0: torch.get_num_threads() when the operator runs


def _version(tensor: torch.Tensor) -> int | None:
    """The version counter, which every in-place change increments; None for an inference tensor (a parameter
    created or copied inside torch.inference_mode), which has none."""
    return None if tensor.is_inference() else tensor._version


def _same_values(parameters: dict[str, torch.Tensor], packed_from: dict[str, np.ndarray]) -> bool:
    """Whether inference tensors among the parameters still hold the values packed (an in-place change of one
    leaves no trace but its values: compared, which reads the weights once, less than packing them again costs)."""
    return all(
        torch.equal(value, torch.from_numpy(packed_from[name]))
        for name, value in parameters.items()
        if value.is_inference()
    )


class LSTM(_FastlstmModule, torch.nn.LSTM):
    """A ``torch.nn.LSTM`` whose inference runs in fastlstm (``LSTM.from_module(module, precision=..., threads=...)``
    or ``fastlstm.torch.optimize(model)``); see the module docstring for when."""

    def fastlstm_geometry(self) -> tuple[int, int, int, int]:
        """(layers * directions, output size, hidden size, output width)."""
        directions = 2 if self.bidirectional else 1
        output_size = self.proj_size or self.hidden_size
        return self.num_layers * directions, output_size, self.hidden_size, directions * output_size

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        tensors = (input.data,) if packed else (input,)
        if hx is not None:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(t, torch.Tensor) for t in hx)):
                return super().forward(input, hx)
            tensors = (*tensors, *hx)
        if not self._fastlstm_runs(tensors) or not self._shapes_fit(input, hx, packed):
            return super().forward(input, hx)
        if packed:
            return self._forward_packed(input, hx)
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else input
        h0, c0 = (None, None) if hx is None else ((t.unsqueeze(1) for t in hx) if unbatched else hx)
        batch_first = self.batch_first and not unbatched
        key, threads = self._fastlstm_key, self._fastlstm_thread_argument()
        y, h_n, c_n = _ops.lstm(x, h0, c0, key, batch_first, threads)
        if unbatched:
            return y.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        return y, (h_n, c_n)

    def _shapes_fit(self, input, hx, packed: bool) -> bool:
        """The arguments torch would accept; anything else goes to torch, which raises its own error."""
        data = input.data if packed else input
        if data.dim() not in ((2,) if packed else (2, 3)) or data.shape[-1] != self.input_size:
            return False
        if hx is None:
            return True
        if packed:
            batch = (int(input.batch_sizes[0]),) if input.batch_sizes.numel() else (0,)
        elif data.dim() == 2:  # unbatched: states have no batch axis
            batch = ()
        else:
            batch = (data.shape[0] if self.batch_first else data.shape[1],)
        states, output_size, hidden_size, _ = self.fastlstm_geometry()
        return tuple(hx[0].shape) == (states, *batch, output_size) and tuple(hx[1].shape) == (
            states,
            *batch,
            hidden_size,
        )

    def _forward_packed(self, sequence: PackedSequence, hx):
        """torch.nn.LSTM's handling of a PackedSequence (states into and out of its sorted order) around the core's
        run of its rows."""
        data, batch_sizes, sorted_indices, unsorted_indices = sequence
        if hx is None:
            states, output_size, hidden_size, _ = self.fastlstm_geometry()
            batch = int(batch_sizes[0])
            h0 = data.new_zeros((states, batch, output_size))
            c0 = data.new_zeros((states, batch, hidden_size))
        else:
            h0, c0 = self.permute_hidden(tuple(hx), sorted_indices)
        key, threads = self._fastlstm_key, self._fastlstm_thread_argument()
        y, h_n, c_n = _ops.lstm_packed(data, batch_sizes, h0, c0, key, threads)
        output = PackedSequence(y, batch_sizes, sorted_indices, unsorted_indices)
        return output, self.permute_hidden((h_n, c_n), unsorted_indices)


class LSTMCell(_FastlstmModule, torch.nn.LSTMCell):
    """A ``torch.nn.LSTMCell`` whose inference runs in fastlstm; see ``fastlstm.torch.LSTM``."""

    def fastlstm_geometry(self) -> tuple[int, int, int, int]:
        return 1, self.hidden_size, self.hidden_size, self.hidden_size

    def forward(self, input, hx=None):
        tensors = (input,) if hx is None else (input, *hx)
        if (
            hx is not None
            and not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(t, torch.Tensor) for t in hx))
        ) or not self._fastlstm_runs(tensors):
            return super().forward(input, hx)
        expected = (self.input_size,) if input.dim() == 1 else (input.shape[0], self.input_size)
        state_shape = (*expected[:-1], self.hidden_size)
        if input.dim() not in (1, 2) or tuple(input.shape) != expected:
            return super().forward(input, hx)
        if hx is not None and any(tuple(t.shape) != state_shape for t in hx):
            return super().forward(input, hx)
        x = input.reshape(1, -1, self.input_size)
        h0, c0 = (None, None) if hx is None else (t.reshape(1, -1, self.hidden_size) for t in hx)
        _, h_n, c_n = _ops.lstm(x, h0, c0, self._fastlstm_key, False, self._fastlstm_thread_argument())
        return h_n.reshape(state_shape), c_n.reshape(state_shape)


#: the torch class each fastlstm.torch class replaces
REPLACEMENTS = {torch.nn.LSTM: LSTM, torch.nn.LSTMCell: LSTMCell}
