"""read_image / write_image: one entry point for every image format ai4med handles.

| extension / path                | library    | FILE_FORMAT |
|---------------------------------|------------|-------------|
| `.nii`, `.nii.gz`               | nibabel    | nifti       |
| `.mha`, `.mhd` (+ `.raw`)       | SimpleITK  | metaimage   |
| `.nrrd`, `.nhdr`                | SimpleITK  | nrrd        |
| `.npy`                          | numpy      | numpy       |
| `.png`, `.jpg`, `.jpeg`         | Pillow     | png / jpeg  |
| a folder                        | pydicom    | dicom       |

Arrays are in voxel index order (i, j, k) as nibabel returns them ("DHW"), multi-channel
data channel-first ("CDHW"), 2D pictures (rows, cols) ("HW" / "CHW"). Every image carries
AFFINE (voxel -> RAS), SPACING, ORIGIN / DIRECTION (ITK, LPS), ORIGINAL_AFFINE,
ORIGINAL_SHAPE, ORIGINAL_SPACING, FILENAME, FILE_FORMAT and DTYPE (on disk). Writers take
AFFINE as the source of truth and never leave a half-written file.

Example:
    >>> import os, tempfile, numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> img = MedicalImage(np.zeros((8, 8, 4), np.float32), "DHW")
    >>> img.set_property(ImageProperty.AFFINE, np.diag([1.0, 1.0, 2.5, 1.0]))
    >>> path = write_image(img, os.path.join(folder, "vol.mha"))
    >>> back = read_image(path)
    >>> back.shape, back.get_property(ImageProperty.SPACING), back.get_property(ImageProperty.FILE_FORMAT)
    ((8, 8, 4), (1.0, 1.0, 2.5), 'metaimage')
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.errors import UserError
from ai4med.io.atomic import IncompleteWriteError

__all__ = [
    "ImageReadError",
    "ImageWriteError",
    "read_image",
    "write_image",
    "image_format",
    "to_closest_canonical",
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
]

logger = logging.getLogger(__name__)

#: extension -> FILE_FORMAT name
_FORMATS = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".npy": "numpy",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
}
READ_EXTENSIONS: tuple[str, ...] = tuple(_FORMATS)
WRITE_EXTENSIONS: tuple[str, ...] = tuple(_FORMATS)
#: header + detached data file formats: written through a temporary folder
_DETACHED = (".mhd", ".nhdr")


class ImageReadError(UserError):
    """An image could not be read: the message names the file and the reason."""


class ImageWriteError(UserError):
    """An image could not be written as asked: the message names the file and the reason."""


def _extension(path: str) -> str:
    low = os.fspath(path).lower()
    if low.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(low)[1]


def image_format(path: str) -> str:
    """The FILE_FORMAT name for `path` ("nifti", "metaimage", ..., "dicom" for a folder).

    Raises:
        ImageReadError: the extension is not one ai4med reads.
    """
    if os.path.isdir(path):
        return "dicom"
    ext = _extension(path)
    if ext not in _FORMATS:
        raise ImageReadError(
            f"{path}: unknown image file type {ext or '(no extension)'!r}; "
            f"supported: {', '.join(READ_EXTENSIONS)} or a DICOM series folder"
        )
    return _FORMATS[ext]


def error_reason(exc: BaseException, limit: int = 300) -> str:
    """A one-line reason from a library exception (SimpleITK's are multi-line with C++ paths)."""
    text = str(exc).strip() or type(exc).__name__
    m = re.search(r"ERROR:\s*(.+)", text)
    if m:
        text = m.group(1)
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


_reason = error_reason


# --- reading -------------------------------------------------------------------


def _read_sitk(path: str) -> MedicalImage:
    import SimpleITK as sitk

    from ai4med.io.itk import sitk_to_medical_image

    return sitk_to_medical_image(sitk.ReadImage(path))


def _read_one(path: str) -> MedicalImage:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: file not found")
    fmt = image_format(path)
    try:
        if fmt == "dicom":
            from ai4med.io.dicom import read_dicom_series

            img = read_dicom_series(path)
        elif fmt == "nifti":
            from ai4med.io.nifti import read_nifti

            img = read_nifti(path)
        elif fmt in ("metaimage", "nrrd"):
            img = _read_sitk(path)
        elif fmt == "numpy":
            from ai4med.io.numpy_io import read_npy

            img = read_npy(path)
        else:
            from ai4med.io.pil_io import read_pil

            img = read_pil(path)
    except UserError:
        raise
    except Exception as exc:  # corrupt / unreadable: one clear line naming the file
        raise ImageReadError(f"{path}: cannot read {fmt} image: {_reason(exc)}") from exc
    img.set_property(ImageProperty.FILENAME, os.path.abspath(path))
    img.set_property(ImageProperty.FILE_FORMAT, fmt)
    return img


def _spatial_axes(img: MedicalImage) -> tuple[int, ...]:
    return tuple(img.get_shape_format().get_spatial_axes())


def to_closest_canonical(img: MedicalImage) -> MedicalImage:
    """Flip / permute the spatial axes so the index axes point (closest to) R, A, S.

    Same result as `nibabel.as_closest_canonical` (data and affine); ORIGINAL_AFFINE and
    ORIGINAL_SHAPE keep the file's grid, AS_CANONICAL is set True.
    """
    import nibabel.orientations as nio

    from ai4med.io.geometry import geometry_properties

    affine = np.asarray(img.get_property(ImageProperty.AFFINE, np.eye(4)), dtype=np.float64)
    sf = img.get_shape_format()
    data = img.get_data()
    ch = sf.get_channel_axis()
    if ch >= 0:
        data = np.moveaxis(data, ch, -1)  # spatial axes first for apply_orientation
    spatial_nd = sf.get_number_of_spatial_dims()
    ornt = nio.io_orientation(affine)
    if spatial_nd == 2 and not np.array_equal(ornt[2], [2, 1]):
        logger.warning("%s: 2D image is not in the x-y plane; not reoriented",
                       img.get_property(ImageProperty.FILENAME))
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        out = img.new_image(img.get_data())
    else:
        if spatial_nd == 2:
            data = data[:, :, None] if ch < 0 else data[:, :, None, :]
        new = nio.apply_orientation(data, ornt)
        shape3 = data.shape[:3]
        affine = affine @ nio.inv_ornt_aff(ornt, shape3)
        if spatial_nd == 2:
            new = new[:, :, 0] if ch < 0 else new[:, :, 0, :]
        if ch >= 0:
            new = np.moveaxis(new, -1, ch)
        out = img.new_image(new)
    spatial = tuple(out.get_data().shape[a] for a in _spatial_axes(out))
    geo = geometry_properties(affine, spatial)
    for key in (ImageProperty.AFFINE, ImageProperty.SPACING, ImageProperty.ORIGIN, ImageProperty.DIRECTION):
        out.set_property(key, geo[key])
    out.set_property(ImageProperty.AS_CANONICAL, True)
    return out


def _stack_channels(images: list[MedicalImage], paths: Sequence[str]) -> MedicalImage:
    first = images[0]
    spatial0 = tuple(first.get_data().shape[a] for a in _spatial_axes(first))
    nd = len(spatial0)
    arrays = []
    for img, p in zip(images, paths):
        spatial = tuple(img.get_data().shape[a] for a in _spatial_axes(img))
        if spatial != spatial0:
            raise ImageReadError(
                f"{p}: spatial shape {spatial} differs from {paths[0]}'s {spatial0}; channel files must share a grid"
            )
        a0 = np.asarray(first.get_property(ImageProperty.AFFINE, np.eye(4)))
        a1 = np.asarray(img.get_property(ImageProperty.AFFINE, np.eye(4)))
        if not np.allclose(a0, a1, atol=1e-3):
            logger.warning("%s: affine differs from %s's; using the first file's geometry", p, paths[0])
        sf = img.get_shape_format()
        data = img.get_data()
        data = np.moveaxis(data, sf.get_channel_axis(), 0) if sf.has_channel() else data[None]
        arrays.append(data)
    try:
        stacked = np.concatenate(arrays, axis=0)
    except (TypeError, ValueError) as exc:  # pragma: no cover - shapes checked above
        raise ImageReadError(f"{paths[0]}: cannot stack channel files: {exc}") from exc
    return first.new_image(stacked, "CDHW" if nd == 3 else "CHW")


def read_image(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    dtype: Any = None,
    as_closest_canonical: bool = False,
) -> MedicalImage:
    """Read an image file, a DICOM series folder, or several files as channels.

    Args:
        path: a file, a DICOM folder, or a list of them (one channel each, stacked
            channel-first; FILENAME is then the first file).
        dtype: cast the data to this dtype ("float32", np.int16, ...); None keeps the file's.
        as_closest_canonical: reorient to the closest RAS orientation (data and geometry).

    Returns:
        A `MedicalImage` ("DHW" / "CDHW" / "HW" / "CHW") with the geometry properties.

    Raises:
        ImageReadError: missing file, unknown extension, corrupt or unreadable data;
            the message names the file.
    """
    if isinstance(path, (list, tuple)):
        paths = [os.fspath(p) for p in path]
        if not paths:
            raise ImageReadError("read_image: empty list of files")
        images = [_read_one(p) for p in paths]
        if as_closest_canonical:
            images = [to_closest_canonical(i) for i in images]
        img = images[0] if len(images) == 1 else _stack_channels(images, paths)
    else:
        img = _read_one(os.fspath(path))
        if as_closest_canonical:
            img = to_closest_canonical(img)
    if not as_closest_canonical:
        img.set_property(ImageProperty.AS_CANONICAL, False)
    if dtype is not None:
        from ai4med.utils.dtype_utils import str_to_dtype

        img = img.new_image(img.get_data().astype(str_to_dtype(dtype), copy=False))
    return img


# --- writing -------------------------------------------------------------------


def _write_sitk(image: MedicalImage, path: str, affine: Any) -> None:
    from ai4med.io.itk import medical_image_to_sitk

    write_sitk_atomic(medical_image_to_sitk(image, affine), path)


def _sitk_data_bytes(simg: Any) -> int:
    n = 1
    for v in simg.GetSize():
        n *= int(v)
    return n * int(simg.GetNumberOfComponentsPerPixel()) * int(simg.GetSizeOfPixelComponent())


def write_sitk_atomic(simg: Any, path: str) -> None:
    """Write a SimpleITK image so that `path` only ever appears complete.

    Single files go through a temporary name + rename; for header + data pairs (.mhd, .nhdr)
    both are written under their final names in a temporary folder, then the data file(s)
    move into place first and the header (which names them relatively) last. SimpleITK
    reports a full disk only on stderr ("wrote only 0 of N bytes") and returns, so every
    file is checked to hold the image's data bytes (gzip: decompressed) before the rename;
    a short one is an `IncompleteWriteError` and nothing takes the final name.
    """
    import SimpleITK as sitk

    from ai4med.io.atomic import atomic_dir, atomic_path, fsync_path, payload_check
    from ai4med.io.itk import keep_locale

    ext = _extension(path)
    need = _sitk_data_bytes(simg)
    if ext not in _DETACHED:
        with atomic_path(path, verify=payload_check(need, path)) as tmp, keep_locale():
            sitk.WriteImage(simg, tmp)
        return
    # header + data file: write both under the final names in a temporary folder, then move
    # the data file(s) first and the header last (the header names the data file relatively)
    final_dir, name = os.path.split(os.path.abspath(path))
    with atomic_dir(path) as tmp_dir:
        with keep_locale():
            sitk.WriteImage(simg, os.path.join(tmp_dir, name))
        produced = sorted(os.listdir(tmp_dir))
        if name not in produced:
            raise ImageWriteError(f"{path}: the writer produced no header file")
        data_files = [os.path.join(tmp_dir, f) for f in produced if f != name]
        if os.path.getsize(os.path.join(tmp_dir, name)) == 0:
            raise IncompleteWriteError(f"{path}: the header file is empty (is the disk full?)")
        if data_files:
            got = sum(os.path.getsize(f) for f in data_files)
            if len(data_files) == 1:
                payload_check(need, path)(data_files[0])
            elif got < need:
                raise IncompleteWriteError(f"{path}: only {got} of {need} data bytes were written (is the disk full?)")
        for f in produced:
            fsync_path(os.path.join(tmp_dir, f))
        for f in produced:
            if f != name:
                os.replace(os.path.join(tmp_dir, f), os.path.join(final_dir, f))
        os.replace(os.path.join(tmp_dir, name), os.path.join(final_dir, name))


def write_image(
    image: MedicalImage | np.ndarray,
    path: str | os.PathLike,
    affine: Any = None,
    dtype: Any = None,
) -> str:
    """Write `image` to `path` in the format its extension names, atomically.

    Args:
        image: a `MedicalImage` (its AFFINE, else ORIGIN/SPACING/DIRECTION, gives the
            geometry) or a bare array (2D "HW", 3D "DHW", 4D channel-first "CDHW").
        path: the target; `.nii`, `.nii.gz`, `.mha`, `.mhd` (+ `.raw`), `.nrrd`, `.nhdr`,
            `.npy` (data only), `.png`, `.jpg`, `.jpeg` (2D, 8-bit; PNG grey also 16-bit).
        affine: a 4x4 voxel -> RAS affine overriding the image's.
        dtype: cast the data before writing (e.g. "uint8" for a label map).

    Returns:
        The absolute path written.

    Raises:
        ImageWriteError: unknown extension, or data the format cannot hold.
    """
    from ai4med.io.itk import image_affine, spatial_layout

    path = os.path.abspath(os.fspath(path))
    ext = _extension(path)
    if ext not in _FORMATS:
        raise ImageWriteError(
            f"{path}: unknown image file type {ext or '(no extension)'!r}; supported: {', '.join(WRITE_EXTENSIONS)}"
        )
    if not isinstance(image, MedicalImage):
        from ai4med.io.numpy_io import format_for_ndim

        arr = np.asarray(image)
        try:
            image = MedicalImage(arr, format_for_ndim(arr.ndim))
        except ValueError as exc:
            raise ImageWriteError(f"{path}: {exc}") from exc
    if dtype is not None:
        from ai4med.utils.dtype_utils import str_to_dtype

        image = image.new_image(image.get_data().astype(str_to_dtype(dtype), copy=False))
    fmt = _FORMATS[ext]
    try:
        if fmt == "nifti":
            from ai4med.io.nifti import write_nifti

            data, _ = spatial_layout(image)
            write_nifti(data, image_affine(image, affine), path)
        elif fmt in ("metaimage", "nrrd"):
            _write_sitk(image, path, affine)
        elif fmt == "numpy":
            from ai4med.io.numpy_io import write_npy

            data, _ = spatial_layout(image)
            write_npy(data, path)
        else:
            from ai4med.io.pil_io import write_pil

            data, _ = spatial_layout(image)
            write_pil(data, path)
    except ValueError as exc:
        raise ImageWriteError(f"{path}: cannot write {fmt}: {exc}") from exc
    return path
