"""``fastlstm.save`` and ``fastlstm.load``: a model in a safetensors file, read back without unpickling anything.

The file holds the model's float32 parameters under PyTorch's names (an ``LSTM``'s load into ``torch.nn.LSTM`` with
the ``safetensors`` package and ``load_state_dict``) and, in the header's ``__metadata__``, the description of
``fastlstm._portable``: format name and version, the fastlstm version that wrote it, the class, the configuration as
JSON and the precision. ``load`` checks the container (``fastlstm._safetensors``), then the description exactly as the
constructor and ``load_state_dict`` check theirs, and packs the weights for this CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import Any

from . import _safetensors
from ._checks import check_precision, existing_file
from ._portable import PortableModel, check_description_version

_METADATA_KEYS = ("format", "format_version", "fastlstm_version", "class", "config", "precision")


def _model_classes() -> dict[str, type[PortableModel]]:
    """The classes a file may name (their ``_portable_name``); imported here, when a file is read, not at import."""
    from ._sequence import SequenceModel
    from .interop.keras import KerasLSTM
    from .lstm import LSTM, LSTMCell

    return {cls._portable_name: cls for cls in (LSTM, LSTMCell, SequenceModel, KerasLSTM)}


def save(model: Any, path: str | os.PathLike[str]) -> None:
    """Write ``model`` (a ``fastlstm.LSTM``, ``LSTMCell``, ``SequenceModel`` or ``KerasLSTM``) to ``path`` as a
    safetensors file: its float32 parameters under PyTorch's names (``SequenceModel``: ``embedding.weight``,
    ``lstm.*``, ``linear.weight``, ``linear.bias``), and its class, options and precision in the metadata. The file
    is written beside ``path`` and renamed over it when complete, so a reader never sees half a file.
    ``fastlstm.load(path)`` gives the model back."""
    classes = _model_classes()
    if not isinstance(model, tuple(classes.values())):
        names = ", ".join(classes)
        raise TypeError(f"model: expected one of {names}, got {type(model).__module__}.{type(model).__qualname__}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"path: expected a str path, got a path of {type(path).__name__}")
    state = model.__getstate__()
    metadata = {key: state[key] if isinstance(state[key], str) else json.dumps(state[key]) for key in _METADATA_KEYS}
    # Written under a fresh name beside the target, then renamed over it: readers see the old file or the new one,
    # never a part. Created with mode 0o666 as open() creates files, so the umask applies (mkstemp's 0o600 would
    # make a saved model unreadable to the other users a plain file would be readable to).
    temporary = f"{path}.{secrets.token_hex(8)}.tmp"
    try:
        with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as file:
            _safetensors.write(file, state["tensors"], metadata)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def load(path: str | os.PathLike[str], *, precision: str | None = None) -> PortableModel:
    """The model saved in ``path`` by ``fastlstm.save``, its weights packed for this CPU's kernel variant (the
    active one: ``FASTLSTM_ISA`` or ``fastlstm.use_isa`` choose another). ``precision`` ("fp32", "bf16", "int8")
    replaces the saved one. Safe on untrusted files: nothing is unpickled or evaluated, and anything malformed (see
    ``SECURITY.md``) raises ValueError naming the file and what is wrong."""
    path = existing_file(path, "load", "path", "a file saved by fastlstm.save")
    if precision is not None:
        precision = check_precision(precision)
    try:
        with open(path, "rb") as file:
            tensors, metadata = _safetensors.read(file, _safetensors.file_size(file))
        return _restore(metadata, tensors, precision)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{path}: {error}") from None


def _restore(metadata: dict[str, str], tensors: dict, precision: str | None) -> PortableModel:
    missing = [key for key in _METADATA_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"__metadata__: missing {missing}; a file written by fastlstm.save has {list(_METADATA_KEYS)}")
    text = metadata["format_version"]
    if not (text.isascii() and text.isdigit() and len(text) <= 9):  # no signs, spaces or numbers of any length
        raise ValueError(f"__metadata__: format_version: expected a version number, got {text[:40]!r}")
    check_description_version(metadata["format"], int(text), metadata["fastlstm_version"][:40])
    classes = _model_classes()
    cls = classes.get(metadata["class"])
    if cls is None:
        raise ValueError(f"__metadata__: class {metadata['class'][:80]!r}: expected one of {list(classes)}")
    try:
        config = json.loads(metadata["config"], object_pairs_hook=_safetensors.refuse_repeated_names)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("__metadata__: config: not valid JSON") from None
    except ValueError as error:  # repeated names, as in the header, or an integer of too many digits
        raise ValueError(f"__metadata__: config: {error}") from None
    model = cls.__new__(cls)
    model._portable_restore(config, precision or check_precision(metadata["precision"]), tensors)
    return model
