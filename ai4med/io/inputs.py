"""Which files and folders of an input folder are images to run: volumes and DICOM series.

Shared by `ai4med deploy` (its input folder) and `ai4med infer -d FOLDER`.
"""

from __future__ import annotations

import os

from ai4med.errors import UserError

VOLUME_EXTS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
DATA_EXTS = (".raw", ".zraw", ".raw.gz", ".img")  # MetaImage / NRRD data files, read through their header
UNREADABLE_DICOM = "not a DICOM series"


class InputFolderError(UserError):
    """The input folder is missing or cannot be listed."""


def is_volume(name: str) -> bool:
    """True for a NIfTI / MetaImage / NRRD file name."""
    return name.lower().endswith(VOLUME_EXTS)


def _dicom_named_files(folder: str) -> int:
    """How many files in `folder` are named like DICOM files (such a folder was meant as an input)."""
    try:
        return sum(1 for n in os.listdir(folder) if n.lower().endswith((".dcm", ".dicom", ".ima")))
    except OSError:
        return 0


def find_inputs(folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(inputs, ignored): the volumes and DICOM folders in `folder`, and what was left out, with why.

    The folder itself counts as one DICOM folder when it holds DICOM images and no volume. A
    DICOM folder may hold several series (`ai4med deploy` makes one case of each).
    """
    from ai4med.io.dicom import is_dicom_folder

    if not os.path.isdir(folder):
        raise InputFolderError(f"input folder not found: {folder}")
    try:
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
    except OSError as e:
        raise InputFolderError(f"cannot list the input folder {folder}: {e}") from e
    inputs: list[str] = []
    ignored: list[tuple[str, str]] = []
    loose_files = False
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            if is_dicom_folder(path):
                inputs.append(path)
            elif _dicom_named_files(path):
                ignored.append((path, f"{UNREADABLE_DICOM}: none of its {_dicom_named_files(path)} DICOM-named "
                                      "file(s) (.dcm, .dicom, .ima) is a readable DICOM image"))
            else:
                ignored.append((path, "a folder without DICOM images"))
        elif is_volume(name):
            inputs.append(path)
        elif name.lower().endswith(DATA_EXTS):
            continue
        else:
            loose_files = True
            ignored.append((path, "not a NIfTI / MetaImage volume"))
    if not inputs and loose_files and is_dicom_folder(folder):
        return [folder], []
    return inputs, ignored
