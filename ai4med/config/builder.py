"""ComponentBuilder: component nodes -> objects, failing early and precisely.

The class is found by registry name (per kind) or by import `path`; the arguments are
checked against the constructor's signature before it is called, so a typo reports
"unexpected argument 'a_mn' (did you mean 'a_min'?)" with the signature, not a
TypeError from deep inside. Constructor exceptions are re-raised as ConfigError at the
node's pointer (the original exception is chained). Objects built under an alias are
remembered for `{"ref": "alias"}` nodes, which return the identical object.

Example:
    >>> from ai4med.config.registry import Registry
    >>> b = ComponentBuilder("c.json", registries={"demo": Registry("demo", {"Fraction": "fractions:Fraction"})})
    >>> b.build({"name": "Fraction#half", "args": {"numerator": 1, "denominator": 2}}, "demo")
    Fraction(1, 2)
    >>> b.build({"ref": "half"}, "demo") is b.build({"ref": "half"}, "demo")
    True
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ai4med.config.errors import ConfigError, join_pointer
from ai4med.config.registry import Registry, UnknownComponentError, import_object
from ai4med.config.spec import ComponentSpec, parse_spec

RegistrySource = Callable[[str], Registry] | Mapping[str, Registry]
# resolver(alias, kind) -> the object built for a not-yet-built alias, or None if none defines it
Resolver = Callable[[str, str], Any]

_P = inspect.Parameter


@dataclass
class _Alias:
    obj: Any
    pointer: str
    explicit: bool


def format_signature(obj: Any, name: str | None = None) -> str:
    """`Name(a, b, c=1)`: the call signature without annotations, as users write args."""
    name = name or getattr(obj, "__name__", type(obj).__name__)
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    params = [p.replace(annotation=_P.empty) for p in sig.parameters.values()]
    return f"{name}{sig.replace(parameters=params, return_annotation=inspect.Signature.empty)}"


class ComponentBuilder:
    """Builds the component nodes of one config file.

    Args:
        file: the config file (named in every error).
        registries: kind -> Registry (a mapping or a function); default
            `ai4med.config.registries.get_registry`.
        resolver: called for a ref to an alias not built yet (the workflow config uses it
            to build the defining node first, so section order does not matter).
    """

    def __init__(
        self,
        file: str | None = None,
        registries: RegistrySource | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.resolver = resolver
        self._registries = registries
        self._aliases: dict[str, _Alias] = {}
        self._ambiguous: dict[str, list[str]] = {}
        self._built: dict[str, tuple[Any, Any]] = {}

    # --- public -------------------------------------------------------------------------
    def build(self, node: Any, kind: str, pointer: str = "", extra_args: Mapping[str, Any] | None = None) -> Any:
        """The object for component `node` (None if it is disabled); `kind` picks the registry.

        `extra_args` are constructor arguments the workflow supplies (e.g. a model's
        parameters for an optimizer); the config may not set them too.
        """
        spec = parse_spec(node, pointer, self.file)
        if spec.disabled:
            return None
        if spec.ref is not None:
            return self.resolve_ref(spec.ref, kind, pointer)
        cached = self._built.get(pointer)
        if cached is not None and cached[0] is node:  # one config node = one object
            return cached[1]
        if extra_args:
            clash = sorted(set(extra_args) & set(spec.args))
            if clash:
                raise ConfigError(
                    f"argument {clash[0]!r} is supplied by the workflow; remove it from the config",
                    file=self.file, pointer=join_pointer(spec.args_pointer, clash[0]),
                )
            spec = replace(spec, args={**spec.args, **extra_args})
        cls = self.resolve_class(spec, kind)
        obj = self._construct(cls, self.check_args(cls, spec), spec)
        self._built[pointer] = (node, obj)
        self._remember(spec, obj)
        return obj

    def build_list(self, nodes: Any, kind: str, pointer: str = "") -> list[Any]:
        """The objects for a list of component nodes, skipping disabled ones (None -> [])."""
        if nodes is None:
            return []
        if not isinstance(nodes, list):
            raise ConfigError("expected a list of components", file=self.file, pointer=pointer)
        out = []
        for i, node in enumerate(nodes):
            at = join_pointer(pointer, i)
            if parse_spec(node, at, self.file).disabled:
                continue
            out.append(self.build(node, kind, at))
        return out

    @property
    def aliases(self) -> list[str]:
        """Aliases that `{"ref": ...}` can use now."""
        return sorted(self._aliases)

    def get_alias(self, alias: str) -> Any:
        """The object built under `alias` (KeyError if none)."""
        return self._aliases[alias].obj

    def resolve_ref(self, alias: str, kind: str, pointer: str = "") -> Any:
        """The object built under `alias`, building its defining node via the resolver if needed."""
        at = join_pointer(pointer, "ref")
        if alias in self._aliases:
            return self._aliases[alias].obj
        if alias in self._ambiguous:
            raise ConfigError(
                f"ref {alias!r} is ambiguous: components named {alias!r} are built at "
                f"{', '.join(self._ambiguous[alias])}; give the one you mean an alias "
                f"(\"name\": \"{alias}#myAlias\") and refer to that",
                file=self.file, pointer=at,
            )
        if self.resolver is not None:
            obj = self.resolver(alias, kind)
            if obj is not None:
                return obj
        known = ", ".join(repr(a) for a in self.aliases) or "none"
        raise ConfigError(
            f"unknown ref {alias!r}; known aliases: {known} "
            "(an alias is a component's name or the part after '#' in \"Name#alias\")",
            file=self.file, pointer=at,
        )

    def resolve_class(self, spec: ComponentSpec, kind: str) -> Any:
        """The class (or factory) a spec names: by `path` if given, else by registry name."""
        if spec.path is not None:
            return self._import_path(spec)
        kind = spec.kind or kind
        registry = self._registry(kind)
        assert spec.name is not None
        try:
            return registry.get(spec.name)
        except UnknownComponentError as exc:
            hint = ""
            if "." in spec.name:
                hint = f" (for your own class write \"path\": \"{spec.name}\")"
            raise ConfigError(f"{exc}{hint}", file=self.file, pointer=spec.pointer) from None
        except Exception as exc:
            raise ConfigError(
                f"{kind} component {spec.name!r} is registered but cannot be imported: "
                f"{type(exc).__name__}: {exc}",
                file=self.file, pointer=spec.pointer,
            ) from exc

    def check_args(self, cls: Any, spec: ComponentSpec) -> dict[str, Any]:
        """`spec.args` checked against `cls`'s signature (None dropped where a default exists)."""
        try:
            sig = inspect.signature(cls)
        except (TypeError, ValueError):  # no introspectable signature: let the call decide
            return dict(spec.args)
        params = sig.parameters
        args = {
            k: v for k, v in spec.args.items()
            if not (v is None and k in params and params[k].default is not _P.empty)
        }
        takes_kwargs = any(p.kind is _P.VAR_KEYWORD for p in params.values())
        named = [n for n, p in params.items() if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)]
        unexpected = [] if takes_kwargs else [k for k in args if k not in named]
        missing = [
            n for n, p in params.items()
            if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
            and p.default is _P.empty and n not in args
        ]
        problems = []
        for k in unexpected:
            close = difflib.get_close_matches(k, named, n=1, cutoff=0.6)
            problems.append(f"unexpected argument {k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        problems += [f"missing argument {n!r}" for n in missing]
        if not problems:
            try:
                sig.bind(**args)
            except TypeError as exc:
                problems.append(str(exc))
        if problems:
            at = join_pointer(spec.args_pointer, unexpected[0]) if unexpected else spec.args_pointer
            raise ConfigError(
                f"bad arguments for {spec.label}: {'; '.join(problems)}; "
                f"expected {format_signature(cls, _display_name(cls, spec))}",
                file=self.file, pointer=at,
            )
        return args

    # --- internals ----------------------------------------------------------------------
    def _registry(self, kind: str) -> Registry:
        if self._registries is None:
            from ai4med.config import registries  # looked up per call so tests can patch it

            return registries.get_registry(kind)
        if isinstance(self._registries, Mapping):
            if kind not in self._registries:
                raise KeyError(f"no registry for kind {kind!r}; kinds: {', '.join(self._registries)}")
            return self._registries[kind]
        return self._registries(kind)

    def _import_path(self, spec: ComponentSpec) -> Any:
        assert spec.path is not None
        at = join_pointer(spec.pointer, "path")
        try:
            obj = import_object(spec.path)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import {spec.path!r}: {exc} (a \"path\" is 'module.Class' importable from "
                "sys.path; put your code in the MMAR's custom/ folder)",
                file=self.file, pointer=at,
            ) from exc
        except Exception as exc:
            raise ConfigError(
                f"importing {spec.path!r} failed: {type(exc).__name__}: {exc}", file=self.file, pointer=at
            ) from exc
        if not callable(obj):
            raise ConfigError(
                f"{spec.path!r} is a {type(obj).__name__}, not a class or function", file=self.file, pointer=at
            )
        return obj

    def _construct(self, cls: Any, args: dict[str, Any], spec: ComponentSpec) -> Any:
        try:
            return cls(**args)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"{_display_name(cls, spec)} could not be built: {type(exc).__name__}: {exc}",
                file=self.file, pointer=spec.pointer,
            ) from exc

    def _remember(self, spec: ComponentSpec, obj: Any) -> None:
        alias = spec.alias
        if alias is None:
            return
        entry = self._aliases.get(alias)
        if spec.explicit_alias:
            if entry is not None and entry.explicit and entry.pointer != spec.pointer:
                raise ConfigError(
                    f"alias {alias!r} is already defined at {entry.pointer}",
                    file=self.file, pointer=join_pointer(spec.pointer, "name"),
                )
            self._aliases[alias] = _Alias(obj, spec.pointer, True)
            self._ambiguous.pop(alias, None)
        elif alias in self._ambiguous:
            if spec.pointer not in self._ambiguous[alias]:
                self._ambiguous[alias].append(spec.pointer)
        elif entry is None or entry.pointer == spec.pointer:
            self._aliases[alias] = _Alias(obj, spec.pointer, False)
        elif not entry.explicit:  # the same class name built twice: a ref to it is ambiguous
            self._ambiguous[alias] = [entry.pointer, spec.pointer]
            del self._aliases[alias]


def _display_name(cls: Any, spec: ComponentSpec) -> str:
    return getattr(cls, "__name__", None) or spec.label
