"""FASTLSTM_TESTS_WITHOUT_PEERS=1 (the wheel tests on platforms without the peer runtimes, pyproject's
[tool.cibuildwheel]) leaves out exactly the test modules that import a missing peer."""

from __future__ import annotations

import importlib.util
import os

import conftest  # tests/conftest.py: tests/ is on sys.path for its modules


def test_modules_importing_a_missing_peer_are_left_out_and_only_those(monkeypatch):
    installed = object()  # a stand-in spec: every peer but torch counts as installed, whatever this machine has

    def find_spec(name, *args):
        assert name in conftest.PEER_PACKAGES
        return None if name == "torch" else installed

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    left_out = conftest._modules_without_their_peers()
    assert left_out["test_parity.py"] == ["torch"]  # imports torch inside a try at the top
    assert left_out["test_sequence_model.py"] == ["torch"]
    assert "test_keras_import.py" not in left_out and "test_stream.py" not in left_out
    assert "test_peerless_runs.py" not in left_out


def test_only_a_run_that_asks_leaves_anything_out():
    missing = {name for name in conftest.PEER_PACKAGES if importlib.util.find_spec(name) is None}
    left_out = conftest._modules_without_their_peers()
    assert all(set(peers) <= missing for peers in left_out.values())
    asked = os.environ.get("FASTLSTM_TESTS_WITHOUT_PEERS") == "1"
    assert conftest.collect_ignore == (list(left_out) if asked else [])
