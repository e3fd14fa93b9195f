"""The public API: ``fastlstm.__all__``, ``fastlstm.reference.__all__`` and ``fastlstm.dask.__all__`` hold exactly
these names, and each of them imports. A change to any list is a change of the API, made here on purpose."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

PUBLIC_NAMES = [
    "KerasLSTM",
    "LSTM",
    "LSTMCell",
    "QuantizationError",
    "SequenceModel",
    "SessionBatcher",
    "Sessions",
    "Stream",
    "__version__",
    "active_isa",
    "available_isas",
    "from_keras",
    "from_onnx",
    "from_torch",
    "get_num_threads",
    "load",
    "quantization_error",
    "reference",
    "save",
    "set_num_threads",
    "use_isa",
]

REFERENCE_NAMES = ["LSTM", "LSTMCell", "quantize_to_int8", "round_to_bf16", "sigmoid"]

DASK_NAMES = ["clear_worker_cache", "predict", "predict_bag", "worker_cache_info"]


@pytest.mark.parametrize(
    "module_name, names",
    [("fastlstm", PUBLIC_NAMES), ("fastlstm.reference", REFERENCE_NAMES), ("fastlstm.dask", DASK_NAMES)],
    ids=["fastlstm", "reference", "dask"],
)
def test_all_holds_exactly_the_public_names_and_each_imports(module_name, names):
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == names
    assert len(set(module.__all__)) == len(module.__all__)
    # `from module import name` and `from module import *` read each name as an attribute of the module.
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{module_name} lists but does not define {missing}"


def test_the_version_is_the_one_pyproject_states():
    # pip's builds take it from pyproject.toml through scikit-build-core, and a plain CMake build directory reads it
    # there too (CMakeLists.txt): an empty version left the benchmark's reports and plot titles without one.
    import fastlstm

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    stated = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    assert stated is not None, "pyproject.toml states no version"
    assert fastlstm.__version__ == stated.group(1)
