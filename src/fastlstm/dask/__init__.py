"""Batch inference on Dask: fastlstm models over dask arrays and bags, on a laptop's cores or a cluster's workers,
with the same numbers as one direct call.

    >>> import dask.array as da, fastlstm, fastlstm.dask
    >>> model = fastlstm.LSTM(16, 32, seed=0)
    >>> x = da.random.default_rng(0).standard_normal((50, 1000, 16), chunks=(50, 250, 16))  # (T, N, features)
    >>> fastlstm.dask.predict(model, x).shape  # lazy: .compute(), .to_zarr(...), ...
    (50, 1000, 32)

``predict`` takes a dask array (chunks split the batch), ``predict_bag`` a bag of sequences of different lengths.
The model travels as one graph key per call, unpickled once per worker process (``worker_cache_info``). Needs the
``dask`` extra: ``pip install "fastlstm[dask]"``. ``python -m fastlstm predict`` runs a saved model over a ``.npy``
or Zarr array on a cluster.
"""

from __future__ import annotations

try:
    import dask.array
    import dask.bag  # noqa: F401
except ImportError as error:
    raise ImportError(f'fastlstm.dask needs Dask: pip install "fastlstm[dask]" ({error})') from error

from ._arrays import predict
from ._bags import predict_bag
from ._worker import clear_worker_cache, worker_cache_info

__all__ = ["clear_worker_cache", "predict", "predict_bag", "worker_cache_info"]
