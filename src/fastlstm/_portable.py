"""What a model is, apart from the process holding it: its class, its options, its precision and its float32
parameters, under a format version. Pickles and ``fastlstm.save`` files both carry this description; neither carries
the packed weights, which belong to the kernel variant of the CPU that packs them and are rebuilt on arrival.

A model class takes part by subclassing ``PortableModel`` and providing ``_portable_config`` (its options, as JSON
values), ``_portable_tensors`` (its parameters by PyTorch's names) and ``_portable_restore`` (the inverse: set up a
new, empty instance from the three, checking them as its constructor and ``load_state_dict`` would, and packing for
the active kernel variant).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._checks import missing_and_unexpected
from ._core import __version__

#: The name every description carries, so that a stray pickle or file of something else is told apart.
FORMAT_NAME = "fastlstm"
#: Raised whenever the description changes in a way an older reader would misread (a new option, a renamed tensor).
#: Readers accept every version up to their own.
FORMAT_VERSION = 1


class PortableModel:
    """Pickle, copy and deepcopy support for the models, on the description above."""

    #: the class's name in descriptions: the public name users know it by
    _portable_name: str
    precision: str

    def _portable_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _portable_tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _portable_restore(self, config: Mapping[str, Any], precision: str, tensors: Mapping[str, np.ndarray]) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        # The tensors are the model's own arrays, not copies: pickle writes them once, and deepcopy copies them.
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "fastlstm_version": __version__,
            "class": self._portable_name,
            "config": self._portable_config(),
            "precision": self.precision,
            "tensors": self._portable_tensors(),
        }

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, Mapping):
            raise TypeError(
                f"cannot restore a {type(self).__name__} from a {type(state).__name__}: expected the state fastlstm "
                "writes"
            )
        check_description_version(state.get("format"), state.get("format_version"), state.get("fastlstm_version"))
        if state.get("class") != self._portable_name:
            raise ValueError(
                f"cannot restore a {type(self).__name__} from the state of a {state.get('class')!r}: the pickle does "
                "not match its class"
            )
        self._portable_restore(state["config"], state["precision"], state["tensors"])

    def __copy__(self):
        # A shallow copy shares the parameters, which no method changes in place (load_state_dict and astype
        # replace them), and the packed weights, which are read-only once packed: nothing is repacked.
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    # deepcopy goes through __getstate__ / __setstate__: the parameters are copied and packed anew, for the active
    # kernel variant (as astype and load_state_dict pack).


def check_description_version(format_name: Any, version: Any, written_by: Any) -> None:
    """Refuse (ValueError) what is not a fastlstm description, or one of a format version newer than this reader's,
    saying which fastlstm wrote it."""
    if format_name != FORMAT_NAME:
        raise ValueError(f"format: expected {FORMAT_NAME!r}, got {format_name!r}: not a model saved by fastlstm")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"format_version: expected an int >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"format_version: written by fastlstm {written_by} in format version {version}; this fastlstm "
            f"({__version__}) reads format versions up to {FORMAT_VERSION}: upgrade fastlstm to read it"
        )


def check_config_keys(config: Any, expected: tuple[str, ...], what: str) -> None:
    """Refuse a configuration that is not a mapping with exactly the ``expected`` keys (ValueError)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config: expected a JSON object of {what}'s options, got {type(config).__name__}")
    differences = missing_and_unexpected(config, expected)
    if differences:
        raise ValueError(f"config: {differences} for {what}; expected the options {list(expected)}")


def check_cell_count(cells: int, tensors: Any) -> None:
    """Refuse (ValueError) more cells (layers x directions) than ``tensors`` can hold, each cell having at least
    weight_ih and weight_hh. Checked before the names of the cells' parameters are listed: a description may claim
    any num_layers, and listing the names of 10**9 layers would take hours and gigabytes."""
    if isinstance(tensors, Mapping) and 2 * cells > len(tensors):
        raise ValueError(
            f"num_layers: {cells} cells (layers x directions) need at least {2 * cells} tensors (weight_ih and "
            f"weight_hh each), got {len(tensors)}"
        )


def split_prefix(tensors: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The tensors whose names start with ``prefix``, by the rest of their names."""
    return {name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)}
