"""PyTorch in and out: ``from_torch`` builds a fastlstm model from a ``torch.nn.LSTM``, ``torch.nn.LSTMCell`` or their
``state_dict``; ``to_torch`` gives a model's parameters back as torch tensors (or as a ready torch module).

Our parameters already carry PyTorch's names, shapes and gate order (i, f, g, o), and both bias vectors are kept
apart, so nothing is reordered or fused: a model imported from torch computes with exactly torch's weights. torch
is imported only when it is needed (a torch module or tensor in hand means it is installed already).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._checks import check_bool, check_precision, check_threads, float32_weights

if TYPE_CHECKING:
    from ..lstm import LSTM, LSTMCell

#: weight_ih_l0, bias_hh_l2_reverse, weight_hr_l1, ...: (kind, layer, reverse)
_LSTM_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _lstm_options(source: Any) -> dict[str, Any]:
    """The constructor arguments torch.nn.LSTM and fastlstm.LSTM share, read from either."""
    names = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional", "proj_size")
    return {name: getattr(source, name) for name in names}


def _torch_nn():
    try:
        import torch
    except ImportError as error:  # pragma: no cover - the message is the point
        raise ImportError("this needs PyTorch: pip install torch") from error
    return torch


def from_torch(
    obj: Any, *, batch_first: bool | None = None, threads: int | None = None, precision: str = "fp32"
) -> LSTM | LSTMCell:
    """A fastlstm model computing what ``obj`` computes, with its weights copied as float32.

    Args:
        obj: a ``torch.nn.LSTM`` (every option: num_layers, bidirectional, proj_size, bias=False, batch_first; dropout
            acts only in training and is not carried over), a ``torch.nn.LSTMCell``, or the ``state_dict()`` of
            either (a mapping of PyTorch's parameter names to tensors or arrays; sizes, layers, directions, bias and
            projection are read from the names and shapes).
        batch_first: for a ``state_dict`` of an LSTM, which does not record it (default False); for a module it
            must be omitted or agree with the module's.
        threads: the model's thread count (see ``fastlstm.LSTM``).
        precision: the model's precision, "fp32", "bf16" or "int8" (see ``fastlstm.LSTM``).

    Returns a ``fastlstm.LSTM`` or ``fastlstm.LSTMCell``. Raises TypeError for other objects (naming the type) and
    ValueError for a state_dict whose names or shapes do not make an LSTM (naming the entries at fault).
    """
    from ..lstm import LSTM, LSTMCell

    threads = check_threads(threads, "threads")
    precision = check_precision(precision)
    if batch_first is not None:
        batch_first = check_bool(batch_first, "batch_first")
    if isinstance(obj, Mapping):
        return _from_state_dict(obj, batch_first=batch_first, threads=threads, precision=precision)

    torch = _torch_nn() if type(obj).__module__.startswith("torch") else None
    if torch is not None and isinstance(obj, torch.nn.LSTM):
        if batch_first is not None and batch_first != obj.batch_first:
            raise ValueError(
                f"batch_first: the module has batch_first={obj.batch_first}; omit the argument or pass the same"
            )
        model = LSTM(**_lstm_options(obj), threads=threads, precision=precision)
        model.load_state_dict({name: float32_weights(value, name) for name, value in obj.state_dict().items()})
        return model
    if torch is not None and isinstance(obj, torch.nn.LSTMCell):
        if batch_first is not None:
            raise ValueError("batch_first: an LSTMCell takes one step, (N, input_size); omit the argument")
        cell = LSTMCell(obj.input_size, obj.hidden_size, bias=obj.bias, threads=threads, precision=precision)
        cell.load_state_dict({name: float32_weights(value, name) for name, value in obj.state_dict().items()})
        return cell
    raise TypeError(
        "obj: expected a torch.nn.LSTM, a torch.nn.LSTMCell or the state_dict of one, got "
        f"{type(obj).__module__}.{type(obj).__qualname__}"
    )


def _from_state_dict(state_dict: Mapping[str, Any], *, batch_first: bool | None, threads: int | None, precision: str):
    from ..lstm import LSTM, LSTMCell

    names = list(state_dict)
    not_strings = [name for name in names if not isinstance(name, str)]
    if not_strings:
        raise TypeError(f"state_dict: expected parameter names (str) as keys, got {not_strings[:3]!r}")
    arrays = {name: float32_weights(value, f"state_dict[{name!r}]") for name, value in state_dict.items()}

    if "weight_ih" in arrays:  # an LSTMCell's names carry no layer suffix
        if batch_first is not None:
            raise ValueError("batch_first: an LSTMCell state_dict takes one step; omit the argument")
        weight_ih = arrays["weight_ih"]
        if weight_ih.ndim != 2 or weight_ih.shape[0] % 4 != 0:
            raise ValueError(
                f"state_dict['weight_ih']: expected shape (4*hidden_size, input_size), got {weight_ih.shape}"
            )
        cell = LSTMCell(
            weight_ih.shape[1], weight_ih.shape[0] // 4, bias="bias_ih" in arrays, threads=threads, precision=precision
        )
        cell.load_state_dict(arrays)  # checks every name and shape, and says which is wrong
        return cell

    keys = {name: _LSTM_KEY.match(name) for name in names}
    unknown = [name for name, match in keys.items() if match is None]
    if unknown or not names:
        raise ValueError(
            f"state_dict: {unknown[:5] if unknown else 'no entries'}: not parameter names of a torch.nn.LSTM "
            "(weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_hr_l0, with _reverse for the backward "
            "direction) or of a torch.nn.LSTMCell (weight_ih, ...); for an LSTM inside a larger module pass its own "
            "state_dict (e.g. module.lstm.state_dict())"
        )
    for required in ("weight_ih_l0", "weight_hh_l0"):
        if required not in arrays:
            raise ValueError(f"state_dict: missing {required!r}, needed to read the LSTM's sizes")
    weight_ih = arrays["weight_ih_l0"]
    if weight_ih.ndim != 2 or weight_ih.shape[0] % 4 != 0:
        raise ValueError(
            f"state_dict['weight_ih_l0']: expected shape (4*hidden_size, input_size), got {weight_ih.shape}"
        )
    projection = arrays.get("weight_hr_l0")
    model = LSTM(
        input_size=weight_ih.shape[1],
        hidden_size=weight_ih.shape[0] // 4,
        num_layers=1 + max(int(match.group(2)) for match in keys.values()),
        bias="bias_ih_l0" in arrays,
        batch_first=bool(batch_first),
        bidirectional=any(match.group(3) for match in keys.values()),
        proj_size=projection.shape[0] if projection is not None and projection.ndim == 2 else 0,
        threads=threads,
        precision=precision,
    )
    model.load_state_dict(arrays)  # checks every other name and shape, and says which is wrong
    return model


def to_torch_state_dict(model: LSTM | LSTMCell) -> OrderedDict:
    """The model's parameters as float32 torch tensors, named and ordered as ``torch.nn.LSTM.state_dict()`` (or
    ``LSTMCell``'s), for ``module.load_state_dict``. A model with cell options torch has no equivalent of (reverse,
    activations, clip, input_forget, peepholes) raises ValueError."""
    lstm = getattr(model, "_lstm", model)  # an LSTMCell wraps a one-layer LSTM
    if lstm.reverse or lstm.has_cell_options:
        raise ValueError(f"to_torch: torch.nn.LSTM cannot express the cell options of {lstm!r}")
    torch = _torch_nn()
    return OrderedDict((name, torch.from_numpy(value)) for name, value in model.state_dict().items())


def to_torch_module(model: LSTM | LSTMCell):
    """A new ``torch.nn.LSTM`` (or ``LSTMCell``) in eval mode with the model's options and parameters."""
    from ..lstm import LSTMCell

    torch = _torch_nn()
    if isinstance(model, LSTMCell):
        module = torch.nn.LSTMCell(model.input_size, model.hidden_size, bias=model.bias)
    else:
        module = torch.nn.LSTM(**_lstm_options(model))
    module.load_state_dict(to_torch_state_dict(model))
    return module.eval()
