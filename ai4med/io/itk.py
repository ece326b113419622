"""SimpleITK images <-> MedicalImage, with the project's axis and geometry conventions.

`SimpleITK.GetArrayFromImage` returns (z, y, x); ai4med arrays are in index order
(i, j, k) = (x, y, z) like nibabel's, so the array is transposed (a view, no copy).
Multi-component (vector) pixels become a leading channel axis; a 4D scalar image
(x, y, z, t) becomes channel-first (t, x, y, z).

Example:
    >>> import numpy as np, SimpleITK as sitk
    >>> img = sitk.GetImageFromArray(np.zeros((4, 3, 2), np.int16))  # (z, y, x)
    >>> img.SetSpacing((0.5, 1.0, 2.0))
    >>> mi = sitk_to_medical_image(img)
    >>> mi.shape, mi.get_shape_format().value, mi.get_property("spacing")
    ((2, 3, 4), 'DHW', (0.5, 1.0, 2.0))
    >>> medical_image_to_sitk(mi).GetSize()
    (2, 3, 4)
"""

from __future__ import annotations

import contextlib
import locale
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.io.geometry import affine_from_itk, geometry_properties, itk_from_affine, to_4x4
from ai4med.io.memory_order import fortran_order

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK

__all__ = ["keep_locale", "sitk_to_medical_image", "medical_image_to_sitk", "storable_array", "image_affine",
           "spatial_layout"]


@contextlib.contextmanager
def keep_locale() -> Iterator[None]:
    """Restore the process locale after a SimpleITK call.

    SimpleITK's DICOM (GDCM) writer leaves the whole process in the "C" locale; from then on
    every `open()` without an encoding decodes ASCII, and e.g. torch.compile failed reading its
    UTF-8 kernel templates in a process that had written a DICOM slice.
    """
    saved = locale.setlocale(locale.LC_ALL, None)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL, None) != saved:
            locale.setlocale(locale.LC_ALL, saved)


def sitk_to_medical_image(img: SimpleITK.Image) -> MedicalImage:
    """Convert a SimpleITK image to a `MedicalImage` with the geometry properties set.

    Returns a "DHW" (3D), "CDHW" (3D vector pixels or 4D), "HW" or "CHW" (2D) image whose
    AFFINE is the voxel -> RAS affine and ORIGIN / SPACING / DIRECTION are SimpleITK's own
    values. FILENAME / FILE_FORMAT are left to the caller.
    """
    import SimpleITK as sitk

    dim = img.GetDimension()
    ncomp = img.GetNumberOfComponentsPerPixel()
    arr = sitk.GetArrayFromImage(img)
    origin, spacing, direction = img.GetOrigin(), img.GetSpacing(), img.GetDirection()
    if dim in (2, 3):
        if ncomp == 1:
            data = arr.transpose(tuple(range(dim - 1, -1, -1)))
            fmt = "DHW" if dim == 3 else "HW"
        else:  # (z, y, x, c) -> (c, x, y, z)
            data = arr.transpose(tuple(range(dim, -1, -1)))
            fmt = "CDHW" if dim == 3 else "CHW"
        affine = affine_from_itk(origin, spacing, direction)
    elif dim == 4 and ncomp == 1:  # (t, z, y, x) -> (t, x, y, z)
        data = arr.transpose(0, 3, 2, 1)
        fmt = "CDHW"
        d4 = np.asarray(direction, dtype=np.float64).reshape(4, 4)
        affine = affine_from_itk(origin[:3], spacing[:3], d4[:3, :3])
    else:
        raise ValueError(
            f"unsupported SimpleITK image: dimension {dim} with {ncomp} components per pixel "
            "(supported: 2D/3D scalar or vector, 4D scalar)"
        )
    spatial = data.shape[1:] if fmt.startswith("C") else data.shape
    props = geometry_properties(affine, spatial)
    if dim in (2, 3):  # keep SimpleITK's exact values (no round trip through the affine)
        props[ImageProperty.ORIGIN] = tuple(float(v) for v in origin)
        props[ImageProperty.SPACING] = tuple(float(v) for v in spacing)
        props[ImageProperty.ORIGINAL_SPACING] = props[ImageProperty.SPACING]
        props[ImageProperty.DIRECTION] = tuple(float(v) for v in direction)
    props[ImageProperty.DTYPE] = np.dtype(arr.dtype).name
    return MedicalImage(data, fmt, props)


