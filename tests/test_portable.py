"""Models that travel: pickle, copy, deepcopy and fastlstm.save / fastlstm.load give back the same model, bitwise,
for every precision, cell option and class; the description is versioned; a Stream refuses to pickle. Processes:
spawn pools, joblib's loky workers and a subprocess pinned to another kernel variant (fork: test_fork.py)."""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import joblib
import numpy as np
import pytest
import safetensors.numpy as safetensors_numpy
from safetensors import safe_open

import fastlstm
from fastlstm.interop.keras import KerasLSTM

PRECISIONS = ["fp32", "bf16", "int8"]
I, H = 5, 7

#: LSTM options covering every part of the description: sizes, layers, directions, projection, layout, bias, the
#: cell options beyond torch.nn.LSTM, and a thread count.
LSTM_OPTIONS = {
    "plain": {},
    "layers-bidirectional-projection": {"num_layers": 2, "bidirectional": True, "proj_size": 3},
    "batch-first-no-bias-threads": {"batch_first": True, "bias": False, "threads": 2},
    "reverse-cell-options": {
        "reverse": True,
        "activations": (("hard_sigmoid", 0.3, 0.4), "relu", ("scaled_tanh", 1.5, 0.7)),
        "clip": 2.5,
        "input_forget": True,
        "peepholes": True,
    },
}

#: The ways a model travels: each returns the model that arrives.
ROUND_TRIPS = {
    "pickle": lambda model, tmp_path: pickle.loads(pickle.dumps(model)),
    "pickle-protocol-5": lambda model, tmp_path: pickle.loads(pickle.dumps(model, protocol=5)),
    "deepcopy": lambda model, tmp_path: copy.deepcopy(model),
    "copy": lambda model, tmp_path: copy.copy(model),
    "save-load": lambda model, tmp_path: _saved_and_loaded(model, tmp_path),
}


def _saved_and_loaded(model, tmp_path):
    path = tmp_path / "model.safetensors"
    fastlstm.save(model, path)
    return fastlstm.load(path)


def _inputs(model, rng, steps=6, batch=3):
    shape = (batch, steps, model.input_size) if model.batch_first else (steps, batch, model.input_size)
    return rng.standard_normal(shape).astype(np.float32)


def _assert_same_lstm(arrived, original, rng):
    assert type(arrived) is type(original)
    assert repr(arrived) == repr(original)
    assert arrived._portable_config() == original._portable_config()
    assert arrived.precision == original.precision
    assert arrived.isa == original.isa
    expected, arrived_state = original.state_dict(), arrived.state_dict()
    assert list(arrived_state) == list(expected)
    for name, value in expected.items():
        assert arrived_state[name].dtype == np.float32
        assert arrived_state[name].tobytes() == value.tobytes(), name
    x = _inputs(original, rng)
    lengths = np.array([6, 0, 4])
    for kwargs in ({}, {"lengths": lengths}):
        output, (h_n, c_n) = original(x, **kwargs)
        arrived_output, (arrived_h, arrived_c) = arrived(x, **kwargs)
        for ours, theirs in ((arrived_output, output), (arrived_h, h_n), (arrived_c, c_n)):
            assert ours.tobytes() == theirs.tobytes()


