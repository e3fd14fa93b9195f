"""Run-time choice of the kernel variant: the best the CPU supports, or the one FASTLSTM_ISA names."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastlstm
from fastlstm import _isa


def _python(code: str, isa: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("FASTLSTM_ISA", None)
    if isa is not None:
        env["FASTLSTM_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_portable_is_always_available():
    assert fastlstm.available_isas()[0] == "portable"
    assert set(fastlstm.available_isas()) <= set(_isa.compiled_isas())


def test_default_is_the_best_available():
    result = _python("import fastlstm; print(fastlstm.active_isa())", None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == fastlstm.available_isas()[-1]


@pytest.mark.parametrize("isa", fastlstm.available_isas())
def test_environment_variable_forces_a_variant(isa):
    code = "import fastlstm, numpy as np; m = fastlstm.LSTM(3, 5, seed=0); m(np.ones((2, 1, 3))); print(m.isa)"
    result = _python(code, isa)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == isa


def test_unknown_variant_raises_at_import():
    result = _python("import fastlstm", "sse9")
    assert result.returncode != 0
    assert "FASTLSTM_ISA: expected one of" in result.stderr and "'sse9'" in result.stderr


def test_unsupported_variant_raises(monkeypatch):
    monkeypatch.setenv("FASTLSTM_ISA", "avx512")
    monkeypatch.setattr(_isa, "compiled_isas", lambda: ["portable", "avx512"])  # as on x86-64, whatever this build is
    monkeypatch.setattr(_isa, "available_isas", lambda: ["portable"])
    with pytest.raises(ValueError, match="FASTLSTM_ISA: this CPU cannot run 'avx512'"):
        _isa._choose_isa()


def test_use_isa_switches_new_models_only():
    before = fastlstm.active_isa()
    model = fastlstm.LSTM(4, 9, seed=1)
    with fastlstm.use_isa("portable"):
        assert fastlstm.active_isa() == "portable"
        portable = fastlstm.LSTM(4, 9, seed=1)
    assert fastlstm.active_isa() == before
    assert portable.isa == "portable" and model.isa == before
    x = np.ones((3, 2, 4), np.float32)
    np.testing.assert_allclose(portable(x)[0], model(x)[0], atol=1e-6)
    with pytest.raises(ValueError, match="isa: expected one of"), fastlstm.use_isa("avx1024"):
        pass
