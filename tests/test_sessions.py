"""Sessions (model.sessions): every session's outputs and state are bitwise those of its own model.stream(1) fed the
same frames, whatever the other sessions of each step, their slots and order, the pool's growth and the thread
count; refusals name the id and what is wrong, and leave every state as it was."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlstm

# (input, hidden, layers, proj, options): tail sizes, a stack, a projection, a cell with options, and a hidden size
# whose step the automatic thread count splits over two threads.
CONFIGURATIONS = [
    (3, 7, 1, 0, {}),
    (17, 33, 2, 0, {}),
    (8, 31, 2, 5, {}),
    (5, 16, 1, 0, {"peepholes": True, "clip": 2.0}),
    (80, 256, 1, 0, {}),
]


def _schedule_run(model, rng, ticks, capacity, threads=None):
    """Random opens, closes and steps of random subsets in random order; checks each step against per-session
    streams, and returns the number of steps whose ids were not consecutive slots (the gathering path)."""
    pool = model.sessions(capacity)
    streams = {}
    gathered = 0
    for _ in range(ticks):
        for _ in range(rng.integers(0, 3)):
            streams[pool.open()] = model.stream(1)
        if streams and rng.random() < 0.2:
            closing = list(streams)[rng.integers(len(streams))]
            pool.close(closing)
            del streams[closing]
        if not streams:
            continue
        live = np.array(list(streams), np.int64)
        ids = rng.permutation(live)[: rng.integers(1, live.size + 1)]
        slots = ids & 0xFFFFFFFF
        gathered += int(not np.array_equal(slots, np.arange(slots[0], slots[0] + slots.size)))
        x = rng.standard_normal((ids.size, model.input_size)).astype(np.float32)
        y = pool.step(ids, x, threads=threads)
        for row, id in enumerate(ids.tolist()):
            np.testing.assert_array_equal(y[row], streams[id].step(x[row : row + 1])[0])
    for id, stream in streams.items():
        h, c = pool.state(id)
        np.testing.assert_array_equal(h, stream.state[0][:, 0])
        np.testing.assert_array_equal(c, stream.state[1][:, 0])
    return gathered


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
@pytest.mark.parametrize("input_size, hidden, layers, proj, options", CONFIGURATIONS)
def test_each_session_is_bitwise_its_own_stream(isa, rng, input_size, hidden, layers, proj, options, precision):
    model = fastlstm.LSTM(input_size, hidden, layers, proj_size=proj, seed=3, precision=precision, **options)
    gathered = _schedule_run(model, rng, ticks=25, capacity=2)
    assert gathered > 0  # the schedule took the gathering path, not only consecutive slots


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_counts_give_the_same_bits(rng, threads):
    model = fastlstm.LSTM(40, 300, seed=4)  # two threads split its hidden units
    _schedule_run(model, rng, ticks=15, capacity=8, threads=threads)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_schedules(data):
    model = fastlstm.LSTM(4, 9, num_layers=2, seed=5)
    pool = model.sessions(data.draw(st.integers(1, 4), label="capacity"))
    streams = {}
    for _ in range(data.draw(st.integers(1, 12), label="ticks")):
        action = data.draw(st.sampled_from(["open", "close", "step", "step"]), label="action")
        if action == "open" or not streams:
            streams[pool.open()] = model.stream(1)
        elif action == "close":
            closing = data.draw(st.sampled_from(sorted(streams)), label="close")
            pool.close(closing)
            del streams[closing]
        else:
            ids = data.draw(st.lists(st.sampled_from(sorted(streams)), min_size=1, unique=True), label="ids")
            x = np.asarray(
                data.draw(st.lists(st.floats(-3, 3, width=32), min_size=4 * len(ids), max_size=4 * len(ids))),
                np.float32,
            ).reshape(len(ids), 4)
            y = pool.step(ids, x)
            for row, id in enumerate(ids):
                np.testing.assert_array_equal(y[row], streams[id].step(x[row : row + 1])[0])
        assert len(pool) == len(streams)
        assert sorted(pool.ids.tolist()) == sorted(streams)


def test_growth_keeps_ids_and_states(rng):
    model = fastlstm.LSTM(6, 10, seed=6)
    pool = model.sessions(1)
    first = pool.open()
    x = rng.standard_normal((1, 6)).astype(np.float32)
    pool.step([first], x)
    before = pool.state(first)
    ids = [pool.open() for _ in range(4)]
    assert pool.capacity == 8  # doubled twice: 1 -> 2 -> 4 -> 8 for five sessions
    np.testing.assert_array_equal(pool.state(first)[0], before[0])
    np.testing.assert_array_equal(pool.state(first)[1], before[1])
    assert all(not pool.state(id)[0].any() for id in ids)
    fixed = model.sessions(2, grow=False)
    fixed.open(), fixed.open()
    with pytest.raises(RuntimeError, match=r"all 2 sessions of this pool are open \(made with grow=False\)"):
        fixed.open()


def test_a_closed_slot_serves_a_new_session_under_a_new_id(rng):
    model = fastlstm.LSTM(3, 5, seed=7)
    pool = model.sessions(2)
    old = pool.open()
    pool.step([old], np.ones((1, 3), np.float32))
    pool.close(old)
    new = pool.open()
    assert new != old and new & 0xFFFFFFFF == old & 0xFFFFFFFF  # same slot, another generation
    assert not pool.state(new)[0].any() and not pool.state(new)[1].any()  # from zeros
    assert old not in pool and new in pool
    with pytest.raises(ValueError, match=f"id: session {old} is closed"):
        pool.state(old)


def test_membership_agrees_with_the_pool_through_opens_closes_and_growth(rng):
    # `id in pool` reads a set kept beside the slots' generations: it must answer as pool.state does (which reads
    # the generations) for every id ever handed out, after random opens and closes (some by numpy ints) that reuse
    # slots and grow the pool, and refuse what is not an id.
    pool = fastlstm.LSTM(3, 5, seed=9).sessions(2)
    handed_out: list[int] = []
    for _ in range(300):
        open_now = [id for id in handed_out if id in pool]
        if open_now and rng.random() < 0.45:
            id = open_now[rng.integers(len(open_now))]
            pool.close(np.int64(id) if rng.random() < 0.5 else id)
        else:
            handed_out.append(pool.open())
        for id in handed_out:
            try:
                pool.state(id)
                is_open = True
            except ValueError:
                is_open = False
            assert (id in pool) is is_open and (np.int64(id) in pool) is is_open
    assert pool.capacity > 2 and len(pool) == sum(id in pool for id in handed_out)
    first = next(id for id in handed_out if id in pool)
    assert True not in pool and float(first) not in pool and -1 not in pool and str(first) not in pool
    assert (max(handed_out) + (1 << 32)) not in pool  # a generation of a slot not reached yet


def test_refusals_name_the_id_and_step_nothing(rng):
    model = fastlstm.LSTM(3, 5, seed=8)
    pool = model.sessions(4)
    a, b = pool.open(), pool.open()
    closed = pool.open()
    pool.close(closed)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    pool.step([a, b], x)
    before = [pool.state(id) for id in (a, b)]
    refusals = [
        ([a, a], ValueError, f"ids: each session steps at most once per call; session {a} is listed 2 times"),
        ([a, closed], ValueError, f"ids: session {closed} is closed"),
        ([b, 1 << 40], ValueError, f"ids: no session {1 << 40} was opened in this pool"),
        ([a, 99], ValueError, "ids: no session 99 was opened in this pool"),
        ([a, -1], ValueError, "ids: no session -1 was opened in this pool"),
        (np.array([a, b], np.int64), None, None),  # fine: the control
    ]
    for ids, error, message in refusals:
        if error is None:
            continue
        for form in (ids, np.asarray(ids, np.int64)):  # the fast path's form and the converting one
            with pytest.raises(error, match=message):
                pool.step(form, x)
    for (h, c), id in zip(before, (a, b)):
        np.testing.assert_array_equal(pool.state(id)[0], h)
        np.testing.assert_array_equal(pool.state(id)[1], c)
    with pytest.raises(ValueError, match=r"x: expected shape \(2, 3\) \(one frame per id, input_size\), got \(2, 4\)"):
        pool.step([a, b], np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"ids: expected a 1-D sequence of session ids, got shape \(1, 2\)"):
        pool.step([[a, b]], x)
    with pytest.raises(TypeError, match="ids: expected session ids \\(ints\\), got dtype float64"):
        pool.step([0.0, 1.0], x)
    with pytest.raises(TypeError, match="id: expected a session id \\(an int\\), got str 'a'"):
        pool.close("a")
    with pytest.raises(ValueError, match=f"id: session {closed} is closed"):
        pool.close(closed)
    with pytest.raises(ValueError, match="capacity: expected an int >= 1, got 0"):
        model.sessions(0)
    with pytest.raises(ValueError, match="bidirectional"):
        fastlstm.LSTM(3, 5, bidirectional=True).sessions(2)
    with pytest.raises(ValueError, match="reverse"):
        fastlstm.LSTM(3, 5, reverse=True).sessions(2)


def test_any_input_form_gives_the_plain_float32_result(rng):
    model = fastlstm.LSTM(6, 8, seed=9)
    x = rng.standard_normal((3, 6))
    forms = [
        x.astype(np.float32),
        x,  # float64
        np.asfortranarray(x.astype(np.float32)),
        x.astype(np.float32).astype(">f4"),  # the other byte order
        x.astype(np.float32).tolist(),
    ]
    results = []
    for form in forms:
        pool = model.sessions(3)
        ids = [pool.open() for _ in range(3)]
        results.append(pool.step(list(reversed(ids)), form))
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_state_can_be_set_and_the_step_continues_from_it(rng):
    model = fastlstm.LSTM(4, 6, num_layers=2, seed=10)
    pool = model.sessions(2)
    id = pool.open()
    h = rng.standard_normal((2, 6)).astype(np.float32)
    c = rng.standard_normal((2, 6)).astype(np.float32)
    pool.set_state(id, (h, c))
    stream = model.stream(1)
    stream.state = (h[:, None], c[:, None])
    x = rng.standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_array_equal(pool.step([id], x), stream.step(x))
    with pytest.raises(ValueError, match=r"state\[0\] \(h\): expected shape \(2, 6\)"):
        pool.set_state(id, (h[0], c))


def test_sessions_follow_the_models_weights(rng):
    model = fastlstm.LSTM(4, 6, seed=11)
    pool = model.sessions(1)
    id = pool.open()
    model.load_state_dict(fastlstm.LSTM(4, 6, seed=12).state_dict())
    x = rng.standard_normal((1, 4)).astype(np.float32)
    np.testing.assert_array_equal(pool.step([id], x), model.stream(1).step(x))


def test_an_empty_step_returns_no_rows():
    model = fastlstm.LSTM(4, 6, proj_size=3, seed=13)
    pool = model.sessions(1)
    assert pool.step([], np.zeros((0, 4), np.float32)).shape == (0, 3)


def test_pickling_and_copying_are_refused():
    pool = fastlstm.LSTM(4, 6, seed=14).sessions(1)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match=r"cannot pickle or copy a fastlstm\.Sessions"):
            attempt(pool)
