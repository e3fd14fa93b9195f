"""Concurrency: one model called from many Python threads at once gives each caller what a serial call gives, and
streams of one model are independent. The calls release the GIL (tests/test_gil.py); the C++ pool runs one call's
team at a time and any call that finds it busy alone, which does not change results (they do not depend on the
thread count)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastlstm

CALLERS = 8


def _run_together(work):
    """Runs work(i) for i in range(CALLERS) on CALLERS Python threads started at once; returns their results."""
    results: list = [None] * CALLERS
    errors: list = []
    start = threading.Barrier(CALLERS)

    def body(i):
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as error:  # reported below, never lost in a thread
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_one_model_from_eight_threads_equals_serial_calls(isa, rng, precision):
    model = fastlstm.LSTM(24, 48, 2, bidirectional=True, seed=3, precision=precision)
    inputs = [rng.standard_normal((30, 1 + i % 3, 24)).astype(np.float32) for i in range(CALLERS)]
    lengths = [None if i % 2 else rng.integers(0, 31, 1 + i % 3) for i in range(CALLERS)]
    thread_counts = [1, 2, None, 8] * 2

    def call(i):
        output, (h_n, c_n) = model(inputs[i], lengths=lengths[i], threads=thread_counts[i])
        return output, h_n, c_n

    serial = [call(i) for i in range(CALLERS)]
    for _ in range(3):  # several rounds: the callers meet in different orders
        for together, alone in zip(_run_together(call), serial):
            for a, b in zip(together, alone):
                np.testing.assert_array_equal(a, b)


def test_streams_of_one_model_are_independent(rng):
    model = fastlstm.LSTM(10, 20, seed=4)
    sequences = [rng.standard_normal((40, 2, 10)).astype(np.float32) for _ in range(CALLERS)]

    def feed(i):
        stream = model.stream(2)
        outputs = [stream.feed(sequences[i][t : t + 5]) for t in range(0, 40, 5)]
        return np.concatenate(outputs), stream.state

    for (output, (h, c)), sequence in zip(_run_together(feed), sequences):
        expected, (h_n, c_n) = model(sequence)
        np.testing.assert_array_equal(output, expected)
        np.testing.assert_array_equal(h, h_n)
        np.testing.assert_array_equal(c, c_n)


def test_new_weights_while_others_call(rng):
    """load_state_dict swaps the packed weights in one assignment: a call in flight keeps the weights it started
    with, and every call sees one model or the other, never a mixture."""
    model = fastlstm.LSTM(6, 12, seed=5)
    first, second = model.state_dict(), fastlstm.LSTM(6, 12, seed=6).state_dict()
    x = rng.standard_normal((50, 3, 6)).astype(np.float32)
    expected = {name: fastlstm.LSTM(6, 12, seed=seed)(x)[0] for name, seed in (("first", 5), ("second", 6))}

    def work(i):
        if i == 0:
            for round_ in range(20):
                model.load_state_dict(second if round_ % 2 == 0 else first)
            return None
        return [model(x)[0] for _ in range(10)]

    for outputs in _run_together(work)[1:]:
        for output in outputs:
            assert np.array_equal(output, expected["first"]) or np.array_equal(output, expected["second"])
