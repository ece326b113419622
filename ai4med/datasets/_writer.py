"""Shared writing step of the dataset builders: NIfTI pairs + datalist.json."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage


def write_cases(
    out_dir: str,
    cases: Sequence[tuple[np.ndarray, np.ndarray]],
    affine: np.ndarray,
    labels: dict[str, str],
    description: str,
    num_validation: int,
) -> str:
    """Write image/label NIfTI pairs and a datalist; the last `num_validation` cases validate."""
    from ai4med.io.datalist import write_datalist
    from ai4med.io.image_io import write_image

    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.join(out_dir, "imagesTr"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "labelsTr"), exist_ok=True)
    items = []
    for idx, (image, label) in enumerate(cases):
        name = f"case_{idx:03d}.nii.gz"
        img_path = os.path.join(out_dir, "imagesTr", name)
        lbl_path = os.path.join(out_dir, "labelsTr", name)
        write_image(_as_image(image.astype(np.float32), affine), img_path)
        write_image(_as_image(label.astype(np.uint8), affine), lbl_path)
        items.append({"image": img_path, "label": lbl_path})
    num_validation = min(max(num_validation, 1 if len(items) > 1 else 0), len(items) - 1)
    split = len(items) - num_validation
    datalist_path = os.path.join(out_dir, "datalist.json")
    write_datalist(
        datalist_path,
        {
            "description": description,
            "labels": labels,
            "modality": {"0": "MR"},
            "training": items[:split],
            "validation": items[split:],
        },
    )
    return datalist_path


def _as_image(data: np.ndarray, affine: np.ndarray) -> MedicalImage:
    img = MedicalImage(data, "DHW")
    img.set_property(ImageProperty.AFFINE, affine)
    return img
