"""Shared fixtures: every model-building test runs once per kernel variant this CPU supports.

The suite needs the "peers" extra (PyTorch, ONNX, onnxruntime, Keras): a missing one fails the run at collection.
Where those runtimes have no build (wheel tests on some platforms and Pythons, pyproject's [tool.cibuildwheel]),
FASTLSTM_TESTS_WITHOUT_PEERS=1 leaves out the test modules that import a missing one, and says which in the header.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import fastlstm

#: The packages of pyproject's "peers" extra, by import name.
PEER_PACKAGES = ("torch", "onnx", "onnxruntime", "openvino", "keras", "h5py")


def _imported_packages(path: Path) -> set[str]:
    """Top-level package names of every import statement in the module, wherever it stands."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules_without_their_peers() -> dict[str, list[str]]:
    missing = {name for name in PEER_PACKAGES if importlib.util.find_spec(name) is None}
    modules = {}
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        needed = sorted(_imported_packages(path) & missing)
        if needed:
            modules[path.name] = needed
    return modules


_LEFT_OUT = _modules_without_their_peers() if os.environ.get("FASTLSTM_TESTS_WITHOUT_PEERS") == "1" else {}
collect_ignore = list(_LEFT_OUT)


def pytest_report_header(config):
    if _LEFT_OUT:
        missing = "; ".join(f"{module} ({', '.join(peers)})" for module, peers in _LEFT_OUT.items())
        return f"FASTLSTM_TESTS_WITHOUT_PEERS=1: left out for missing peers: {missing}"
    return None


@pytest.fixture(params=fastlstm.available_isas())
def isa(request):
    """Within the test, new fastlstm models pack for this ISA (all of them the CPU runs, portable included)."""
    with fastlstm.use_isa(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)
