"""ai4med.io: image files <-> MedicalImage (NIfTI, MetaImage, NRRD, NumPy, PNG/JPEG, DICOM) and datalists.

The names below are imported lazily, so `import ai4med.io` stays cheap (nibabel,
SimpleITK, Pillow and pydicom load only when a file is read or written).

Example:
    >>> import ai4med.io
    >>> callable(ai4med.io.read_image)
    True
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "read_image": "ai4med.io.image_io",
    "write_image": "ai4med.io.image_io",
    "ImageReadError": "ai4med.io.image_io",
    "ImageWriteError": "ai4med.io.image_io",
    "load_datalist": "ai4med.io.datalist",
    "write_datalist": "ai4med.io.datalist",
    "datalist_labels": "ai4med.io.datalist",
    "DatalistError": "ai4med.io.datalist",
    "atomic_path": "ai4med.io.atomic",
    "atomic_write_bytes": "ai4med.io.atomic",
    "atomic_write_text": "ai4med.io.atomic",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ai4med.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
