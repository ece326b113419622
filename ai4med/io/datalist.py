"""Decathlon-style datalists: load, validate every file up front, write.

A datalist is a JSON object whose list-valued keys (`training`, `validation`, `test`, or
any custom key) hold items. An item is a dict (`{"image": "imagesTr/a.nii.gz",
"label": "labelsTr/a.nii.gz"}`; a value may also be a list of paths, one channel each, or
a number / list of numbers such as a classification label) or a bare string, the `test`
form, which becomes `{"image": s}`. Every string value is a path: relative paths are
resolved against `base_dir` (`--file_root`, `DATA_ROOT`) when given, else against the
datalist's own folder.

Validation happens before any work starts and reports every problem at once, each with
the JSON pointer of the item::

    DatalistError: /data/dataset.json: 2 problems
      /training/3/label: labelsTr/x.nii.gz not found (/data/labelsTr/x.nii.gz)
      /validation/0/image/1: imagesTr/y_t2.nii.gz not found (/data/imagesTr/y_t2.nii.gz)

Example:
    >>> import json, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "a.nii.gz"), "wb").close()
    >>> with open(os.path.join(folder, "dl.json"), "w") as f:
    ...     json.dump({"training": [{"image": "a.nii.gz", "label": 1}]}, f)
    >>> items = load_datalist(os.path.join(folder, "dl.json"))
    >>> os.path.basename(items[0]["image"]), items[0]["label"]
    ('a.nii.gz', 1)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ai4med.errors import UserError

__all__ = [
    "DatalistError",
    "load_datalist",
    "load_datalists",
    "read_datalist_json",
    "datalist_sections",
    "write_datalist",
    "datalist_labels",
]

#: problems shown in one error before "... and N more"
_MAX_SHOWN = 50


class DatalistError(UserError):
    """A datalist is unreadable, malformed, or names files that are missing; lists every problem.

    Attributes:
        path: the datalist file.
        problems: `(json_pointer, message)` pairs.
    """

    def __init__(self, path: str, problems: Sequence[tuple[str, str]] | str) -> None:
        self.path = path
        if isinstance(problems, str):
            self.problems: list[tuple[str, str]] = [("", problems)]
            msg = f"{path}: {problems}"
        else:
            self.problems = list(problems)
            lines = [f"{ptr}: {text}" if ptr else text for ptr, text in self.problems[:_MAX_SHOWN]]
            if len(self.problems) > _MAX_SHOWN:
                lines.append(f"... and {len(self.problems) - _MAX_SHOWN} more")
            n = len(self.problems)
            msg = f"{path}: {n} problem{'s' if n != 1 else ''}\n  " + "\n  ".join(lines)
        super().__init__(msg)


def _pointer(*parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def read_datalist_json(path: str | os.PathLike) -> dict[str, Any]:
    """Parse the datalist JSON object; DatalistError for a missing file or bad JSON (line, column)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise DatalistError(path, "datalist file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatalistError(path, f"cannot read datalist: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatalistError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DatalistError(path, f"a datalist is a JSON object with lists under keys; got {type(data).__name__}")
    return data


def datalist_sections(data: dict[str, Any]) -> list[str]:
    """The keys of a datalist that hold item lists (training, validation, test, custom)."""
    return [k for k, v in data.items() if isinstance(v, list)]


def field_paths(value: Any) -> list[str]:
    """The paths one item field holds: a string, or a non-empty list of strings (one file a channel)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def _resolve(value: str, root: str) -> str:
    p = os.path.expanduser(value)
    return os.path.normpath(p if os.path.isabs(p) else os.path.join(root, p))


def _check_file(path: str) -> str | None:
    """None if `path` can be opened for reading, else the reason."""
    if not os.path.exists(path):
        return "not found"
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def _resolve_item(
    item: Any, ptr: str, root: str, check: bool, problems: list[tuple[str, str]], path_keys: Iterable[str] | None
) -> dict[str, Any] | None:
    if isinstance(item, str):  # the `test` form: a bare path, pointed at by the item's own pointer
        full = _resolve(item, root)
        reason = _check_file(full) if check else None
        if reason:
            problems.append((ptr, f"{item} {reason} ({full})"))
        return {"image": full}
    if not isinstance(item, dict):
        problems.append((ptr, f"an item is an object or a path string; got {json.dumps(item)[:80]}"))
        return None
    keys = None if path_keys is None else set(path_keys)
    out: dict[str, Any] = {}
    for key, value in item.items():
        is_path_key = keys is None or key in keys
        if is_path_key and isinstance(value, str):
            out[key] = _resolve(value, root)
            reason = _check_file(out[key]) if check else None
            if reason:
                problems.append((_pointer_join(ptr, key), f"{value} {reason} ({out[key]})"))
        elif is_path_key and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = [_resolve(v, root) for v in value]
            for i, (v, full) in enumerate(zip(value, out[key])):
                reason = _check_file(full) if check else None
                if reason:
                    problems.append((_pointer_join(ptr, key, i), f"{v} {reason} ({full})"))
        else:  # numbers, lists of numbers (classification labels), metadata
            out[key] = value
    return out


def _pointer_join(base: str, *parts: Any) -> str:
    return base + _pointer(*parts)


def load_datalists(
    path: str | os.PathLike,
    keys: Sequence[str] | None = None,
    base_dir: str | os.PathLike | None = None,
    check_files: bool = True,
    path_keys: Iterable[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Load and validate several lists of one datalist; every problem in every key in one error.

    Args:
        path: the datalist JSON.
        keys: the lists to load; None = every list-valued key in the file.
        base_dir: root for relative paths; None = the datalist's folder.
        check_files: check that every file exists and can be opened.
        path_keys: item fields holding paths; None = every string (or list-of-strings) field.

    Returns:
        `{key: [item, ...]}` with absolute, normalised paths.

    Raises:
        DatalistError: bad JSON, a missing key (listing those present), a malformed item,
            or missing / unreadable files; each problem with its JSON pointer.
    """
    path = os.path.abspath(os.fspath(path))
    data = read_datalist_json(path)
    sections = datalist_sections(data)
    if keys is None:
        keys = sections
        if not keys:
            raise DatalistError(path, f"no lists of items in the datalist (keys present: {_keys(data)})")
    missing = [k for k in keys if k not in data]
    if missing:
        raise DatalistError(
            path, f"no key {', '.join(repr(k) for k in missing)} in the datalist (keys present: {_keys(data)})"
        )
    root = os.path.abspath(os.path.expanduser(os.fspath(base_dir))) if base_dir else os.path.dirname(path)
    problems: list[tuple[str, str]] = []
    if base_dir and not os.path.isdir(root):
        problems.append(("", f"file root {root} is not a folder"))
    out: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        section = data[key]
        if not isinstance(section, list):
            problems.append((_pointer(key), f"expected a list of items, got {type(section).__name__}"))
            continue
        items = []
        for i, item in enumerate(section):
            resolved = _resolve_item(item, _pointer(key, i), root, check_files, problems, path_keys)
            if resolved is not None:
                items.append(resolved)
        out[key] = items
    if problems:
        raise DatalistError(path, problems)
    return out


def _keys(data: dict[str, Any]) -> str:
    return ", ".join(repr(k) for k in data) or "none"


def load_datalist(
    path: str | os.PathLike,
    key: str = "training",
    base_dir: str | os.PathLike | None = None,
    check_files: bool = True,
    path_keys: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The items under `key` of a Decathlon-style datalist, paths absolute, files checked.

    Args:
        path: the datalist JSON.
        key: "training", "validation", "test" or a custom list key.
        base_dir: root for relative paths (`--file_root` / `DATA_ROOT`); None = the datalist's folder.
        check_files: check every file exists and is readable before returning.
        path_keys: item fields holding paths; None = every string (or list-of-strings) field.

    Raises:
        DatalistError: see `load_datalists`; all problems of the key are listed at once.
    """
    return load_datalists(path, [key], base_dir=base_dir, check_files=check_files, path_keys=path_keys)[key]


def _relative_item(item: Any, folder: str) -> Any:
    def rel(v: Any) -> Any:
        if isinstance(v, str) and os.path.isabs(v):
            return os.path.relpath(v, folder)
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return [rel(x) for x in v]
        return v

    if isinstance(item, dict):
        return {k: rel(v) for k, v in item.items()}
    return rel(item)


def write_datalist(path: str | os.PathLike, sections: dict[str, Any]) -> str:
    """Write a datalist atomically, with absolute item paths made relative to its folder.

    Args:
        path: the JSON file to write.
        sections: `{"training": [items], "validation": [...], ...}`; non-list values
            (name, description, labels, modality) are written as they are. Relative
            item paths are taken to be relative to the datalist's folder already.

    Returns:
        The absolute path written.
    """
    from ai4med.io.atomic import atomic_write_text

    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    out = {
        k: [_relative_item(item, folder) for item in v] if isinstance(v, list) else v
        for k, v in sections.items()
    }
    return atomic_write_text(path, json.dumps(out, indent=2) + "\n")


def datalist_labels(path: str | os.PathLike) -> dict[int, str]:
    """The `labels` map of a Decathlon dataset.json as `{index: name}` (empty if absent).

    Raises:
        DatalistError: bad JSON, or a `labels` entry that is not `{"0": "background", ...}`.
    """
    path = os.path.abspath(os.fspath(path))
    labels = read_datalist_json(path).get("labels")
    if labels is None:
        return {}
    if isinstance(labels, list):
        labels = dict(enumerate(labels))
    if not isinstance(labels, dict):
        raise DatalistError(path, f"/labels: expected an object {{\"0\": \"background\", ...}}, got {labels!r}")
    out: dict[int, str] = {}
    for k, v in labels.items():
        try:
            out[int(k)] = str(v)
        except (TypeError, ValueError):
            raise DatalistError(path, f"{_pointer('labels', k)}: label index {k!r} is not an integer") from None
    return dict(sorted(out.items()))
