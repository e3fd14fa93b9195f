"""Bad files for tests/test_file_fuzz.py: mutations of files written by ``fastlstm.save``, each bad by construction
(``fastlstm.load`` must refuse every one with a ValueError), in families. A family is a function of a ``SavedFile``
and a seeded ``numpy.random.Generator`` yielding ``(what was changed, the file's bytes)``.

Header mutations are structural: the header is parsed, one value is changed (``edited``), the JSON is written again,
padded, and its length recomputed, so that exactly that one thing is wrong. The configuration, JSON text inside the
metadata, is changed the same way. Only names given twice and byte-level garbage are made on the raw text.

``FAMILIES`` holds the families run on every model; ``large_headers`` (megabytes, run on one model) and
``deep_nesting`` (depths chosen by the test, around the recursion limit) have their own tests.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastlstm._safetensors import MAX_HEADER_BYTES

Mutation = tuple[str, bytes]

_METADATA = "__metadata__"
_METADATA_KEYS = ("format", "format_version", "fastlstm_version", "class", "config", "precision")
_CLASSES = ("fastlstm.LSTM", "fastlstm.LSTMCell", "fastlstm.SequenceModel", "fastlstm.KerasLSTM")
#: JSON values of every type but bool, for options that take a bool (the ints 0 and 1 are bools to fastlstm).
_NOT_BOOLS = ("true", 2, -1, 1.5, None, [], {}, [True])
#: JSON values of every type but int, for options that take an int.
_NOT_INTS = ("5", 5.0, True, False, None, [5], {"size": 5})
_REMOVED = object()
#: Stands for raw JSON text in ``with_raw_value``.
_RAW = "@raw@"


@dataclass(frozen=True)
class SavedFile:
    """A valid file as ``fastlstm.save`` wrote it, split into its parts."""

    raw: bytes

    @property
    def header_length(self) -> int:
        return int.from_bytes(self.raw[:8], "little")

    @property
    def header_text(self) -> str:
        return self.raw[8 : 8 + self.header_length].decode("utf-8")

    @property
    def data(self) -> bytes:
        return self.raw[8 + self.header_length :]

    def header(self) -> dict[str, Any]:
        """A fresh parse of the header, to change."""
        return json.loads(self.header_text)

    def tensor_names(self) -> list[str]:
        return [name for name in self.header() if name != _METADATA]

    def config(self) -> dict[str, Any]:
        return json.loads(self.header()[_METADATA]["config"])

    def lstm_path(self) -> tuple[str, ...]:
        """Where the LSTM's options are: the configuration, or its "lstm" object (SequenceModel, KerasLSTM)."""
        return (_METADATA, "config", "lstm") if "lstm" in self.config() else (_METADATA, "config")


def assemble(header: Any, data: bytes, *, raw: bool = False) -> bytes:
    """A file of ``header`` (a JSON value, or with ``raw`` its text or bytes as they are) padded with spaces to a
    multiple of 8 bytes, its length in front and ``data`` after it."""
    text = header if raw else json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    encoded = text.encode("utf-8") if isinstance(text, str) else text
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + data


def _edit(node: Any, path: tuple[Any, ...], value: Any, rename: str | None) -> None:
    key, rest = path[0], path[1:]
    if rest:
        child = node[key]
        if isinstance(child, str):  # the configuration: JSON text inside the metadata
            parsed = json.loads(child)
            _edit(parsed, rest, value, rename)
            node[key] = json.dumps(parsed)
        else:
            _edit(child, rest, value, rename)
    elif rename is not None:
        node[rename] = node.pop(key)
    elif value is _REMOVED:
        node.pop(key)
    else:
        node[key] = value


def edited(saved: SavedFile, path: tuple[Any, ...], value: Any = _REMOVED, *, rename: str | None = None) -> bytes:
    """The file with the header's value at ``path`` (keys from the top; through "config" into the configuration)
    set to ``value``, or removed, or with its key renamed to ``rename``."""
    header = saved.header()
    _edit(header, path, value, rename)
    return assemble(header, saved.data)


