"""EnginePool: engine_pool.json (seed 004 §4.1) -> loaded engines, plus admin add / remove.

engine_pool.json is a list of `{"name", "class", "module", "config_file", "labels"}`
objects (a `{"models": [...]}` wrapper is accepted too). `class` picks the engine (the
seed's `medical.aas.*` modules map to ai4med's engines); only these registered classes
can be named, so a config can never import arbitrary code.

Example:
    >>> engine_class({"class": "Dextr3dCroppedEngine", "module": "medical.aas.dextr3dcropped"}).__name__
    'Dextr3dCroppedEngine'
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from ai4med.server.engines.base import Engine
from ai4med.server.engines.classification import ClassificationEngine
from ai4med.server.engines.config import ModelConfigError, normalize_keys, read_json, resolve_path
from ai4med.server.engines.deepgrow import DeepgrowEngine
from ai4med.server.engines.dextr3d import Dextr3dCroppedEngine
from ai4med.server.engines.segmentation import SegmentationEngine

logger = logging.getLogger(__name__)

ENGINE_CLASSES: dict[str, type[Engine]] = {
    "Dextr3dCroppedEngine": Dextr3dCroppedEngine,
    "Dextr3DEngine": Dextr3dCroppedEngine,
    "SegmentationEngine": SegmentationEngine,
    "DeepgrowEngine": DeepgrowEngine,
    "ClassificationEngine": ClassificationEngine,
}
#: model `type` -> engine class (for entries that name a type instead of a class)
TYPE_CLASSES: dict[str, type[Engine]] = {
    "annotation": Dextr3dCroppedEngine,
    "segmentation": SegmentationEngine,
    "deepgrow": DeepgrowEngine,
    "classification": ClassificationEngine,
}

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\- ]{0,127}$")


def check_name(name: str) -> str:
    """`name` if it is a safe model name (no path separators, no '..'), else ModelConfigError."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise ModelConfigError(
            f"invalid model name {str(name)[:80]!r}: use letters, digits, '_', '-', '.', '+' and spaces (<= 128)"
        )
    return name


def engine_class(entry: dict[str, Any], config: dict[str, Any] | None = None) -> type[Engine]:
    cls_name = str(entry.get("class", "")).rsplit(".", 1)[-1]
    if cls_name in ENGINE_CLASSES:
        return ENGINE_CLASSES[cls_name]
    mtype = str(entry.get("type") or (config or {}).get("type") or "").lower()
    if not cls_name and mtype in TYPE_CLASSES:
        return TYPE_CLASSES[mtype]
    raise ModelConfigError(
        f"unknown engine class {entry.get('class')!r}; known: {', '.join(sorted(ENGINE_CLASSES))}"
    )


class EnginePool:
    """The served engines by name (thread-safe).

    Args:
        device: default device of the models.
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._engines: dict[str, Engine] = {}
        self._sources: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- building ---------------------------------------------------------------------
    @staticmethod
    def read_pool(path: str) -> list[dict[str, Any]]:
        data = read_json(path)
        if isinstance(data, dict):
            data = data.get("models", data.get("engines", [data] if "name" in data else []))
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise ModelConfigError(f"{path}: engine pool must be a list of model objects")
        return data

    def create(self, entry: dict[str, Any], base_dir: str) -> Engine:
        """Build (not load) the engine of one pool entry; config_file resolves from `base_dir`."""
        entry = normalize_keys(entry)
        name = check_name(entry.get("name", ""))
        cfg_file = entry.get("config_file")
        if cfg_file:
            cfg_path = resolve_path(cfg_file, base_dir)
            config = read_json(cfg_path)
            if not isinstance(config, dict):
                raise ModelConfigError(f"{cfg_path}: a model config must be a JSON object")
        else:
            cfg_path, config = os.path.join(base_dir, "engine_pool.json"), dict(entry.get("config") or {})
        config = normalize_keys(config)
        cls = engine_class(entry, config)
        return cls(name, entry, config, cfg_path, self.device)

    def load_pool_file(self, path: str, load: Any = None) -> None:
        """Create and load every entry; a bad entry is logged and skipped (the rest are served)."""
        base = os.path.dirname(os.path.abspath(path))
        names: set[str] = set()
        for i, entry in enumerate(self.read_pool(path)):
            label = entry.get("name", f"#{i}")
            try:
                if label in names:
                    raise ModelConfigError(f"duplicate model name {label!r}")
                names.add(label)
                engine = self.create(entry, base)
                (load or (lambda e: e.load()))(engine)
                self.add(engine, source="pool")
                logger.info("loaded model %s (%s) on %s", engine.name, engine.model_type, engine.device)
            except Exception as exc:
                with self._lock:
                    self._errors[str(label)] = str(exc)
                logger.error("model %s not loaded: %s", label, exc)

    # --- access -----------------------------------------------------------------------
    def add(self, engine: Engine, source: str = "admin") -> Engine | None:
        """Serve `engine`; returns the engine it replaced (caller closes it)."""
        with self._lock:
            old = self._engines.get(engine.name)
            self._engines[engine.name] = engine
            self._sources[engine.name] = source
            self._errors.pop(engine.name, None)
        return old

    def remove(self, name: str) -> Engine | None:
        with self._lock:
            self._sources.pop(name, None)
            return self._engines.pop(name, None)

    def get(self, name: str | None) -> Engine | None:
        with self._lock:
            return self._engines.get(str(name)) if name is not None else None

    def source(self, name: str) -> str | None:
        with self._lock:
            return self._sources.get(name)

    def engines(self) -> list[Engine]:
        with self._lock:
            return list(self._engines.values())

    def errors(self) -> dict[str, str]:
        with self._lock:
            return dict(self._errors)

    def close(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for e in engines:
            e.close()
