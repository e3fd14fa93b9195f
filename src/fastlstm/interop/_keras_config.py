"""The Keras importer's reading of a serialized Keras object (a live object's ``serialize_keras_object`` or a
``.keras`` file's ``config.json``): which LSTM and Bidirectional layers it holds, in which order, behind at most one
Masking layer; anything else raises, naming the layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_RECURRENT_CLASSES = ("LSTM", "Bidirectional")
#: The ops a functional model traces for a Masking layer's mask (NotEqual to mask_value, then Any over features).
_MASK_OPS = ("NotEqual", "Any")
_WHAT_IS_READ = (
    "a model may hold only an input, one Masking layer before the LSTM, and one LSTM or Bidirectional(LSTM) layer "
    "(in a Sequential, several in a row that make a multi-layer LSTM)"
)


@dataclass
class _LayerEntry:
    """An LSTM or Bidirectional layer found in the serialized object: where its weights are and its settings."""

    name: str
    class_name: str
    config: dict[str, Any]
    #: which layer of its class it is in the model (0 for the first), by which Keras names its weights' group
    class_index: int = 0
    #: the object itself is the layer (its weights sit at the file's root, or on the object)
    top: bool = False


@dataclass
class _Structure:
    entries: list[_LayerEntry] = field(default_factory=list)
    mask_value: float | None = None
    name: str = ""


def _where(name: str, class_name: str) -> str:
    return f"layer {name!r} ({class_name})"


def _check_keras_entry(entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    """(class_name, config) of one serialized Keras object; refuses what Keras itself did not define."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) or "class_name" not in entry:
        raise ValueError(f"from_keras: {where}: not a serialized Keras object (expected class_name and config)")
    class_name = entry["class_name"]
    module = str(entry.get("module") or "")
    registered = entry.get("registered_name")
    if not module.startswith("keras") or registered not in (None, class_name):
        label = registered or class_name
        raise ValueError(
            f"from_keras: {where}: {label!r} from module {module!r} is a custom class; only Keras's own layers are "
            f"read ({_WHAT_IS_READ})"
        )
    return class_name, entry["config"]


def _structure(serialized: dict[str, Any]) -> _Structure:
    """The recurrent layers (and Masking) of a serialized layer, Sequential or functional model."""
    class_name, config = _check_keras_entry(serialized, "obj")
    name = str(config.get("name", ""))
    if class_name in _RECURRENT_CLASSES:
        return _Structure([_LayerEntry(name, class_name, config, top=True)], None, name)
    if class_name == "Sequential":
        return _sequential_structure(config)
    if class_name in ("Functional", "Model"):
        return _functional_structure(config)
    raise ValueError(
        f"from_keras: obj: {class_name} {name!r} is not supported: expected an LSTM or Bidirectional(LSTM) layer, "
        "a Sequential or a functional Model"
    )


def _sequential_structure(config: dict[str, Any]) -> _Structure:
    structure = _Structure(name=str(config.get("name", "")))
    class_counts: dict[str, int] = {}
    for position, entry in enumerate(config.get("layers", [])):
        class_name, layer_config = _check_keras_entry(entry, f"layer #{position}")
        where = _where(str(layer_config.get("name", f"#{position}")), class_name)
        if class_name == "InputLayer" and position == 0:
            continue
        if class_name == "Masking" and not structure.entries and structure.mask_value is None:
            structure.mask_value = _mask_value(layer_config, where)
            continue
        if class_name in _RECURRENT_CLASSES:
            index = class_counts.get(class_name, 0)
            class_counts[class_name] = index + 1
            structure.entries.append(_LayerEntry(str(layer_config.get("name")), class_name, layer_config, index))
            continue
        raise ValueError(f"from_keras: {where} is not supported here: {_WHAT_IS_READ}")
    if not structure.entries:
        raise ValueError(f"from_keras: the Sequential {structure.name!r} holds no LSTM or Bidirectional layer")
    return structure


def _mask_value(config: dict[str, Any], where: str) -> float:
    value = config.get("mask_value", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"from_keras: {where}: mask_value={value!r} is not a number")
    return float(value)


def _history(argument: Any) -> tuple[str, int, int] | None:
    """(layer name, node, tensor) a serialized functional-graph tensor comes from; None for anything else."""
    if isinstance(argument, dict) and argument.get("class_name") == "__keras_tensor__":
        history = argument.get("config", {}).get("keras_history")
        if isinstance(history, list) and len(history) == 3:
            return str(history[0]), int(history[1]), int(history[2])
    return None


