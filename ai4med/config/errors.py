"""ConfigError and JSON pointers: every config mistake names its file and its node.

A user who mistypes one transform argument in a 300-line config should be told where,
so each error carries the file and the RFC 6901 JSON pointer of the bad node
(`/train/pre_transforms/3/args/a_min`) and prints as one line:

Example:
    >>> str(ConfigError("unknown key 'argz'", file="config_train.json", pointer="/train/model"))
    "config_train.json: /train/model: unknown key 'argz'"
    >>> join_pointer("/train/pre_transforms", 3, "args")
    '/train/pre_transforms/3/args'
"""

from __future__ import annotations

from ai4med.errors import UserError


def escape_token(token: str | int) -> str:
    """One reference token, escaped as RFC 6901 says (`~` -> `~0`, `/` -> `~1`)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(pointer: str, *tokens: str | int) -> str:
    """`pointer` extended by `tokens` (keys or list indices)."""
    return pointer + "".join("/" + escape_token(t) for t in tokens)


def split_pointer(pointer: str) -> list[str]:
    """The unescaped tokens of `pointer` ("" is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


class ConfigError(UserError):
    """A config mistake, located by file, JSON pointer and, for syntax errors, line/column.

    Attributes:
        file: the config file (as the user named it), or None.
        pointer: the JSON pointer of the bad node, or None when not applicable.
        line, column: 1-based position of a JSON syntax error, else None.
        reason: the message without the location prefix.
    """

    def __init__(
        self,
        reason: str,
        file: str | None = None,
        pointer: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.file = None if file is None else str(file)
        self.pointer = pointer
        self.line = line
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line} column {self.column}")
        if self.pointer:
            parts.append(self.pointer)
        parts.append(self.reason)
        return ": ".join(parts)
