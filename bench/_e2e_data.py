"""Synthetic CT-like phantoms for `bench/end_to_end.py`, built offline and cached.

A phantom is defined in physical (mm) coordinates, so the same case can be sampled on the
scanner grid (e.g. 512x512x120 at 0.75x0.75x2.5 mm, int16 HU, what inference reads) and on the
network's grid (1.5x1.5x2.5 mm, what the network is trained on). Air (-1000 HU) outside a
body ellipse; a fat rim (-100), soft tissue (40), the labelled organ (an ellipsoid at ~100 HU,
inside the window [-160, 240]) and an unlabelled brighter distractor organ (~200 HU), so the
network must use shape and intensity; Gaussian noise (sd 20 HU).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

SCAN_SPACING = (0.75, 0.75, 2.5)
TARGET_SPACING = (1.5, 1.5, 2.5)
WINDOW = (-160.0, 240.0)  # HU window of ScaleIntensityRange(d) -> [0, 1], clipped


def _params(seed: int, extent: np.ndarray) -> dict:
    """Random anatomy of one case, in mm, relative to the volume's centre."""
    rng = np.random.default_rng(seed)
    body = extent[:2] * rng.uniform([0.38, 0.28], [0.45, 0.34])
    organ_c = np.array([rng.uniform(-0.35, 0.0) * body[0], rng.uniform(-0.3, 0.3) * body[1],
                        rng.uniform(-0.15, 0.15) * extent[2]])
    organ_r = np.array([rng.uniform(0.25, 0.4) * body[0], rng.uniform(0.3, 0.5) * body[1],
                        rng.uniform(0.2, 0.3) * extent[2]])
    other_c = np.array([rng.uniform(0.35, 0.55) * body[0], rng.uniform(-0.3, 0.3) * body[1],
                        rng.uniform(-0.15, 0.15) * extent[2]])
    other_r = np.array([rng.uniform(0.12, 0.2) * body[0], rng.uniform(0.15, 0.25) * body[1],
                        rng.uniform(0.1, 0.2) * extent[2]])
    return {"body": body, "organ": (organ_c, organ_r, rng.uniform(90, 110)),
            "other": (other_c, other_r, rng.uniform(180, 220)), "noise_seed": int(rng.integers(1 << 31))}


def phantom(seed: int, extent_mm: Sequence[float], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """(image int16 HU, label uint8, affine) of case `seed` sampled at `spacing` over `extent_mm`."""
    extent, spacing = np.asarray(extent_mm, float), np.asarray(spacing, float)
    shape = np.maximum(np.round(extent / spacing).astype(int), 1)
    p = _params(seed, extent)
    origin = -(shape - 1) / 2.0 * spacing
    x, y, z = (((np.arange(n) * s + o)[tuple(slice(None) if a == i else None for a in range(3))]).astype(np.float32)
               for i, (n, s, o) in enumerate(zip(shape, spacing, origin)))
    r_body = (x / p["body"][0]) ** 2 + (y / p["body"][1]) ** 2  # (X, Y, 1)
    img = np.full(tuple(shape), -1000.0, np.float32)
    inside = np.broadcast_to(r_body <= 1.0, img.shape)
    img[inside] = -100.0
    img[np.broadcast_to(r_body <= 0.85, img.shape)] = 40.0

    def ellipsoid(c, r):
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0

    organ = ellipsoid(*p["organ"][:2])
    img[ellipsoid(*p["other"][:2])] = p["other"][2]
    img[organ] = p["organ"][2]
    rng = np.random.default_rng(p["noise_seed"])
    img[inside] += rng.standard_normal(int(inside.sum()), dtype=np.float32) * 20.0
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return np.clip(img, -1024, 3071).astype(np.int16), organ.astype(np.uint8), affine


def build_scan_folder(root: str, cases: int, size: Sequence[int], spacing: Sequence[float] = SCAN_SPACING,
                      seed: int = 0) -> dict:
    """`cases` scans (int16 .nii.gz) and labels under `root`, reused when present; returns the index."""
    import nibabel as nib

    index_path = os.path.join(root, "index.json")
    if os.path.exists(index_path):
        return json.load(open(index_path))
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    extent = np.asarray(size, float) * np.asarray(spacing, float)
    items = []
    for i in range(cases):
        name = f"case_{i:03d}"
        img, lab, affine = phantom(seed + i, extent, spacing)
        paths = {"image": os.path.join(root, "images", f"{name}.nii.gz"),
                 "label": os.path.join(root, "labels", f"{name}.nii.gz")}
        for key, arr in (("image", img), ("label", lab)):
            im = nib.Nifti1Image(arr, affine)
            im.header.set_xyzt_units("mm")
            nib.save(im, paths[key] + ".part.nii.gz")
            os.replace(paths[key] + ".part.nii.gz", paths[key])
        items.append({"name": name, **paths})
    index = {"size": list(size), "spacing": list(spacing), "extent_mm": extent.tolist(), "items": items}
    with open(index_path + ".part", "w") as fh:
        json.dump(index, fh, indent=1)
    os.replace(index_path + ".part", index_path)
    return index
