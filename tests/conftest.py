"""Shared fixtures: every model-building test runs once per kernel variant this CPU supports."""

from __future__ import annotations

import numpy as np
import pytest

import fastlstm


@pytest.fixture(params=fastlstm.available_isas())
def isa(request):
    """Within the test, new fastlstm models pack for this ISA (all of them the CPU runs, portable included)."""
    with fastlstm.use_isa(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)
