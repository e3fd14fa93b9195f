"""Helpers shared by the test suite and the benchmarks: the sizes that hit SIMD tails, and the derived tolerance for
comparing a float32 LSTM with the float64 reference.

Tolerance: why float32 results may differ from the float64 reference, and by how much
-----------------------------------------------------------------------------------------
A float32 implementation of the LSTM equations differs from the exact (float64) result through

1. the rounding of each gate pre-activation, a dot product of K = input + recurrent (+ 2 bias) terms. Its error
   depends on the summation order (BLAS, oneDNN, our panels all differ) and grows like sqrt(K) * u * |terms| in
   the usual probabilistic model, u = 2**-24;
2. the rounding of the cell arithmetic itself: sigmoid/tanh (libm: <= 2 ulp), c = f*c + i*g (3 roundings) and
   h = o*tanh(c) (2 roundings plus tanh), i.e. about 8 ulp of max(1, |c|) per step once the gate errors are bounded;
3. the propagation of both through the recurrence (h_{t-1} feeds the next step) and through the layers.

(3) depends on the weights and the data: an a-priori worst-case bound multiplies the per-step error by the norm of the
recurrent Jacobian at every step and is useless (over 1e-2 for the test problems, whose real error is below 1e-6).
So we measure the propagation on the very problem under test: the float32 NumPy reference is another float32
evaluation of the same equations in another summation order, and its deviation ``e32`` from the float64 reference
shows how much this problem amplifies float32 rounding. A correct float32 implementation must land within a small
factor of it; differences between implementations come only from (1) and (2), which are of the same order.

    tol = 4 * e32 + 16 * u * max(1, max|reference|)

The factor 4 covers a different summation order and libm (observed ratios across the test grid: up to about 3);
the floor 16 u (about 1e-6 for |values| <= 1) covers (2) with a factor 2 to spare, for short sequences where e32
happens to be tiny. Two float32 implementations that both meet it differ by at most 2 * tol. ``MAX_TOLERANCE``
caps tol: a problem whose own float32 error is larger than that is not a meaningful test and fails loudly instead
of loosening the check.
"""

from __future__ import annotations

import numpy as np

#: Sizes below, at and above the 8- and 16-lane widths and their multiples, and a large odd one.
SIMD_TAIL_SIZES = (1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 255)

#: float32 unit roundoff
UNIT_ROUNDOFF = 2.0**-24

#: The ceiling of every derived tolerance: a problem that needs more is too ill-conditioned to test at float32
#: (see the module docstring).
MAX_TOLERANCE = 1e-5


def float32_tolerance(exact: np.ndarray, float32_reference: np.ndarray) -> float:
    """Absolute tolerance for a float32 LSTM result against ``exact`` (float64 reference), calibrated by
    ``float32_reference`` (the float32 NumPy reference on the same problem). See the module docstring."""
    exact = np.asarray(exact, np.float64)
    if exact.size == 0:
        return 0.0
    finite = np.isfinite(exact)
    e32 = float(np.max(np.abs(np.asarray(float32_reference, np.float64)[finite] - exact[finite]), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(exact[finite]), initial=0.0)))
    tol = 4.0 * e32 + 16.0 * UNIT_ROUNDOFF * scale
    if tol > MAX_TOLERANCE:
        raise AssertionError(
            f"the float32 reference itself is off by {e32:.3g} on this problem: too ill-conditioned to test at "
            f"float32 (tolerance {tol:.3g} > {MAX_TOLERANCE:g})"
        )
    return tol


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over positions where both are finite; NaN and inf positions must agree exactly (raises)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    nonfinite_a, nonfinite_b = ~np.isfinite(a), ~np.isfinite(b)
    if not np.array_equal(nonfinite_a, nonfinite_b) or not np.array_equal(
        a[nonfinite_a], b[nonfinite_b], equal_nan=True
    ):
        raise AssertionError("NaN/inf positions or values differ")
    finite = ~nonfinite_a
    return float(np.max(np.abs(a[finite] - b[finite]), initial=0.0))
