"""A real-anatomy segmentation task built offline from nilearn's packaged MNI152 template.

The ICBM152 2009 T1 template and its GM/WM probability maps ship inside the nilearn
wheel, so no download is needed. Each case is the template under a small random
rigid+scale transform, a smooth bias field and noise, with a 4-class tissue map:
0 background, 1 CSF/other intracranial, 2 grey matter, 3 white matter.

Template copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University (permissive MNI licence; see
nilearn). Cite Fonov et al., NeuroImage 2011 and 2009 when using this data.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os

import numpy as np
from scipy import ndimage

from ai4med.datasets._writer import write_cases

logger = logging.getLogger(__name__)

TISSUE_LABELS = {"0": "background", "1": "csf_other", "2": "grey_matter", "3": "white_matter"}
_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def template_path(kind: str) -> str:
    """Path of a packaged MNI152 file ("t1", "gm" or "wm") inside the installed nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nilearn is not installed: `pip install nilearn` provides the MNI152 template")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", _FILES[kind])
    if not os.path.exists(path):
        raise RuntimeError(f"MNI152 file missing from the nilearn package: {path}")
    return path


@functools.lru_cache(maxsize=1)
def load_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1 float32, tissue label map uint8, 1 mm affine) of the MNI152 template."""
    import nibabel as nib

    t1_img = nib.load(template_path("t1"))
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    gm = np.asarray(nib.load(template_path("gm")).dataobj, dtype=np.float32)
    wm = np.asarray(nib.load(template_path("wm")).dataobj, dtype=np.float32)
    return t1, tissue_map(gm, wm), t1_img.affine.astype(np.float64)


def tissue_map(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Four tissue classes from GM/WM probability maps.

    Brain = GM+WM >= 0.5; within it the larger of GM/WM wins. Intracranial "other"
    (mostly CSF) = the filled, slightly dilated brain region minus GM/WM.
    """
    brain = (gm + wm) >= 0.5
    label = np.zeros(gm.shape, np.uint8)
    intracranial = ndimage.binary_fill_holes(ndimage.binary_dilation(brain, iterations=2))
    label[intracranial] = 1
    label[brain & (gm >= wm)] = 2
    label[brain & (wm > gm)] = 3
    return label


def _random_transform(rng: np.random.Generator, max_rot_deg: float, max_scale: float, max_shift_mm: float) -> np.ndarray:
    """A 4x4 world-space transform: rotation about each axis, isotropic scale, shift."""
    angles = np.deg2rad(rng.uniform(-max_rot_deg, max_rot_deg, 3))
    rot = np.eye(3)
    for axis, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    out = np.eye(4)
    out[:3, :3] = rot * rng.uniform(1 - max_scale, 1 + max_scale)
    out[:3, 3] = rng.uniform(-max_shift_mm, max_shift_mm, 3)
    return out


def mni152_case(
    rng: np.random.Generator, resolution: float = 3.0, augment: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One case on a `resolution`-mm grid covering the template's field of view.

    Returns (image float32 scaled to about [0, 1], label uint8, affine 4x4).
    """
    t1, label, affine = load_template()
    out_shape = tuple(int(np.ceil(s / resolution)) for s in t1.shape)
    out_affine = affine.copy()
    out_affine[:3, :3] = affine[:3, :3] * resolution
    world = _random_transform(rng, 8.0, 0.06, 4.0) if augment else np.eye(4)
    # output voxel -> world -> (inverse random transform) -> template voxel
    mapping = np.linalg.inv(affine) @ np.linalg.inv(world) @ out_affine
    image = ndimage.affine_transform(t1, mapping[:3, :3], mapping[:3, 3], out_shape, order=1, mode="constant")
    lab = ndimage.affine_transform(label, mapping[:3, :3], mapping[:3, 3], out_shape, order=0, mode="constant")
    image = image / max(float(t1.max()), 1e-6)
    if augment:
        grid = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in out_shape], indexing="ij")
        coeffs = rng.uniform(-0.15, 0.15, 3)
        bias = np.exp(sum(c * g for c, g in zip(coeffs, grid)))
        image = image * bias + rng.normal(0.0, 0.03, out_shape).astype(np.float32)
    return image.astype(np.float32), lab.astype(np.uint8), out_affine


def make_mni152_dataset(
    out_dir: str, num_cases: int = 6, resolution: float = 3.0, seed: int = 0, num_validation: int | None = None
) -> str:
    """Write `num_cases` MNI152 tissue-segmentation cases and `datalist.json` under `out_dir`.

    Example:
        >>> path = make_mni152_dataset("/tmp/mni", num_cases=3)  # doctest: +SKIP
    """
    if num_cases < 1:
        raise ValueError("num_cases must be >= 1")
    rng = np.random.default_rng(seed)
    cases, affine = [], None
    for i in range(num_cases):
        image, lab, affine = mni152_case(rng, resolution, augment=i > 0 or num_cases == 1)
        cases.append((image, lab))
    assert affine is not None
    path = write_cases(out_dir, cases, affine, TISSUE_LABELS,
                       "MNI152 2009 tissue classes (Fonov et al. 2009/2011), built by ai4med",
                       num_validation if num_validation is not None else max(1, num_cases // 3))
    logger.info("wrote %d MNI152 cases (%.1f mm) to %s", num_cases, resolution, out_dir)
    return path