def spatial_layout(image: MedicalImage) -> tuple[np.ndarray, int]:
    """The array of `image` as (channel-first or channel-less spatial) and its number of channels.

    Returns `(data, channels)` with data shaped (C, *spatial) when channels > 1, else
    (*spatial). Raises ValueError for batched formats.
    """
    sf = image.get_shape_format()
    data = image.get_data()
    if sf.has_batch():
        raise ValueError(f"cannot write a batched image (shape format {sf.value}); write one sample at a time")
    if sf.has_channel():
        data = np.moveaxis(data, sf.get_channel_axis(), 0)
        if data.shape[0] == 1:
            return data[0], 1
        return data, int(data.shape[0])
    return data, 1


def image_affine(image: MedicalImage, affine: Any = None) -> np.ndarray:
    """The 4x4 voxel -> RAS affine to write `image` with.

    The explicit `affine` wins, then the image's AFFINE, then its ITK ORIGIN / SPACING /
    DIRECTION, else the identity.
    """
    if affine is not None:
        return to_4x4(affine)
    a = image.get_property(ImageProperty.AFFINE)
    if a is not None:
        return to_4x4(a)
    origin = image.get_property(ImageProperty.ORIGIN)
    spacing = image.get_property(ImageProperty.SPACING)
    direction = image.get_property(ImageProperty.DIRECTION)
    if origin is not None and spacing is not None and direction is not None and len(origin) == len(spacing):
        return affine_from_itk(origin, spacing, direction)
    out = np.eye(4)
    if spacing is not None:  # only spacing known: world RAS = index * spacing
        n = min(len(spacing), 3)
        out[np.arange(n), np.arange(n)] = [float(s) for s in spacing][:n]
    return out


def storable_array(data: np.ndarray) -> np.ndarray:
    """Cast dtypes that image formats cannot store: bool -> uint8, float16 -> float32."""
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if data.dtype == np.float16:
        return data.astype(np.float32)
    return data


def medical_image_to_sitk(image: MedicalImage | np.ndarray, affine: Any = None) -> SimpleITK.Image:
    """Convert a `MedicalImage` (or a bare (i, j, k) array) to a SimpleITK image.

    The geometry comes from `affine` if given, else the image's AFFINE (the source of
    truth), else ORIGIN / SPACING / DIRECTION, else the identity. A channel axis of size > 1
    becomes vector pixels; a single channel is dropped.
    """
    import SimpleITK as sitk

    if not isinstance(image, MedicalImage):
        arr = np.asarray(image)
        if arr.ndim not in (2, 3):
            raise ValueError(f"a bare array must be 2D or 3D (i, j[, k]); got shape {arr.shape}")
        image = MedicalImage(arr, "DHW" if arr.ndim == 3 else "HW")
    data, channels = spatial_layout(image)
    data = storable_array(data)
    spatial_ndim = data.ndim - (1 if channels > 1 else 0)
    if spatial_ndim not in (2, 3):
        raise ValueError(f"cannot convert an image of {spatial_ndim} spatial dimensions to SimpleITK")
    # (c, x, y, z) -> (z, y, x, c), C-contiguous: the reversed view of a Fortran-ordered array
    arr = fortran_order(data).transpose(tuple(range(data.ndim - 1, -1, -1)))
    img = sitk.GetImageFromArray(arr, isVector=channels > 1)
    origin, spacing, direction = itk_from_affine(image_affine(image, affine), spatial_ndim)
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    return img
