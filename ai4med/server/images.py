"""Uploaded images in, result masks out, with the checks that keep bad files from crashing anything.

Points on the wire are `[x, y, z]` (ITK/NIfTI i, j, k). ai4med reads NIfTI / MetaImage /
NRRD in that index order, so a point indexes the array directly; PNG/JPEG arrays are
(row, col) = (y, x), so 2D picture points are swapped (`to_index` / `from_index`).

Example:
    >>> import numpy as np
    >>> from ai4med.common.medical_image import MedicalImage
    >>> v = spatial_view(MedicalImage(np.zeros((2, 4, 5, 6), "f4"), "CDHW"))
    >>> v.data.shape, v.shape
    ((2, 4, 5, 6), (4, 5, 6))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.server.errors import ApiError

__all__ = ["load_image", "spatial_view", "SpatialView", "write_mask", "result_suffix", "to_index", "from_index"]

_3D_OUT = (".nii.gz", ".nii", ".mha", ".nrrd")
_2D_PICTURE = ("png", "jpeg")


@dataclass
class SpatialView:
    """An image as channel-first float data `(C, *spatial)` plus what a result needs."""

    image: MedicalImage
    data: np.ndarray
    shape: tuple[int, ...]
    picture: bool  # PNG/JPEG: points are (x, y) = (col, row)

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _nifti_precheck(path: str, max_voxels: int) -> None:
    import nibabel as nib

    try:
        hdr = nib.load(path).header
        shape = hdr.get_data_shape()
    except Exception as exc:
        msg = str(exc).replace(path, "the upload").replace(os.path.dirname(path), "")
        raise ApiError(400, f"not a readable NIfTI image: {msg[:200]}") from None
    n = int(np.prod([max(1, int(s)) for s in shape])) if shape else 0
    if n > max_voxels:
        raise ApiError(413, f"image of shape {tuple(shape)} exceeds the limit of {max_voxels} voxels")


def load_image(path: str, max_voxels: int) -> MedicalImage:
    """Read an uploaded file; 400 for anything unreadable, 413 for a too large image."""
    from ai4med.io.image_io import image_format, read_image

    if not os.path.exists(path) or os.path.getsize(path) == 0:
        raise ApiError(400, "the uploaded image is empty")
    try:
        fmt = image_format(path)
    except Exception:
        raise ApiError(400, "unsupported image file: send .nii.gz, .nii, .mha, .nrrd or .png") from None
    if fmt == "nifti":
        _nifti_precheck(path, max_voxels)
    try:
        img = read_image(path)
    except MemoryError:
        raise ApiError(413, "the uploaded image is too large to read") from None
    except Exception as exc:
        msg = str(exc).replace(os.path.dirname(path), "").strip()
        raise ApiError(400, f"cannot read the uploaded {fmt} image: {msg[:300]}") from None
    data = img.get_data()
    if data.size == 0 or data.size > max_voxels:
        raise ApiError(400 if data.size == 0 else 413, f"unusable image of shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_) or np.iscomplexobj(data):
        raise ApiError(400, f"unsupported voxel type {data.dtype}")
    return img


def spatial_view(img: MedicalImage) -> SpatialView:
    """Channel-first float32 data of `img` (a missing channel axis added)."""
    sf = img.get_shape_format()
    data = np.asarray(img.get_data())
    if sf.has_batch():
        raise ApiError(400, "batched images are not supported")
    if sf.has_channel():
        data = np.moveaxis(data, sf.get_channel_axis(), 0)
    else:
        data = data[None]
    if data.ndim not in (3, 4):
        raise ApiError(400, f"expected a 2D or 3D image, got spatial shape {data.shape[1:]}")
    data = data.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    picture = img.get_property(ImageProperty.FILE_FORMAT) in _2D_PICTURE
    return SpatialView(img, data, tuple(int(s) for s in data.shape[1:]), picture)


def to_index(points: np.ndarray, picture: bool) -> np.ndarray:
    """Wire points -> array indices (PNG/JPEG: [x, y] -> [row, col])."""
    return points[:, ::-1].copy() if picture and points.size else points


def from_index(points: np.ndarray, picture: bool) -> np.ndarray:
    """Array indices -> wire points (inverse of `to_index`)."""
    return to_index(points, picture)


def wire_shape(view: SpatialView) -> list[int]:
    """The image size as the client sees it ([x, y(, z)])."""
    return list(view.shape[::-1]) if view.picture else list(view.shape)


def result_suffix(upload_name: str, ndim: int) -> str:
    """The reply file's suffix: the input's container for 3D, PNG for 2D pictures."""
    low = upload_name.lower()
    if ndim == 2 and not low.endswith((".nii.gz", ".nii")):
        return ".png"
    for suf in _3D_OUT:
        if low.endswith(suf):
            return suf
    return ".mha" if low.endswith(".mhd") else ".nii.gz"


def write_mask(mask: np.ndarray, like: MedicalImage, out_dir: str, upload_name: str) -> tuple[str, bytes]:
    """Write a label mask (spatial array on `like`'s grid) with `like`'s geometry; returns (filename, bytes)."""
    from ai4med.io.image_io import write_image

    nd = mask.ndim
    suffix = result_suffix(upload_name, nd)
    fmt = "DHW" if nd == 3 else "HW"
    out = like.new_image(np.ascontiguousarray(mask.astype(np.uint8)), fmt)
    name = "result" + suffix
    path = os.path.join(out_dir, name)
    write_image(out, path, dtype="uint8")
    with open(path, "rb") as fh:
        data = fh.read()
    os.remove(path)
    return name, data
