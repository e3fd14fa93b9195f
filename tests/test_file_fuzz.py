"""``fastlstm.load`` on damaged and hostile files: every bad file gives a ValueError whose message starts with the
file's path, and never another exception, a crash, a hang, or an allocation beyond what the file's size explains.

The bad files (tests/file_mutations.py) are mutations, each bad by construction, of files that ``fastlstm.save``
wrote for six small models covering every class and option that reaches the file. Random byte flips anywhere, which
may or may not spoil a file, must give a ValueError or a model that runs. The unmutated files load bitwise, as do
files changed only where the reader does not look (the writer's version string, padding, layout of the JSON).

Allocation is traced with tracemalloc, which also sees NumPy's arrays (NumPy reports them to it). A load that hangs
fails after HANG_SECONDS (``hang_guard``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import signal
import threading
import tracemalloc
from collections import Counter

import numpy as np
import pytest
from file_mutations import FAMILIES, SavedFile, assemble, deep_nesting, large_headers

import fastlstm
from fastlstm.interop.keras import KerasLSTM

#: One load takes milliseconds; only a hang comes near this.
HANG_SECONDS = 60

# ---- the allocation bound -----------------------------------------------------------------------------------------
# What load may allocate (peak, traced) for a file of F bytes whose header has J bytes:
#  - the tensors: arrays of at most the data's bytes, F - 8 - J, read once;
#  - the header: its bytes (J), its text (J to 4 J: up to 4 bytes a character) and the parsed JSON, which CPython
#    builds from small objects: up to 32 bytes per byte of JSON (measured on the text `[{}],` repeated: a list and
#    a dict, 160 bytes, per 5 bytes). Messages quote parts of the header, a few times J at most;
#  - a constant for the rest: exception and traceback objects, a model's Python objects, the config's parse.
# So at most F + PARSE_FACTOR * J + OVERHEAD_BYTES, with PARSE_FACTOR = 40 (the 32 above and the text) and
# OVERHEAD_BYTES = 64 KiB. Measured on the files here: peak - F at most 22 J (the 1 MB header of 100,000 names), and
# at most 10 J + 7 KiB for headers under 20 KB. A refused file that claims a large size (2**40 elements, 10**6
# layers) and is believed would exceed the bound by orders of magnitude. The packed weights of a model that loads
# are the C++ core's and not traced (about the parameters' bytes again).
PARSE_FACTOR = 40
OVERHEAD_BYTES = 64 * 2**10


def allocation_bound(data: bytes) -> int:
    claimed = int.from_bytes(data[:8].ljust(8, b"\0"), "little")
    header = claimed if claimed <= len(data) - 8 else 0  # a length past the file's end is refused unread
    return len(data) + PARSE_FACTOR * header + OVERHEAD_BYTES


# ---- the models ---------------------------------------------------------------------------------------------------


def _models() -> dict[str, object]:
    rng = np.random.default_rng(20261202)
    weights = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in (("w", (7, 5)), ("b", (7,)))}
    keras_options = dict(return_state=True, zero_output_for_mask=False)
    return {
        "lstm": fastlstm.LSTM(5, 6, num_layers=2, bidirectional=True, proj_size=3, seed=1),
        "cell_options": fastlstm.LSTM(
            4,
            5,
            bias=False,
            batch_first=True,
            reverse=True,
            peepholes=True,
            input_forget=True,
            clip=2.5,
            activations=("hard_sigmoid", ("leaky_relu", 0.1), ("scaled_tanh", 0.5, 2.0)),
            threads=1,
            seed=2,
            precision="bf16",
        ),
        "cell": fastlstm.LSTMCell(4, 5, seed=3, precision="int8"),
        "sequence": fastlstm.SequenceModel(
            fastlstm.LSTM(4, 5, seed=4),
            weights["w"],
            weights["b"],
            embedding=rng.standard_normal((11, 4)).astype(np.float32),
        ),
        "keras_bidirectional": KerasLSTM(
            fastlstm.LSTM(3, 4, batch_first=True, bidirectional=True, seed=5),
            name="bidirectional",
            return_sequences=True,
            go_backwards=False,
            merge_mode="concat",
            mask_value=None,
            **keras_options,
        ),
        "keras_backwards": KerasLSTM(
            fastlstm.LSTM(3, 4, batch_first=True, reverse=True, peepholes=True, clip=3.0, seed=6),
            name="lstm_1",
            return_sequences=False,
            go_backwards=True,
            merge_mode=None,
            mask_value=0.0,
            **keras_options,
        ),
    }


MODELS = _models()


def outputs(model) -> list[np.ndarray]:
    """Everything the model computes for a fixed input, flat."""
    rng = np.random.default_rng(0)
    if isinstance(model, fastlstm.SequenceModel):
        tokens = rng.integers(0, model.embedding.shape[0], (4, 3))
        logits, (h, c) = model.logits(tokens)
        return [logits, h, c, model.predict_proba(tokens)]
    if isinstance(model, fastlstm.LSTMCell):
        return list(model(rng.standard_normal((3, model.input_size))))
    if isinstance(model, KerasLSTM):
        result = model(rng.standard_normal((3, 4, model.model.input_size)))
        return list(result) if isinstance(result, list) else [result]
    output, (h, c) = model(rng.standard_normal((4, 3, model.input_size)))
    return [output, h, c]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, SavedFile]:
    """Each model's file as fastlstm.save wrote it."""
    directory = tmp_path_factory.mktemp("saved")
    files = {}
    for name, model in MODELS.items():
        fastlstm.save(model, directory / name)
        files[name] = SavedFile((directory / name).read_bytes())
    return files