def with_raw_value(saved: SavedFile, path: tuple[Any, ...], text: str) -> bytes:
    """The file with the value at ``path`` replaced by the JSON ``text`` as it is (json.dumps cannot write values
    nested past the recursion limit)."""
    file = SavedFile(edited(saved, path, _RAW))
    header = file.header_text.rstrip(" ").replace(f'\\"{_RAW}\\"', text).replace(f'"{_RAW}"', text)
    return assemble(header, saved.data, raw=True)


def sample_tensors(saved: SavedFile, rng) -> list[str]:
    """The first, the last and one other tensor: the ends of the data and its middle."""
    names = saved.tensor_names()
    return sorted({names[0], names[-1], names[int(rng.integers(len(names)))]}, key=names.index)


# ---- the container ------------------------------------------------------------------------------------------------


def truncations(saved: SavedFile, rng) -> Iterator[Mutation]:
    size, header_end = len(saved.raw), 8 + saved.header_length
    ends = {*range(9), 9 + int(rng.integers(8)), header_end - 1, header_end, header_end + 1, size - 4, size - 1}
    ends |= {int(end) for end in rng.integers(9, size, 24)}
    for end in sorted(ends):
        yield f"truncated to {end} of {size} bytes", saved.raw[:end]


def appendages(saved: SavedFile, rng) -> Iterator[Mutation]:
    for count in (1, 3, 4, 8, int(rng.integers(9, 4096))):
        yield f"{count} zero bytes appended", saved.raw + bytes(count)
    yield "random bytes appended", saved.raw + rng.bytes(int(rng.integers(1, 64)))


def header_lengths(saved: SavedFile, rng) -> Iterator[Mutation]:
    length, available = saved.header_length, len(saved.raw) - 8
    values = {0, 1, 2, 7, length - 8, length - 1, length + 1, length + 8, available, available + 1, len(saved.raw)}
    values |= {MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1, 2**32, 2**32 + length, 2**63, 2**64 - 1}
    values |= {int(value) for value in rng.integers(0, available, 12)} | {int(rng.integers(available, 2**62))}
    for value in sorted(values - {length}):
        yield f"header length {value} (is {length})", value.to_bytes(8, "little") + saved.raw[8:]


def header_garbage(saved: SavedFile, rng) -> Iterator[Mutation]:
    """Byte-level damage to the header's text."""
    text = saved.header_text.rstrip(" ").encode("utf-8")
    at = text.index(saved.tensor_names()[0].encode()) + 1  # inside the first tensor's name
    garbage = {
        **{f"invalid UTF-8 {bad!r} in a name": text[:at] + bad + text[at:] for bad in _INVALID_UTF8},
        "NUL in a name": text[:at] + b"\x00" + text[at:],
        "UTF-8 byte order mark in front": b"\xef\xbb\xbf" + text,
        "text after the object": text + b"x",
        "a second object": text + b"{}",
        "trailing comma": text[:-1] + b",}",
        "a comment": b"/* fastlstm */" + text,
        "single quotes": text.replace(b'"', b"'"),
        "last brace missing": text[:-1],
        "empty": b"",
        "spaces": b" " * 64,
        "a 5001-digit offset": text.replace(b'"data_offsets":[0,', b'"data_offsets":[1' + b"0" * 5000 + b",", 1),
        "offset 1e999 (infinity)": text.replace(b'"data_offsets":[0,', b'"data_offsets":[1e999,', 1),
        "offset NaN": text.replace(b'"data_offsets":[0,', b'"data_offsets":[NaN,', 1),
    }
    for depth in (10**5, 10**6):
        garbage[f"{depth} nested arrays"] = b"[" * depth + b"]" * depth
        garbage[f"{depth} unclosed arrays"] = b"[" * depth
        garbage[f"{depth} nested objects"] = b'{"a":' * depth + b"0" + b"}" * depth
    for what, header in garbage.items():
        yield f"header: {what}", assemble(header, saved.data, raw=True)


