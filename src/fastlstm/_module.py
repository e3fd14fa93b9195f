"""What ``fastlstm.LSTM`` and ``fastlstm.reference.LSTM`` share: constructor arguments, the checking and reshaping of
call arguments, pickling (the cells' counterpart is ``fastlstm._cell_module``). The parameters and ``state_dict``
live in ``fastlstm._parameters``. Subclasses only provide ``_run`` (the forward pass on checked, 3-D arrays) and
``_parameters_changed``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _cell
from ._checks import (
    aligned_contiguous,
    check_bool,
    check_int,
    check_pair,
    check_precision,
    check_shape,
    check_threads,
    real_array,
    shape_text,
)
from ._parameters import LSTMParameters
from ._portable import PortableModel, check_cell_count, check_config_keys
from ._threads import resolve_threads


class LSTMBase(LSTMParameters, PortableModel):
    """Parameters and call conventions of ``torch.nn.LSTM``; see ``fastlstm.LSTM`` for the documentation."""

    #: where users find the class, for repr
    _public_module = "fastlstm"
    _portable_name = "fastlstm.LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        seed: int | np.random.Generator | None = None,
        threads: int | None = None,
        reverse: bool = False,
        activations: Any = None,
        clip: float | None = None,
        input_forget: bool = False,
        peepholes: bool = False,
        precision: str = "fp32",
    ) -> None:
        self._configure(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            bidirectional,
            proj_size,
            threads=threads,
            reverse=reverse,
            activations=activations,
            clip=clip,
            input_forget=input_forget,
            peepholes=peepholes,
            precision=precision,
        )
        parameter_bytes = self._parameter_bytes()
        try:
            self._parameters = self._initial_parameters(np.random.default_rng(seed))
            self._parameters_changed()
        except MemoryError:
            raise MemoryError(
                f"{self._size_text()}: the parameters need {parameter_bytes / 2**30:,.1f} GiB (and as much again for "
                "the packed copy), which could not be allocated"
            ) from None

    #: The options of ``_configure``, as a configuration (pickle, ``fastlstm.save``) names them.
    _OPTIONS = (
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "bidirectional",
        "proj_size",
        "threads",
        "reverse",
        "activations",
        "clip",
        "input_forget",
        "peepholes",
    )

    def _configure(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        threads: int | None = None,
        reverse: bool = False,
        activations: Any = None,
        clip: float | None = None,
        input_forget: bool = False,
        peepholes: bool = False,
        precision: str = "fp32",
    ) -> None:
        """Check and set every option; allocates nothing (the parameters come after)."""
        self.threads = check_threads(threads, "threads")
        self.precision = check_precision(precision)
        # Cell options beyond torch.nn.LSTM (ONNX's LSTM attributes; see fastlstm._cell).
        self.reverse = check_bool(reverse, "reverse")
        self.activations = _cell.check_activations(activations)
        self.clip = _cell.check_clip(clip)
        self.input_forget = check_bool(input_forget, "input_forget")
        self.peepholes = check_bool(peepholes, "peepholes")
        self.input_size = check_int(input_size, "input_size", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        self.bias = check_bool(bias, "bias")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.proj_size = check_int(proj_size, "proj_size", minimum=0)
        if self.reverse and self.bidirectional:
            raise ValueError(
                "reverse: a bidirectional model already reads the sequence both ways; use one or the other"
            )
        if self.proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: expected 0 (no projection) or an int < hidden_size={self.hidden_size}, "
                f"got {self.proj_size}"
            )
        self._check_precision_fits(self.precision)

    # ---- pickle, copy, fastlstm.save (see fastlstm._portable) -------------------------------------------------

    def _portable_config(self) -> dict[str, Any]:
        """Every option of ``_configure`` but the precision, as JSON values (activations as lists)."""
        options = {name: getattr(self, name) for name in self._OPTIONS}
        options["activations"] = [list(activation) for activation in self.activations]
        return options

    def _portable_tensors(self) -> dict[str, np.ndarray]:
        return dict(self._parameters)

    def _portable_configure(self, config: Mapping[str, Any], precision: str, tensors: Mapping[str, Any]) -> None:
        """Set the options of a new, empty instance from a configuration, checked as the constructor checks them."""
        check_config_keys(config, self._OPTIONS, self._portable_name)
        self._configure(**config, precision=precision)
        check_cell_count(self.num_layers * self.num_directions, tensors)
        self._parameter_bytes()  # refuses sizes no platform can hold

    def _portable_restore(self, config: Mapping[str, Any], precision: str, tensors: Mapping[str, Any]) -> None:
        self._portable_configure(config, precision, tensors)
        self._set_parameters(tensors, copy=False)

    @property
    def has_cell_options(self) -> bool:
        """Whether the cell differs from torch.nn.LSTM's: other activations, clip, input_forget or peepholes."""
        return not _cell.is_standard(
            self.activations, clip=self.clip, input_forget=self.input_forget, peepholes=self.peepholes
        )

    # ---- calls ------------------------------------------------------------------------------------------------

    def __call__(
        self,
        x: Any,
        state: tuple[Any, Any] | None = None,
        *,
        lengths: Any = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Run the LSTM over a sequence; returns ``(output, (h_n, c_n))`` as ``torch.nn.LSTM`` does. ``lengths``
        (N,) integers in [0, T] gives each row's own length, as a packed sequence does in PyTorch: row b is the
        first lengths[b] steps, its output is zero past them, its final state is that after its last step (the
        initial state for length 0), and the reverse direction starts at its last step. ``threads`` overrides the
        model's and the global thread count for this call."""
        threads = check_threads(threads, "threads")
        x = real_array(x, "x")
        features = self.input_size
        if x.ndim not in (2, 3):
            layout = "(N, T, I)" if self.batch_first else "(T, N, I)"
            raise ValueError(
                f"x: expected a 3-D array {layout} or a 2-D unbatched array (T, I) with I={features}, "
                f"got {x.ndim}-D shape {shape_text(x.shape)}"
            )
        if x.shape[-1] != features:
            raise ValueError(
                f"x: expected {features} features on the last axis (input_size={features}), "
                f"got shape {shape_text(x.shape)}"
            )
        unbatched = x.ndim == 2
        batch_first = self.batch_first and not unbatched
        x3 = x[:, None, :] if unbatched else x
        batch = x3.shape[0] if batch_first else x3.shape[1]

        states = self.num_layers * self.num_directions
        h_shape = (states, batch, self.output_size)
        c_shape = (states, batch, self.hidden_size)
        h0 = c0 = None
        if state is not None:
            h0, c0 = check_pair(state, "state", "(h0, c0)", optional=True)
            h0 = real_array(h0, "state[0] (h0)")
            c0 = real_array(c0, "state[1] (c0)")
            hint = f"num_layers*num_directions, {'' if unbatched else 'batch, '}size"
            check_shape(h0, h_shape[::2] if unbatched else h_shape, "state[0] (h0)", hint=hint)
            check_shape(c0, c_shape[::2] if unbatched else c_shape, "state[1] (c0)", hint=hint)
            if unbatched:
                h0, c0 = h0[:, None, :], c0[:, None, :]
            h0, c0 = self._convert(h0), self._convert(c0)

        if lengths is not None:
            lengths = self._check_lengths(lengths, unbatched, batch, x3.shape[1] if batch_first else x3.shape[0])

        threads = resolve_threads(threads, self.threads)
        try:
            y, h_n, c_n = self._run(self._convert(x3), batch_first, h0, c0, threads, lengths)
        except MemoryError:
            steps = x3.shape[1] if batch_first else x3.shape[0]
            output_bytes = steps * batch * self.num_directions * self.output_size * 4
            raise MemoryError(
                f"x: a call on shape {shape_text(x.shape)} needs {output_bytes / 2**30:,.1f} GiB for its output "
                f"({steps} steps x {batch} rows x {self.num_directions * self.output_size} features, float32) plus "
                "its input as float32 and a workspace, which could not be allocated; split the call along time "
                "(model.stream) or the batch"
            ) from None
        if unbatched:
            y, h_n, c_n = y[:, 0, :], h_n[:, 0, :], c_n[:, 0, :]
        return y, (h_n, c_n)

    forward = __call__

    def _convert(self, array: np.ndarray) -> np.ndarray:
        """C-contiguous and aligned in the compute dtype, copied only when needed. Values beyond the float32 range
        become +-inf, as a float32 cast defines (no warning)."""
        if array.dtype == self._dtype and array.flags.c_contiguous and array.flags.aligned:
            return array
        with np.errstate(over="ignore"):
            return aligned_contiguous(array, self._dtype)

    @staticmethod
    def _check_lengths(lengths: Any, unbatched: bool, batch: int, steps: int) -> np.ndarray:
        if unbatched:
            raise ValueError(
                "lengths: needs a batched x, (T, N, I) or batch-first (N, T, I); got an unbatched x (T, I)"
            )
        array = np.asarray(lengths)
        if array.dtype.kind not in "iu":
            raise TypeError(f"lengths: expected integers, got dtype {array.dtype}")
        check_shape(array, (batch,), "lengths", hint="one length per batch row")
        if array.size and (array.min() < 0 or array.max() > steps):
            raise ValueError(
                f"lengths: expected values in [0, T={steps}], got values from {array.min()} to {array.max()}"
            )
        return aligned_contiguous(array, np.int64)

    def _run(
        self,
        x: np.ndarray,
        batch_first: bool,
        h0: np.ndarray | None,
        c0: np.ndarray | None,
        threads: int,
        lengths: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward pass on a C-contiguous 3-D x ((N, T, I) when batch_first, else (T, N, I)) and optional
        contiguous states (num_layers*num_directions, N, size); returns (output, h_n, c_n) in the same layouts.
        threads: the count for the core (``resolve_threads``; 0 lets it choose). lengths: checked (N,) int64 or
        None."""
        raise NotImplementedError

    def __repr__(self) -> str:
        options = []
        if self.num_layers != 1:
            options.append(f"num_layers={self.num_layers}")
        if not self.bias:
            options.append("bias=False")
        if self.batch_first:
            options.append("batch_first=True")
        if self.bidirectional:
            options.append("bidirectional=True")
        if self.proj_size:
            options.append(f"proj_size={self.proj_size}")
        if self.reverse:
            options.append("reverse=True")
        if not _cell.is_standard(self.activations):
            options.append(f"activations={self.activations!r}")
        if self.clip is not None:
            options.append(f"clip={self.clip!r}")
        if self.input_forget:
            options.append("input_forget=True")
        if self.peepholes:
            options.append("peepholes=True")
        if self.precision != "fp32":
            options.append(f"precision={self.precision!r}")
        arguments = ", ".join([str(self.input_size), str(self.hidden_size), *options])
        return f"{self._public_module}.{type(self).__name__}({arguments})"
