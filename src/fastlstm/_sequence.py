"""``SequenceModel``: the whole path from tokens to predictions, optional embedding -> LSTM -> linear -> softmax,
with the arg-max of each step as the prediction (a tagger, a language model, a streaming classifier).

The embedding is a row lookup (NumPy); the LSTM and the head (the linear layer and the softmax, over all steps
and rows at once) run in the C++ core, with the GIL released.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._checks import check_shape, check_threads, float32_weights, real_array, shape_text
from ._isa import active_isa
from ._parameters import check_state_dict_names
from ._portable import PortableModel, check_config_keys, split_prefix
from ._threads import resolve_threads
from .lstm import LSTM


class SequenceModel(PortableModel):
    """``probabilities = softmax(W h_t + b)`` at every step t of ``lstm`` over ``x`` (or over ``embedding[tokens]``).

    Args:
        lstm: a ``fastlstm.LSTM``; its output at each step (num_directions * H_out features) feeds the head.
        weight: (classes, num_directions * H_out), the head's linear layer as ``torch.nn.Linear`` stores it.
        bias: (classes,) or None.
        embedding: (vocabulary, lstm.input_size) or None: with it, the model takes integer token ids instead of
            feature vectors.

    Pickles, copies and ``fastlstm.save`` files hold the parts' parameters under the names ``embedding.weight``,
    ``lstm.<torch.nn.LSTM's names>``, ``linear.weight`` and ``linear.bias``.

    Calls take what the LSTM takes (``state``, ``lengths``, ``threads``; the thread count, chosen as for the LSTM,
    serves the head too), with x of shape (T, N, input_size) or (N, T, input_size) when the LSTM is batch_first, or
    token ids (T, N) / (N, T) with an embedding. Steps past a row's length get probabilities 0 and prediction -1.
    """

    def __init__(self, lstm: LSTM, weight: Any, bias: Any = None, *, embedding: Any = None) -> None:
        if not isinstance(lstm, LSTM):
            raise TypeError(f"lstm: expected a fastlstm.LSTM, got {type(lstm).__name__}")
        self.lstm = lstm
        features = lstm.num_directions * lstm.output_size
        weight = real_array(weight, "weight")
        if weight.ndim != 2 or weight.shape[1] != features or weight.shape[0] < 1:
            raise ValueError(
                f"weight: expected shape (classes, {features}) (the LSTM's output features), "
                f"got {shape_text(weight.shape)}"
            )
        self.weight = np.array(weight, np.float32, order="C")
        self.bias = None
        if bias is not None:
            bias = real_array(bias, "bias")
            check_shape(bias, (weight.shape[0],), "bias", hint="classes")
            self.bias = np.array(bias, np.float32, order="C")
        self.embedding = None
        if embedding is not None:
            embedding = real_array(embedding, "embedding")
            if embedding.ndim != 2 or embedding.shape[1] != lstm.input_size or embedding.shape[0] < 1:
                raise ValueError(
                    f"embedding: expected shape (vocabulary, {lstm.input_size}) (the LSTM's input_size), "
                    f"got {shape_text(embedding.shape)}"
                )
            self.embedding = np.array(embedding, np.float32, order="C")
        self._head = _core.PackedLinear(active_isa(), self.weight, self.bias)

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def precision(self) -> str:
        """The LSTM's precision (the head computes in float32)."""
        return self.lstm.precision

    # ---- pickle, copy, fastlstm.save (see fastlstm._portable) -------------------------------------------------

    _portable_name = "fastlstm.SequenceModel"

    def _portable_config(self) -> dict[str, Any]:
        return {
            "lstm": self.lstm._portable_config(),
            "embedding": self.embedding is not None,
            "bias": self.bias is not None,
        }

    def _portable_tensors(self) -> dict[str, np.ndarray]:
        tensors = {} if self.embedding is None else {"embedding.weight": self.embedding}
        tensors.update({f"lstm.{name}": value for name, value in self.lstm._portable_tensors().items()})
        tensors["linear.weight"] = self.weight
        if self.bias is not None:
            tensors["linear.bias"] = self.bias
        return tensors

    def _portable_restore(self, config: Any, precision: str, tensors: Any) -> None:
        check_config_keys(config, ("lstm", "embedding", "bias"), self._portable_name)
        parts = {"embedding": ["embedding.weight"], "bias": ["linear.bias"]}
        for part in parts:
            if not isinstance(config[part], bool):
                raise ValueError(f"config: {part}: expected true or false, got {config[part]!r}")
        head_names = ["linear.weight"] + [name for part, names in parts.items() if config[part] for name in names]
        check_state_dict_names(
            {name: value for name, value in tensors.items() if not name.startswith("lstm.")},
            dict.fromkeys(head_names),
            self._portable_name,
        )
        lstm = LSTM.__new__(LSTM)
        lstm._portable_restore(config["lstm"], precision, split_prefix(tensors, "lstm."))
        weight, bias, embedding = (tensors.get(name) for name in ("linear.weight", "linear.bias", "embedding.weight"))
        self.__init__(lstm, weight, bias, embedding=embedding)

    def _features(self, x: Any) -> np.ndarray:
        if self.embedding is None:
            return x
        tokens = np.asarray(x)
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"x: expected integer token ids (the model has an embedding), got dtype {tokens.dtype}")
        if tokens.ndim != 2:
            layout = "(N, T)" if self.lstm.batch_first else "(T, N)"
            raise ValueError(f"x: expected token ids of shape {layout}, got {shape_text(tokens.shape)}")
        vocabulary = self.embedding.shape[0]
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocabulary):
            raise ValueError(
                f"x: expected token ids in [0, {vocabulary}) (the embedding's vocabulary), got values from "
                f"{tokens.min()} to {tokens.max()}"
            )
        return self.embedding[tokens]

    def _run(self, x, state, lengths, threads, softmax):
        threads = check_threads(threads, "threads")
        features = real_array(self._features(x), "x")
        if features.ndim != 3:
            layout = "(N, T, input_size)" if self.lstm.batch_first else "(T, N, input_size)"
            raise ValueError(f"x: a sequence model takes a batch {layout}, got shape {shape_text(features.shape)}")
        output, (h_n, c_n) = self.lstm(features, state, lengths=lengths, threads=threads)
        steps_and_rows = output.shape[:2]
        head_threads = resolve_threads(threads, self.lstm.threads)
        scores = self._head.forward(output.reshape(-1, output.shape[2]), softmax, head_threads)
        scores = scores.reshape(*steps_and_rows, self.num_classes)
        return scores, (h_n, c_n), self._padding(steps_and_rows, lengths)

    def _padding(self, steps_and_rows, lengths) -> np.ndarray | None:
        """Where steps are past their row's length, as a boolean (T, N) or (N, T) mask; None without lengths."""
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        time_axis = 1 if self.lstm.batch_first else 0
        steps = np.arange(steps_and_rows[time_axis])
        padding = steps[None, :] >= lengths[:, None]  # (N, T)
        return padding if self.lstm.batch_first else padding.T

    def predict_proba(
        self, x: Any, state: tuple[Any, Any] | None = None, *, lengths: Any = None, threads: int | None = None
    ) -> np.ndarray:
        """Class probabilities at every step: (T, N, classes), or (N, T, classes) when the LSTM is batch_first."""
        probabilities, _, padding = self._run(x, state, lengths, threads, softmax=True)
        if padding is not None:
            probabilities[padding] = 0.0
        return probabilities

    def predict(
        self, x: Any, state: tuple[Any, Any] | None = None, *, lengths: Any = None, threads: int | None = None
    ) -> np.ndarray:
        """The most probable class at every step, int64 (T, N) or (N, T); -1 past a row's length. The arg-max of
        the logits, the same as that of the probabilities (softmax keeps the order), without the softmax."""
        logits, _, padding = self._run(x, state, lengths, threads, softmax=False)
        predictions = np.argmax(logits, axis=-1)
        if padding is not None:
            predictions[padding] = -1
        return predictions

    def logits(
        self, x: Any, state: tuple[Any, Any] | None = None, *, lengths: Any = None, threads: int | None = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """``(W h_t + b at every step, (h_n, c_n))``: the scores before the softmax, and the LSTM's final state."""
        logits, state_n, _ = self._run(x, state, lengths, threads, softmax=False)
        return logits, state_n

    @classmethod
    def from_torch(cls, module: Any, *, batch_first: bool | None = None, precision: str = "fp32") -> SequenceModel:
        """From a torch module whose children are, in order, an optional ``nn.Embedding``, an ``nn.LSTM`` and an
        ``nn.Linear``, with ``nn.Dropout`` anywhere (the identity at inference); any other child, or another order,
        raises ValueError naming it. The module's own forward is
        not read: the model computes embedding -> LSTM -> linear -> softmax. ``precision`` is the LSTM's, "fp32",
        "bf16" or "int8" (see ``fastlstm.LSTM``); the head stays float32."""
        import torch

        from .interop.pytorch import from_torch

        # Dropout is the identity at inference: left out.
        children = [(name, child) for name, child in module.named_children() if not isinstance(child, torch.nn.Dropout)]
        kinds = [type(child).__name__ for _, child in children]
        shapes = (["Embedding"] if kinds[:1] == ["Embedding"] else []) + ["LSTM", "Linear"]
        if kinds != shapes:
            raise ValueError(
                f"module: expected children Embedding (optional), LSTM, Linear in that order, got "
                f"{[f'{name}: {kind}' for (name, _), kind in zip(children, kinds)]}"
            )
        layers = [child for _, child in children]
        embedding = float32_weights(layers[0].weight, "embedding.weight") if len(layers) == 3 else None
        # (padding_idx needs nothing: it only initialises a row and stops its gradient; the stored row is looked up)
        if len(layers) == 3 and layers[0].max_norm is not None:
            raise ValueError("module: an Embedding with max_norm renormalises rows at lookup; not supported")
        lstm, linear = layers[-2], layers[-1]
        if not isinstance(linear, torch.nn.Linear):
            raise ValueError(f"module: expected an nn.Linear head, got {type(linear).__name__}")
        model = from_torch(lstm, batch_first=batch_first, precision=precision)
        bias = float32_weights(linear.bias, "linear.bias") if linear.bias is not None else None
        return cls(model, float32_weights(linear.weight, "linear.weight"), bias, embedding=embedding)

    @classmethod
    def from_keras(cls, model: Any, *, precision: str = "fp32") -> SequenceModel:
        """From a Keras ``Sequential`` of an optional ``Embedding``, an ``LSTM`` (or ``Bidirectional`` LSTM with
        merge_mode "concat") returning sequences, and a ``Dense`` layer (``Dropout`` layers anywhere are left out,
        being the identity at inference) with a softmax or linear activation (the
        logits then; ``predict_proba`` applies the softmax either way). Inputs and outputs are batch-major, as in
        Keras. Other layers or options raise ValueError naming them. ``precision`` as for ``from_torch``."""
        from .interop.keras import from_keras

        layers = [layer for layer in model.layers if type(layer).__name__ != "Dropout"]  # identity at inference
        kinds = [type(layer).__name__ for layer in layers]
        expected = (["Embedding"] if kinds[:1] == ["Embedding"] else []) + [
            kinds[-2] if len(kinds) >= 2 and kinds[-2] in ("LSTM", "Bidirectional") else "LSTM",
            "Dense",
        ]
        if kinds != expected:
            raise ValueError(
                f"model: expected layers Embedding (optional), LSTM or Bidirectional(LSTM), Dense, got {kinds}"
            )
        embedding = None
        if kinds[0] == "Embedding":
            if layers[0].mask_zero:
                raise ValueError(
                    f"model: Embedding {layers[0].name!r} has mask_zero=True: Keras's masked steps repeat the previous "
                    "output, which SequenceModel does not do; pass lengths= for right-padded batches instead"
                )
            embedding = float32_weights(layers[0].embeddings, "embeddings")
        recurrent = from_keras(layers[-2], precision=precision)
        where = f"layer {layers[-2].name!r} ({kinds[-2]})"
        if not recurrent.return_sequences or recurrent.go_backwards:
            raise ValueError(
                f"model: {where} must return sequences in time order (return_sequences=True, "
                "go_backwards=False) to feed a per-step head"
            )
        if recurrent.bidirectional and recurrent.merge_mode != "concat":
            raise ValueError(f"model: {where} has merge_mode={recurrent.merge_mode!r}; only 'concat' is supported")
        dense = layers[-1]
        activation = getattr(dense.activation, "__name__", str(dense.activation))
        if activation not in ("softmax", "linear"):
            raise ValueError(f"model: Dense {dense.name!r} has activation {activation!r}; expected softmax or linear")
        bias = float32_weights(dense.bias, "bias") if dense.use_bias else None
        return cls(recurrent.model, float32_weights(dense.kernel, "kernel").T, bias, embedding=embedding)

    def __repr__(self) -> str:
        embedding = (
            "" if self.embedding is None else f"embedding {self.embedding.shape[0]} x {self.embedding.shape[1]} -> "
        )
        return f"fastlstm.SequenceModel({embedding}{self.lstm!r} -> linear {self.num_classes} -> softmax)"
