"""``fastlstm.torch.optimize``: the one-line change that puts fastlstm under a PyTorch model's LSTMs."""

from __future__ import annotations

import copy
from typing import Any

import torch

from .._checks import check_bool, check_precision, check_threads
from ._modules import LSTM, LSTMCell

#: The classes replaced, exactly (a user's subclass of nn.LSTM may override forward; it is left alone), and our own
#: (optimizing an optimized model again applies the new precision and threads).
_REPLACED = {torch.nn.LSTM: LSTM, torch.nn.LSTMCell: LSTMCell, LSTM: LSTM, LSTMCell: LSTMCell}


def optimize(model: Any, *, precision: str = "fp32", inplace: bool = False, threads: int | None = None):
    """``model`` with every ``torch.nn.LSTM`` and ``torch.nn.LSTMCell`` in it (nested at any depth, or the model
    itself) replaced by ``fastlstm.torch.LSTM`` / ``LSTMCell`` holding the same parameters.

    Args:
        model: a ``torch.nn.Module``.
        precision: "fp32" (default), "bf16" or "int8": the precision of fastlstm's packed weights (see
            ``fastlstm.LSTM``).
        inplace: replace the modules inside ``model`` itself; by default a deep copy is optimized and returned,
            and ``model`` is left as it was.
        threads: fastlstm's thread count for these modules; None (default) follows ``torch.get_num_threads()`` at
            each call. Results are bitwise the same for any count.

    Returns the optimized model (``model`` itself when ``inplace``, or the replacement when ``model`` is an LSTM).
    The training mode is left as it is: the fast path runs in eval mode without gradients (``model.eval()``, and
    ``torch.inference_mode()`` or ``torch.no_grad()``); everything else runs torch's own forward.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__module__}.{type(model).__qualname__}")
    precision = check_precision(precision)
    threads = check_threads(threads, "threads")
    if not check_bool(inplace, "inplace"):
        model = copy.deepcopy(model)
    replacements: dict[int, torch.nn.Module] = {}  # a module used in two places stays one module

    def replacement(module: torch.nn.Module) -> torch.nn.Module:
        if id(module) not in replacements:
            replaced = _REPLACED[type(module)]
            replacements[id(module)] = replaced.from_module(module, precision=precision, threads=threads)
        return replacements[id(module)]

    if type(model) in _REPLACED:
        return replacement(model)
    for parent in list(model.modules()):
        # _modules, not named_children(), which yields a module used under two names only once
        for name, child in list(parent._modules.items()):
            if type(child) in _REPLACED:
                setattr(parent, name, replacement(child))
    return model
