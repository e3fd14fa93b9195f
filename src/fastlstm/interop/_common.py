"""What the importers and exporters share: the suffixes of one layer's parameter names in PyTorch's order (which every
framework's weights are renamed to; one suffix is ``fastlstm._parameters.layer_suffix``), and the orders in which
PyTorch and ONNX pack gates and peepholes.

The float32 conversion of framework weights (``float32_weights``), the existing-file check (``existing_file``) and
shape text (``shape_text``) are in ``fastlstm._checks``, with the package's other argument checks.
"""

from __future__ import annotations

import numpy as np

from .._parameters import layer_suffix


def layer_suffixes(layer: int, directions: int) -> list[str]:
    """The suffixes of one layer's directions in PyTorch's order: '_l0', then '_l0_reverse' if bidirectional."""
    return [layer_suffix(layer, direction) for direction in range(directions)]


#: For each ONNX gate (i, o, f, c), the index of the same gate in PyTorch's order (i, f, g, o).
ONNX_GATES_FROM_TORCH = (0, 3, 1, 2)
#: For each PyTorch gate (i, f, g, o), the index of the same gate in ONNX's order: the inverse permutation.
TORCH_GATES_FROM_ONNX = tuple(int(i) for i in np.argsort(ONNX_GATES_FROM_TORCH))
#: Our peephole rows are p_i, p_f, p_o; ONNX's P holds p_i, p_o, p_f. Swapping the last two maps either order onto
#: the other, so one permutation serves both ways.
PEEPHOLES_SWAPPED = [0, 2, 1]


def _reorder_gates(tensor: np.ndarray, hidden: int, order: tuple[int, ...]) -> np.ndarray:
    blocks = tensor.reshape(4, hidden, *tensor.shape[1:])
    return np.ascontiguousarray(blocks[list(order)].reshape(tensor.shape))


def gates_to_onnx(tensor: np.ndarray, hidden: int) -> np.ndarray:
    """A weight (4H, K) or bias (4H,) with its gate blocks reordered from PyTorch's i, f, g, o to ONNX's i, o, f, c."""
    return _reorder_gates(tensor, hidden, ONNX_GATES_FROM_TORCH)


def gates_from_onnx(tensor: np.ndarray, hidden: int) -> np.ndarray:
    """A weight (4H, K) or bias (4H,) with its gate blocks reordered from ONNX's i, o, f, c to PyTorch's i, f, g, o."""
    return _reorder_gates(tensor, hidden, TORCH_GATES_FROM_ONNX)


def peepholes_to_onnx(rows: np.ndarray) -> np.ndarray:
    """Our peephole rows (3, H), p_i, p_f, p_o, as one direction of ONNX's P: (3H,), [p_i, p_o, p_f]."""
    return rows[PEEPHOLES_SWAPPED].reshape(-1)


def peepholes_from_onnx(vector: np.ndarray, hidden: int) -> np.ndarray:
    """One direction of ONNX's P, (3H,) [p_i, p_o, p_f], as our peephole rows (3, H), p_i, p_f, p_o."""
    return vector.reshape(3, hidden)[PEEPHOLES_SWAPPED]