@pytest.fixture
def traced():
    """tracemalloc on for the test (left on if it was on already)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()


class LoadHung(Exception):
    """Raised in the main thread by the hang guard's alarm, into the Python code of a load that takes too long."""


def _stop_hung_load(signum, frame):
    raise LoadHung(f"fastlstm.load ran for over {HANG_SECONDS} s")


@contextlib.contextmanager
def hang_guard():
    """A load running past HANG_SECONDS fails with LoadHung (where the platform has SIGALRM, and the load is in Python
    code); one stuck in C code ends the run at twice that, with every thread's traceback (faulthandler writes to
    the process's stderr, which ``pytest -s`` shows)."""
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if alarm:
        previous = signal.signal(signal.SIGALRM, _stop_hung_load)
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    faulthandler.dump_traceback_later(2 * HANG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def load_traced(path) -> tuple[object, int]:
    """(the model fastlstm.load gave, or the exception it raised; the peak bytes traced during the call), under the
    hang guard."""
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        with hang_guard():
            result = fastlstm.load(path)
    except Exception as error:  # everything is returned; the callers say which are right
        result = error
    return result, tracemalloc.get_traced_memory()[1] - before


def check_outcome(path, data: bytes, *, bad: bool) -> tuple[str | None, object]:
    """Write ``data`` to ``path`` and load it: (a problem, or None; the model or the exception). A bad file must be
    refused; any file must give a ValueError starting with its path or a model that runs, within the allocation
    bound."""
    path.write_bytes(data)
    result, peak = load_traced(path)
    problem = None
    if isinstance(result, BaseException) and not isinstance(result, ValueError):
        problem = f"{type(result).__name__}: {str(result)[:200]}"
    elif isinstance(result, ValueError) and not str(result).startswith(f"{path}: "):
        problem = f"message without the path: {str(result)[:200]}"
    elif bad and not isinstance(result, ValueError):
        problem = "loaded"
    elif peak > allocation_bound(data):
        problem = f"allocated {peak} bytes for a file of {len(data)} (bound {allocation_bound(data)})"
    elif not isinstance(result, ValueError):
        try:
            outputs(result)  # a model that loads must run
        except Exception as error:
            problem = f"loaded, then failed: {type(error).__name__}: {str(error)[:200]}"
    return problem, result


# ---- the files that must load -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_saved_files_load_bitwise(saved, tmp_path, name):
    path = tmp_path / "model.safetensors"
    path.write_bytes(saved[name].raw)
    loaded = fastlstm.load(path)
    original = MODELS[name]
    assert type(loaded) is type(original) and loaded.precision == original.precision
    for got, expected in zip(outputs(loaded), outputs(original), strict=True):
        np.testing.assert_array_equal(got, expected)


def _unchecked_changes(saved: SavedFile) -> dict[str, bytes]:
    """Changes the reader does not look at: the writer's version, the padding, the JSON's layout and order, the
    order of the tensors in the data, metadata it does not know."""
    header, data, text = saved.header(), saved.data, saved.header_text.rstrip(" ")
    changes = {}
    for version in ("0.0.1", "", "99.0+local", "\u00e9" * 300):
        changed = saved.header()
        changed["__metadata__"]["fastlstm_version"] = version
        changes[f"fastlstm_version {version!r:.20}"] = assemble(changed, data)
    unpadded = text.encode()
    changes["no padding"] = len(unpadded).to_bytes(8, "little") + unpadded + data
    changes["16 more spaces"] = assemble(text + " " * 16, data, raw=True)
    changes["padding of other JSON whitespace"] = assemble("\n\t\r" + text + "\r\n\t ", data, raw=True)
    changes["indented JSON"] = assemble(json.dumps(header, indent=2), data, raw=True)
    changes["names in reverse order"] = assemble(dict(reversed(header.items())), data)
    changes["an unknown metadata key"] = assemble({**header, "__metadata__": {**header["__metadata__"], "x": ""}}, data)
    # The data in reverse order, the offsets following it: the reader goes by the offsets.
    names = saved.tensor_names()
    pieces = [data[header[name]["data_offsets"][0] : header[name]["data_offsets"][1]] for name in reversed(names)]
    position = 0
    for name, piece in zip(reversed(names), pieces):
        header[name]["data_offsets"] = [position, position + len(piece)]
        position += len(piece)
    changes["data in reverse order"] = assemble(header, b"".join(pieces))
    return changes


@pytest.mark.parametrize("name", MODELS)
def test_unchecked_changes_still_load(saved, tmp_path, name):
    path = tmp_path / "model.safetensors"
    expected = outputs(MODELS[name])
    for what, data in _unchecked_changes(saved[name]).items():
        path.write_bytes(data)
        for got, want in zip(outputs(fastlstm.load(path)), expected, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=what)


# ---- the files that must not --------------------------------------------------------------------------------------


def _bad_files(saved: dict[str, SavedFile], family: str):
    rng = np.random.default_rng(sorted(FAMILIES).index(family))
    for name in MODELS:
        for what, data in FAMILIES[family](saved[name], rng):
            yield f"{name}: {what}", data


def test_at_least_2000_bad_files(saved):
    counts = {family: sum(1 for _ in _bad_files(saved, family)) for family in FAMILIES}
    counts["deep_nesting"] = sum(1 for _ in deep_files(saved))
    counts["large_headers"] = sum(1 for _ in large_headers(saved["lstm"], None))
    assert sum(counts.values()) >= 2000, counts
    assert all(counts.values()), counts


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_files_are_refused(saved, tmp_path, traced, family):
    path = tmp_path / "bad.safetensors"
    problems = []
    for what, data in _bad_files(saved, family):
        problem, _ = check_outcome(path, data, bad=True)
        if problem:
            problems.append(f"{what}: {problem}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])


def test_large_headers_are_refused(saved, tmp_path, traced):
    """Megabytes of header, for one model (the checks do not depend on it): refused in time linear in their length
    (quadratic work would take minutes, and fail by the hang guard), within the allocation bound."""
    path = tmp_path / "large.safetensors"
    problems = []
    for what, data in large_headers(saved["lstm"], None):
        problem, _ = check_outcome(path, data, bad=True)
        if problem:
            problems.append(f"{what}: {problem}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def deepest_json_here() -> int:
    """The deepest nesting of arrays json.loads parses when called from here, before its recursion limit."""
    low, high = 1, 10**6
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.loads("[" * middle + "]" * middle)
            low = middle
        except RecursionError:
            high = middle - 1
    return low


#: The models whose configurations hold every kind of nested value deep_nesting makes (options, settings, parts).
DEEP_MODELS = ("lstm", "sequence", "keras_bidirectional")


def deep_files(saved):
    """Nesting from 40 levels below what json.loads parses here to 12 above: load's frames sit a few levels deeper,
    so the sweep has files whose JSON parses (and a check must refuse the value without recursing past the limit)
    and files whose JSON does not."""
    deepest = deepest_json_here()
    for name in DEEP_MODELS:
        for where, what, data in deep_nesting(saved[name], range(deepest - 40, deepest + 12)):
            yield f"{name}: {where}", f"{name}: {what}", data


def test_deep_nesting_is_refused_on_both_sides_of_the_limit(saved, tmp_path):
    """Not traced: tracemalloc slows deep recursion tenfold, and these files are a few kilobytes."""
    path = tmp_path / "deep.safetensors"
    problems, sides = [], {}
    for where, what, data in deep_files(saved):
        problem, result = check_outcome(path, data, bad=True)
        if problem:
            problems.append(f"{what}: {problem}")
        unparsed = any(text in str(result) for text in ("nested too deeply", "not valid JSON"))
        sides.setdefault(where, set()).add("unparsed" if unparsed else "parsed")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
    assert all(found == {"parsed", "unparsed"} for found in sides.values()), sides


#: Random flips per model: a file of these models has a few thousand bytes, about a third of them header.
FLIPS = 300


@pytest.mark.parametrize("name", MODELS)
def test_random_byte_flips(saved, tmp_path, traced, name):
    """One to three bytes changed at random: half the files in the header, half anywhere. A flip in the data
    changes a value and the file stays valid; one in the header usually spoils it, but not always (a letter of the
    version string, a space of the padding turned into a tab). Either outcome is right; anything else is not."""
    rng = np.random.default_rng(list(MODELS).index(name))
    raw = saved[name].raw
    path = tmp_path / "flipped.safetensors"
    problems, outcomes = [], Counter()
    for index in range(FLIPS):
        data = bytearray(raw)
        end = 8 + saved[name].header_length if index % 2 else len(raw)
        for position in rng.integers(0, end, int(rng.integers(1, 4))):
            data[position] ^= int(rng.integers(1, 256))
        problem, result = check_outcome(path, bytes(data), bad=False)
        outcomes["refused" if isinstance(result, BaseException) else "loaded"] += 1
        if problem:
            problems.append(f"flip {index}: {problem}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
    assert outcomes["refused"] and outcomes["loaded"], outcomes  # both kinds of flip were made