_INVALID_UTF8 = (b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80")


def non_object_headers(saved: SavedFile, rng) -> Iterator[Mutation]:
    for value in ([], "fastlstm", 1, None, True, [saved.header()]):
        yield f"header {json.dumps(value):.20}", assemble(value, saved.data)


def _name_twice(config_text: str, config: dict[str, Any]) -> str:
    """``config_text`` with its first name given once more in front."""
    first = next(iter(config))
    return "{" + f"{json.dumps(first)}: {json.dumps(config[first])}, " + config_text[1:]


def duplicate_names(saved: SavedFile, rng) -> Iterator[Mutation]:
    """Names given twice in one object, made on the raw text: a dict cannot hold them."""
    text, header = saved.header_text.rstrip(" "), saved.header()
    for name in [*sample_tensors(saved, rng), _METADATA]:
        entry = f"{json.dumps(name)}:{json.dumps(header[name], separators=(',', ':'), ensure_ascii=False)}"
        assert entry in text
        yield f"{name} twice", assemble(text.replace(entry, f"{entry},{entry}", 1), saved.data, raw=True)
    for field, twice in (('"dtype":"F32"', '"dtype":"F32","dtype":"F16"'), ('"format":', '"format":"x","format":')):
        yield f"{field} twice", assemble(text.replace(field, twice, 1), saved.data, raw=True)
    config_text = header[_METADATA]["config"]
    config = json.loads(config_text)
    texts = {"config: a name twice": _name_twice(config_text, config)}
    if "lstm" in config:
        inner = json.dumps(config["lstm"])
        texts["config.lstm: a name twice"] = config_text.replace(inner, _name_twice(inner, config["lstm"]), 1)
    for what, changed in texts.items():
        yield what, edited(saved, (_METADATA, "config"), changed)


def large_headers(saved: SavedFile, rng) -> Iterator[Mutation]:
    """Headers of hundreds of kilobytes (under the cap, MAX_HEADER_BYTES) whose checks must stay linear in their
    length: work quadratic in it would take minutes on these (the repeated name and the shape: 50,000 items)."""
    many = 5 * 10**4
    names = ",".join(f'"t{index}":0' for index in range(many))
    yield f"{many} names, the first repeated", assemble(f'{{{names},"t0":0}}', saved.data, raw=True)
    name = saved.tensor_names()[0]
    yield f"{name}: shape of {many} sizes 2**40", edited(saved, (name, "shape"), [2**40] * many)
    shape = saved.header()[name]["shape"]
    yield f"{name}: shape of {many} sizes, as many values", edited(saved, (name, "shape"), [1] * many + shape)
    header = {_METADATA: saved.header()[_METADATA]}
    few = 10**4
    header.update({f"t{index}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for index in range(few)})
    yield f"{few} empty tensors", assemble(header, b"")
    options = {f"option{index}": index for index in range(few)}
    yield f"{few} unknown options", edited(saved, (*saved.lstm_path(), "options"), options)
    kept = {key: value for key, value in saved.header()[_METADATA].items() if key != "class"}
    metadata = {**{f"key{index}": "" for index in range(few)}, **kept}
    yield f"{few} unknown metadata keys, class missing", edited(saved, (_METADATA,), metadata)


# ---- tensor entries -----------------------------------------------------------------------------------------------


def dtypes(saved: SavedFile, rng) -> Iterator[Mutation]:
    values = ("F16", "BF16", "F64", "I32", "I8", "U8", "BOOL", "f32", "F32 ", " F32", "float32", "<f4", "", None)
    for name in sample_tensors(saved, rng):
        for value in (*values, 32, 4.0, True, ["F32"], {"F32": 1}):
            yield f"{name}: dtype {value!r}", edited(saved, (name, "dtype"), value)


def _shape_values(shape: list[int]) -> Iterator[Any]:
    first, rest = shape[0], shape[1:]
    yield from ([first + 1, *rest], [*shape[:-1], shape[-1] + 1], [0, *rest], [-first, *rest], [-1, *rest])
    if first > 1:
        yield [first - 1, *rest]
    for value in (float(first), True, str(first), None, [first], 2**40, 2**63, 2**64, 10**30):
        yield [value, *rest]
    yield from ([*shape, 1], [*shape, 2], [1, *shape], shape[:-1], [], [2**40, 0, *rest], [2**64, 0])
    yield from ([1] * (65 - len(shape)) + shape, [shape], None, "x".join(map(str, shape)), {"0": first})
    yield from (shape[::-1], [math.prod(shape)])  # as many values, in another shape


def shapes(saved: SavedFile, rng) -> Iterator[Mutation]:
    for name in sample_tensors(saved, rng):
        shape = saved.header()[name]["shape"]
        for value in _shape_values(shape):
            if value != shape:  # a square matrix reversed, a vector flattened
                yield f"{name}: shape {value!r:.60}", edited(saved, (name, "shape"), value)


def _offset_values(begin: int, end: int, data_size: int) -> Iterator[Any]:
    yield from ([begin + 4, end + 4], [begin - 4, end - 4], [begin, end + 4], [begin, end - 4], [end, begin])
    yield from ([begin, begin], [begin + data_size, end + data_size], [-end, -begin], [begin + 2**64, end + 2**64])
    yield from ([begin, 2**64], [float(begin), float(end)], [str(begin), str(end)], [True, end], [begin, None])
    yield from ([begin, end, end], [begin], [], {"begin": begin, "end": end}, f"{begin}-{end}", None)
    if begin > 0:
        yield [0, end - begin]  # on top of the first tensor


def offsets(saved: SavedFile, rng) -> Iterator[Mutation]:
    header = saved.header()
    for name in sample_tensors(saved, rng):
        begin, end = header[name]["data_offsets"]
        for value in _offset_values(begin, end, len(saved.data)):
            yield f"{name}: data_offsets {value!r:.60}", edited(saved, (name, "data_offsets"), value)
    # Two neighbours of different sizes trading offsets (two of one size would make a valid file).
    names = saved.tensor_names()
    for first, second in itertools.pairwise(names):
        one, other = header[first]["data_offsets"], header[second]["data_offsets"]
        if one[1] - one[0] != other[1] - other[0]:
            traded = SavedFile(edited(saved, (first, "data_offsets"), other))
            yield f"{first} and {second} trade offsets", edited(traded, (second, "data_offsets"), one)
            break


def entries(saved: SavedFile, rng) -> Iterator[Mutation]:
    for name in sample_tensors(saved, rng):
        yield f"{name}: an extra field", edited(saved, (name, "offset"), 0)
        for field in ("dtype", "shape", "data_offsets"):
            yield f"{name}: no {field}", edited(saved, (name, field))
            renamed = field.capitalize() if field != "data_offsets" else "data_offset"
            yield f"{name}: {field} as {renamed}", edited(saved, (name, field), rename=renamed)
        for value in ([], "F32", None, 1, True, list(saved.header()[name].values())):
            yield f"{name}: entry {value!r:.40}", edited(saved, (name,), value)


def _retiled(saved: SavedFile, drop: str | None = None, add: tuple[str, list[int]] | None = None) -> bytes:
    """The file without the tensor ``drop`` or with a tensor ``add`` (name, shape) of zeros at the end, the data
    and offsets laid out anew so that only the names are wrong."""
    header, data = saved.header(), saved.data
    pieces, laid_out, position = [], {_METADATA: header.pop(_METADATA)}, 0
    for name, entry in header.items():
        if name != drop:
            begin, end = entry["data_offsets"]
            pieces.append(data[begin:end])
            laid_out[name] = {**entry, "data_offsets": [position, position + end - begin]}
            position += end - begin
    if add is not None:
        name, shape = add
        size = 4 * math.prod(shape)
        pieces.append(bytes(size))
        laid_out[name] = {"dtype": "F32", "shape": shape, "data_offsets": [position, position + size]}
    return assemble(laid_out, b"".join(pieces))


def tensor_names(saved: SavedFile, rng) -> Iterator[Mutation]:
    names = saved.tensor_names()
    for name in names:
        yield f"{name} removed", _retiled(saved, drop=name)
    for name in sample_tensors(saved, rng):
        prefix_lost = name.split(".", 1)[-1]
        for new in (name + "_x", name.upper(), "", " " + name, name.replace("_l0", "_l9"), prefix_lost, "__metadata"):
            if new not in names:
                yield f"{name} renamed {new!r}", edited(saved, (name,), rename=new)
    unknown = ("extra", "weight_ih_l9", "weight_ih_l0", "weight_ih", "lstm.weight_ih_l0", "linear.weight")
    for name in (*unknown, "embedding.weight", "lstm.extra", "linear.extra", names[0] + "_reverse"):
        if name not in names:
            for shape in ([1], [0], [2, 3]):
                yield f"unknown tensor {name!r} {shape}", _retiled(saved, add=(name, shape))


# ---- metadata -----------------------------------------------------------------------------------------------------

_FORMAT_VERSIONS = ("2", "999", "999999999", "0", "-1", "+1", " 1", "1 ", "1.0", "1e0", "one", "", "0x1", "1_0")


def metadata(saved: SavedFile, rng) -> Iterator[Mutation]:
    original = saved.header()[_METADATA]
    for value in ([], "fastlstm", 1, None, True, [original]):
        yield f"__metadata__ {json.dumps(value):.20}", edited(saved, (_METADATA,), value)
    yield "__metadata__ removed", edited(saved, (_METADATA,))
    for key in _METADATA_KEYS:
        yield f"{key} removed", edited(saved, (_METADATA, key))
        yield f"{key} renamed", edited(saved, (_METADATA, key), rename=key.upper())
        for value in (1, None, [], {}, True, 1.5, [original[key]]):
            yield f"{key} {value!r:.40}", edited(saved, (_METADATA, key), value)
    for value in ("fastlstm2", "", "FASTLSTM", "safetensors", " fastlstm", "fastlstm\x00", "pytorch"):
        yield f"format {value!r}", edited(saved, (_METADATA, "format"), value)
    # The last three: digits, but not ASCII ones (fullwidth one, superscript two, Arabic-Indic one).
    for value in (*_FORMAT_VERSIONS, "9999999999", "9" * 5000, "\uff11", "\u00b2", "\u0661"):
        yield f"format_version {value!r:.20}", edited(saved, (_METADATA, "format_version"), value)
    for value in ("fastlstm.GRU", "", "LSTM", "fastlstm.lstm", "torch.nn.LSTM", "fastlstm.LSTM ", "x" * 10**5):
        yield f"class {value!r:.20}", edited(saved, (_METADATA, "class"), value)
    for value in _CLASSES:
        if value != original["class"]:  # every other class has other options: the configuration does not fit
            yield f"class {value!r}", edited(saved, (_METADATA, "class"), value)
    for value in ("fp16", "", "FP32", "int4", " fp32", "fp32\n", "float32", "bfloat16"):
        yield f"precision {value!r}", edited(saved, (_METADATA, "precision"), value)


# ---- the configuration --------------------------------------------------------------------------------------------


def config_text(saved: SavedFile, rng) -> Iterator[Mutation]:
    """Configurations that are not JSON objects."""
    original = saved.header()[_METADATA]["config"]
    texts = ("", "{", "nul", "{'input_size': 5}", "[1,]", '{"a": 1,}', "\x00", "{}x", original + "x", "NaN")
    deep = ("[" * 10**5, '{"a":' * 10**5, "[" * 10**5 + "]" * 10**5)
    for value in (*texts, original[: len(original) // 2], *deep, *map(json.dumps, ([], "lstm", 1, None, True))):
        yield f"config {value!r:.30}", edited(saved, (_METADATA, "config"), value)
    yield "config in a list", edited(saved, (_METADATA, "config"), f"[{original}]")


def config_keys(saved: SavedFile, rng) -> Iterator[Mutation]:
    config = saved.config()
    levels = [((_METADATA, "config"), config)]
    if "lstm" in config:
        levels.append(((_METADATA, "config", "lstm"), config["lstm"]))
    for path, options in levels:
        for key in options:
            yield f"{path[-1]}: {key} removed", edited(saved, (*path, key))
            yield f"{path[-1]}: {key} renamed", edited(saved, (*path, key), rename=key.upper())
        for key, value in (("dropout", 0.0), ("", None), ("seed", 0), ("precision", "fp32")):
            yield f"{path[-1]}: unknown option {key!r}", edited(saved, (*path, key), value)


_ACTIVATIONS = (
    "sigmoid",
    [],
    ["sigmoid", "tanh"],
    ["sigmoid", "tanh", "tanh", "tanh"],
    ["SIGMOID", "tanh", "tanh"],
    ["swish", "tanh", "tanh"],
    [None, None, None],
    [[], "tanh", "tanh"],
    [["sigmoid", "a"], "tanh", "tanh"],
    [["sigmoid", True], "tanh", "tanh"],
    [["sigmoid", 1, 2, 3], "tanh", "tanh"],
    [["leaky_relu", [0.1]], "tanh", "tanh"],
    [[1, 2], "tanh", "tanh"],
    {"gate": "sigmoid"},
    3,
    [3, 3, 3],
)


def _option_values(key: str, options: dict[str, Any], keras: bool) -> Iterator[Any]:
    """Values of an LSTM option that no file of this model may hold: wrong types, out of range, or in conflict with
    the tensors or with the other options."""
    original = options[key]
    if key in ("input_size", "hidden_size", "num_layers", "proj_size"):
        yield from (*_NOT_INTS, -1, original + 1, 10**6, 10**18, 2**63, 2**64, 10**30)
        if original > 0:  # proj_size 0 is valid
            yield from (original - 1, 0) if original > 1 else (0,)
        if key == "proj_size":
            yield from (options["hidden_size"], options["hidden_size"] + 1)
    elif key == "threads":
        yield from ("2", 2.0, True, 0, -1, [], {})
    elif key == "activations":
        yield from _ACTIVATIONS
    elif key == "clip":
        yield from (0, -1, -0.5, "1", True, [], {}, float("nan"), float("-inf"))
    else:  # the bools
        yield from _NOT_BOOLS
        # Flips that change the tensors' names, or that a Keras layer or a bidirectional LSTM cannot have.
        if key in ("bias", "bidirectional", "peepholes") or (key == "reverse" and (keras or options["bidirectional"])):
            yield not original
        if key == "batch_first" and keras:
            yield False


def lstm_options(saved: SavedFile, rng) -> Iterator[Mutation]:
    config = saved.config()
    keras = "go_backwards" in config
    options = config.get("lstm", config)
    for key in options:
        for value in _option_values(key, options, keras):
            yield f"{key} {value!r:.40}", edited(saved, (*saved.lstm_path(), key), value)


def model_settings(saved: SavedFile, rng) -> Iterator[Mutation]:
    """The settings of SequenceModel and KerasLSTM beyond their LSTM's."""
    config = saved.config()
    values: dict[str, tuple[Any, ...]] = {}
    if "embedding" in config:
        values = {part: (1, 0, "true", None, [], not config[part]) for part in ("embedding", "bias")}
    if "go_backwards" in config:
        garbage = ("max", "", "CONCAT", "concat ", 1, [], True, {})
        unidirectional = ("concat", "sum", "mul", "ave")  # the merge modes of a Bidirectional layer only
        values = {
            "name": (1, None, [], {}, True, 1.5),
            "return_sequences": _NOT_BOOLS,
            "return_state": _NOT_BOOLS,
            "zero_output_for_mask": _NOT_BOOLS,
            "go_backwards": (*_NOT_BOOLS, not config["go_backwards"]),
            "merge_mode": garbage if config["lstm"]["bidirectional"] else (*garbage, *unidirectional),
            "mask_value": ("0", True, False, [], {}, [0.0]),
        }
    if "lstm" in config:
        values["lstm"] = ([], "lstm", 1, None, True)
    for key, bad in values.items():
        for value in bad:
            yield f"{key} {value!r:.40}", edited(saved, (_METADATA, "config", key), value)


def deep_nesting(saved: SavedFile, depths: range) -> Iterator[tuple[str, str, bytes]]:
    """(where, what, the file) with a value nested ``depths`` deep in the header (a shape) and in the configuration
    (options and settings): near the interpreter's recursion limit the JSON may still parse, and a check or a
    message that walks the value must not recurse past the limit."""
    config = saved.config()
    paths = [(saved.tensor_names()[0], "shape"), (*saved.lstm_path(), "input_size")]
    paths += [(_METADATA, "config", key) for key in ("merge_mode", "name", "embedding") if key in config]
    if "activations" in config.get("lstm", config):
        paths.append((*saved.lstm_path(), "activations"))
    for depth in depths:
        nested = "[" * depth + "0" + "]" * depth
        for path in paths:
            yield path[-1], f"{path[-1]} nested {depth} deep", with_raw_value(saved, path, nested)


#: Every family of bad files, by name.
FAMILIES = {
    family.__name__: family
    for family in (
        truncations,
        appendages,
        header_lengths,
        header_garbage,
        non_object_headers,
        duplicate_names,
        dtypes,
        shapes,
        offsets,
        entries,
        tensor_names,
        metadata,
        config_text,
        config_keys,
        lstm_options,
        model_settings,
    )
}
