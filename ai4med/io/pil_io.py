"""2D PNG / JPEG via Pillow.

Grey images are (rows, cols) "HW"; colour images are channel-first "CHW" (RGB, RGBA,
grey + alpha). Palette images keep their indices (label maps). There is no geometry in
these files: the affine is the identity (spacing 1, axis 0 = rows).

Example:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> _ = write_pil(np.arange(12, dtype=np.uint8).reshape(3, 4), path)
    >>> img = read_pil(path)
    >>> img.shape, img.get_shape_format().value, int(img.get_data()[2, 3])
    ((3, 4), 'HW', 11)
"""

from __future__ import annotations

import os

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.io.atomic import atomic_path
from ai4med.io.geometry import geometry_properties

__all__ = ["read_pil", "write_pil", "PIL_EXTENSIONS"]

PIL_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def read_pil(path: str) -> MedicalImage:
    """Read a PNG / JPEG file; returns "HW" (grey, palette, 16-bit) or "CHW" (colour) data."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode == "CMYK" or im.mode == "YCbCr":
            im = im.convert("RGB")
        elif im.mode == "PA":
            im = im.convert("RGBA")
        data = np.array(im)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if data.ndim == 3:
        data = np.moveaxis(data, -1, 0)
        fmt = "CHW"
    elif data.ndim == 2:
        fmt = "HW"
    else:
        raise ValueError(f"unsupported image array shape {data.shape}")
    spatial = data.shape[1:] if fmt == "CHW" else data.shape
    props = geometry_properties(np.eye(4), spatial)
    props[ImageProperty.DTYPE] = data.dtype.name
    return MedicalImage(data, fmt, props)


def _integer_array(data: np.ndarray, max_value: int, what: str) -> np.ndarray:
    """`data` as uint8 / uint16 if every value is an integer in [0, max_value], else ValueError."""
    target = np.uint8 if max_value == 255 else np.uint16
    if data.dtype == target:
        return data
    if data.dtype == np.bool_:
        return data.astype(target)
    if data.size:
        lo, hi = data.min(), data.max()
        exact = np.issubdtype(data.dtype, np.integer) or bool(np.all(np.mod(data, 1) == 0))
        if not (exact and lo >= 0 and hi <= max_value):
            raise ValueError(
                f"{what} stores integers 0..{max_value}; the data holds {data.dtype} values in "
                f"[{lo}, {hi}]: scale or cast it first"
            )
    return data.astype(target)


def write_pil(data: np.ndarray, path: str) -> str:
    """Write a 2D array ("HW") or channel-first colour array ("CHW", C = 1, 2, 3 or 4) atomically.

    PNG takes 8-bit data, or 16-bit for grey images; JPEG takes 8-bit grey or RGB
    (saved at quality 95, so values change slightly). Returns the absolute path.
    """
    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    fmt = PIL_EXTENSIONS.get(ext)
    if fmt is None:
        raise ValueError(f"not a PNG/JPEG file name: {path}")
    data = np.asarray(data)
    if data.ndim == 3:
        if data.shape[0] == 1:
            data = data[0]
        elif data.shape[0] in (2, 3, 4):
            data = np.moveaxis(data, 0, -1)
        else:
            raise ValueError(f"a {fmt} image has 1-4 channels; got channel-first shape {data.shape}")
    elif data.ndim != 2:
        raise ValueError(f"{fmt} holds 2D images; got shape {data.shape}")
    if fmt == "JPEG" and data.ndim == 3 and data.shape[-1] != 3:
        raise ValueError(f"JPEG holds grey or RGB images; got {data.shape[-1]} channels")
    grey_16 = fmt == "PNG" and data.ndim == 2 and data.dtype not in (np.uint8, np.bool_) and data.size > 0 \
        and float(data.max()) > 255
    data = _integer_array(data, 65535 if grey_16 else 255, fmt)
    im = Image.fromarray(np.ascontiguousarray(data))
    with atomic_path(path) as tmp:
        if fmt == "JPEG":
            im.save(tmp, format=fmt, quality=95)
        else:
            im.save(tmp, format=fmt)
    return os.path.abspath(path)
