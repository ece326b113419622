"""Shared helpers of the seed conformance suite: the seed's executables and a tiny CT-like dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO.parent / "shared" / "seeds"


def executable(name: str) -> str:
    """The console script `name` installed beside this Python (pip writes them there)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(f"{path} is not installed: run `pip install -e .` (pyproject.toml [project.scripts])")
    return str(path)


def run_tool(argv: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    """Run a command as a user would (this checkout first on PYTHONPATH); fail with its output."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               OMP_NUM_THREADS="2")
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def ct_like_dataset(root: Path, cases: int = 5, size: int = 32, validation: int = 1) -> None:
    """`cases` synthetic CT-like volumes (HU-scaled ellipsoid on noise) as .npy (seed 004's
    LoadNumpyFromFilename) and .nii.gz (its LoadNifty eval config), with datalist.json and
    datalist_nifti.json (same split, relative paths)."""
    import nibabel as nib

    from ai4med.datasets.synthetic import synthetic_case

    rng = np.random.default_rng(0)
    (root / "data").mkdir(parents=True, exist_ok=True)
    npy, nii = [], []
    for i in range(cases):
        image, label = synthetic_case(size, rng)
        image = image * 300.0 - 200.0  # soft tissue around -200 HU, the organ around +100 HU
        pair_npy, pair_nii = {}, {}
        for field, arr in (("image", image.astype(np.float32)), ("label", label.astype(np.float32))):
            np.save(root / "data" / f"{field}{i}.npy", arr)
            nib.save(nib.Nifti1Image(arr, np.eye(4)), root / "data" / f"{field}{i}.nii.gz")
            pair_npy[field], pair_nii[field] = f"data/{field}{i}.npy", f"data/{field}{i}.nii.gz"
        npy.append(pair_npy)
        nii.append(pair_nii)
    cut = cases - validation
    labels = {"0": "background", "1": "spleen"}  # Decathlon datalists name their classes
    (root / "datalist.json").write_text(json.dumps({"labels": labels, "training": npy[:cut], "validation": npy[cut:]}))
    (root / "datalist_nifti.json").write_text(json.dumps({"labels": labels, "training": nii[:cut],
                                                          "validation": nii[cut:]}))
