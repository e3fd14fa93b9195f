"""The precisions a benchmark row can run fastlstm in, and what each means for the report: the tolerance of the
outputs computed in it, the bytes of a packed gate weight, and the instruction that multiplies and adds in it."""

from __future__ import annotations

from collections.abc import Sequence

from .._checks import PRECISIONS as MODEL_PRECISIONS

#: Largest max |output difference| of a float32 output (a peer's) from fastlstm's float32 one for the results to
#: count as agreeing. Far above the float32 rounding of these shapes (about 1e-6), far below what a wrong gate or a
#: lost step produces.
TOLERANCE = 1e-4
#: The same for bf16 outputs (fastlstm in bf16 and bf16 peers) against the float32 result. bf16 keeps 8 significant
#: bits, so each rounded weight, x and h is off by up to 2^-8 relative: over the full matrix (the "fastlstm |diff|"
#: and "max |diff|" columns of ``python -m fastlstm bench --full --precision bf16``), fastlstm's bf16 output differs
#: from its float32 one by up to about 3.6e-3 and openvino's with the bf16 hint by up to about 4.3e-3 (fastlstm.LSTM
#: documents at most 4e-3). The limit leaves room for that and is still far below what a wrong gate or a lost step
#: produces.
BF16_TOLERANCE = 1e-2
#: The same for fastlstm's int8 output against its float32 one. Quantizing the weights per gate row and x and h per
#: row and step to 8 bits (scale max|row| / 127) costs more than bf16's rounding: over the full matrix (the
#: "fastlstm |diff|" column of ``python -m fastlstm bench --full --precision int8``), the outputs differ by up to
#: about 1.4e-2 (c_n by up to 2e-2, see README). The limit leaves room for that and is still far below what a wrong
#: gate, a wrong scale or a lost step produces (differences of order 1).
INT8_TOLERANCE = 5e-2
#: The precisions a row can run fastlstm in (see fastlstm.LSTM), and the tolerance of outputs computed in each.
PRECISIONS: tuple[str, ...] = tuple(MODEL_PRECISIONS)
TOLERANCES = {"fp32": TOLERANCE, "bf16": BF16_TOLERANCE, "int8": INT8_TOLERANCE}
#: Bytes of a packed gate (input or recurrent) weight in each precision. The projection weights stay float32 in
#: every precision.
GATE_WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
PROJECTION_WEIGHT_BYTES = 4
#: The instruction that multiplies and adds in each precision, and how many multiply-adds it does per 32-bit lane,
#: relative to the FMA's one: vdpbf16ps sums two bf16 products into each float32 lane, vpdpbusd four byte products
#: into each int32 lane. That many times the FMA peak is thus the arithmetic ceiling of a precision, the least time a
#: call in it can take for its arithmetic on any ISA (those without AVX512-BF16 or AVX512-VNNI compute the same
#: products in wider lanes, which is slower still).
MULTIPLY_ADD_INSTRUCTIONS = {"fp32": "vfmadd231ps", "bf16": "vdpbf16ps", "int8": "vpdpbusd"}
MULTIPLY_ADDS_PER_LANE = {"fp32": 1, "bf16": 2, "int8": 4}


def parse_precisions(text: str) -> list[str]:
    """Precisions separated by commas (``int8``, ``fp32,bf16,int8``), each once in the given order. Raises
    ValueError naming the bad item."""
    items = [item.strip() for item in text.split(",")]
    for item in items:
        if item not in PRECISIONS:
            raise ValueError(
                f"expected {listed(PRECISIONS, 'or')}, or several separated by commas (such as fp32,int8), got {item!r}"
            )
    return list(dict.fromkeys(items))


def check_precisions(precisions: Sequence[str]) -> None:
    """Raises ValueError unless ``precisions`` holds one or more of PRECISIONS."""
    bad = [precision for precision in precisions if precision not in PRECISIONS]
    if bad or not precisions:
        raise ValueError(f"precisions: expected one or more of {list(PRECISIONS)}, got {list(precisions)}")


def listed(items: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