def _functional_structure(config: dict[str, Any]) -> _Structure:
    """Checks that the graph is input -> [Masking] -> LSTM or Bidirectional -> the model's outputs, and nothing
    else, apart from the NotEqual and Any ops a functional model traces to compute the Masking layer's mask."""
    structure = _Structure(name=str(config.get("name", "")))
    layers: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}  # name: (class, config, the call's node)
    for position, entry in enumerate(config.get("layers", [])):
        class_name, layer_config = _check_keras_entry(entry, f"layer #{position}")
        name = str(entry.get("name", layer_config.get("name")))
        where = _where(name, class_name)
        if class_name not in ("InputLayer", "Masking", *_MASK_OPS, *_RECURRENT_CLASSES):
            raise ValueError(f"from_keras: {where} is not supported here: {_WHAT_IS_READ}")
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ValueError(f"from_keras: {where} is called {len(nodes)} times in the model; expected once")
        layers[name] = (class_name, layer_config, nodes[0] if nodes else {})

    def only(class_names: tuple[str, ...]) -> list[str]:
        return [name for name, (class_name, _, _) in layers.items() if class_name in class_names]

    inputs, maskings, recurrent = only(("InputLayer",)), only(("Masking",)), only(_RECURRENT_CLASSES)
    if len(inputs) != 1:
        raise ValueError(f"from_keras: the model has {len(inputs)} inputs; expected one")
    if len(recurrent) != 1:
        raise ValueError(
            f"from_keras: the functional model has {len(recurrent)} LSTM or Bidirectional layers; expected one "
            "LSTM layer (several are read from a Sequential only)"
        )
    if len(maskings) > 1:
        raise ValueError(f"from_keras: the model has {len(maskings)} Masking layers; expected at most one")
    input_name, lstm_name = inputs[0], recurrent[0]
    lstm_class, lstm_config, lstm_node = layers[lstm_name]
    where = _where(lstm_name, lstm_class)
    source = input_name
    if maskings:
        masking_name = maskings[0]
        _, masking_config, masking_node = layers[masking_name]
        structure.mask_value = _mask_value(masking_config, _where(masking_name, "Masking"))
        _expect_call(masking_node, [input_name], set(), _where(masking_name, "Masking"))
        source = masking_name
    mask_argument = (lstm_node.get("kwargs") or {}).get("mask")
    mask_source = _history(mask_argument)
    if mask_source is not None:
        if not maskings:
            raise ValueError(f"from_keras: {where}: its mask comes from the graph without a Masking layer")
        _check_mask_ops(layers, mask_source[0], input_name, structure.mask_value, where)
    elif only(_MASK_OPS) or mask_argument is not None:
        raise ValueError(f"from_keras: {where}: its mask is not the Masking layer's (model: {_WHAT_IS_READ})")
    _expect_call(lstm_node, [source], {"mask", "training"}, where)
    structure.entries.append(_LayerEntry(lstm_name, lstm_class, lstm_config))

    outputs = config.get("output_layers")
    if isinstance(outputs, list) and len(outputs) == 3 and isinstance(outputs[0], str):
        outputs = [outputs]  # a single output is stored unnested
    sources = [(str(item[0]), int(item[1]), int(item[2])) for item in outputs or []]
    if sources != [(lstm_name, 0, index) for index in range(len(sources))] or not sources:
        raise ValueError(f"from_keras: the model's outputs {sources} are not the outputs of {where} in their order")
    return structure


def _expect_call(node: dict[str, Any], sources: list[str], allowed_kwargs: set[str], where: str) -> None:
    """The layer is called on exactly the outputs of ``sources``, with no keyword arguments but ``allowed_kwargs``."""
    arguments = node.get("args") or []
    found = [_history(argument) for argument in arguments]
    if found != [(source, 0, 0) for source in sources]:
        raise ValueError(f"from_keras: {where}: expected it to be called on the output of {sources}, got {arguments}")
    extra = sorted(set(node.get("kwargs") or {}) - allowed_kwargs)
    if extra:
        raise ValueError(f"from_keras: {where}: call arguments {extra} are not supported (e.g. initial_state)")


def _check_mask_ops(layers: dict, any_name: str, input_name: str, mask_value: float | None, where: str) -> None:
    """The LSTM's mask must be any(x != mask_value, axis=-1) of the input: what the Masking layer computes."""
    wrong = f"from_keras: {where}: its mask is not the Masking layer's any(x != mask_value, axis=-1)"
    any_class, any_config, any_node = layers.get(any_name, (None, {}, {}))
    if any_class != "Any" or any_config.get("axis") not in (-1, [-1]) or any_config.get("keepdims"):
        raise ValueError(wrong)
    arguments = any_node.get("args") or []
    source = _history(arguments[0]) if len(arguments) == 1 else None
    not_equal = layers.get(source[0]) if source else None
    if not_equal is None or not_equal[0] != "NotEqual":
        raise ValueError(wrong)
    operands = not_equal[2].get("args") or []
    if len(operands) != 2 or (_history(operands[0]) or ("",))[0] != input_name or operands[1] != mask_value:
        raise ValueError(wrong)
    used = {any_name, source[0]}
    unused = [name for name, (class_name, _, _) in layers.items() if class_name in _MASK_OPS and name not in used]
    if unused:
        raise ValueError(f"from_keras: the ops {unused} are not supported here: {_WHAT_IS_READ}")
