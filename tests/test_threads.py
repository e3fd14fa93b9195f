"""Threads: results are bitwise identical for any thread count and any split (hidden units, directions, batch rows),
and a row's result does not depend on the other rows of its batch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastlstm

# (input, hidden, layers, bidirectional, proj, batch, steps): hidden splits of odd panel counts, a projection
# (two barriers per step), concurrent directions, and batches large enough for the batch split.
SHAPES = [
    (33, 255, 1, False, 0, 1, 40),
    (17, 64, 2, True, 0, 3, 25),
    (9, 31, 3, True, 7, 5, 12),
    (64, 129, 1, False, 33, 2, 30),
    (16, 64, 2, False, 0, 37, 20),  # batch split: small weights, many rows
    (8, 300, 1, True, 0, 9, 15),
    # last panels of 1, 4, 8, 10 and 5 units at 16 lanes (AVX-512; 1, 4, 0, 2 and 5 at 8, AVX2): steps with the
    # fused input (and AVX-512's look-ahead steps of 1 or 2 rows, as the row-alone tests run them) take them compacted
    # (kernels.h) into one, two or three vectors a k (AVX2: one or two; its 5 units are packed so but run as the whole
    # panel)
    (50, 65, 1, False, 0, 7, 30),
    (20, 100, 2, False, 0, 4, 20),
    (37, 120, 1, False, 0, 6, 20),
    (29, 26, 1, False, 0, 5, 20),
    (11, 21, 2, False, 0, 3, 20),
]


def _run(model, x, threads):
    output, (h_n, c_n) = model(x, threads=threads)
    return output, h_n, c_n


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("input_size, hidden, layers, bidirectional, proj, batch, steps", SHAPES)
def test_bitwise_identical_for_any_thread_count(
    isa, rng, input_size, hidden, layers, bidirectional, proj, batch, steps, precision
):
    model = fastlstm.LSTM(
        input_size, hidden, layers, bidirectional=bidirectional, proj_size=proj, seed=5, precision=precision
    )
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    single = _run(model, x, threads=1)
    for threads in (2, 3, 8):  # more than the machine has is capped, not an error
        for a, b in zip(single, _run(model, x, threads=threads)):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(single, _run(model, x, threads=None)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("input_size, hidden, layers, bidirectional, proj, batch, steps", SHAPES)
def test_a_row_does_not_depend_on_its_batch(
    isa, rng, input_size, hidden, layers, bidirectional, proj, batch, steps, precision
):
    model = fastlstm.LSTM(
        input_size, hidden, layers, bidirectional=bidirectional, proj_size=proj, seed=6, precision=precision
    )
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    output, (h_n, c_n) = model(x)
    for row in range(batch):
        alone, (h_alone, c_alone) = model(x[:, row : row + 1])
        np.testing.assert_array_equal(output[:, row : row + 1], alone)
        np.testing.assert_array_equal(h_n[:, row : row + 1], h_alone)
        np.testing.assert_array_equal(c_n[:, row : row + 1], c_alone)


# Hidden sizes whose last panel is full (16), or compacted (kernels.h) into one vector (17: 1 unit), two (35: 3 units
# at 8 lanes) or three (250: 10 units at 16 lanes); 21 leaves 5 units at 8 lanes, which AVX2 runs as the whole panel.
@pytest.mark.parametrize("hidden", [16, 17, 250, 35, 21])
def test_every_tile_height_gives_each_row_bitwise_alone(isa, rng, hidden):
    # Each block height of a step's rows takes its own tile: full tiles of 1 to 3 rows, and where the variant has
    # them (AVX2) half tiles of 4 to 6 rows over gate panels in halves, B = 7 as 3 full + 4 half rows. A sequence of
    # 3 rows or more takes its input projection in the step, of 1 and 2 rows ahead of it; a stream's step always in it.
    model = fastlstm.LSTM(23, hidden, seed=7)
    x = rng.standard_normal((5, 13, 23)).astype(np.float32)
    alone = [model(x[:, row : row + 1], threads=1)[0] for row in range(13)]
    alone_steps = [model.stream(1).step(x[0, row : row + 1]) for row in range(13)]
    for batch in range(2, 14):
        output = model(x[:, :batch], threads=1)[0]
        step = model.stream(batch).step(x[0, :batch])
        for row in range(batch):
            np.testing.assert_array_equal(output[:, row : row + 1], alone[row], err_msg=f"batch {batch} row {row}")
            np.testing.assert_array_equal(step[row : row + 1], alone_steps[row], err_msg=f"batch {batch} row {row}")


def test_thread_settings_are_checked_and_applied():
    model = fastlstm.LSTM(8, 16, seed=0, threads=1)
    assert model.threads == 1
    with pytest.raises(ValueError, match="threads: expected an int >= 1, got 0"):
        fastlstm.LSTM(8, 16, threads=0)
    with pytest.raises(TypeError, match=r"threads: expected an int, got float 2\.0"):
        model(np.zeros((2, 8)), threads=2.0)
    with pytest.raises(ValueError, match="threads: expected an int >= 1, got -1"):
        fastlstm.set_num_threads(-1)
    try:
        fastlstm.set_num_threads(2)
        assert fastlstm.get_num_threads() == 2
    finally:
        fastlstm.set_num_threads(None)
    assert fastlstm.get_num_threads() is None


class _ThreadsSpy:
    """Stands in for a core object (PackedLstm, PackedLinear): records the thread count of every call of its
    forward methods, the argument at ``positions[name]``, and passes every call on."""

    def __init__(self, wrapped, positions: dict[str, int]) -> None:
        self.wrapped, self.positions, self.counts = wrapped, positions, []

    def __getattr__(self, name):
        method = getattr(self.wrapped, name)
        if not name.startswith("forward"):
            return method

        def recorded(*args):
            self.counts.append(args[self.positions[name]])
            return method(*args)

        return recorded


@pytest.mark.parametrize("setting", ["automatic", "global", "model", "call"])
def test_every_call_hands_the_core_the_same_thread_count(rng, setting):
    """The call's threads=, else the model's threads, else set_num_threads's, else 0 (the core chooses): for a
    model call, a stream and SequenceModel's head alike."""
    expected = {"automatic": 0, "global": 2, "model": 3, "call": 1}[setting]
    lstm = fastlstm.LSTM(4, 8, seed=0, threads=3 if setting in ("model", "call") else None)
    model = fastlstm.SequenceModel(lstm, rng.standard_normal((5, 8)))
    stream = lstm.stream(2)
    # forward(x, batch_first, h, c, threads, ...) and forward_in_place likewise; forward_plain(x, batch_first,
    # threads, cache), the model call's one-C++-call path
    positions = {"forward": 4, "forward_in_place": 4, "forward_plain": 2}
    lstm._packed = packed = _ThreadsSpy(lstm._packed, positions)
    model._head = head = _ThreadsSpy(model._head, {"forward": 2})  # forward(x, softmax, threads)
    call = {"threads": 1} if setting == "call" else {}
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    fastlstm.set_num_threads(None if setting == "automatic" else 2)
    try:
        lstm(x, **call)
        stream.feed(x, **call)
        model.predict_proba(x, **call)
    finally:
        fastlstm.set_num_threads(None)
    assert packed.counts == [expected] * 3  # the model, the stream, the sequence model's LSTM
    assert head.counts == [expected]


