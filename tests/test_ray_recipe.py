"""The README's Ray Data recipe (the Python block of "Batch inference on Dask" that calls ``map_batches``), run as
written on a local Ray instance of two CPUs, against one direct call. Ray is no dependency of fastlstm or of its
test extra (it is large and not built for every platform of the wheels), so this module runs only where Ray Data is
installed: ``pip install "ray[data]"``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import fastlstm

ray = pytest.importorskip("ray", reason="the Ray recipe is tested where Ray is installed")
pytest.importorskip("ray.data", reason="the Ray recipe needs Ray Data")

# Ray Data's DataContext assigns its own deprecated fields (use_push_based_shuffle, use_polars, ...) when it is
# created, and each assignment warns; the recipe sets no such field.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

README = Path(__file__).resolve().parent.parent / "README.md"


def _recipe() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    recipes = [block for block in blocks if "map_batches" in block]
    assert len(recipes) == 1, "README: expected one Python block with the Ray Data recipe"
    return recipes[0]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.skipif(not README.exists(), reason="README.md is not beside tests/ (tests run from a copy)")
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_the_readme_recipe_gives_the_direct_call(local_ray, tmp_path, batch_first):
    model = fastlstm.LSTM(7, 16, 2, batch_first=batch_first, seed=0)
    path = tmp_path / "model.safetensors"
    fastlstm.save(model, path)
    x = np.random.default_rng(1).standard_normal((50, 9, 7)).astype(np.float32)  # (N, T, features)
    namespace = {"path": str(path), "x": x}
    exec(compile(_recipe(), "README.md (Ray recipe)", "exec"), namespace)
    direct = model(x if batch_first else x.swapaxes(0, 1))[0]
    assert np.array_equal(namespace["output"], direct if batch_first else direct.swapaxes(0, 1))
