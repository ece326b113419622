"""File names of images: the one place that knows which extensions an image file name carries.

Every output named after its input (`case_1.nii.gz` -> `case_1_model.nii.gz`, `case_1.mhd`, a
DICOM folder `CT5N` -> `CT5N.mhd`) strips the extension here, so the CLI, the deploy app and the
writers name the same input the same way.

Example:
    >>> image_stem("/data/Case 1.nii.gz"), image_stem("scan.MHA"), image_stem("/dicom/CT5N/")
    ('Case 1', 'scan', 'CT5N')
"""

from __future__ import annotations

import os

__all__ = ["IMAGE_EXTS", "image_stem"]

#: longest first, so ".nii.gz" wins over ".gz"-less ".nii"
IMAGE_EXTS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".npy", ".png", ".jpg", ".jpeg", ".dcm")


def image_stem(path: str | os.PathLike[str]) -> str:
    """The base name of an image file (or folder) without its image extension."""
    name = os.path.basename(os.path.normpath(os.fspath(path)))
    low = name.lower()
    for ext in IMAGE_EXTS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name
