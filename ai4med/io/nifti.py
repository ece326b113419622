"""NIfTI (.nii, .nii.gz) via nibabel.

Arrays keep nibabel's voxel index order (i, j, k); a 4D (x, y, z, c) volume (or a 5D
(x, y, z, 1, c) vector image) is returned channel-first "CDHW". The affine is nibabel's
`img.affine` (sform if set, else qform).

Example:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.nii.gz")
    >>> affine = np.diag([2.0, 2.0, 3.0, 1.0])
    >>> _ = write_nifti(np.ones((4, 5, 6), np.int16), affine, path)
    >>> img = read_nifti(path)
    >>> img.shape, img.get_property("spacing")
    ((4, 5, 6), (2.0, 2.0, 3.0))
"""

from __future__ import annotations

import os

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.io.atomic import atomic_path, payload_check
from ai4med.io.geometry import geometry_properties, to_4x4
from ai4med.io.memory_order import fortran_order

__all__ = ["read_nifti", "write_nifti", "NIFTI_EXTENSIONS"]

FAST_ORDER_BYTES = 1 << 30  # writes of up to 1 GiB take one Fortran-ordered copy (io.memory_order)

NIFTI_EXTENSIONS = (".nii", ".nii.gz")


def read_nifti(path: str) -> MedicalImage:
    """Read a NIfTI-1/2 file into a "DHW" / "CDHW" / "HW" `MedicalImage` with geometry properties.

    Raises whatever nibabel raises for missing or corrupt files (`read_image` wraps it).
    """
    import nibabel as nib

    img = nib.load(path, mmap=False)  # read into memory: no open handle on a file we may overwrite
    data = np.asanyarray(img.dataobj)  # on-disk dtype unless scl_slope/inter scale it
    if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector convention (x, y, z, 1, c)
        data = data[:, :, :, 0, :]
    if data.ndim == 4:
        data = np.moveaxis(data, -1, 0)
        fmt = "CDHW"
    elif data.ndim == 3:
        fmt = "DHW"
    elif data.ndim == 2:
        fmt = "HW"
    else:
        raise ValueError(f"unsupported NIfTI data shape {data.shape} (expected 2D, 3D or 4D)")
    spatial = data.shape[1:] if fmt == "CDHW" else data.shape
    props = geometry_properties(np.asarray(img.affine, dtype=np.float64), spatial)
    props[ImageProperty.DTYPE] = np.dtype(img.get_data_dtype()).name
    props[ImageProperty.PIXDIM] = tuple(float(v) for v in img.header.get_zooms()[: len(spatial)])
    return MedicalImage(data, fmt, props)


def _nifti_array(data: np.ndarray) -> np.ndarray:
    """Cast dtypes NIfTI (or nibabel's defaults) refuse: bool, float16, 64-bit ints that fit 32."""
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if data.dtype == np.float16:
        return data.astype(np.float32)
    if data.dtype in (np.int64, np.uint64) and data.size:
        lo, hi = int(data.min()), int(data.max())
        if np.iinfo(np.int32).min <= lo and hi <= np.iinfo(np.int32).max:
            return data.astype(np.int32)
    return data


def write_nifti(data: np.ndarray, affine: np.ndarray, path: str) -> str:
    """Write a (i, j, k) or channel-first (c, i, j, k) array to NIfTI atomically.

    The qform and sform both hold `affine` (code 1, scanner), units mm. Channels are
    stored along the 4th dimension. Returns the absolute path.
    """
    import nibabel as nib

    data = _nifti_array(np.asarray(data))
    if data.ndim == 4:
        data = np.moveaxis(data, 0, -1)
    elif data.ndim not in (2, 3):
        raise ValueError(f"cannot write an array of shape {data.shape} to NIfTI")
    affine = to_4x4(affine)
    kwargs = {"dtype": data.dtype} if data.dtype in (np.int64, np.uint64) else {}
    # in the file's order, nibabel writes without its slice-by-slice transposing (a 512x512x120 mask: 0.19 vs 0.33 s);
    # a volume above FAST_ORDER_BYTES keeps that slower path, which copies no whole volume
    img = nib.Nifti1Image(fortran_order(data) if data.nbytes <= FAST_ORDER_BYTES else data, affine, **kwargs)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    # nibabel raises on a full disk, but the read-back of the data bytes (gzip: decompressed)
    # also catches a writer or filesystem that fails silently
    with atomic_path(path, verify=payload_check(data.nbytes, path)) as tmp:
        nib.save(img, tmp)
    return os.path.abspath(path)
