"""Do an item's image and label lie on the same grid? Read from the file headers only (fast).

Why: a label cropped or resampled differently from its image fails deep inside training (a crop
refusing two shapes) or, worse, trains on misaligned voxels when only the affine differs.
`ai4med check-datalist` runs this before any work starts and names every such case.

Example:
    >>> import os, tempfile, numpy as np, nibabel as nib
    >>> d = tempfile.mkdtemp()
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.eye(4)), os.path.join(d, "i.nii.gz"))
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 5, 5), np.uint8), np.eye(4)), os.path.join(d, "l.nii.gz"))
    >>> grid_problems({"image": os.path.join(d, "i.nii.gz"), "label": os.path.join(d, "l.nii.gz")})
    ['label shape (4, 5, 5) differs from image shape (4, 5, 6)']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ai4med.io.datalist import field_paths

#: the largest difference between two affines (mm, or mm per voxel) that still counts as one grid
AFFINE_TOLERANCE = 1e-3


class Grid(NamedTuple):
    """A file's spatial shape and voxel-to-world (RAS mm) affine."""

    shape: tuple[int, ...]
    affine: np.ndarray


def read_grid(path: str) -> Grid | None:
    """The grid of a NIfTI or MetaImage/NRRD file from its header; None for other inputs (DICOM
    folders, PNG). Raises OSError / ValueError for a file whose header cannot be read."""
    name = path.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        img = nib.load(path)
        shape = tuple(int(s) for s in img.shape[:3])
        return Grid(shape, np.asarray(img.affine, dtype=np.float64))
    if name.endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
        import SimpleITK as sitk

        from ai4med.io.geometry import affine_from_itk

        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        dim = len(reader.GetSize())
        n = min(dim, 3)  # a 4D file: its first three axes, as the reader (`sitk_to_medical_image`) takes them
        direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dim, dim)[:n, :n]
        affine = affine_from_itk(reader.GetOrigin()[:n], reader.GetSpacing()[:n], direction)
        # ITK lists sizes x, y, z; the arrays ai4med reads are in that order too (as nibabel's)
        return Grid(tuple(int(s) for s in reader.GetSize()[:n]), affine)
    return None


def grid_problems(item: dict[str, Any], image_key: str = "image", others: Sequence[str] = ("label",)) -> list[str]:
    """What is wrong with the grids of one item: each file of `others` (and each extra channel file of
    the image) against the image's first file. Empty when they agree or cannot be compared."""
    images = field_paths(item.get(image_key))
    if not images:
        return []
    problems: list[str] = []
    grids: dict[str, Grid | None] = {}
    for key, path in [(image_key, p) for p in images] + [(k, p) for k in others for p in field_paths(item.get(k))]:
        if path in grids or os.path.isdir(path):
            continue
        try:
            grids[path] = read_grid(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is this file's problem
            problems.append(f"{key} {os.path.basename(path)}: header unreadable ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
            grids[path] = None
    ref = grids.get(images[0])
    if ref is None:
        return problems
    for key, path in [(image_key, p) for p in images[1:]] + [(k, p) for k in others for p in field_paths(item.get(k))]:
        grid = grids.get(path)
        if grid is None:
            continue
        what = key if len(field_paths(item.get(key))) == 1 else f"{key} {os.path.basename(path)}"
        if grid.shape != ref.shape:
            problems.append(f"{what} shape {grid.shape} differs from {image_key} shape {ref.shape}")
        elif not np.allclose(grid.affine, ref.affine, atol=AFFINE_TOLERANCE, rtol=0):
            diff = float(np.abs(grid.affine - ref.affine).max())
            problems.append(f"{what} affine differs from {image_key}'s by up to {diff:.4g} mm (spacing, "
                            "orientation or origin): the voxels would not line up")
    return problems
