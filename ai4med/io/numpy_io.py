""".npy arrays: data only, no geometry (the identity affine is assumed).

The array is taken as-is: 2D -> "HW", 3D -> "DHW" (i, j, k), 4D -> channel-first "CDHW".

Example:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> _ = write_npy(np.arange(24).reshape(2, 3, 4), path)
    >>> read_npy(path).get_shape_format().value
    'DHW'
"""

from __future__ import annotations

import os

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.io.atomic import atomic_path
from ai4med.io.geometry import geometry_properties

__all__ = ["read_npy", "write_npy", "format_for_ndim"]

_FORMATS = {2: "HW", 3: "DHW", 4: "CDHW"}


def format_for_ndim(ndim: int) -> str:
    """The shape format a bare array of `ndim` dimensions is taken to have."""
    if ndim not in _FORMATS:
        raise ValueError(f"an array of {ndim} dimensions is not an image (expected 2, 3 or 4)")
    return _FORMATS[ndim]


def read_npy(path: str) -> MedicalImage:
    """Load a .npy file (no pickles) with the identity affine."""
    data = np.load(path, allow_pickle=False)
    fmt = format_for_ndim(data.ndim)
    spatial = data.shape[1:] if fmt.startswith("C") else data.shape
    props = geometry_properties(np.eye(4), spatial)
    props[ImageProperty.DTYPE] = data.dtype.name
    return MedicalImage(data, fmt, props)


def write_npy(data: np.ndarray, path: str) -> str:
    """Save an array to .npy atomically; returns the absolute path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(data), allow_pickle=False)
    return os.path.abspath(path)
