"""One run of the installed fastlstm on whatever CPU this process sees (tools/check_wheel.sh starts it natively and
under qemu-user's emulated x86 CPUs, tools/check_arm.sh under emulated ARM ones). Prints one JSON line; exits
non-zero with the reason when a check fails.

    python tools/emulated_cpu_check.py --expect portable

checks that
  * fastlstm imports from site-packages (the installed wheel, not a source tree),
  * the variants this CPU runs are exactly the expected ones, and the best of them is the one new models use,
  * small models hitting SIMD tails (sizes 1, 7, 9, 17, 33; batch 1 and 3; lengths; two layers, bidirectional, a
    projection) match fastlstm.reference: fp32 over whole sequences within the derived float32 tolerance
    (fastlstm.testing), bf16 and int8 over one step against the reference's emulation of the same rounding,
and prints the SHA-256 of every result in every precision, so that the caller can check that the emulated CPU gives
bitwise what this machine gives with the same variant forced (FASTLSTM_ISA).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

import fastlstm
from fastlstm import reference
from fastlstm.testing import float32_tolerance, max_abs_difference

#: The variants each CPU model runs, best last (the order of fastlstm.available_isas()).
EXPECTED_ISAS = {
    "portable": ["portable"],
    "avx2": ["portable", "avx2"],
    "neon": ["portable", "neon"],
    "neon_dotprod": ["portable", "neon", "neon_dotprod"],
    "neon_bf16": ["portable", "neon", "neon_dotprod", "neon_bf16"],
    "neon_i8mm": ["portable", "neon", "neon_dotprod", "neon_bf16", "neon_i8mm"],
}

#: (input_size, hidden_size, options, steps, batch): tails below, at and above 8 and 16 lanes; batches 1 to 3, 5
#: and 6 (int8 row pairs: one, two and three pairs, with and without a row alone); odd and even counts of int8 quads.
MODELS = [
    (1, 7, {}, 5, 1),
    (9, 17, {"num_layers": 2}, 6, 3),
    (7, 33, {"bidirectional": True}, 4, 3),
    (17, 9, {"proj_size": 3, "batch_first": True}, 5, 2),
    (20, 12, {}, 4, 6),
    (5, 16, {"num_layers": 2}, 3, 5),
]


def fail(message: str) -> None:
    sys.exit(f"emulated_cpu_check: {message}")


def check_close(what: str, got, want, calibration) -> None:
    """Each of output, h_n, c_n within the derived float32 tolerance of the float64 reference's (fastlstm.testing)."""
    for value, expected, rounded in zip((got[0], *got[1]), (want[0], *want[1]), (calibration[0], *calibration[1])):
        difference, tolerance = max_abs_difference(value, expected), float32_tolerance(expected, rounded)
        if not difference <= tolerance:
            fail(f"{what}: off the reference by {difference:.3g} > tolerance {tolerance:.3g}")


def sequence_results(precision: str) -> list[np.ndarray]:
    """Every model of MODELS over a whole sequence with lengths, at 1 and 2 threads. In fp32 each result is checked
    against the float64 reference here."""
    results = []
    for seed, (input_size, hidden, options, steps, batch) in enumerate(MODELS):
        model = fastlstm.LSTM(input_size, hidden, seed=seed, precision=precision, **options)
        rng = np.random.default_rng(seed)
        shape = (batch, steps, input_size) if options.get("batch_first") else (steps, batch, input_size)
        x = rng.standard_normal(shape).astype(np.float32)
        lengths = rng.integers(1, steps + 1, batch)
        for threads in (1, 2):
            got = model(x, lengths=lengths, threads=threads)
            results += [got[0], *got[1]]
        if precision == "fp32":
            exact = reference.LSTM(input_size, hidden, **options)
            float32 = reference.LSTM(input_size, hidden, dtype=np.float32, **options)
            exact.load_state_dict(model.state_dict())
            float32.load_state_dict(model.state_dict())
            check_close(
                f"fp32 model {seed} ({input_size}, {hidden}, {options})",
                got,
                exact(x, lengths=lengths),
                float32(x, lengths=lengths),
            )
    return results


def check_one_step_against_the_reference_emulation(precision: str) -> None:
    """One step from a given state: the reference rounds weights, x and h as the kernel does (bf16) or quantizes them
    (int8), so only float32 summation order separates the two (the tolerance of fastlstm.testing)."""
    for seed, hidden in enumerate((1, 9, 17, 33)):
        model = fastlstm.LSTM(7, hidden, seed=seed, precision=precision)
        exact = reference.LSTM(7, hidden, precision=precision)
        float32 = reference.LSTM(7, hidden, precision=precision, dtype=np.float32)
        exact.load_state_dict(model.state_dict())
        float32.load_state_dict(model.state_dict())
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal((1, 3, 7)).astype(np.float32)
        state = (
            rng.uniform(-1, 1, (1, 3, hidden)).astype(np.float32),
            rng.standard_normal((1, 3, hidden)).astype(np.float32),
        )
        check_close(f"{precision} step, hidden_size={hidden}", model(x, state), exact(x, state), float32(x, state))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", choices=sorted(EXPECTED_ISAS), help="the best variant this CPU must run")
    arguments = parser.parse_args()

    if "site-packages" not in fastlstm.__file__:
        fail(f"fastlstm was imported from {fastlstm.__file__}, not from an installed wheel")
    available, active = fastlstm.available_isas(), fastlstm.active_isa()
    if arguments.expect is not None:
        if available != EXPECTED_ISAS[arguments.expect]:
            fail(f"this CPU should run {EXPECTED_ISAS[arguments.expect]}, fastlstm found {available}")
        if active != arguments.expect:
            fail(f"new models should use {arguments.expect!r}, they use {active!r}")

    digests = {}
    for precision in ("fp32", "bf16", "int8"):
        if precision != "fp32":
            check_one_step_against_the_reference_emulation(precision)
        digest = hashlib.sha256()
        for array in sequence_results(precision):
            digest.update(np.ascontiguousarray(array).tobytes())
        digests[precision] = digest.hexdigest()
    print(json.dumps({"available": available, "active": active, "numpy": np.__version__, "sha256": digests}))


if __name__ == "__main__":
    main()
