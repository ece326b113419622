"""The pipelines registry (built-ins by name; filled in by the issue that implements them)."""

from ai4med.config.registry import Registry

REGISTRY = Registry("pipelines", {})
