"""load_config: a workflow config file (+ environment.json + `--set`) -> WorkflowConfig.

One loader serves config_train.json, config_validation.json and config_inference.json:
the workflows ask for the sections they need by JSON pointer and kind
(`cfg.build_list("/train/pre_transforms", "transforms")`), so the config engine knows
nothing about training and the workflows nothing about JSON.

Variables, lowest priority first: the MMAR defaults (`MMAR_ROOT`, `MMAR_CKPT_DIR`,
`MMAR_EVAL_OUTPUT_PATH`), environment.json, the config's top-level scalars, `--set`.
A `--set` key that is a top-level key of the config also replaces that value; a dotted
key (`train.optimizer.args.lr=0.1`) sets a nested node. Relative paths in variables are
kept as written; `resolve_path` or `{MMAR_ROOT}/...` make them absolute.

Example:
    >>> import json, os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "c.json"), "w") as fh:
    ...     json.dump({"epochs": 10, "train": {"n": "{epochs}"}}, fh)
    >>> cfg = load_config(os.path.join(d, "c.json"), overrides=["epochs=3"])
    >>> cfg.get("/train/n"), cfg.get("/epochs"), cfg.get("/validate", "none")
    (3, 3, 'none')
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ai4med.config.aiaa2019 import is_2019_form, normalize_2019
from ai4med.config.builder import ComponentBuilder, RegistrySource
from ai4med.config.errors import ConfigError, join_pointer, split_pointer
from ai4med.config.loader import load_json
from ai4med.config.mmar import Mmar
from ai4med.config.spec import parse_spec
from ai4med.config.variables import (
    OVERRIDE_FILE,
    ReadTracking,
    Variable,
    config_globals,
    layer,
    parse_overrides,
    referenced_names,
    resolve_variables,
    set_config_path,
    split_overrides,
    substitute,
)

_MISSING = object()
# the names Clara's MMAR layout and datalists define, meaningful with or without an MMAR folder
WELL_KNOWN_VARIABLES = frozenset({"MMAR_ROOT", "MMAR_CKPT_DIR", "MMAR_EVAL_OUTPUT_PATH", "MMAR_CKPT", "DATA_ROOT",
                                  "DATASET_JSON", "PROCESSING_TASK"})
Overrides = Iterable[str] | Mapping[str, Any] | str | None


class WorkflowConfig:
    """A loaded, substituted config and the builder of its components.

    Attributes:
        file: the config file as the user named it (used in messages).
        raw: the JSON as read; `data`: after `--set` and `{VAR}` substitution.
        variables: the final variable values.
        builder: the ComponentBuilder shared by all sections (so refs work across them).
        mmar: the MMAR the config belongs to, or None.
        environment_file: the environment.json used, or None.
    """

    def __init__(
        self,
        file: str,
        raw: Any,
        data: Any,
        variables: dict[str, Any],
        mmar: Mmar | None = None,
        environment_file: str | None = None,
        registries: RegistrySource | None = None,
    ) -> None:
        self.file = file
        self.raw = raw
        self.data = data
        self.variables = variables
        self.mmar = mmar
        self.environment_file = environment_file
        self.builder = ComponentBuilder(file, registries=registries, resolver=self._build_alias)
        self._alias_index: dict[str, list[tuple[str, bool]]] | None = None
        self.override_keys: list[str] = []  # the plain `--set` names (see `unused_overrides`)
        self.known_names: set[str] = set()  # names the files define or refer to

    def get(self, pointer: str, default: Any = None) -> Any:
        """The node at JSON pointer `pointer` (e.g. `/train/model/args`), or `default`."""
        node = self.data
        for token in split_pointer(pointer):
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return default
        return node

    def unused_overrides(self) -> list[str]:
        """The `--set NAME=VALUE` names that nothing uses: not a key or `{NAME}` of the config or
        environment.json, and not read as a variable by the code that has run so far (call it once
        the command has read its settings). Usually a typo (`learning_rat=1e-3`)."""
        read = getattr(self.variables, "read", set())
        return [k for k in self.override_keys if k not in self.known_names and k not in read]

    def warn_unused_overrides(self, log: logging.Logger) -> list[str]:
        """Log a warning (with close names) for each of `unused_overrides`; returns them."""
        unused = self.unused_overrides()
        candidates = sorted((self.known_names | getattr(self.variables, "read", set())) - set(self.override_keys))
        for key in unused:
            close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            log.warning("--set %s: nothing in %s uses %r (not a config key, variable or setting)%s",
                        key, self.file, key, hint)
        return unused

    def has(self, pointer: str) -> bool:
        return self.get(pointer, _MISSING) is not _MISSING

    def build(
        self, pointer: str, kind: str, required: bool = True, extra_args: Mapping[str, Any] | None = None
    ) -> Any:
        """The component at `pointer` built from the `kind` registry (None if disabled, or
        if absent and not `required`); `extra_args` are supplied by the workflow."""
        node = self.get(pointer, _MISSING)
        if node is _MISSING:
            if required:
                raise ConfigError(f"missing: the config has no {kind} component here", file=self.file, pointer=pointer)
            return None
        return self.builder.build(node, kind, pointer, extra_args)

    def build_list(self, pointer: str, kind: str) -> list[Any]:
        """The components of the list at `pointer` (an absent list gives [])."""
        return self.builder.build_list(self.get(pointer), kind, pointer)

    def resolve_path(self, path: str | os.PathLike[str]) -> str:
        """`path` made absolute: relative to the MMAR root if there is one, else to the cwd."""
        return self.mmar.resolve(path) if self.mmar else os.path.abspath(os.fspath(path))

    # --- refs to components not built yet ----------------------------------------------------
    def _build_alias(self, alias: str, kind: str) -> Any:
        if self._alias_index is None:
            self._alias_index = {}
            self._index_aliases(self.data, "", top=True)
        found = self._alias_index.get(alias, [])
        candidates = [p for p, explicit in found if explicit] or [p for p, _ in found]
        if not candidates:
            return None
        if len(candidates) > 1:
            raise ConfigError(
                f"ref {alias!r} is ambiguous: it names the components at {', '.join(candidates)}; "
                f"give the one you mean an alias (\"name\": \"{alias}#myAlias\") and refer to that",
                file=self.file, pointer=candidates[-1],
            )
        return self.builder.build(self.get(candidates[0]), kind, candidates[0])

    def _index_aliases(self, node: Any, pointer: str, top: bool = False) -> None:
        assert self._alias_index is not None
        if isinstance(node, dict):
            if not top and "ref" not in node and isinstance(node.get("name", node.get("path")), str):
                try:
                    spec = parse_spec(node, pointer, self.file)
                except ConfigError:
                    return  # reported when (if) the node is built
                if spec.alias and not spec.disabled:
                    self._alias_index.setdefault(spec.alias, []).append((pointer, spec.explicit_alias))
                return
            for key, value in node.items():
                self._index_aliases(value, join_pointer(pointer, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._index_aliases(value, join_pointer(pointer, i))

    def __repr__(self) -> str:
        return f"WorkflowConfig({self.file!r})"


def load_config(
    config_file: str | os.PathLike[str],
    environment_file: str | os.PathLike[str] | None = None,
    overrides: Overrides = None,
    mmar_root: str | os.PathLike[str] | None = None,
    registries: RegistrySource | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> WorkflowConfig:
    """Load a workflow config with its variables; activate its MMAR for BYOC imports.

    Args:
        config_file: the config; relative paths are tried under `mmar_root` first.
        environment_file: environment.json; default `<mmar>/config/environment.json` if present.
        overrides: `--set` items (`["epochs=5", ...]`) or a ready dict.
        mmar_root: the MMAR folder; default: the parent of the config's folder when that
            folder is named `config` (the MMAR layout), else none.
        registries: kind -> Registry for the builder (default: the package registries).
        defaults: variables of the lowest priority (a command that reads no data gives empty
            DATASET_JSON / DATA_ROOT so that configs naming them still load).

    Raises:
        ConfigError: unreadable/malformed files, bad `--set` items, undefined variables.
    """
    file = os.fspath(config_file)
    mmar = Mmar(mmar_root) if mmar_root is not None else _infer_mmar(file)
    path = _locate(file, mmar)
    env_path = _environment_path(environment_file, mmar)

    raw = load_json(path)
    if not isinstance(raw, dict):
        raise ConfigError("a workflow config must be a JSON object", file=file)
    env = load_json(env_path) if env_path else {}
    if not isinstance(env, dict):
        raise ConfigError("environment.json must be an object of NAME: value pairs", file=env_path)

    plain, dotted = split_overrides(parse_overrides(overrides))
    data = copy.deepcopy(raw)
    for key, value in dotted.items():
        set_config_path(data, key, value, file)
    for key, value in plain.items():
        if key in data:
            data[key] = copy.deepcopy(value)

    merged: dict[str, Variable] = layer(defaults or {}, None, located=False)
    if mmar is not None:
        merged.update(layer(mmar.default_variables(), None, located=False))
    merged.update(layer(env, env_path))
    merged.update(layer(config_globals(data), file))
    merged.update(layer(plain, OVERRIDE_FILE, located=False))
    variables = ReadTracking(resolve_variables(merged))
    data = substitute(data, variables, file)
    if is_2019_form(data):
        data = normalize_2019(data, file, variables)

    if mmar is not None:
        mmar.activate()
    cfg = WorkflowConfig(file, raw, data, variables, mmar, env_path, registries)
    cfg.override_keys = list(plain)
    cfg.known_names = (set(WELL_KNOWN_VARIABLES) | set(raw) | set(env) | referenced_names(raw) | referenced_names(env)
                       | set(defaults or {}) | set(mmar.default_variables() if mmar is not None else {}))
    return cfg


def _infer_mmar(file: str) -> Mmar | None:
    folder = os.path.dirname(os.path.abspath(file))
    return Mmar(os.path.dirname(folder)) if os.path.basename(folder) == "config" else None


def _locate(file: str, mmar: Mmar | None) -> str:
    if mmar is None or os.path.isabs(file):
        return file
    under_root = mmar.resolve(file)
    return under_root if os.path.exists(under_root) or not os.path.exists(file) else file


def _environment_path(environment_file: str | os.PathLike[str] | None, mmar: Mmar | None) -> str | None:
    if environment_file is not None:
        return _locate(os.fspath(environment_file), mmar)
    if mmar is not None:
        default = os.path.join(mmar.config_dir, "environment.json")
        if os.path.isfile(default):
            return default
    return None
