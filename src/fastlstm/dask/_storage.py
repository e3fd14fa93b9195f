"""The arrays of ``python -m fastlstm predict``: ``.npy`` files and Zarr arrays, read and written by the workers
(so a path must be one they can open: local for a LocalCluster, a shared file system or a Zarr URL on a cluster).

A ``.npy`` input is read with a memory map per task, its rows only; a ``.npy`` output is created (header and size)
by the client under a temporary name beside OUTPUT, each task writes its rows through a memory map of its own, and
the file is renamed to OUTPUT once every task has written, so OUTPUT is never a partial result."""

from __future__ import annotations

import os
import uuid
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize


def is_npy(path: str) -> bool:
    return path.lower().endswith(".npy")


class NpyRows:
    """A ``.npy`` file as an array-like for ``dask.array.from_array``: shape and dtype from its header, and each
    block read from a memory map when a task asks for it. Pickles as its path and header."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        try:
            mapped = np.load(self.path, mmap_mode="r")  # reads the header only
        except ValueError as error:  # Python objects, or not a .npy file
            raise ValueError(f"INPUT: {path}: {error}") from None
        self.shape, self.dtype, self.ndim = mapped.shape, mapped.dtype, mapped.ndim
        del mapped
        self.stamp = (os.path.getsize(self.path), os.path.getmtime(self.path))

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[key])

    def __dask_tokenize__(self) -> tuple:
        return ("fastlstm-npy", self.path, self.stamp)


def input_source(path: str) -> Any:
    """INPUT opened for its shape and dtype (nothing read yet): a ``NpyRows`` or a Zarr array."""
    if is_npy(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"INPUT: no such file: {path!r}")
        return NpyRows(path)
    import zarr

    return zarr.open_array(path, mode="r")


def as_dask_array(source: Any, path: str, batch_axis: int, rows: int) -> da.Array:
    """INPUT as a dask array whose chunks hold ``rows`` rows of its batch axis and every step and feature; each task
    reads its own rows."""
    if len(source.shape) <= batch_axis:
        raise ValueError(f"INPUT: expected a batch of sequences, got shape {source.shape}")
    chunks = tuple(rows if axis == batch_axis else -1 for axis in range(len(source.shape)))
    meta = np.empty((0,) * len(source.shape), source.dtype)
    return da.from_array(source, chunks=chunks, meta=meta, lock=False, name=f"input-{tokenize(path, source)}")


def check_output(path: str, overwrite: bool) -> None:
    """Refuse (FileExistsError) an existing OUTPUT unless ``overwrite``: a Zarr output replaces a whole directory."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"OUTPUT: {path!r} exists; pass --overwrite to replace it")


class NpyTarget:
    """A ``.npy`` file being written, as a target of ``dask.array.store``: each assignment of a block writes its
    region through a memory map opened by the task. Regions of different tasks are disjoint."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
        self.path, self.shape, self.dtype, self.offset = path, shape, dtype, offset

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        mapped = np.memmap(self.path, self.dtype, mode="r+", offset=self.offset, shape=self.shape)
        mapped[key] = value
        mapped.flush()
        del mapped


class Output:
    """Where a result goes: ``store(result)`` gives the lazy writing, ``finish()`` makes OUTPUT appear, ``abandon()``
    removes what a failed run left."""

    def __init__(self, path: str, overwrite: bool) -> None:
        self.path, self.overwrite = path, overwrite
        self.temporary: str | None = None

    def store(self, result: da.Array) -> Any:
        if not is_npy(self.path):
            return da.to_zarr(result, self.path, overwrite=self.overwrite, compute=False)
        if any(np.isnan(size) for size in result.shape):
            raise ValueError(f"OUTPUT: a .npy file needs a known shape, got {result.shape}; write Zarr instead")
        # A new name beside OUTPUT (so the final rename stays on one file system), created with the permissions
        # the umask gives any new file, as np.save would.
        directory, name = os.path.split(os.path.abspath(self.path))
        self.temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.partial")
        header = np.lib.format.open_memmap(self.temporary, mode="w+", dtype=result.dtype, shape=result.shape)
        target = NpyTarget(self.temporary, result.shape, result.dtype, header.offset)
        del header
        return da.store(result, target, lock=False, compute=False)

    def finish(self) -> None:
        if self.temporary is not None:
            os.replace(self.temporary, self.path)
            self.temporary = None

    def abandon(self) -> None:
        if self.temporary is not None and os.path.exists(self.temporary):
            os.unlink(self.temporary)
        self.temporary = None
