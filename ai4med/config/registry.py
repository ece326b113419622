"""Registry: named, lazily imported components of one kind (transforms, models, ...).

Entries are `"module:attr"` strings, imported only when a config names them, so
`import ai4med` and `ai4med --help` stay fast and a broken optional back-end cannot
break unrelated commands.

Example:
    >>> reg = Registry("demo", {"OrderedDict": "collections:OrderedDict"})
    >>> reg.names()
    ['OrderedDict']
    >>> reg.get("OrderedDict").__name__
    'OrderedDict'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any


class UnknownComponentError(LookupError):
    """A name that no registry entry matches; carries the closest registered names."""

    def __init__(self, kind: str, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown {kind} component {name!r}{hint}")
        self.kind = kind
        self.name = name
        self.suggestions = suggestions


def import_object(target: str) -> Any:
    """Import `"pkg.module:attr"` or dotted `"pkg.module.Attr"` (the seed's BYOC `path`)."""
    if ":" in target:
        module_name, _, attr = target.partition(":")
    else:
        module_name, _, attr = target.rpartition(".")
        if not module_name:
            raise ImportError(f"{target!r} is not a dotted path 'package.module.ClassName'")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


class Registry:
    """Components of one kind by name.

    Args:
        kind: what the registry holds ("transforms", "models", ...), used in messages.
        entries: name -> class or `"module:attr"` string.
    """

    def __init__(self, kind: str, entries: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: Any) -> None:
        if name in self._entries and self._entries[name] != target:
            raise ValueError(f"{self.kind} registry already has {name!r}")
        self._entries[name] = target

    def register_many(self, names: Iterable[str], target: Any) -> None:
        for name in names:
            self.register(name, target)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def closest(self, name: str, n: int = 3) -> list[str]:
        lowered = {k.lower(): k for k in self._entries}
        if name.lower() in lowered:
            return [lowered[name.lower()]]
        hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
        return [lowered[h] for h in hits]

    def target(self, name: str) -> Any:
        """The raw entry (class or "module:attr") without importing it."""
        if name not in self._entries:
            raise UnknownComponentError(self.kind, name, self.closest(name))
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The class registered as `name`, importing it on first use."""
        target = self.target(name)
        if isinstance(target, str):
            target = import_object(target)
            self._entries[name] = target
        return target
