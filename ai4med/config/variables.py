"""`{VAR}` substitution and `--set KEY=VALUE` overrides.

Clara configs name paths and hyper-parameters once (environment.json, a top-level
global, or `--set` on the command line) and refer to them as `"{NAME}"`. A string that
is exactly `"{NAME}"` takes the variable's typed value (so `"{epochs}"` stays an int and
`"{roi}"` a list); inside a longer string the value is formatted with `str()`. Write
`{{` / `}}` for literal braces. Variables may refer to other variables.

Example:
    >>> substitute({"n": "{epochs}", "f": "{ROOT}/a.json"}, {"epochs": 5, "ROOT": "/d"}, "c.json")
    {'n': 5, 'f': '/d/a.json'}
    >>> parse_overrides(["epochs=5", "multi_gpu=true", "roi=[96,96,96]", "name=abc"])
    {'epochs': 5, 'multi_gpu': True, 'roi': [96, 96, 96], 'name': 'abc'}
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ai4med.config.errors import ConfigError, join_pointer

OVERRIDE_FILE = "--set"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_EXACT = re.compile(r"\{(" + _NAME + r")\}")
_TOKEN = re.compile(r"\{\{|\}\}|\{(" + _NAME + r")\}")
_SCALARS = (str, int, float, bool, type(None))

# lookup(name, file, pointer) -> value; raises ConfigError located at (file, pointer)
Lookup = Callable[[str, "str | None", "str | None"], Any]


@dataclass(frozen=True)
class Variable:
    """A variable's value and where it was defined (for error messages)."""

    value: Any
    file: str | None = None
    pointer: str | None = None


