"""load_json: read a config file, turning every I/O or syntax failure into a ConfigError.

A traceback from `json.decoder` tells a user nothing; "config_train.json: line 12 column
5: Expecting ',' delimiter" tells them what to fix.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from ai4med.config.errors import ConfigError

logger = logging.getLogger(__name__)


def _warn_duplicates(file: str):
    """An object hook that keeps JSON's last-wins rule but logs duplicated keys."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                logger.warning("%s: key %r appears twice in one object; the last value is used", file, key)
            out[key] = value
        return out

    return hook


def load_json(path: str | os.PathLike[str]) -> Any:
    """The parsed content of the JSON file `path`.

    Raises:
        ConfigError: the file cannot be read (missing, a folder, no permission, not
            UTF-8) or is not valid JSON (with line and column of the first error).
    """
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError("cannot read the file: it does not exist", file=file) from None
    except IsADirectoryError:
        raise ConfigError("cannot read the file: it is a folder", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read the file: not UTF-8 text ({exc.reason} at byte {exc.start})", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=file) from None
    try:
        return json.loads(text, object_pairs_hook=_warn_duplicates(file))
    except json.JSONDecodeError as exc:
        raise ConfigError(exc.msg, file=file, line=exc.lineno, column=exc.colno) from None
