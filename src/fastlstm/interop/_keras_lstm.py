"""The result of ``from_keras``: ``KerasLSTM`` runs a ``fastlstm.LSTM`` and returns what the Keras layer or model
returns, masks, go_backwards and the Bidirectional merge included (see ``fastlstm.interop.keras`` for the
semantics)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._checks import check_bool, check_shape, real_array, shape_text
from .._portable import PortableModel, check_config_keys

if TYPE_CHECKING:
    from ..lstm import LSTM


#: Bidirectional's merge modes; None returns both directions' outputs.
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_SETTINGS = ("name", "return_sequences", "return_state", "go_backwards", "merge_mode", "zero_output_for_mask")


class KerasLSTM(PortableModel):
    """A Keras LSTM layer (or model around one) run by ``fastlstm``: ``keras_lstm(x, initial_state=None,
    mask=None)`` returns what Keras returns for the same call (see ``fastlstm.interop.keras`` for the semantics).

    Attributes:
        model: the ``fastlstm.LSTM`` doing the work, batch_first=True as Keras is batch-major; reverse=True for a
            layer with go_backwards, bidirectional=True for a Bidirectional layer. It can be called directly, with
            torch.nn.LSTM's conventions (its reverse outputs are aligned with the input, not flipped).
        name: the Keras layer's (or model's) name.
        return_sequences, return_state, go_backwards, merge_mode, zero_output_for_mask: the (last) layer's settings.
        mask_value: the mask_value of the model's Masking layer, None without one.
    """

    def __init__(
        self,
        model: LSTM,
        *,
        name: str,
        return_sequences: bool,
        return_state: bool,
        go_backwards: bool,
        merge_mode: str | None,
        zero_output_for_mask: bool,
        mask_value: float | None,
    ) -> None:
        self.model = model
        self.name = name
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.merge_mode = merge_mode
        self.zero_output_for_mask = zero_output_for_mask
        self.mask_value = mask_value

    @property
    def bidirectional(self) -> bool:
        return self.model.bidirectional

    @property
    def precision(self) -> str:
        return self.model.precision

    # ---- pickle, copy, fastlstm.save (see fastlstm._portable) -------------------------------------------------

    _portable_name = "fastlstm.KerasLSTM"

    def _portable_config(self) -> dict[str, Any]:
        settings = {setting: getattr(self, setting) for setting in (*_SETTINGS, "mask_value")}
        return {"lstm": self.model._portable_config(), **settings}

    def _portable_tensors(self) -> dict[str, np.ndarray]:
        return self.model._portable_tensors()

    def _portable_restore(self, config: Any, precision: str, tensors: Any) -> None:
        from ..lstm import LSTM

        check_config_keys(config, ("lstm", *_SETTINGS, "mask_value"), self._portable_name)
        model = LSTM.__new__(LSTM)
        model._portable_configure(config["lstm"], precision, tensors)  # the settings are checked before packing
        settings = {
            setting: check_bool(config[setting], setting) for setting in _SETTINGS[1:] if setting != "merge_mode"
        }
        name, merge_mode, mask_value = config["name"], config["merge_mode"], config["mask_value"]
        if not isinstance(name, str):
            raise ValueError(f"name: expected a str, got {type(name).__name__}")
        if not model.batch_first:
            raise ValueError("lstm: batch_first: expected true, as Keras is batch-major")
        if merge_mode not in (MERGE_MODES if model.bidirectional else (None,)):
            expected = MERGE_MODES if model.bidirectional else (None,)
            raise ValueError(f"merge_mode: expected one of {list(expected)} for this model, got {merge_mode!r}")
        # A layer going backwards is our reverse model; a Bidirectional's forward layer never goes backwards.
        if settings["go_backwards"] != model.reverse:
            raise ValueError(
                f"go_backwards: {settings['go_backwards']} does not match the model's reverse={model.reverse}"
            )
        if mask_value is not None and (isinstance(mask_value, bool) or not isinstance(mask_value, (int, float))):
            raise ValueError(f"mask_value: expected a number or null, got {mask_value!r}")
        model._set_parameters(tensors, copy=False)
        self.__init__(model, name=name, merge_mode=merge_mode, mask_value=mask_value, **settings)

    def __call__(self, x: Any, initial_state: Any = None, mask: Any = None) -> np.ndarray | list[np.ndarray]:
        """What the Keras layer returns for ``layer(x, initial_state=initial_state, mask=mask)``.

        Args:
            x: (N, T, input_size), any real dtype (computed in float32).
            initial_state: None (zeros) or the list ``[h, c]`` (Bidirectional: ``[h_fw, c_fw, h_bw, c_bw]``), each
                (N, units). Not for a multi-layer import, whose Keras model starts every layer from zeros.
            mask: None or (N, T) booleans (or 0/1 integers), True at the steps to compute. A model with a Masking
                layer computes its mask from x, so it takes none.
        """
        x = real_array(x, "x")
        if x.ndim != 3 or x.shape[2] != self.model.input_size or x.shape[1] == 0:
            raise ValueError(
                f"x: expected a 3-D array (N, T, {self.model.input_size}) (batch, steps >= 1, input_size), "
                f"got shape {shape_text(x.shape)}"
            )
        mask = self._mask(x, mask)
        state = None if initial_state is None else self._initial_state(initial_state, x.shape[0])
        output, h_n, c_n = self._run_aligned(x, state, mask)

        hidden, layers = self.model.hidden_size, self.model.num_layers
        if not self.model.bidirectional:
            sequence = _keras_sequence(output, mask, self.go_backwards, self.zero_output_for_mask)
            result = sequence if self.return_sequences else sequence[:, -1]
            states = [h_n[layers - 1], c_n[layers - 1]]
        else:
            forward = _keras_sequence(output[..., :hidden], mask, False, self.zero_output_for_mask)
            backward = _keras_sequence(output[..., hidden:], mask, True, self.zero_output_for_mask)
            if self.return_sequences:  # Bidirectional flips the backward sequence back to the input's order
                forward_result, backward_result = forward, backward[:, ::-1]
            else:
                forward_result, backward_result = forward[:, -1], backward[:, -1]
            result = _merge(self.merge_mode, forward_result, backward_result)
            last = 2 * (layers - 1)
            states = [h_n[last], c_n[last], h_n[last + 1], c_n[last + 1]]
        results = result if isinstance(result, list) else [result]
        if self.return_state:
            results = results + states
        results = [np.ascontiguousarray(item, dtype=np.float32) for item in results]
        return results if len(results) > 1 else results[0]

    def _mask(self, x: np.ndarray, mask: Any) -> np.ndarray | None:
        """The (N, T) bool mask, or None when every step is valid (then nothing needs filling in)."""
        if self.mask_value is not None:
            if mask is not None:
                raise ValueError(
                    f"mask: the model's Masking layer computes the mask from x (mask_value={self.mask_value!r}); "
                    "pass no mask"
                )
            # Keras compares the float32 input with the float32 mask_value (values beyond float32 become +-inf).
            with np.errstate(over="ignore"):
                mask = np.any(np.asarray(x, dtype=np.float32) != np.float32(self.mask_value), axis=-1)
        elif mask is not None:
            array = np.asarray(mask)
            if array.dtype.kind not in "biu":
                raise TypeError(f"mask: expected booleans (or 0/1 integers), got dtype {array.dtype}")
            check_shape(array, x.shape[:2], "mask", hint="batch, steps")
            mask = array.astype(bool)
        if mask is None or mask.all():
            return None
        return mask

    def _initial_state(self, initial_state: Any, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Keras's list [h, c] (or [h_fw, c_fw, h_bw, c_bw]) as our pair (h0, c0), each (directions, N, H)."""
        if self.model.num_layers > 1:
            raise ValueError(
                "initial_state: this import stacks several Keras layers, which the Keras model starts from zeros; "
                "pass no initial_state (or call .model with a state per layer)"
            )
        count = 2 * self.model.num_directions
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != count:
            names = "[h_fw, c_fw, h_bw, c_bw]" if self.model.bidirectional else "[h, c]"
            got = type(initial_state).__name__
            if isinstance(initial_state, (list, tuple)):
                got += f" of length {len(initial_state)}"
            raise TypeError(f"initial_state: expected None or the list {names}, got {got}")
        arrays = []
        for index, item in enumerate(initial_state):
            array = real_array(item, f"initial_state[{index}]")
            check_shape(array, (batch, self.model.hidden_size), f"initial_state[{index}]", hint="batch, units")
            arrays.append(array)
        return np.stack(arrays[0::2]), np.stack(arrays[1::2])

    def _run_aligned(
        self, x: np.ndarray, state: tuple[np.ndarray, np.ndarray] | None, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(output, h_n, c_n) of our model over each row's valid steps; output is aligned with x's time axis, its
        rows correct at the valid steps and zero elsewhere."""
        if mask is None:
            output, (h_n, c_n) = self.model(x, state)
            return output, h_n, c_n
        steps = x.shape[1]
        lengths = mask.sum(axis=1)
        if np.array_equal(mask, np.arange(steps) < lengths[:, None]):  # right padding: runs as it is
            output, (h_n, c_n) = self.model(x, state, lengths=lengths)
            return output, h_n, c_n
        # Holes: a stable sort of "masked" puts each row's valid steps first, in their order; the masked steps, which
        # Keras lets pass without touching the state, go behind the row's length where our model skips them.
        order = np.argsort(~mask, axis=1, kind="stable")
        gathered = np.take_along_axis(x, order[:, :, None], axis=1)
        gathered_output, (h_n, c_n) = self.model(gathered, state, lengths=lengths)
        output = np.empty_like(gathered_output)
        np.put_along_axis(output, order[:, :, None], gathered_output, axis=1)
        return output, h_n, c_n

    def __repr__(self) -> str:
        options = []
        for option in ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask"):
            if getattr(self, option):
                options.append(f"{option}=True")
        if self.bidirectional:
            options.append(f"merge_mode={self.merge_mode!r}")
        if self.mask_value is not None:
            options.append(f"mask_value={self.mask_value!r}")
        return f"KerasLSTM({self.name!r}, {', '.join([repr(self.model), *options])})"


def _keras_sequence(aligned: np.ndarray, mask: np.ndarray | None, backwards: bool, zero_output: bool) -> np.ndarray:
    """The outputs of one direction in the order Keras's RNN loop computes them (reversed in time when it reads
    backwards), from ours aligned with the input; at masked steps zeros, or the last output computed before them
    (zeros if none) unless zero_output."""
    sequence = aligned[:, ::-1] if backwards else aligned
    if mask is None:
        return sequence
    valid = mask[:, ::-1] if backwards else mask
    if zero_output:
        return np.where(valid[:, :, None], sequence, 0).astype(np.float32, copy=False)
    steps = np.arange(valid.shape[1])
    last_valid = np.maximum.accumulate(np.where(valid, steps, -1), axis=1)  # -1: no valid step yet
    repeated = np.take_along_axis(sequence, np.maximum(last_valid, 0)[:, :, None], axis=1)
    return np.where(last_valid[:, :, None] >= 0, repeated, 0).astype(np.float32, copy=False)


def _merge(mode: str | None, forward: np.ndarray, backward: np.ndarray) -> np.ndarray | list[np.ndarray]:
    if mode == "concat":
        return np.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    if mode == "ave":
        return (forward + backward) / np.float32(2)
    return [forward, backward]
