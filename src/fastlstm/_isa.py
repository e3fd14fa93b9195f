"""Which kernel variant (ISA) runs: the best one this CPU supports, or the one named by ``FASTLSTM_ISA``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from . import _core

ENVIRONMENT_VARIABLE = "FASTLSTM_ISA"


def compiled_isas() -> list[str]:
    """Every kernel variant compiled into this build, portable first."""
    return list(_core.compiled_isas())


def available_isas() -> list[str]:
    """The compiled variants this CPU and operating system can run, portable first."""
    return list(_core.supported_isas())


def _choose_isa() -> str:
    requested = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not requested:
        return _core.best_isa()
    if requested not in compiled_isas():
        raise ValueError(f"{ENVIRONMENT_VARIABLE}: expected one of {compiled_isas()}, got {requested!r}")
    if requested not in available_isas():
        raise ValueError(f"{ENVIRONMENT_VARIABLE}: this CPU cannot run {requested!r}; it supports {available_isas()}")
    return requested


_ACTIVE_ISA = _choose_isa()


def active_isa() -> str:
    """The variant new models use: ``FASTLSTM_ISA`` when set, else the best in ``available_isas()``."""
    return _ACTIVE_ISA


@contextlib.contextmanager
def use_isa(isa: str) -> Iterator[str]:
    """Within the block, models created or reloaded pack their weights for ``isa`` (one of ``available_isas()``).

    Process-wide, not thread-local: meant for tests and benchmarks that compare variants. A model keeps the variant
    it was packed for; ``model.isa`` tells which."""
    global _ACTIVE_ISA
    if isa not in available_isas():
        raise ValueError(f"isa: expected one of {available_isas()} (the variants this CPU runs), got {isa!r}")
    previous, _ACTIVE_ISA = _ACTIVE_ISA, isa
    try:
        yield isa
    finally:
        _ACTIVE_ISA = previous
