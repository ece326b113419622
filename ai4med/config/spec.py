"""ComponentSpec: one component node of a config, parsed and checked, not yet built.

Accepted spellings (Clara 3.x and the 2019 TLT form of seed 004):

- `{"name": "ScaleIntensityRange", "args": {...}, "disabled": false}`: a built-in by name;
- `{"path": "CustomCode.MyNumpyLoader", "args": {...}}`: a user class by import path
  (`name` may be given too; `path` wins for the import);
- `{"name": "transforms.LoadNifty", "fields": ["image"]}`: 2019 inline form, args
  beside the name; the prefix (`transforms.`, `lr_policy.`, `losses.`, `writers.`,
  `models.`, `metrics.`, ...) is stripped and picks the registry kind;
- `{"name": "ScaleByResolution#ScaleImg", ...}` defines the alias `ScaleImg`
  (without `#` the name itself is the alias); `{"ref": "ScaleImg"}` reuses that object.

Example:
    >>> s = parse_spec({"name": "transforms.LoadNifty#load", "fields": ["image"]}, "/train/pre_transforms/0")
    >>> (s.name, s.kind, s.alias, s.args, s.args_pointer)
    ('LoadNifty', 'transforms', 'load', {'fields': ['image']}, '/train/pre_transforms/0')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai4med.config.errors import ConfigError, join_pointer

#: name prefix -> registry kind
PREFIX_KINDS: dict[str, str] = {
    "transforms": "transforms",
    "transforms_ctrl": "transforms",  # seed 004 appendix: transforms_ctrl.CropSubVolumePosNegRatioCtrlEpoch
    "transforms_fastaug": "transforms",  # and transforms_fastaug.TransformVolumeCropROIFastPosNegRatio
    "lr_policy": "lr_policies",
    "lr_policies": "lr_policies",
    "losses": "losses",
    "writers": "writers",
    "models": "models",
    "metrics": "metrics",
    "optimizers": "optimizers",
    "aux_ops": "aux_ops",
    "handlers": "handlers",
    "inferers": "inferers",
    "predictors": "predictors",
    "pipelines": "pipelines",
}
RESERVED = ("name", "path", "args", "disabled")


@dataclass(frozen=True)
class ComponentSpec:
    """A parsed component node.

    Attributes:
        name: registry name with prefix and `#alias` removed (None for path-only or ref nodes).
        path: import path of a user class, or None.
        args: constructor keyword arguments.
        disabled: the node is to be skipped.
        alias: the name `{"ref": ...}` nodes use: the `#alias`, else the name / class name.
        pointer: JSON pointer of the node; `args_pointer` that of its arguments.
        file: the config file the node came from.
        kind: registry kind named by a prefix (`transforms.X`), else None.
        ref: for `{"ref": "alias"}` nodes, the alias referred to.
        explicit_alias: the alias was written with `#`.
    """

    name: str | None
    path: str | None
    args: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    alias: str | None = None
    pointer: str = ""
    file: str | None = None
    kind: str | None = None
    ref: str | None = None
    args_pointer: str = ""
    explicit_alias: bool = False

    @property
    def label(self) -> str:
        """How messages name the component."""
        return self.name or self.path or f"ref {self.ref!r}"


def parse_spec(node: Any, pointer: str = "", file: str | None = None) -> ComponentSpec:
    """Check `node` and return its ComponentSpec; a ConfigError names what is wrong and where."""

    def fail(reason: str, at: str = pointer) -> ConfigError:
        return ConfigError(reason, file=file, pointer=at)

    if not isinstance(node, dict):
        raise fail(
            f"expected a component object like {{\"name\": ..., \"args\": {{...}}}}, got {_json_type(node)}"
        )
    disabled = node.get("disabled", False)
    if not isinstance(disabled, bool):
        raise fail(f"'disabled' must be true or false, got {disabled!r}", join_pointer(pointer, "disabled"))
    if "ref" in node:
        return _parse_ref(node, pointer, file, disabled)

    name, path = node.get("name"), node.get("path")
    for key, value in (("name", name), ("path", path)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(f"'{key}' must be a non-empty string, got {value!r}", join_pointer(pointer, key))
    if name is None and path is None:
        raise fail(f"a component needs \"name\" or \"path\" (keys found: {', '.join(sorted(node)) or 'none'})")

    alias, explicit = None, False
    if name is not None:
        name, alias, explicit = _split_alias(name, join_pointer(pointer, "name"), file)
    if path is not None:
        path, path_alias, path_explicit = _split_alias(path, join_pointer(pointer, "path"), file)
        if path_explicit and not explicit:
            alias, explicit = path_alias, True
        elif name is None:
            alias = path.rpartition(".")[2].rpartition(":")[2]

    kind = None
    if name is not None and "." in name:
        prefix, _, rest = name.partition(".")
        if prefix in PREFIX_KINDS and rest:
            kind, name = PREFIX_KINDS[prefix], rest
            if not explicit:
                alias = rest

    args, args_pointer = _parse_args(node, pointer, file)
    return ComponentSpec(
        name=name, path=path, args=args, disabled=disabled, alias=alias, pointer=pointer, file=file,
        kind=kind, args_pointer=args_pointer, explicit_alias=explicit,
    )


def _parse_ref(node: dict[str, Any], pointer: str, file: str | None, disabled: bool) -> ComponentSpec:
    ref = node["ref"]
    extra = sorted(set(node) - {"ref", "disabled"})
    if extra:
        raise ConfigError(
            f"a {{\"ref\": ...}} node takes no other keys, found {', '.join(repr(k) for k in extra)}",
            file=file, pointer=join_pointer(pointer, extra[0]),
        )
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"'ref' must be an alias name, got {ref!r}", file=file, pointer=join_pointer(pointer, "ref"))
    return ComponentSpec(name=None, path=None, disabled=disabled, pointer=pointer, file=file, ref=ref, args_pointer=pointer)


def _split_alias(text: str, pointer: str, file: str | None) -> tuple[str, str, bool]:
    """("Name", alias, explicit) from "Name#alias" or "Name"."""
    base, sep, alias = text.strip().partition("#")
    if sep and (not base or not alias):
        raise ConfigError(f"{text!r} should be 'Name#alias' with both parts", file=file, pointer=pointer)
    return base, (alias if sep else base), bool(sep)


def _parse_args(node: dict[str, Any], pointer: str, file: str | None) -> tuple[dict[str, Any], str]:
    if "args" in node:
        extra = sorted(set(node) - set(RESERVED))
        if extra:
            raise ConfigError(
                f"unknown key {extra[0]!r} beside \"args\"; a component has only "
                f"{', '.join(RESERVED)} (put constructor arguments inside \"args\")",
                file=file, pointer=join_pointer(pointer, extra[0]),
            )
        args = node["args"]
        args_pointer = join_pointer(pointer, "args")
        if args is None:
            return {}, args_pointer
        if not isinstance(args, dict):
            raise ConfigError(f"\"args\" must be an object, got {_json_type(args)}", file=file, pointer=args_pointer)
        return dict(args), args_pointer
    # 2019 inline form: every key that is not reserved is an argument
    return {k: v for k, v in node.items() if k not in RESERVED}, pointer


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    for t, n in names.items():
        if type(value) is t:
            return n
    return "a number" if isinstance(value, (int, float)) else type(value).__name__
