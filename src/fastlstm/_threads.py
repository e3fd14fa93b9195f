"""The process-wide default thread count of fastlstm calls, and the order in which a call's count is chosen."""

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


def resolve_threads(requested: int | None, model_threads: int | None) -> int:
    """The thread count a call hands the core: the call's checked ``threads=``, else the model's ``threads``, else
    the count of ``set_num_threads``, else 0, for which the core picks a count from the problem size."""
    for threads in (requested, model_threads, _num_threads):
        if threads is not None:
            return threads
    return 0


def call_threads(requested: int | None, model_threads: int | None) -> int:
    """``resolve_threads`` with the call's ``threads=`` checked, in the fewest operations (per-step calls)."""
    if requested is None:
        if model_threads is not None:
            return model_threads
        return 0 if _num_threads is None else _num_threads
    return check_threads(requested, "threads")