# --- --set -------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A `--set` value: JSON if it parses (numbers, lists, quoted strings), then the words
    true/false/none (any case), else the text itself."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    word = text.lower()
    if word in ("true", "false"):
        return word == "true"
    if word in ("none", "null"):
        return None
    return text


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Typed `{key: value}` from `["KEY=VALUE", ...]` (a mapping is passed through).

    Raises:
        ConfigError: an item without `=` or with an empty key (the item is named).
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    if isinstance(items, str):
        items = [items]
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            raise ConfigError(f"{item!r} is not KEY=VALUE (for example epochs=5)", file=OVERRIDE_FILE)
        out[key] = parse_value(value)
    return out


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(variables, config paths): dotted keys such as `train.optimizer.args.lr` set config nodes."""
    plain = {k: v for k, v in overrides.items() if "." not in k}
    dotted = {k: v for k, v in overrides.items() if "." in k}
    return plain, dotted


def set_config_path(tree: Any, key: str, value: Any, file: str | None) -> None:
    """Set the node named by dotted `key` (`train.pre_transforms.3.args.a_min`) in place.

    Missing object keys are created; list indices must exist. A missing object key on the way that is
    close to one the object has (`train.optimzer.args.lr`) is refused as a typo: created, it would be
    a new node nothing reads, and the run would go on with the old value.
    """
    tokens = key.split(".")
    node, pointer = tree, ""
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if isinstance(node, dict):
            if last:
                node[tok] = copy.deepcopy(value)
                return
            if tok not in node:
                close = difflib.get_close_matches(tok, [str(k) for k in node], n=3, cutoff=0.75)
                if close:
                    raise ConfigError(
                        f"--set {key}: {join_pointer(pointer, tok)} does not exist; did you mean "
                        f"{', '.join(repr(c) for c in close)}? (a new node there would be read by nothing)",
                        file=file, pointer=pointer or "/",
                    )
            child = node.setdefault(tok, {})
        elif isinstance(node, list):
            if not tok.lstrip("-").isdigit() or not -len(node) <= int(tok) < len(node):
                raise ConfigError(
                    f"--set {key}: {tok!r} is not an index of this list of {len(node)} items",
                    file=file, pointer=pointer,
                )
            if last:
                node[int(tok)] = copy.deepcopy(value)
                return
            child = node[int(tok)]
        else:
            raise ConfigError(
                f"--set {key}: this node is a {type(node).__name__}, not an object or a list",
                file=file, pointer=pointer,
            )
        node, pointer = child, join_pointer(pointer, tok)


# --- variables ---------------------------------------------------------------------------
def config_globals(config: Any) -> dict[str, Any]:
    """The top-level scalars (and lists of scalars) of a config: its user variables."""
    if not isinstance(config, dict):
        return {}
    return {
        k: v for k, v in config.items()
        if isinstance(v, _SCALARS) or (isinstance(v, list) and all(isinstance(x, _SCALARS) for x in v))
    }


def layer(values: Mapping[str, Any], file: str | None, located: bool = True) -> dict[str, Variable]:
    """Variables from one source; `located` gives each the pointer `/KEY` in `file`."""
    return {k: Variable(v, file, join_pointer("", k) if located else None) for k, v in values.items()}


def resolve_variables(variables: Mapping[str, Variable]) -> dict[str, Any]:
    """Final values: variables whose values contain `{OTHER}` are substituted (cycles fail)."""
    resolved: dict[str, Any] = {}
    stack: list[str] = []

    def lookup(name: str, file: str | None, pointer: str | None) -> Any:
        if name in resolved:
            return resolved[name]
        if name not in variables:
            _undefined(name, variables, file, pointer)
        var = variables[name]
        if name in stack:
            cycle = " -> ".join([*stack[stack.index(name):], name])
            raise ConfigError(f"variables refer to each other in a cycle: {cycle}", file=var.file, pointer=var.pointer)
        stack.append(name)
        value = _walk(var.value, lookup, var.file, var.pointer or "")
        stack.pop()
        resolved[name] = value
        return value

    for name in variables:
        lookup(name, None, None)
    return resolved


def substitute(tree: Any, variables: Mapping[str, Any], file: str | None, pointer: str = "") -> Any:
    """A copy of `tree` with every `{VAR}` replaced; undefined names fail at their pointer."""

    def lookup(name: str, f: str | None, p: str | None) -> Any:
        if name not in variables:
            _undefined(name, variables, f, p)
        return variables[name]

    return _walk(tree, lookup, file, pointer)


def referenced_names(tree: Any) -> set[str]:
    """Every `{VAR}` name the strings of `tree` (JSON: dicts, lists, scalars) refer to."""
    if isinstance(tree, str):
        return {m.group(1) for m in _TOKEN.finditer(tree) if m.group(1)}
    if isinstance(tree, dict):
        return set().union(*(referenced_names(v) for v in tree.values()))
    if isinstance(tree, list):
        return set().union(*(referenced_names(v) for v in tree))
    return set()


class ReadTracking(dict):
    """A dict that remembers which keys were asked for (`get`, `[]`, `in`): the variables some
    code used, so that a `--set` nobody reads (a typo) can be reported."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)


def _undefined(name: str, known: Mapping[str, Any], file: str | None, pointer: str | None) -> None:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"undefined variable {{{name}}}{hint} (define it in environment.json, as a top-level key "
        f"of the config, or with --set {name}=VALUE)",
        file=file, pointer=pointer,
    )


def _walk(node: Any, lookup: Lookup, file: str | None, pointer: str) -> Any:
    if isinstance(node, str):
        return _substitute_string(node, lookup, file, pointer)
    if isinstance(node, dict):
        return {k: _walk(v, lookup, file, join_pointer(pointer, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, lookup, file, join_pointer(pointer, i)) for i, v in enumerate(node)]
    return node


def _substitute_string(text: str, lookup: Lookup, file: str | None, pointer: str) -> Any:
    if "{" not in text and "}}" not in text:
        return text
    exact = _EXACT.fullmatch(text)
    if exact:
        return copy.deepcopy(lookup(exact.group(1), file, pointer))

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        return str(lookup(m.group(1), file, pointer))

    return _TOKEN.sub(repl, text)
