"""Determinism across runs: a fresh process gives bitwise the results of this one, at every ISA and in every
precision. (Across thread counts, batch splits and a row's neighbours in its batch: tests/test_threads.py; across
chunkings of a stream: tests/test_stream.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import redirect_stdout
from io import StringIO

import fastlstm

PROGRAM = """
import hashlib, sys
import numpy as np
import fastlstm
digest = hashlib.sha256()
for precision in ("fp32", "bf16", "int8"):
    model = fastlstm.LSTM(20, 37, 2, bidirectional=True, seed=11, precision=precision)
    x = np.random.default_rng(12).standard_normal((25, 3, 20)).astype(np.float32)
    for threads in (1, 2):
        output, (h_n, c_n) = model(x, lengths=[25, 7, 0], threads=threads)
        for array in (output, h_n, c_n):
            digest.update(array.tobytes())
print(digest.hexdigest())
"""


def _digest_here() -> str:
    namespace: dict = {}
    printed = StringIO()
    with redirect_stdout(printed):
        exec(PROGRAM, namespace)
    return printed.getvalue().strip()


def test_a_fresh_process_gives_the_same_bits_at_every_isa():
    for isa in fastlstm.available_isas():
        environment = dict(os.environ, FASTLSTM_ISA=isa)
        runs = {
            subprocess.run(
                [sys.executable, "-c", PROGRAM], env=environment, capture_output=True, text=True, check=True
            ).stdout.strip()
            for _ in range(2)
        }
        with fastlstm.use_isa(isa):
            here = _digest_here()
        assert runs == {here}, isa
