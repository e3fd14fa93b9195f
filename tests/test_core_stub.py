"""src/fastlstm/_core.pyi, the type stub of the C++ extension, against the extension itself: the same public names in
the module, in each of its submodules and in each of its classes, and the same parameters with the same defaults in
every function and method (as pybind11 writes them on the first line of each docstring)."""

from __future__ import annotations

import ast
import inspect
import re
import types
from pathlib import Path

import fastlstm
from fastlstm import _core

STUB = Path(fastlstm.__file__).with_name("_core.pyi")


def _public(names) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def _stub_scopes() -> dict[str, dict[str, ast.stmt]]:
    """The stub's definitions by scope: "_core", "_core.<submodule>" (declared as ``name: _Class``, whose class body
    lists the submodule's functions) and "_core.<Class>"."""
    module = ast.parse(STUB.read_text())
    top = {}
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top[node.target.id] = node
    scopes = {"_core": {name: node for name, node in top.items() if not name.startswith("_")}}
    for name, node in scopes["_core"].items():
        if isinstance(node, ast.AnnAssign) and isinstance(node.annotation, ast.Name) and node.annotation.id in top:
            node = top[node.annotation.id]  # a submodule: the private class that lists its functions
        if isinstance(node, ast.ClassDef):
            scopes[f"_core.{name}"] = {
                member.name: member for member in node.body if isinstance(member, ast.FunctionDef)
            }
    return scopes


def _runtime_scopes() -> dict[str, object]:
    scopes: dict[str, object] = {"_core": _core}
    for name in _public(dir(_core)):
        value = getattr(_core, name)
        if isinstance(value, (types.ModuleType, type)):
            scopes[f"_core.{name}"] = value
    return scopes


def test_the_stub_names_exactly_what_the_extension_has():
    stub, runtime = _stub_scopes(), _runtime_scopes()
    assert stub.keys() == runtime.keys(), "submodules and classes"
    for scope, names in stub.items():
        assert _public(names) == _public(dir(runtime[scope])), scope
    assert isinstance(_core.__version__, str) and "__version__" in {
        node.target.id for node in ast.parse(STUB.read_text()).body if isinstance(node, ast.AnnAssign)
    }


def _split_top_level(text: str) -> list[str]:
    """text split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char in "[("
        depth -= char in "])"
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [part.strip() for part in [*parts, text[start:]] if part.strip()]


def _runtime_parameters(function) -> list[tuple[str, str | None]]:
    """(name, default text or None) of each parameter in pybind11's signature line, e.g.
    ``forward(self: fastlstm._core.PackedLstm, x: numpy.typing.NDArray[numpy.float32], ..., lengths: ... = None)``."""
    match = re.match(r"\w+\((.*)\) ->", function.__doc__.splitlines()[0])
    assert match, function.__doc__
    parameters = []
    for part in _split_top_level(match.group(1)):
        annotated, _, default = part.partition(" = ")
        parameters.append((annotated.split(":")[0].strip(), default or None))
    return parameters


def _stub_parameters(node: ast.FunctionDef) -> list[tuple[str, str | None]]:
    arguments = node.args.args
    defaults = [None] * (len(arguments) - len(node.args.defaults)) + [ast.unparse(d) for d in node.args.defaults]
    return [(argument.arg, default) for argument, default in zip(arguments, defaults)]


def _normalized(default: str | None) -> str | None:
    """A default as Python reads it, so that pybind11's 'fp32' and the stub's "fp32" compare equal."""
    return None if default is None else repr(ast.literal_eval(default))


def test_the_stub_gives_every_function_the_parameters_and_defaults_of_the_extension():
    runtime = _runtime_scopes()
    for scope, names in _stub_scopes().items():
        for name, node in names.items():
            if not isinstance(node, ast.FunctionDef):
                continue
            value = inspect.getattr_static(runtime[scope], name)
            if any(ast.unparse(decorator) == "property" for decorator in node.decorator_list):
                assert isinstance(value, property), f"{scope}.{name}"
                continue
            expected = [(p, _normalized(d)) for p, d in _runtime_parameters(getattr(runtime[scope], name))]
            got = [(p, _normalized(d)) for p, d in _stub_parameters(node)]
            assert got == expected, f"{scope}.{name}"
