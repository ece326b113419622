"""`ai4med check-datalist`: validate a datalist and every file it names, before any work starts.

Example:
    >>> import argparse, json, os, tempfile, numpy as np, nibabel as nib
    >>> folder = tempfile.mkdtemp()
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), os.path.join(folder, "a.nii.gz"))
    >>> with open(os.path.join(folder, "dl.json"), "w") as f:
    ...     json.dump({"training": [{"image": "a.nii.gz"}], "test": ["a.nii.gz"]}, f)
    >>> run(argparse.Namespace(datalist=os.path.join(folder, "dl.json"), file_root=None, key=None))
    training: 1 item, 1 file, all present
    test: 1 item, 1 file, all present
    0

Besides that every file exists, it checks from the headers (NIfTI, MetaImage, NRRD) that each item's
label (and each extra channel file) lies on its image's grid: same shape, same affine.
"""

from __future__ import annotations

import argparse
from typing import Any


def _count_files(item: dict[str, Any]) -> int:
    from ai4med.io.datalist import field_paths

    return sum(len(field_paths(v)) for v in item.values())


def run(args: argparse.Namespace) -> int:
    """Print one summary line per list of the datalist, or raise DatalistError listing every problem."""
    import os

    from ai4med.io.datalist import DatalistError, load_datalists
    from ai4med.io.geometry_check import grid_problems

    keys = [args.key] if getattr(args, "key", None) else None
    lists = load_datalists(args.datalist, keys=keys, base_dir=getattr(args, "file_root", None))
    problems = [(f"/{key}/{i}", text) for key, items in lists.items() for i, item in enumerate(items)
                for text in grid_problems(item)]
    if problems:
        raise DatalistError(os.path.abspath(args.datalist), problems)
    for key, items in lists.items():
        files = sum(_count_files(item) for item in items)
        print(
            f"{key}: {len(items)} item{'s' if len(items) != 1 else ''}, "
            f"{files} file{'s' if files != 1 else ''}, all present"
            + (", labels on their images' grids" if any("label" in item for item in items) else "")
        )
    return 0