@pytest.mark.parametrize("trip", ROUND_TRIPS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("options", LSTM_OPTIONS)
def test_lstm_round_trip_is_bitwise(trip, precision, options, isa, rng, tmp_path):
    model = fastlstm.LSTM(I, H, seed=1, precision=precision, **LSTM_OPTIONS[options])
    _assert_same_lstm(ROUND_TRIPS[trip](model, tmp_path), model, rng)


@pytest.mark.parametrize("trip", ROUND_TRIPS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_cell_round_trip_is_bitwise(trip, precision, rng, tmp_path):
    cell = fastlstm.LSTMCell(I, H, bias=precision != "bf16", seed=2, precision=precision)
    arrived = ROUND_TRIPS[trip](cell, tmp_path)
    assert type(arrived) is fastlstm.LSTMCell and repr(arrived) == repr(cell)
    assert {name: value.tobytes() for name, value in arrived.state_dict().items()} == {
        name: value.tobytes() for name, value in cell.state_dict().items()
    }
    x = rng.standard_normal((4, I)).astype(np.float32)
    state = (rng.standard_normal((4, H)).astype(np.float32), rng.standard_normal((4, H)).astype(np.float32))
    for ours, theirs in zip(arrived(x, state), cell(x, state)):
        assert ours.tobytes() == theirs.tobytes()


def _sequence_model(rng, precision, embedding, bias):
    lstm = fastlstm.LSTM(I, H, num_layers=2, bidirectional=True, seed=3, precision=precision)
    weight = rng.standard_normal((4, 2 * H))
    return fastlstm.SequenceModel(
        lstm,
        weight,
        rng.standard_normal(4) if bias else None,
        embedding=rng.standard_normal((11, I)) if embedding else None,
    )


@pytest.mark.parametrize("trip", ROUND_TRIPS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("embedding, bias", [(True, True), (False, False)], ids=["embedding-bias", "features"])
def test_sequence_model_round_trip_is_bitwise(trip, precision, embedding, bias, rng, tmp_path):
    model = _sequence_model(rng, precision, embedding, bias)
    arrived = ROUND_TRIPS[trip](model, tmp_path)
    assert type(arrived) is fastlstm.SequenceModel and repr(arrived) == repr(model)
    assert arrived.precision == precision
    x = rng.integers(0, 11, (6, 3)) if embedding else rng.standard_normal((6, 3, I))
    lengths = np.array([6, 2, 0])
    assert arrived.predict_proba(x, lengths=lengths).tobytes() == model.predict_proba(x, lengths=lengths).tobytes()
    assert np.array_equal(arrived.predict(x), model.predict(x))
    _assert_same_lstm(arrived.lstm, model.lstm, rng)


KERAS_SETTINGS = {
    "sequences": ({}, {"return_sequences": True, "return_state": False, "go_backwards": False, "merge_mode": None}),
    "last-state-backwards": (
        {"reverse": True},
        {"return_sequences": False, "return_state": True, "go_backwards": True, "merge_mode": None},
    ),
    "bidirectional-sum": (
        {"bidirectional": True},
        {"return_sequences": True, "return_state": True, "go_backwards": False, "merge_mode": "sum"},
    ),
    "bidirectional-list": (
        {"bidirectional": True, "num_layers": 2},
        {"return_sequences": False, "return_state": False, "go_backwards": False, "merge_mode": None},
    ),
}


@pytest.mark.parametrize("trip", ROUND_TRIPS)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("settings", KERAS_SETTINGS)
@pytest.mark.parametrize("mask_value", [None, 0.0])
def test_keras_lstm_round_trip_is_bitwise(trip, precision, settings, mask_value, rng, tmp_path):
    lstm_options, keras_settings = KERAS_SETTINGS[settings]
    lstm = fastlstm.LSTM(I, H, batch_first=True, seed=4, precision=precision, **lstm_options)
    layer = KerasLSTM(lstm, name="encoder", zero_output_for_mask=True, mask_value=mask_value, **keras_settings)
    arrived = ROUND_TRIPS[trip](layer, tmp_path)
    assert type(arrived) is KerasLSTM and repr(arrived) == repr(layer)
    x = rng.standard_normal((3, 6, I)).astype(np.float32)
    x[1, 4:] = 0.0  # padding the Masking value masks
    results, arrived_results = layer(x), arrived(x)
    results = results if isinstance(results, list) else [results]
    arrived_results = arrived_results if isinstance(arrived_results, list) else [arrived_results]
    assert [item.tobytes() for item in arrived_results] == [item.tobytes() for item in results]


class _MyLSTM(fastlstm.LSTM):
    """A user's subclass: pickles as itself."""


def test_subclass_pickles_as_itself(rng):
    model = _MyLSTM(I, H, seed=5)
    arrived = pickle.loads(pickle.dumps(model))
    assert type(arrived) is _MyLSTM
    _assert_same_lstm(arrived, model, rng)


def test_reference_models_pickle_with_their_dtype(rng):
    model = fastlstm.reference.LSTM(I, H, num_layers=2, seed=6, dtype=np.float32, precision="bf16")
    arrived = pickle.loads(pickle.dumps(model))
    assert arrived.dtype == np.float32 and arrived.precision == "bf16"
    x = rng.standard_normal((4, 2, I))
    assert arrived(x)[0].tobytes() == model(x)[0].tobytes()
    cell = fastlstm.reference.LSTMCell(I, H, seed=6)
    arrived_cell = copy.deepcopy(cell)
    assert arrived_cell._lstm.dtype == np.float64
    assert arrived_cell(x[0])[0].tobytes() == cell(x[0])[0].tobytes()


def test_copies_are_independent(rng):
    model = fastlstm.LSTM(I, H, seed=7)
    shallow, deep = copy.copy(model), copy.deepcopy(model)
    x = _inputs(model, rng)
    before = model(x)[0]
    model.load_state_dict({name: value * 2 for name, value in model.state_dict().items()})
    assert shallow(x)[0].tobytes() == before.tobytes()
    assert deep(x)[0].tobytes() == before.tobytes()
    assert model(x)[0].tobytes() != before.tobytes()


def test_pickle_holds_the_parameters_once():
    # Every parameter's bytes, plus a header of options and names: no packed copy, no second copy of anything.
    model = fastlstm.LSTM(64, 128, num_layers=2, bidirectional=True, seed=8, precision="int8")
    parameter_bytes = sum(value.nbytes for value in model.state_dict().values())
    size = len(pickle.dumps(model))
    assert parameter_bytes < size < parameter_bytes + 4096, (size, parameter_bytes)


def test_newer_format_version_is_refused_with_the_writer_named():
    model = fastlstm.LSTM(I, H, seed=9)
    state = model.__getstate__()
    state.update(format_version=2, fastlstm_version="9.9.9")
    arrived = fastlstm.LSTM.__new__(fastlstm.LSTM)
    with pytest.raises(ValueError, match=r"written by fastlstm 9\.9\.9 in format version 2; .* up to 1"):
        arrived.__setstate__(state)


def test_state_of_another_class_is_refused():
    state = fastlstm.LSTMCell(I, H, seed=9).__getstate__()
    with pytest.raises(ValueError, match=r"LSTM from the state of a 'fastlstm\.LSTMCell'"):
        fastlstm.LSTM.__new__(fastlstm.LSTM).__setstate__(state)


def test_stream_refuses_to_pickle_and_says_what_to_send():
    stream = fastlstm.LSTM(I, H, seed=10).stream(2)
    with pytest.raises(TypeError, match=r"cannot pickle a fastlstm\.Stream.*stream\.state.*model\.stream"):
        pickle.dumps(stream)


def test_stream_copies_are_branches(rng):
    model = fastlstm.LSTM(I, H, seed=10)
    stream = model.stream(2)
    first, second = rng.standard_normal((2, 2, I)).astype(np.float32)
    stream.step(first)
    branch, deep_branch = copy.copy(stream), copy.deepcopy(stream)
    expected = stream.step(second)
    assert branch.model is model and deep_branch.model is not model
    assert branch.step(second).tobytes() == expected.tobytes()
    assert deep_branch.step(second).tobytes() == expected.tobytes()


# ---- the file ------------------------------------------------------------------------------------------------


def test_file_opens_with_the_safetensors_package(tmp_path, rng):
    model = _sequence_model(rng, "bf16", embedding=True, bias=True)
    path = tmp_path / "tagger.safetensors"
    fastlstm.save(model, path)
    tensors = safetensors_numpy.load_file(path)
    expected = model._portable_tensors()
    assert set(tensors) == set(expected)
    for name, value in expected.items():
        assert tensors[name].dtype == np.float32 and tensors[name].tobytes() == value.tobytes(), name
    with safe_open(path, "np") as file:
        metadata = file.metadata()
    assert metadata["format"] == "fastlstm" and metadata["format_version"] == "1"
    assert metadata["class"] == "fastlstm.SequenceModel" and metadata["precision"] == "bf16"
    assert metadata["fastlstm_version"] == fastlstm.__version__
    assert json.loads(metadata["config"]) == model._portable_config()


def test_file_written_by_the_safetensors_package_loads(tmp_path, rng):
    model = fastlstm.LSTM(I, H, num_layers=2, proj_size=2, seed=11, precision="int8")
    ours = tmp_path / "ours.safetensors"
    fastlstm.save(model, ours)
    with safe_open(ours, "np") as file:
        metadata = file.metadata()
    theirs = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(model.state_dict(), theirs, metadata=metadata)
    _assert_same_lstm(fastlstm.load(theirs), model, rng)


def test_load_takes_another_precision(tmp_path, rng):
    model = fastlstm.LSTM(I, H, seed=13, precision="int8")
    path = tmp_path / "model.safetensors"
    fastlstm.save(model, path)
    loaded = fastlstm.load(path, precision="fp32")
    assert loaded.precision == "fp32"
    _assert_same_lstm(loaded, model.astype("fp32"), rng)
    with pytest.raises(ValueError, match="precision: expected one of"):
        fastlstm.load(path, precision="fp16")


def test_save_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(TypeError, match=r"model: expected one of fastlstm\.LSTM, .*got numpy\.ndarray"):
        fastlstm.save(np.zeros(3), tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match=r"got fastlstm\.reference\.LSTM"):
        fastlstm.save(fastlstm.reference.LSTM(I, H), tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_save_replaces_a_file_whole(tmp_path):
    path = tmp_path / "model.safetensors"
    fastlstm.save(fastlstm.LSTM(I, H, seed=14), path)
    fastlstm.save(fastlstm.LSTM(I, 2 * H, seed=14), path)
    assert fastlstm.load(path).hidden_size == 2 * H
    assert [item.name for item in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left


@pytest.mark.skipif(os.name != "posix", reason="file modes and the umask are POSIX's")
def test_saved_file_has_the_mode_of_a_plain_file(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    path = tmp_path / "model.safetensors"
    fastlstm.save(fastlstm.LSTM(I, H, seed=14), path)
    assert path.stat().st_mode == plain.stat().st_mode


def test_load_names_a_missing_file_and_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="load: path: no such file"):
        fastlstm.load(tmp_path / "absent.safetensors")
    with pytest.raises(IsADirectoryError, match=r"load: path: .* is a directory"):
        fastlstm.load(tmp_path)


def test_file_of_a_newer_format_is_refused_with_the_writer_named(tmp_path):
    model = fastlstm.LSTM(I, H, seed=15)
    state = model.__getstate__()
    del state["tensors"]
    metadata = {key: value if isinstance(value, str) else json.dumps(value) for key, value in state.items()}
    metadata.update(format_version="2", fastlstm_version="3.0.0")
    path = tmp_path / "newer.safetensors"
    safetensors_numpy.save_file(model.state_dict(), path, metadata=metadata)
    with pytest.raises(
        ValueError, match=rf"^{re.escape(str(path))}: format_version: written by fastlstm 3\.0\.0 in format version 2"
    ):
        fastlstm.load(path)


# ---- other processes -----------------------------------------------------------------------------------------


def _output_of(model_and_x):
    model, x = model_and_x
    return model(x)[0]


def _pool_case(rng):
    model = fastlstm.LSTM(16, 32, num_layers=2, bidirectional=True, seed=16, precision="bf16")
    inputs = [rng.standard_normal((10, 2, 16)).astype(np.float32) for _ in range(4)]
    return model, inputs, [model(x)[0] for x in inputs]


def test_spawn_pool_gives_the_single_process_results(rng):
    model, inputs, expected = _pool_case(rng)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_output_of, [(model, x) for x in inputs])
    assert [result.tobytes() for result in results] == [item.tobytes() for item in expected]


def test_joblib_loky_gives_the_single_process_results(rng):
    model, inputs, expected = _pool_case(rng)
    results = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(_output_of)((model, x)) for x in inputs)
    assert [result.tobytes() for result in results] == [item.tobytes() for item in expected]


_worker_model = None


def _load_worker_model(path):
    global _worker_model
    _worker_model = fastlstm.load(path)


def _score(x):
    return _worker_model(x)[0]


def test_process_pool_loading_the_model_once_per_worker(rng, tmp_path):
    # The README's recipe: each worker loads the file in its initializer, tasks carry only their inputs.
    model, inputs, expected = _pool_case(rng)
    path = tmp_path / "model.safetensors"
    fastlstm.save(model, path)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, initializer=_load_worker_model, initargs=(path,)) as pool:
        results = list(pool.map(_score, inputs))
    assert [result.tobytes() for result in results] == [item.tobytes() for item in expected]


def test_unpickled_under_another_variant_packs_for_it(tmp_path, rng):
    model = fastlstm.LSTM(9, 17, num_layers=2, seed=17, precision="int8")
    x = rng.standard_normal((8, 3, 9)).astype(np.float32)
    (tmp_path / "model.pickle").write_bytes(pickle.dumps(model))
    np.save(tmp_path / "x.npy", x)
    script = (
        "import pickle, sys, numpy as np, fastlstm\n"
        "model = pickle.loads(open(sys.argv[1] + '/model.pickle', 'rb').read())\n"
        "assert model.isa == 'portable', model.isa\n"
        "np.save(sys.argv[1] + '/y.npy', model(np.load(sys.argv[1] + '/x.npy'))[0])\n"
    )
    environment = {**os.environ, "FASTLSTM_ISA": "portable"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=environment, timeout=120)
    with fastlstm.use_isa("portable"):
        expected = copy.deepcopy(model)(x)[0]
    assert np.load(tmp_path / "y.npy").tobytes() == expected.tobytes()
