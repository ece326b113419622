"""Where each kind's registry lives; registries are imported on first use.

The config engine (a low layer) only knows the components by these strings, so the
layering common -> config -> components holds at import time.
"""

from __future__ import annotations

from ai4med.config.registry import Registry, import_object

KIND_CATALOGS: dict[str, str] = {
    "transforms": "ai4med.components.transforms.catalog:REGISTRY",
    "pipelines": "ai4med.components.data.catalog:REGISTRY",
    "models": "ai4med.components.models.catalog:REGISTRY",
    "losses": "ai4med.components.losses.catalog:REGISTRY",
    "optimizers": "ai4med.components.optimizers.catalog:REGISTRY",
    "lr_policies": "ai4med.components.lr_policies.catalog:REGISTRY",
    "metrics": "ai4med.components.metrics.catalog:REGISTRY",
    "aux_ops": "ai4med.components.aux_ops.catalog:REGISTRY",
    "inferers": "ai4med.components.inferers.catalog:INFERERS",
    "predictors": "ai4med.components.inferers.catalog:PREDICTORS",
    "writers": "ai4med.components.writers.catalog:REGISTRY",
    "handlers": "ai4med.workflows.handlers.catalog:REGISTRY",
    "model_loaders": "ai4med.inference.loaders:REGISTRY",
}


def get_registry(kind: str) -> Registry:
    """The registry of `kind` (one of `KIND_CATALOGS`)."""
    if kind not in KIND_CATALOGS:
        raise KeyError(f"unknown component kind {kind!r}; kinds: {', '.join(KIND_CATALOGS)}")
    reg = import_object(KIND_CATALOGS[kind])
    assert isinstance(reg, Registry)
    return reg


def kinds() -> list[str]:
    return list(KIND_CATALOGS)
