"""Seed 003's base inference application with the seed's own `model_config.json` and the
`inferer` / `model_loader` sections its custom-app steps prescribe (verbatim copies in
seed_texts.py): the app loads them (`--check`) and segments a NIfTI volume with a local model of
that config's shape (3 classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import SimpleITK as sitk
import torch
from seed_helpers import REPO
from seed_texts import SEED003_INFERER_AND_LOADER, SEED003_MODEL_CONFIG

from ai4med.apps.export import export_torchscript


def three_classes_by_intensity() -> torch.nn.Module:
    """Class 0 below 1/3 of the window, 1 in the middle third, 2 above (nearly one-hot probabilities)."""
    conv = torch.nn.Conv3d(1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 60.0, 120.0]).view(3, 1, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -20.0, -60.0]))
    return torch.nn.Sequential(conv, torch.nn.Softmax(dim=1))


def deploy(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ai4med", "deploy", *argv], capture_output=True, text=True,
                          env=env, timeout=240)


def test_the_seeds_app_configs_load_and_segment(tmp_path):
    app = tmp_path / "my_custom_app"
    assert deploy("--init_app", str(app)).returncode == 0
    (app / "config" / "model_config.json").write_text(SEED003_MODEL_CONFIG)
    cfg_path = app / "config" / "config_inference.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(json.loads(SEED003_INFERER_AND_LOADER))  # "keep pre_transforms and post_transforms as is"
    cfg_path.write_text(json.dumps(cfg, indent=2))

    proc = deploy("--app", str(app), "--check")
    assert proc.returncode == 0, proc.stderr
    assert "TRTISScanWindowInferer roi [96, 96, 96]" in proc.stdout
    assert "Triton model 'segmentation_liver_v1' at localhost:8000" in proc.stdout

    (app / "models").mkdir()
    export_torchscript(three_classes_by_intensity().eval(), torch.zeros(1, 1, 16, 16, 16), str(app / "models" / "model.ts"))
    hu = np.full((24, 20, 16), -100.0, np.float32)  # below the CT window: class 0
    hu[4:12] = 100.0  # middle of the -21..189 window: class 1
    hu[12:20] = 400.0  # above it: class 2
    image = sitk.GetImageFromArray(np.transpose(hu, (2, 1, 0)).copy())
    image.SetSpacing((1.0, 1.0, 1.0))
    (tmp_path / "input").mkdir()
    sitk.WriteImage(image, str(tmp_path / "input" / "case.nii.gz"))
    proc = deploy("--app", str(app), "--model", str(app / "models" / "model.ts"), "--input", str(tmp_path / "input"),
                  "--output", str(tmp_path / "output"), "--publish", str(tmp_path / "publish"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    seg = sitk.ReadImage(str(tmp_path / "output" / "case.mhd"))
    labels = np.transpose(sitk.GetArrayFromImage(seg), (2, 1, 0))
    assert labels.shape == hu.shape
    assert (labels[:4] == 0).all() and (labels[5:11] == 1).all() and (labels[13:19] == 2).all()
