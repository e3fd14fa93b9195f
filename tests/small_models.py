"""The small models and inputs that the argument, non-finite and dtype-policy tests share (test_errors.py,
test_nonfinite.py, test_dtype_policy.py)."""

from __future__ import annotations

import numpy as np

I, H, P = 5, 6, 3  # input_size, hidden_size, proj_size of the models under test
T, N = 4, 3  # steps and batch of the inputs under test


def outputs(model, x, state=None) -> tuple[np.ndarray, ...]:
    """(output, h_n, c_n) of an LSTM or (h, c) of a cell, flat."""
    result = model(x, state)
    return (result[0], *result[1]) if isinstance(result[1], tuple) else tuple(result)


def good_state(num_states, batch, proj_size, unbatched):
    """Correct (h0, c0) shapes for an LSTM: (states, [batch,] H_out) and (states, [batch,] hidden_size)."""
    middle = () if unbatched else (batch,)
    return (num_states, *middle, proj_size or H), (num_states, *middle, H)


def make_model(kind, cls, seed):
    if kind == "lstm":
        return cls(I, H, num_layers=2, bidirectional=True, proj_size=P, seed=seed)
    return cls(I, H, seed=seed)
