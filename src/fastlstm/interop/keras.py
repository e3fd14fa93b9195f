"""Import of Keras 3 LSTMs: ``from_keras(obj)`` returns a ``KerasLSTM``, which runs a ``fastlstm.LSTM`` (its
``.model``) and returns exactly what the Keras layer or model returns.

What is read
------------
* a built ``keras.layers.LSTM``, or a ``keras.layers.Bidirectional`` wrapping one;
* a ``keras.Sequential`` or functional ``keras.Model`` holding only an input, at most one ``Masking`` layer before
  the LSTM, and that ``LSTM`` or ``Bidirectional`` layer, whose outputs are the model's outputs. In a Sequential,
  several LSTM layers in a row (or several Bidirectional ones) become one multi-layer model when they have the same
  units, activations and bias, every layer but the last returns sequences, none goes backwards and every
  Bidirectional but the last concatenates (merge_mode "concat");
* the path of a ``.keras`` file holding any of these. The file is a zip of ``config.json`` (the layers' settings)
  and ``model.weights.h5`` (``<layer>/cell/vars/0, 1, 2`` = kernel, recurrent kernel, bias), read with zipfile,
  json and h5py: keras is not imported, so a model trained elsewhere runs where only fastlstm and h5py are installed.

Weights: Keras's kernel (I, 4H) and recurrent kernel (H, 4H) are transposed to our (4H, I) and (4H, H); the gate
order i, f, c, o is ours. The single bias becomes ``bias_ih`` with a zero ``bias_hh``, as Keras's torch backend does.
Whatever the layer's dtype policy, the model computes in float32.

What a call returns
-------------------
``keras_lstm(x, initial_state=None, mask=None)`` with x (N, T, I) returns what the Keras layer returns, as float32
NumPy arrays: the sequence (N, T, units) with ``return_sequences`` or else the last output (N, units); with
``return_state`` the list ``[output, h, c]`` (Bidirectional: ``[output, h_fw, c_fw, h_bw, c_bw]``). Bidirectional
merges both directions as its ``merge_mode`` says (concat, sum, mul, ave; None gives the list of both outputs).

* ``go_backwards``: Keras reads the sequence from its end and returns the outputs in the order it computed them,
  i.e. reversed in time. That is our ``reverse=True`` (whose outputs are aligned with the input) with the sequence
  flipped. In a Bidirectional the backward layer's sequence is flipped back, so it is our bidirectional model's.
* Masks: ``mask`` (N, T), True at the valid steps (or a ``Masking`` layer's mask: the steps where some feature
  differs from its mask_value). At a masked step Keras leaves the state unchanged and outputs the previous output
  (zeros before the first valid step, even with an initial state), or zeros when the layer's
  ``zero_output_for_mask`` is set, which Bidirectional forces for layers that return sequences. Because the state
  does not move at masked steps, running only each row's valid steps is exact: a right-padded mask runs as it is,
  with ``lengths=``; a mask with holes first has each row's valid steps gathered to the front (one copy of x), then
  runs the same way. The outputs at masked steps are filled in afterwards.
* Several layers: the output and states are the last layer's.

Refused (ValueError naming the layer and the option): activations other than tanh, sigmoid, hard_sigmoid (Keras 3's
x/6 + 1/2, clipped), relu, linear, softsign, softplus, elu and leaky_relu (slope 0.2); a stateful layer (the state
Keras keeps between calls lives in the returned model's ``model.stream(batch_size)`` instead); a Bidirectional whose
backward layer differs from its forward one in units, activations or bias, or whose forward layer goes backwards;
any other layer in a model. Ignored, as they act only in training: dropout, recurrent_dropout, regularizers,
constraints, initializers (unit_forget_bias among them); unroll changes nothing in the result.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import numpy as np

from .._checks import check_precision, check_threads, existing_file, float32_weights
from .._parameters import layer_suffix
from ._keras_config import _LayerEntry, _Structure, _structure
from ._keras_lstm import KerasLSTM
from ._keras_settings import _check_stack, _read_layer, _WeightReader

__all__ = ["KerasLSTM", "from_keras"]

_WEIGHTS_FILE = "model.weights.h5"
_CONFIG_FILE = "config.json"
_METADATA_FILE = "metadata.json"


# ---- the two sources: a live Keras object, a .keras file ---------------------------------------------------------


def from_keras(obj: Any, *, threads: int | None = None, precision: str = "fp32") -> KerasLSTM:
    """A ``KerasLSTM`` computing what a Keras 3 LSTM layer or model computes (see the module's documentation).

    Args:
        obj: a built ``keras.layers.LSTM`` or ``keras.layers.Bidirectional(LSTM)``, a ``keras.Sequential`` or
            functional ``keras.Model`` around one, or the path (str or os.PathLike) of a ``.keras`` file holding
            any of these; the file is read without keras (h5py is needed).
        threads: the model's thread count (see ``fastlstm.LSTM``).
        precision: the model's precision, "fp32", "bf16" or "int8" (see ``fastlstm.LSTM``).

    Returns a ``KerasLSTM``; its ``.model`` is the ``fastlstm.LSTM``.

    Raises:
        TypeError: obj is neither a Keras object nor a path.
        FileNotFoundError: the path does not exist (IsADirectoryError: it is a directory).
        ImportError: reading a file needs h5py.
        ValueError: something the import cannot reproduce exactly (the message names the layer and the option).
    """
    threads = check_threads(threads, "threads")
    precision = check_precision(precision)
    if isinstance(obj, (str, os.PathLike)):
        serialized, read_weights = _open_file(obj)
    elif type(obj).__module__.split(".")[0] == "keras":
        serialized, read_weights = _open_live(obj)
    else:
        raise TypeError(
            "from_keras: obj: expected a keras.layers.LSTM, a keras.layers.Bidirectional, a keras Sequential or "
            "functional Model holding one, or the path of a .keras file; got "
            f"{type(obj).__module__}.{type(obj).__qualname__}"
        )
    return _build(_structure(serialized), read_weights, threads, precision)


def _open_live(obj: Any) -> tuple[dict[str, Any], _WeightReader]:
    import keras  # obj is a Keras object, so keras is installed and imported already

    _check_keras_version(str(getattr(keras, "__version__", "")), "obj")
    if getattr(obj, "built", True) is False:
        raise ValueError(
            f"from_keras: obj: {type(obj).__name__} {getattr(obj, 'name', '')!r} is not built, so it has no weights "
            "yet: build it (or call it once on data) first"
        )
    serialized = keras.saving.serialize_keras_object(obj)

    def read_weights(entry: _LayerEntry, sublayer: str | None) -> list[np.ndarray]:
        layer = obj if entry.top else obj.get_layer(entry.name)
        if sublayer is not None:
            layer = getattr(layer, sublayer)
        # By name rather than by position in layer.weights, whose order follows which variables are trainable.
        cell = layer.cell
        variables = [cell.kernel, cell.recurrent_kernel] + ([cell.bias] if cell.bias is not None else [])
        return [_variable_array(variable) for variable in variables]

    return serialized, read_weights


def _check_keras_version(version: str, what: str) -> None:
    """Keras 2 wrote .keras files too, with other semantics (its hard_sigmoid is 0.2 x + 0.5): refuse them."""
    major = version.split(".")[0]
    if major.isdigit() and int(major) < 3:
        raise ValueError(f"from_keras: {what} comes from Keras {version}; only Keras 3 layers and files are read")


def _variable_array(variable: Any) -> np.ndarray:
    """A Keras variable's value as a float32 NumPy array, whatever the backend."""
    return float32_weights(variable, "a Keras variable")


def _open_file(path_like: Any) -> tuple[dict[str, Any], _WeightReader]:
    path = existing_file(path_like, "from_keras", "obj", "a .keras file")
    try:
        import h5py
    except ImportError:
        raise ImportError("from_keras: reading a .keras file needs the h5py package: pip install h5py") from None
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"from_keras: {path!r} is not a Keras 3 .keras file (a zip archive); legacy HDF5 (.h5) models are not read"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        missing = [name for name in (_CONFIG_FILE, _WEIGHTS_FILE) if name not in names]
        if missing:
            raise ValueError(f"from_keras: {path!r} lacks {missing} (it holds {names}); is it a .keras model file?")
        try:
            serialized = json.loads(archive.read(_CONFIG_FILE))
        except ValueError as error:
            raise ValueError(f"from_keras: {path!r}: {_CONFIG_FILE} is not valid JSON: {error}") from None
        weights_bytes = archive.read(_WEIGHTS_FILE)
        if _METADATA_FILE in names:
            try:
                version = json.loads(archive.read(_METADATA_FILE)).get("keras_version", "")
            except (ValueError, AttributeError):
                version = ""
            _check_keras_version(str(version), repr(path))

    # Every array and every group's recorded layer name, read at once so that no file stays open.
    arrays: dict[str, np.ndarray] = {}
    layer_names: dict[str, str] = {}

    def collect(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            arrays[name] = np.asarray(item[()])
        elif name.endswith("vars") and "name" in item.attrs:
            layer_names[name[: -len("vars")].rstrip("/")] = str(item.attrs["name"])

    with h5py.File(io.BytesIO(weights_bytes), "r") as store:
        store.visititems(collect)

    def read_weights(entry: _LayerEntry, sublayer: str | None) -> list[np.ndarray]:
        group = "" if entry.top else _layer_group(entry, layer_names)
        if sublayer is not None:
            group = f"{group}/{sublayer}" if group else sublayer
        prefix = f"{group}/cell/vars/" if group else "cell/vars/"
        found = {
            int(name[len(prefix) :]): array
            for name, array in arrays.items()
            if name.startswith(prefix) and name[len(prefix) :].isdigit()
        }
        return [found[index] for index in sorted(found)]

    return serialized, read_weights


def _layer_group(entry: _LayerEntry, layer_names: dict[str, str]) -> str:
    """The h5 group of a model's layer: Keras names it by class (lstm, lstm_1, ...) and records the layer's own name
    in its vars group; the recorded name decides when present."""
    by_name = [
        group
        for group, name in layer_names.items()
        if name == entry.name and group.count("/") == 1 and group.startswith("layers/")
    ]
    if len(by_name) == 1:
        return by_name[0]
    base = "lstm" if entry.class_name == "LSTM" else "bidirectional"
    return f"layers/{base}" + (f"_{entry.class_index}" if entry.class_index else "")


# ---- the model -----------------------------------------------------------------------------------------------------


def _build(structure: _Structure, read_weights: _WeightReader, threads: int | None, precision: str) -> KerasLSTM:
    from ..lstm import LSTM

    layers = [_read_layer(entry, read_weights) for entry in structure.entries]
    _check_stack(layers)
    first, last = layers[0].first, layers[-1].first
    bidirectional = len(layers[0].directions) == 2
    model = LSTM(
        first.input_size,
        first.units,
        num_layers=len(layers),
        bias=first.use_bias,
        batch_first=True,
        bidirectional=bidirectional,
        seed=0,  # the initial weights are replaced at once
        threads=threads,
        precision=precision,
        reverse=first.go_backwards and not bidirectional,
        activations=first.activations,
    )
    parameters = {}
    for index, layer in enumerate(layers):
        for direction, spec in enumerate(layer.directions):
            suffix = layer_suffix(index, direction)
            parameters.update({name.replace("_l0", suffix): value for name, value in spec.parameters.items()})
    try:
        model.load_state_dict(parameters)
    except ValueError as error:  # a layer's input size does not follow from the previous layer's output
        raise ValueError(f"from_keras: the layers do not fit together: {error}") from None
    return KerasLSTM(
        model,
        name=structure.name,
        return_sequences=last.return_sequences,
        return_state=last.return_state,
        go_backwards=last.go_backwards and not bidirectional,
        merge_mode=layers[-1].merge_mode if bidirectional else None,
        zero_output_for_mask=last.zero_output_for_mask,
        mask_value=structure.mask_value,
    )
