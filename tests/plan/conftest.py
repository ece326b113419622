"""Tiny NIfTI datasets for the planner tests (an MSD-style CT dataset.json)."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest


def write_ct_dataset(root: str, n: int = 4, shape=(24, 24, 8), spacing=(1.0, 1.0, 3.0), seed: int = 0) -> str:
    """`n` CT-like cases: body (0 HU +- noise) inside air (-1000 HU), organ 1 (two blobs, 60 HU), organ 2 (200 HU)."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "imagesTr"), exist_ok=True)
    os.makedirs(os.path.join(root, "labelsTr"), exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    items = []
    for i in range(n):
        img = np.full(shape, -1000.0, np.float32)
        img[3:-3, 3:-3, :] = rng.normal(0.0, 10.0, (shape[0] - 6, shape[1] - 6, shape[2]))
        lab = np.zeros(shape, np.uint8)
        lab[5:9, 5:9, 2:5] = 1
        lab[14:17, 5:8, 2:5] = 1  # a second component of class 1
        lab[10:15, 12:18, 3:6] = 2
        img[lab == 1] = 60.0 + rng.normal(0, 5, int((lab == 1).sum()))
        img[lab == 2] = 200.0 + rng.normal(0, 5, int((lab == 2).sum()))
        nib.save(nib.Nifti1Image(img, affine), os.path.join(root, "imagesTr", f"ct_{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, affine), os.path.join(root, "labelsTr", f"ct_{i}.nii.gz"))
        items.append({"image": f"./imagesTr/ct_{i}.nii.gz", "label": f"./labelsTr/ct_{i}.nii.gz"})
    ds = {"name": "TinyCT", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "organ_a", "2": "organ_b"},
          "numTraining": n, "training": items, "test": []}
    path = os.path.join(root, "dataset.json")
    with open(path, "w") as f:
        json.dump(ds, f)
    return path


@pytest.fixture
def ct_dataset(tmp_path):
    return write_ct_dataset(str(tmp_path / "ct"))


@pytest.fixture(autouse=True)
def _restore_sigchld():
    """Training in-process leaves torch's DataLoader SIGCHLD handler behind; with OpenVINO loaded later,
    a child's exit then segfaults the pytest process (as tests/components/data restores it on main)."""
    import signal

    before = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, before)
