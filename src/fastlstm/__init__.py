"""fastlstm: fast CPU inference for LSTMs, from NumPy, with the semantics of ``torch.nn.LSTM``.

    >>> import numpy as np, fastlstm
    >>> model = fastlstm.LSTM(input_size=16, hidden_size=32, num_layers=2, seed=0)
    >>> output, (h_n, c_n) = model(np.zeros((10, 4, 16), np.float32))
    >>> output.shape, h_n.shape
    ((10, 4, 32), (2, 4, 32))

``fastlstm.reference`` holds the NumPy reference implementation of the same API.
"""

from __future__ import annotations

from . import reference
from ._batcher import SessionBatcher
from ._core import __version__
from ._files import load, save
from ._isa import active_isa, available_isas, use_isa
from ._precision import QuantizationError, quantization_error
from ._sequence import SequenceModel
from ._sessions import Sessions
from ._stream import Stream
from ._threads import get_num_threads, set_num_threads
from .interop.keras import KerasLSTM, from_keras
from .interop.onnx_import import from_onnx
from .interop.pytorch import from_torch
from .lstm import LSTM, LSTMCell

__all__ = [
    "KerasLSTM",
    "LSTM",
    "LSTMCell",
    "QuantizationError",
    "SequenceModel",
    "SessionBatcher",
    "Sessions",
    "Stream",
    "__version__",
    "active_isa",
    "available_isas",
    "from_keras",
    "from_onnx",
    "from_torch",
    "get_num_threads",
    "load",
    "quantization_error",
    "reference",
    "save",
    "set_num_threads",
    "use_isa",
]