def test_automatic_threads_follow_problem_size():
    # One thread per 2^13 multiply-adds of a recurrent step (4 * H * H per row), at most the cores.
    small = fastlstm.LSTM(32, 32)
    medium = fastlstm.LSTM(64, 64)
    large = fastlstm.LSTM(512, 512)
    bidirectional = fastlstm.LSTM(16, 16, bidirectional=True)
    cores = os.cpu_count()
    assert small.automatic_threads(steps=100, batch=1) == 1
    assert small.automatic_threads(steps=100, batch=16) == min(cores, 8)
    assert medium.automatic_threads(steps=100, batch=1) == min(cores, 2)
    assert large.automatic_threads(steps=0, batch=1) == 1
    assert large.automatic_threads(steps=100, batch=1) == min(cores, 128)
    assert bidirectional.automatic_threads(steps=100, batch=1) == min(cores, 2)


def test_automatic_threads_keep_short_calls_on_one_thread():
    # A team also costs once per call: at least 2^15 multiply-adds per thread over the call (input and recurrent;
    # none recurrent at the first step without an initial state), or the call runs on fewer threads.
    cores = os.cpu_count()
    medium = fastlstm.LSTM(64, 64)  # 4 * 64 * 64 = 16384 multiply-adds per row, input or recurrent
    wide = fastlstm.LSTM(128, 128)  # 65536
    bidirectional = fastlstm.LSTM(16, 16, bidirectional=True)
    assert medium.automatic_threads(steps=1, batch=1) == 1  # 16384
    assert medium.automatic_threads(steps=1, batch=1, initial_state=True) == 1  # 32768: a stream's step
    assert medium.automatic_threads(steps=3, batch=1) == min(cores, 2)  # 3 * 16384 + 2 * 16384 = 81920
    assert medium.automatic_threads(steps=1, batch=4) == min(cores, 2)  # 65536
    assert wide.automatic_threads(steps=1, batch=1) == min(cores, 2)
    assert bidirectional.automatic_threads(steps=1, batch=1, initial_state=True) == 1  # 2 directions x 2048
    assert bidirectional.automatic_threads(steps=16, batch=1, initial_state=True) == min(cores, 2)  # 65536


