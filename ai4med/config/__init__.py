"""ai4med.config: JSON configs -> component objects (see ARCHITECTURE.md §2, §4).

Names are imported on first access so `import ai4med.config` stays cheap.

Example:
    >>> from ai4med.config import ConfigError, parse_overrides
    >>> parse_overrides(["epochs=5"])
    {'epochs': 5}
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "ai4med.config.errors",
    "load_json": "ai4med.config.loader",
    "parse_overrides": "ai4med.config.variables",
    "substitute": "ai4med.config.variables",
    "ComponentSpec": "ai4med.config.spec",
    "parse_spec": "ai4med.config.spec",
    "ComponentBuilder": "ai4med.config.builder",
    "Mmar": "ai4med.config.mmar",
    "WorkflowConfig": "ai4med.config.workflow_config",
    "load_config": "ai4med.config.workflow_config",
    "Registry": "ai4med.config.registry",
    "get_registry": "ai4med.config.registries",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ai4med.config' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
