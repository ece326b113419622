"""Compare a SEG read back with highdicom to a NIfTI label map through their geometry (no shared axis order)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def seg_in_nifti_grid(seg_array: np.ndarray, seg_affine_lps: np.ndarray, nifti_shape, nifti_affine_ras) -> np.ndarray:
    """The SEG's voxels on the NIfTI grid: the index map between the grids must be a signed permutation
    with integer offsets (same lattice), which is asserted; voxels outside the SEG's frames are 0."""
    m = np.linalg.inv(seg_affine_lps) @ _LPS_TO_RAS @ np.asarray(nifti_affine_ras, dtype=float)
    rot, off = m[:3, :3], m[:3, 3]
    assert np.allclose(rot, np.round(rot), atol=1e-4), f"grids are not aligned:\n{m}"
    assert np.allclose(off, np.round(off), atol=1e-3), f"grids are offset by a fraction of a voxel:\n{m}"
    rot, off = np.round(rot).astype(int), np.round(off).astype(int)
    assert sorted(np.abs(rot).sum(axis=0).tolist()) == [1, 1, 1] and sorted(np.abs(rot).sum(axis=1).tolist()) == [1, 1, 1]
    idx = np.indices(nifti_shape).reshape(3, -1)
    src = rot @ idx + off[:, None]
    inside = np.all((src >= 0) & (src < np.asarray(seg_array.shape[:3])[:, None]), axis=0)
    out = np.zeros(int(np.prod(nifti_shape)), seg_array.dtype)
    out[inside] = seg_array[src[0, inside], src[1, inside], src[2, inside]]
    return out.reshape(nifti_shape)


def dciodvfy_errors(path: str) -> list[str]:
    """The error lines `dciodvfy` reports for a file (skips when dicom3tools is not installed)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; scripts/test.sh installs it")
    r = subprocess.run([exe, path], capture_output=True, text=True, timeout=60)
    lines = (r.stdout + r.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert (r.returncode != 0) == bool(errors), (r.returncode, lines)
    return errors