# Scripts run in a fresh process (the pool's workers start on a team's first use), counting the process's threads.
_COUNTING_THREADS = """
import os, numpy as np, fastlstm
def threads():
    return len(os.listdir("/proc/self/task"))
"""


def _run_counting_threads(script: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _COUNTING_THREADS + script], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.split()


_THREADS_STARTED_BY_CALLS = """
model = fastlstm.LSTM(64, 64)
x = np.ones((100, 1, 64), np.float32)
start = threads()
model(x[:1])
model.stream(1).step(x[0])
short = threads() - start
model(x)
print(short, threads() - start)
"""


@pytest.mark.skipif(os.cpu_count() < 2 or not os.path.isdir("/proc/self/task"), reason="needs 2 CPUs and /proc")
def test_short_calls_start_no_worker_and_a_long_one_does():
    # The core takes the rule, not only the Python query: in a fresh process, a one-step call and a stream's step
    # of a small model start no worker thread of the pool (workers start on a team's first use), a 100-step call does.
    assert _run_counting_threads(_THREADS_STARTED_BY_CALLS) == ["0", "1"]


_THREADS_STARTED_BY_ONE_PANEL = """
model = fastlstm.LSTM(8, 4)
x = np.ones((50, 256, 8), np.float32)
lengths = np.arange(256) % 50 + 1
start = threads()
model(x, lengths=lengths)
automatic = threads() - start
model(x, lengths=lengths, threads=2)
print(model.automatic_threads(50, 256), automatic, threads() - start)
"""


@pytest.mark.skipif(os.cpu_count() < 2 or not os.path.isdir("/proc/self/task"), reason="needs 2 CPUs and /proc")
def test_the_automatic_count_gives_a_team_no_more_members_than_panels():
    # H = 4 is one panel at every variant. With lengths (packed rows, which never split the batch) the team would split
    # the hidden units: on the automatic count (2 for this batch) the call runs on one thread and starts no worker; a
    # count set by the caller is obeyed and starts one.
    assert _run_counting_threads(_THREADS_STARTED_BY_ONE_PANEL) == ["2", "0", "1"]


