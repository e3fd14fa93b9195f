"""The safetensors container, written and read with NumPy alone, for float32 tensors.

Layout: an 8-byte little-endian unsigned header length N; N bytes of a UTF-8 JSON object mapping every tensor name to
``{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}`` (byte offsets into the data that follows the
header), plus an optional ``"__metadata__"`` object of strings to strings; then the data, little-endian, the tensors
back to back. The header is padded with spaces to a multiple of 8 bytes so that the data starts aligned.

The reader trusts nothing in the file: the header length is capped and must fit the file; the JSON must be an object
without repeated names; every entry must have exactly those three fields, dtype F32, a shape of at most 64 non-negative
ints that fit an index, and offsets that match the shape's byte count; the tensors must tile the data exactly
(contiguous, in bounds, no overlap, no bytes left over). Nothing is allocated before the header has been checked, and
then no more than the data's size. Every refusal is a ``ValueError``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

#: Larger headers are refused before they are read. A model's header holds about a hundred bytes per tensor and its
#: configuration (a 2-layer bidirectional LSTM's: under 2 KB), so this admits models of thousands of layers; it also
#: bounds what parsing a hostile header can allocate: Python objects of at most ~32 bytes per byte of JSON (measured
#: by tests/test_file_fuzz.py), 32 MiB.
MAX_HEADER_BYTES = 2**20
_LENGTH_BYTES = 8
_ALIGNMENT = 8
_DTYPE = np.dtype("<f4")
_DTYPE_NAME = "F32"
_ENTRY_FIELDS = {"dtype", "shape", "data_offsets"}
#: NumPy's most dimensions, and sizes an index can hold: a shape beyond them is refused before its element count is
#: taken, which would be quadratic in a header's length (the product of a million 40-bit sizes) and too long to print.
_MAX_DIMENSIONS = 64
_MAX_SIZE = sys.maxsize
METADATA_KEY = "__metadata__"


def write(file: BinaryIO, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write ``tensors`` (float32 arrays, in the given order) and ``metadata`` (str to str) to a binary file."""
    header: dict[str, Any] = {METADATA_KEY: dict(metadata)}
    offset = 0
    for name, array in tensors.items():
        size = array.size * _DTYPE.itemsize
        header[name] = {"dtype": _DTYPE_NAME, "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % _ALIGNMENT)
    file.write(len(text).to_bytes(_LENGTH_BYTES, "little"))
    file.write(text)
    for array in tensors.values():
        file.write(memoryview(np.ascontiguousarray(array, dtype=_DTYPE)).cast("B"))


def read(file: BinaryIO, file_size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors (float32 arrays, in the order of their offsets) and metadata of a file of ``file_size`` bytes
    opened for binary reading at its start; ValueError for anything malformed."""
    prefix = file.read(_LENGTH_BYTES)
    if len(prefix) != _LENGTH_BYTES:
        raise ValueError(f"the file has {file_size} bytes, fewer than the {_LENGTH_BYTES} of the header length")
    header_bytes = int.from_bytes(prefix, "little")
    available = file_size - _LENGTH_BYTES
    if header_bytes > min(available, MAX_HEADER_BYTES):
        limit = "the file's remaining size" if header_bytes > available else "the limit"
        raise ValueError(
            f"header length: {header_bytes} bytes exceeds {limit} ({min(available, MAX_HEADER_BYTES)} bytes)"
        )
    header = _parse_header(file.read(header_bytes))
    metadata = _check_metadata(header.pop(METADATA_KEY, {}))
    data_size = available - header_bytes
    layout = _check_layout(header, data_size)
    data_start = _LENGTH_BYTES + header_bytes
    tensors = {}
    for name, shape, begin, end in layout:
        array = np.empty(shape, _DTYPE)
        file.seek(data_start + begin)
        if file.readinto(memoryview(array).cast("B")) != end - begin:
            raise ValueError(f"tensor {_shown(name)}: the file ended inside its data")
        tensors[name] = array if _DTYPE.isnative else array.astype(np.float32)
    return tensors, metadata


def file_size(file: BinaryIO) -> int:
    return os.fstat(file.fileno()).st_size


def refuse_repeated_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` of ``json.loads``: an object naming something twice is refused (ValueError), not read
    as its last value, since another reader could take the first."""
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)  # linear: names may be many
        raise ValueError(f"the names {repeated} appear more than once in an object")
    return dict(pairs)


def _parse_header(text: bytes) -> dict[str, Any]:
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=refuse_repeated_names)
    except UnicodeDecodeError as error:
        raise ValueError(f"header: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except RecursionError:
        raise ValueError("header: JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"header: not valid JSON ({error.msg} at character {error.pos})") from None
    except ValueError as error:  # repeated names, or an integer of more digits than Python converts
        raise ValueError(f"header: {error}") from None
    if not isinstance(header, dict):
        raise ValueError(f"header: expected a JSON object, got {type(header).__name__}")
    return header


def _check_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise ValueError(f"header: {METADATA_KEY}: expected an object of strings to strings")
    return metadata


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shown(value: Any) -> str:
    """``value``'s repr, cut to 80 characters: a file's values may be megabytes long."""
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + " ..."


def _is_size(value: Any) -> bool:
    return _is_count(value) and value <= _MAX_SIZE


def _check_layout(header: dict[str, Any], data_size: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, shape, begin, end) of every tensor, sorted by offset, once every entry and the tiling are checked."""
    layout = []
    for name, entry in header.items():
        where = f"tensor {_shown(name)}"
        if not isinstance(entry, dict) or set(entry) != _ENTRY_FIELDS:
            raise ValueError(f"{where}: expected an object with exactly the fields {sorted(_ENTRY_FIELDS)}")
        if entry["dtype"] != _DTYPE_NAME:
            raise ValueError(f"{where}: dtype {_shown(entry['dtype'])}; fastlstm files hold only {_DTYPE_NAME}")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not (isinstance(shape, list) and len(shape) <= _MAX_DIMENSIONS and all(_is_size(size) for size in shape)):
            raise ValueError(
                f"{where}: shape: expected a list of at most {_MAX_DIMENSIONS} ints in [0, {_MAX_SIZE}], "
                f"got {_shown(shape)}"
            )
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(offset) for offset in offsets)):
            raise ValueError(
                f"{where}: data_offsets: expected [begin, end], two non-negative ints, got {_shown(offsets)}"
            )
        begin, end = offsets
        expected = math.prod(shape) * _DTYPE.itemsize
        if end < begin or end - begin != expected:
            raise ValueError(
                f"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes; shape {shape} of "
                f"{_DTYPE_NAME} needs {expected}"
            )
        layout.append((name, tuple(shape), begin, end))
    layout.sort(key=lambda item: (item[2], item[3]))
    position = 0
    for name, _, begin, end in layout:
        if begin != position:
            problem = "overlaps the tensor before it" if begin < position else "leaves a gap before it"
            raise ValueError(
                f"tensor {_shown(name)}: data_offsets start at {begin}, which {problem} (expected {position})"
            )
        position = end
    if position != data_size:
        raise ValueError(
            f"data: the tensors cover {position} bytes, but {data_size} follow the header"
            + (" (the file is truncated)" if position > data_size else "")
        )
    return layout
