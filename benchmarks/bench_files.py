"""What it costs to move a model: pickle, unpickle, ``fastlstm.save`` and ``fastlstm.load``, on a 2-layer
bidirectional LSTM of hidden size 1024 (input 1024: 42 million float32 parameters, 168 MB), beside the two parts of a
load, reading the file's tensors and packing them (``load_state_dict``), and NumPy writing and reading the same bytes.

    python -m pytest benchmarks/bench_files.py --benchmark-columns=median,iqr,rounds

Each test also records, in ``extra_info``, the pickle's and the file's size against the parameters' bytes.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import fastlstm
from fastlstm import _safetensors

SIZES = {"input_size": 1024, "hidden_size": 1024, "num_layers": 2, "bidirectional": True}


@pytest.fixture(scope="module")
def model() -> fastlstm.LSTM:
    return fastlstm.LSTM(**SIZES, seed=0)


@pytest.fixture(scope="module")
def parameter_bytes(model) -> int:
    return sum(value.nbytes for value in model.state_dict().values())


@pytest.fixture
def saved(model, tmp_path) -> str:
    path = os.fspath(tmp_path / "model.safetensors")
    fastlstm.save(model, path)
    return path


def _record_sizes(benchmark, parameter_bytes: int, size: int) -> None:
    benchmark.extra_info.update(parameter_bytes=parameter_bytes, size=size, size_ratio=size / parameter_bytes)


def test_pickle(benchmark, model, parameter_bytes):
    data = benchmark(pickle.dumps, model)
    _record_sizes(benchmark, parameter_bytes, len(data))


def test_unpickle(benchmark, model, parameter_bytes):
    data = pickle.dumps(model)
    _record_sizes(benchmark, parameter_bytes, len(data))
    benchmark(pickle.loads, data)


def test_save(benchmark, model, parameter_bytes, tmp_path):
    path = os.fspath(tmp_path / "model.safetensors")
    benchmark(fastlstm.save, model, path)
    _record_sizes(benchmark, parameter_bytes, os.path.getsize(path))


def test_load(benchmark, saved, parameter_bytes):
    _record_sizes(benchmark, parameter_bytes, os.path.getsize(saved))
    benchmark(fastlstm.load, saved)


def test_load_read_part(benchmark, saved):
    """The first part of a load: the file's tensors into NumPy arrays, checked."""

    def read():
        with open(saved, "rb") as file:
            return _safetensors.read(file, _safetensors.file_size(file))

    benchmark(read)


def test_load_pack_part(benchmark, model):
    """The second part of a load: the parameters checked and packed for the kernels."""
    state = model.state_dict()
    benchmark(model._set_parameters, state, copy=False)


def test_numpy_save_and_load_of_the_same_bytes(benchmark, model, tmp_path):
    """The floor: NumPy writing and reading one array of the parameters' size."""
    values = np.concatenate([value.ravel() for value in model.state_dict().values()])
    path = tmp_path / "values.npy"

    def write_and_read():
        np.save(path, values)
        return np.load(path)

    benchmark(write_and_read)