# Batch 1 runs the look-ahead step, which computes the input projection of the next 8 steps while it steps (the
# longer of the input and recurrent sums continues alone, the other stops), and so does batch 2 where a thread's
# share of the input weights exceeds 256 KiB (I = 700, H = 40: 525 KiB; csrc/plan.cc: kFusedPairMaxInputBytes);
# with smaller input weights batch 2 takes its input projection in every step, as batches of 3 rows or more do in
# float32 (a batch of 5; at 2 threads its members of 3 and 2 rows, the 2 rows with a chunked matrix product). All
# keep each element's order of operations, so they agree bitwise: checked across chunk boundaries, in both
# directions, with an input narrower and wider than the hidden state, a projection, a given state (so the first
# step's recurrent product is not skipped), a layer whose hidden panels are not all full, and batch-first input
# (whose rows are not evenly spaced, so a batch of 2 that would look ahead falls back to plain chunks).
# In bf16, batch 1 looks ahead where the variant has a bf16 look-ahead kernel (avx512bf16, and portable's reference).
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("steps", [1, 7, 8, 9, 16, 17, 63])
@pytest.mark.parametrize(
    "input_size, hidden, layers, bidirectional, proj",
    [(9, 40, 1, False, 0), (70, 33, 2, True, 0), (31, 64, 1, True, 17), (3, 255, 1, False, 0), (700, 40, 1, False, 0)],
)
@pytest.mark.parametrize("given_state", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_look_ahead_step_matches_the_batched_kernels(
    isa, rng, steps, input_size, hidden, layers, bidirectional, proj, given_state, batch_first, precision
):
    model = fastlstm.LSTM(
        input_size,
        hidden,
        layers,
        bidirectional=bidirectional,
        proj_size=proj,
        batch_first=batch_first,
        seed=7,
        precision=precision,
    )
    x = rng.standard_normal((steps, 5, input_size)).astype(np.float32)
    state = None
    if given_state:
        h0 = rng.standard_normal((layers * model.num_directions, 5, proj or hidden)).astype(np.float32)
        c0 = rng.standard_normal((layers * model.num_directions, 5, hidden)).astype(np.float32)
        state = (h0, c0)
    as_input = (lambda a: np.ascontiguousarray(a.transpose(1, 0, 2))) if batch_first else (lambda a: a)
    for threads in (1, 2):
        output, (h_n, c_n) = model(as_input(x), state, threads=threads)
        output = as_input(output)  # back to time-major
        for rows in (slice(0, 1), slice(1, 3), slice(2, 5)):
            part_state = None if state is None else (state[0][:, rows], state[1][:, rows])
            part, (h_part, c_part) = model(as_input(np.ascontiguousarray(x[:, rows])), part_state, threads=threads)
            np.testing.assert_array_equal(output[:, rows], as_input(part))
            np.testing.assert_array_equal(h_n[:, rows], h_part)
            np.testing.assert_array_equal(c_n[:, rows], c_part)


# Past 8 MiB of weights a thread (csrc/plan.cc: kCacheResidentWeightBytes), a batch-1 float32 model of at most
# 16 MiB of gate weights still looks ahead, its pieces streaming their input weights with non-temporal prefetches:
# I=H=712 is 15.6 MiB at 16 lanes a panel (45 panels, the last of 8 units) and 15.5 at 4 or 8, so one thread streams
# and two (7.8 MiB each) look ahead as before. The prefetches change no value: bitwise the rows of a batch of 3,
# which take the plain step and the projection ahead; across a chunk boundary, from a given state.
def test_streamed_look_ahead_matches_the_batched_kernels(isa, rng):
    model = fastlstm.LSTM(712, 712, seed=3)
    x = rng.standard_normal((11, 3, 712)).astype(np.float32)
    h0 = rng.standard_normal((1, 3, 712)).astype(np.float32)
    c0 = rng.standard_normal((1, 3, 712)).astype(np.float32)
    looks_ahead = isa != "avx2"  # the avx2 variant has no look-ahead kernel (variants.inc)
    for threads in (1, 2):
        output, (h_n, c_n) = model(x, (h0, c0), threads=threads)
        for row in range(3):
            streamed_before = fastlstm._core.testing.streamed_look_ahead_runs_so_far()
            part, (h_part, c_part) = model(
                np.ascontiguousarray(x[:, row : row + 1]), (h0[:, row : row + 1], c0[:, row : row + 1]), threads=threads
            )
            streamed = fastlstm._core.testing.streamed_look_ahead_runs_so_far() - streamed_before
            assert streamed == (1 if looks_ahead and threads == 1 else 0)
            np.testing.assert_array_equal(output[:, row : row + 1], part)
            np.testing.assert_array_equal(h_n[:, row : row + 1], h_part)
            np.testing.assert_array_equal(c_n[:, row : row + 1], c_part)


# Bidirectional shapes whose two threads take the directions as pieces (no batch split): odd panel counts, a
# projection, three layers (layer buffers and workspaces reused two layers up), batch 1 and 2 (look-ahead step).
PIECE_SHAPES = [
    (17, 64, 2, 0, 3, 25),
    (9, 31, 3, 7, 5, 12),
    (8, 300, 1, 0, 9, 15),
    (16, 33, 3, 0, 1, 100),
    (16, 64, 2, 0, 2, 41),
    (8, 16, 1, 0, 1, 7),
]


@pytest.fixture
def handoff_every_step():
    """Within the test, the two threads of a bidirectional call hand its directions to each other after nearly every
    step, at whatever step each one is (mid-chunk, mid-look-ahead, while the layer above follows the one below), and
    help with each other's chunk projections whenever idle; a team that splits the hidden units shrinks at the end of
    every chunk and grows back at the next one that finds the other member waiting."""
    from fastlstm import _core

    _core.testing.handoff_every_step(True)
    try:
        yield _core.testing.handoffs_so_far
    finally:
        _core.testing.handoff_every_step(False)


def _check_two_threads_match_one(model, x, lengths, calls, counter=None, most_calls=400):
    """`calls` 2-thread calls, with and without `lengths`, each bitwise equal to the 1-thread call; with `counter`,
    more until it has grown (at most `most_calls`, then it must have), as in _check_bitwise_while_counted."""
    single, single_lengths = _run(model, x, threads=1), model(x, lengths=lengths, threads=1)
    before = counter() if counter else None
    for done in range(most_calls if counter else calls):
        if done >= calls and counter() > before:
            break
        for a, b in zip(single, _run(model, x, threads=2)):
            np.testing.assert_array_equal(a, b)
        output, (h_n, c_n) = model(x, lengths=lengths, threads=2)
        np.testing.assert_array_equal(output, single_lengths[0])
        np.testing.assert_array_equal(h_n, single_lengths[1][0])
        np.testing.assert_array_equal(c_n, single_lengths[1][1])
    if counter:
        assert counter() > before


def _check_bitwise_while_counted(model, x, calls, counter, most_calls=400):
    """`calls` 2-thread calls or more, each bitwise equal to the 1-thread call, until `counter()` has grown (at most
    `most_calls`): whether a thread finds work of the other's to take depends on when each gets there, which varies
    from call to call (here 15-55% of calls of the projection test's first shape, depending on the ISA), so a fixed
    number of calls could miss it."""
    single = _run(model, x, threads=1)
    before = counter()
    for done in range(most_calls):
        if done >= calls and counter() > before:
            break
        for a, b in zip(single, _run(model, x, threads=2)):
            np.testing.assert_array_equal(a, b)
    assert counter() > before


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("input_size, hidden, layers, proj, batch, steps", PIECE_SHAPES)
def test_bitwise_identical_when_directions_change_threads_between_steps(
    isa, rng, handoff_every_step, input_size, hidden, layers, proj, batch, steps, precision
):
    model = fastlstm.LSTM(input_size, hidden, layers, bidirectional=True, proj_size=proj, seed=7, precision=precision)
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    # The calls change threads mid-direction (a thread asks for the other's direction as soon as it is idle): 20
    # calls, and more until one has (20 missed it once in a CI run beside another test suite).
    _check_two_threads_match_one(model, x, rng.integers(0, steps + 1, size=batch), calls=20, counter=handoff_every_step)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize(
    "input_size, hidden, layers, proj, batch, steps",
    # Several chunks of input projection per direction (plain steps), so that an idle thread finds the other one
    # starting a chunk: odd panel counts, a projection, three layers.
    [(24, 300, 2, 0, 8, 70), (9, 31, 3, 7, 5, 120), (16, 100, 3, 0, 4, 200)],
)
def test_bitwise_identical_when_threads_help_with_each_others_projections(
    isa, rng, handoff_every_step, input_size, hidden, layers, proj, batch, steps, precision
):
    from fastlstm import _core

    model = fastlstm.LSTM(input_size, hidden, layers, bidirectional=True, proj_size=proj, seed=8, precision=precision)
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    # Blocks of a chunk's projection were run by the thread that did not hold the direction.
    _check_bitwise_while_counted(model, x, 20, _core.testing.helped_projection_blocks_so_far)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize(
    "input_size, hidden, layers, proj, batch, steps",
    # One direction, its hidden units split by a team of two, over several chunks of steps: the look-ahead step
    # (batch 1 and 2), a projection (two meetings per step), three layers, plain chunks; and fewer hidden units than
    # one panel, so that the second member holds every panel and the first none (a shrink must still send the second
    # member out: it once went on beside the first, both updating c in place), over 300 steps, which bf16 and int8
    # run in three chunks of 128 at batch 2.
    [
        (33, 255, 1, 0, 1, 40),
        (64, 129, 1, 33, 2, 30),
        (9, 31, 3, 7, 5, 120),
        (24, 300, 2, 0, 8, 70),
        (3, 5, 2, 0, 2, 300),
    ],
)
def test_bitwise_identical_when_a_team_goes_on_with_one_thread(
    isa, rng, handoff_every_step, input_size, hidden, layers, proj, batch, steps, precision
):
    model = fastlstm.LSTM(input_size, hidden, layers, proj_size=proj, seed=9, precision=precision)
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    _check_two_threads_match_one(model, x, rng.integers(0, steps + 1, size=batch), calls=10)


def test_a_team_goes_on_with_one_thread_from_its_second_chunk_in_the_test_mode(rng, handoff_every_step):
    from fastlstm import _core

    model = fastlstm.LSTM(24, 300, 2, seed=9)  # plain chunks of 32 steps at batch 8: 3 per direction
    x = rng.standard_normal((70, 8, 24)).astype(np.float32)
    single = _run(model, x, threads=1)
    shrinks_before = _core.testing.team_shrinks_so_far()
    for a, b in zip(single, _run(model, x, threads=2)):
        np.testing.assert_array_equal(a, b)
    # The worker may start too late to join (the call then runs alone from the start); over ten calls it joins.
    for _ in range(9):
        _run(model, x, threads=2)
    assert _core.testing.team_shrinks_so_far() > shrinks_before


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize(
    "input_size, hidden, layers, batch, steps",
    # Plain chunks of 32 steps at batch 8 (3 per layer). At batch 1, look-ahead chunks of 8 steps where the variant has
    # them (the member coming back takes over gates that the first projected alone), else plain chunks of 256 steps:
    # 600 steps make three of those. The member that steps out at the end of a chunk can rejoin before the next but
    # one; before the very next it races the first member, and under the sanitizers it lost 400 calls in a row when a
    # call of 300 steps (two plain chunks) had only that chance.
    [(24, 300, 2, 8, 70), (33, 255, 1, 1, 600)],
)
def test_bitwise_identical_when_a_team_grows_back_after_it_shrinks(
    isa, rng, handoff_every_step, input_size, hidden, layers, batch, steps, precision
):
    # The test mode shrinks the team at every chunk's end and lets the other member back at the first chunk it finds
    # it waiting (in some calls it is not back in time: the machine is shared).
    from fastlstm import _core

    model = fastlstm.LSTM(input_size, hidden, layers, seed=11, precision=precision)
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    _check_bitwise_while_counted(model, x, 10, _core.testing.team_regrowths_so_far)


@pytest.fixture
def late_join():
    """Within the test, a team that splits the hidden units starts with its first member alone, and the others join
    it before its second chunk (or a later one, or never if the call ends first), as a worker that starts late does."""
    from fastlstm import _core

    _core.testing.late_join(True)
    try:
        yield _core.testing.late_joins_so_far
    finally:
        _core.testing.late_join(False)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize(
    "input_size, hidden, layers, proj, batch, steps",
    # As for the shrinking team, and a model that ends before a second chunk (its worker never joins).
    [
        (33, 255, 1, 0, 1, 40),
        (64, 129, 1, 33, 2, 30),
        (9, 31, 3, 7, 5, 120),
        (24, 300, 2, 0, 8, 70),
        (8, 64, 1, 0, 3, 5),
    ],
)
def test_bitwise_identical_when_members_join_a_team_late(
    isa, rng, late_join, input_size, hidden, layers, proj, batch, steps, precision
):
    model = fastlstm.LSTM(input_size, hidden, layers, proj_size=proj, seed=10, precision=precision)
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    state = (
        rng.standard_normal((layers, batch, proj or hidden)).astype(np.float32),
        rng.standard_normal((layers, batch, hidden)).astype(np.float32),
    )
    _check_two_threads_match_one(model, x, rng.integers(0, steps + 1, size=batch), calls=5)
    single = model(x, state, threads=1)
    for _ in range(5):  # from a given state: the joining member starts from the first's c, not from c0
        output, (h_n, c_n) = model(x, state, threads=2)
        np.testing.assert_array_equal(output, single[0])
        np.testing.assert_array_equal(h_n, single[1][0])
        np.testing.assert_array_equal(c_n, single[1][1])


def test_members_join_a_team_late_in_the_test_mode(rng, late_join):
    model = fastlstm.LSTM(24, 300, 2, seed=9)  # plain chunks of 32 steps at batch 8: 3 per layer
    x = rng.standard_normal((70, 8, 24)).astype(np.float32)
    # The worker may start after the first member's last chunk; over some calls it joins.
    _check_bitwise_while_counted(model, x, 10, late_join)


def test_members_join_a_team_and_it_shrinks_in_one_call(rng, late_join, handoff_every_step):
    # Joined before the second chunk of the first layer, shrunk at its end: the first member goes on alone.
    from fastlstm import _core

    model = fastlstm.LSTM(24, 300, 2, seed=9)
    x = rng.standard_normal((70, 8, 24)).astype(np.float32)
    _check_bitwise_while_counted(model, x, 10, _core.testing.team_shrinks_so_far)


def test_bitwise_identical_when_other_processes_hold_the_cores(rng):
    # A process spinning on every core: the pool's workers then often start late or not at all, so the calls take
    # every path of the team (a fixed team run alone when its worker has not started, directions taken by whichever
    # thread is free, a late worker finding nothing left): the results must not change.
    models = [
        fastlstm.LSTM(17, 64, 2, bidirectional=True, seed=5),  # directions as pieces
        fastlstm.LSTM(33, 255, 1, seed=5),  # a fixed team splitting the hidden units
    ]
    x = rng.standard_normal((25, 3, 64)).astype(np.float32)
    expected = [_run(model, x[..., : model.input_size], threads=1) for model in models]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        for _ in range(40):
            for model, single in zip(models, expected):
                for got, want in zip(_run(model, x[..., : model.input_size], threads=2), single):
                    np.testing.assert_array_equal(got, want)
    finally:
        for process in busy:
            process.kill()
            process.wait()
