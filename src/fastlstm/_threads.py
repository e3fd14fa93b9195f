"""The process-wide default thread count of fastlstm calls."""

from __future__ import annotations

from ._checks import check_threads

_num_threads: int | None = None


def set_num_threads(threads: int | None) -> None:
    """Threads for calls of models that set none themselves; None (the default) picks a count per call from the
    problem size (one thread for small steps, where a barrier per step would cost more than it saves). Calls never
    use more threads than the machine has. Results are bitwise the same for any count."""
    global _num_threads
    _num_threads = check_threads(threads, "threads")


def get_num_threads() -> int | None:
    """The count set by ``set_num_threads``, or None for automatic."""
    return _num_threads
