"""The models: ``LSTM`` and ``LSTMCell``, with the semantics, shapes and parameter names of ``torch.nn``, computed by
the C++ core."""

from __future__ import annotations

from . import _cell, _core
from ._cell_module import LSTMCellBase
from ._checks import check_bool
from ._isa import active_isa
from ._module import LSTMBase
from ._sessions import Sessions
from ._stream import Stream
from ._threads import call_threads
from .interop.onnx_export import OPSET as ONNX_OPSET

_DTYPE_POLICY = """
    dtype policy: parameters are stored and every computation runs in float32. Any real input (float64, float16,
    integers, non-contiguous or transposed views) is converted to a C-contiguous float32 array once per call;
    complex, boolean, string and object arrays are refused with a TypeError. Outputs are new float32 C-contiguous
    arrays owned by the caller.
"""


class LSTM(LSTMBase):
    __doc__ = (
        """A multi-layer LSTM with the semantics, shapes and parameter names of ``torch.nn.LSTM``.

    For every layer and direction, with gate order i, f, g, o in the packed 4H weights::

        i, f, o = sigmoid(W_i x_t + b_i + U_i h_{t-1} + b'_i), ... ;  g = tanh(W_g x_t + b_g + U_g h_{t-1} + b'_g)
        c_t = f * c_{t-1} + i * g;    h_t = o * tanh(c_t)   (then h_t = W_hr h_t when proj_size > 0)

    Args:
        input_size: features of x.  hidden_size: features of c (and of h without projection).
        num_layers: stacked layers.  bias: whether the layers have bias_ih and bias_hh.
        batch_first: x and output are (N, T, features) instead of (T, N, features); states are unaffected.
        bidirectional: a reverse direction per layer; its outputs follow the forward ones on the last axis.
        proj_size: if > 0, h is projected to proj_size features by weight_hr (LSTMP).
        seed: seed or numpy Generator for the initial weights, uniform in +-1/sqrt(hidden_size) as in PyTorch.
        threads: threads for this model's calls; None follows ``fastlstm.set_num_threads``, whose default picks a
            count from the problem size. Results are bitwise the same for any count.

    Cell options beyond torch.nn.LSTM (keyword-only; ONNX's LSTM attributes, see fastlstm._cell):
        reverse: one direction that reads the sequence backwards (outputs aligned with the input).
        activations: (gate, candidate, output) functions, each a name or (name, alpha[, beta]): sigmoid, tanh, relu,
            affine, leaky_relu, thresholded_relu, scaled_tanh, hard_sigmoid, elu, softsign, softplus.
        clip: clamp every gate pre-activation to [-clip, clip].  input_forget: f = 1 - i.
        peepholes: parameters peephole_l{k}[_reverse] (3, hidden_size), rows p_i, p_f, p_o.

    Precision (keyword-only ``precision``, or ``model.astype(...)`` for a copy in another one):
        "fp32" (default): float32 weights and arithmetic.
        "bf16": the packed input and recurrent weights rounded to bf16 (half the bytes, which is what a step at
            small batch waits for), multiplied with x and h rounded to bf16; products are exact in float32 and the
            sums, activations, cell state, projection and outputs stay float32. On this project's benchmark shapes
            and over T=1000 the outputs and h_n differ from "fp32" by at most 4e-3, c_n by 4.5e-3
            (tests/test_precision.py). Fastest on CPUs with AVX512-BF16.
        "int8": the packed input and recurrent weights as int8 codes with a scale per gate row (a quarter of the
            bytes), multiplied with x and h quantized per row and step (scale max|row| / 127), the products summed
            exactly in 32-bit integers and scaled back once; the rest float32 as for bf16. Differs from "fp32" by at
            most 2e-2 on the same tests. Fastest on CPUs with AVX512-VNNI; K (input_size, the recurrent size) is
            limited to 65536.
        ``fastlstm.quantization_error(model, x, precision)`` measures the difference on your own data.

    Call: ``model(x, state=None, *, lengths=None, threads=None) -> (output, (h_n, c_n))``. x is (T, N, input_size),
    (N, T, input_size) with batch_first, or unbatched (T, input_size). state is ``(h0, c0)`` with h0
    (num_layers*num_directions, N, H_out) and c0 (num_layers*num_directions, N, hidden_size) (no N axis when
    unbatched), zeros when omitted. output is
    (T, N, num_directions*H_out) (or batch-first / unbatched like x); h_n and c_n are shaped like h0 and c0, indexed
    layer*num_directions + direction. H_out is proj_size if > 0, else hidden_size. ``lengths`` (N,) gives each
    row's own length (zero outputs past it, final state at its last step; see LSTMBase.__call__). The whole
    sequence runs in C++ with the GIL released. ``model.stream(N)`` keeps the state between calls;
    ``model.sessions(capacity)`` keeps many sessions' states and steps any of them together.
"""
        + _DTYPE_POLICY
    )

    def _parameters_changed(self) -> None:
        # Pack once per change of weights, in the layout of the kernels chosen now; never per call.
        packed = _core.PackedLstm(
            active_isa(),
            self.input_size,
            self.hidden_size,
            self.proj_size,
            self.num_layers,
            self.num_directions,
            self.reverse,
            self.precision,
        )
        standard = _cell.is_standard(self.activations)
        for layer, direction, suffix in self._cell_keys():
            packed.pack_cell(
                layer,
                direction,
                *self._cell_parameters(suffix),
                peepholes=self._parameters.get(f"peephole{suffix}"),
                activations=None if standard else _cell.core_activations(self.activations),
                clip=self.clip or 0.0,
                input_forget=self.input_forget,
            )
        self._packed = packed
        self._cache = _core.ForwardCache()  # the scratch of short calls, kept from one call to the next

    def __call__(self, x, state=None, *, lengths=None, threads=None):
        # The fast path (no lengths; no state, or a pair of arrays): one C++ call, which takes x and the state as
        # they are when they are C-contiguous, aligned float32 of the batched shapes (x (T, N, input_size) or
        # batch-first) and returns None otherwise, for the validating path of LSTMBase.__call__ (which converts them
        # or explains). The same results either way.
        plain_state = state is None or (
            type(state) is tuple and len(state) == 2 and state[0] is not None and state[1] is not None
        )
        if lengths is None and plain_state:
            h0, c0 = (None, None) if state is None else state
            result = self._packed.forward_plain(
                x, self.batch_first, call_threads(threads, self.threads), self._cache, h0, c0
            )
            if result is not None:
                y, h_n, c_n = result
                return y, (h_n, c_n)
        return super().__call__(x, state, lengths=lengths, threads=threads)

    __call__.__doc__ = LSTMBase.__call__.__doc__
    forward = __call__

    @property
    def isa(self) -> str:
        """The kernel variant this model's weights are packed for."""
        return self._packed.isa

    def _run(self, x, batch_first, h0, c0, threads, lengths=None):
        return self._packed.forward(x, batch_first, h0, c0, threads, lengths)

    def automatic_threads(self, steps: int, batch: int, initial_state: bool = False) -> int:
        """The thread count a call with ``steps`` steps and ``batch`` rows, from a given state or not, uses when no
        count is set (a stream's step is a call of one step from its state). Not counted here, since it depends on
        ``lengths=``: a call whose team would split fewer kernel panels of hidden units than this count uses one
        thread a panel (with ``lengths=``, a model of H <= 16 on AVX-512, 8 on AVX2, 4 on NEON runs on one)."""
        return self._packed.automatic_threads(steps, batch, initial_state)

    def stream(self, batch_size: int) -> Stream:
        """A ``fastlstm.Stream``: the state of ``batch_size`` sequences kept between calls, starting from zeros, for
        inputs that arrive a step (``stream.step(x_t)``) or a chunk (``stream.feed(chunk)``) at a time; chunks of
        any sizes give bitwise the result of one call. Unidirectional models only."""
        return Stream(self, batch_size)

    def sessions(self, capacity: int, *, grow: bool = True) -> Sessions:
        """A ``fastlstm.Sessions`` pool: the states of up to ``capacity`` live sessions (``pool.open()`` -> id), of
        which ``pool.step(ids, x)`` steps exactly those listed, as one batch; each session's outputs are bitwise
        those of its own ``model.stream(1)``. A full pool doubles when a session opens, unless ``grow=False``.
        Unidirectional models only."""
        return Sessions(self, capacity, grow=grow)

    def to_torch(self, *, module: bool = False):
        """The parameters as float32 torch tensors with ``torch.nn.LSTM``'s names (for ``load_state_dict``), or
        with ``module=True`` a new ``torch.nn.LSTM`` in eval mode with this model's options and parameters."""
        from .interop.pytorch import to_torch_module, to_torch_state_dict

        return to_torch_module(self) if check_bool(module, "module") else to_torch_state_dict(self)

    def to_onnx(self, path=None, *, opset: int = ONNX_OPSET):
        """This model as an ONNX graph (one ``LSTM`` node per layer, see ``fastlstm.interop.onnx_export``) computing
        ``model(x)[0]`` with zero initial states, T and N free; saved to ``path`` when given, and returned as an
        ``onnx.ModelProto``. Needs the ``onnx`` package; a projection (proj_size > 0) has no ONNX form."""
        from .interop.onnx_export import save_onnx

        return save_onnx(self, path, opset=opset)


class LSTMCell(LSTMCellBase):
    __doc__ = (
        """One LSTM step with the semantics, shapes and parameter names of ``torch.nn.LSTMCell``.

    ``cell(x, state=None) -> (h, c)`` with x (N, input_size) or (input_size,), state ``(h, c)`` each
    (N, hidden_size) or (hidden_size,), zeros when omitted. Parameters: weight_ih (4*hidden_size, input_size),
    weight_hh (4*hidden_size, hidden_size), and with bias, bias_ih and bias_hh (4*hidden_size,). ``precision``
    (keyword-only) is "fp32" (default), "bf16" or "int8", as for ``fastlstm.LSTM``.
"""
        + _DTYPE_POLICY
    )
    _lstm_class = LSTM

    def to_torch(self, *, module: bool = False):
        """The parameters as float32 torch tensors with ``torch.nn.LSTMCell``'s names, or with ``module=True`` a new
        ``torch.nn.LSTMCell`` in eval mode holding them."""
        from .interop.pytorch import to_torch_module, to_torch_state_dict

        return to_torch_module(self) if check_bool(module, "module") else to_torch_state_dict(self)
