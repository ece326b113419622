"""Helpers of the deploy tests: a tiny model that segments bright spheres, its exports and
application folder, and input volumes (NIfTI, MetaImage, a DICOM series) with known labels."""

from __future__ import annotations

import json
import os

import numpy as np
import SimpleITK as sitk
import torch

from ai4med.apps.export import export_model
from ai4med.deploy.app import init_app
from ai4med.io.itk import keep_locale

MODEL = "seg"
ROI = [16, 16, 16]
BRIGHT = 100  # sphere intensity; background 0


class SmoothThreshold(torch.nn.Module):
    """Class 1 where the 3x3x3 mean of the input exceeds 0.5 (softmax probabilities out)."""

    def __init__(self, k: float = 10.0) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.conv2 = torch.nn.Conv3d(2, 2, 1)
        mean = torch.full((1, 1, 3, 3, 3), 1.0 / 27)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.cat([mean * k, -mean * k]))
            self.conv1.bias.copy_(torch.tensor([-0.5 * k, 0.5 * k]))
            self.conv2.weight.copy_(torch.tensor([[-1.0, 1.0], [1.0, -1.0]]).view(2, 2, 1, 1, 1))
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.conv2(torch.relu(self.conv1(x))), dim=1)


def make_exports(folder: str) -> str:
    """`ai4med export`'s files for the model: model.ts, model.onnx, model_config.json, triton/seg (python backend)."""
    export_model(SmoothThreshold().eval(), folder, ROI, formats=("ts", "onnx"), triton_repo="triton",
                 triton_model_name=MODEL, triton_backend="python")
    return folder


def make_app(folder: str, export_dir: str) -> str:
    """An application folder from the base app + the exports; intensities 0..BRIGHT scaled to 0..1."""
    init_app(folder, export_dir)
    path = os.path.join(folder, "config", "config_inference.json")
    cfg = json.load(open(path))
    for t in cfg["pre_transforms"]:
        if t["name"] == "ScaleIntensityRange":
            t["args"].update(a_min=0, a_max=BRIGHT)
    with open(path, "w") as fh:
        json.dump(cfg, fh, indent=4)
    return folder


def sphere(shape: tuple[int, int, int], spacing: tuple[float, float, float], radius_mm: float,
           centre_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """A boolean ball (array in ITK x, y, z index order) of `radius_mm` around the centre."""
    grid = np.meshgrid(*[(np.arange(n) - (n - 1) / 2 - c) * s for n, s, c in zip(shape, spacing, centre_shift)],
                       indexing="ij")
    return sum(g ** 2 for g in grid) <= radius_mm ** 2


def _itk_image(mask_xyz: np.ndarray, spacing, origin, direction, dtype=np.int16) -> sitk.Image:
    img = sitk.GetImageFromArray((mask_xyz * BRIGHT).astype(dtype).transpose(2, 1, 0))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def write_dicom_series(img: sitk.Image, folder: str, series_uid: str = "1.2.826.0.1.3680043.2.1125.1.42",
                       series_number: int | None = None, description: str = "deploy test series",
                       modality: str = "CT", prefix: str = "slice") -> str:
    """`img` as a DICOM series, one file `<prefix>NNN.dcm` per slice (SimpleITK's DicomSeriesFromArray
    recipe); several series may share a folder (give each its own `series_uid` and `prefix`)."""
    os.makedirs(folder, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = img.GetDirection()
    tags = [
        ("0008|0060", modality), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1.41"), ("0020|000e", series_uid),
        ("0020|0037", "\\".join(f"{v:.6f}" for v in (*direction[0:7:3], *direction[1:8:3]))),
        ("0008|103e", description), ("0028|1052", "0"), ("0028|1053", "1"),
    ]
    if series_number is not None:
        tags.append(("0020|0011", str(series_number)))
    with keep_locale():  # GDCM's writer would leave the test process in the "C" locale
        _write_slices(writer, img, tags, series_uid, folder, prefix)
    return folder


def _write_slices(writer: sitk.ImageFileWriter, img: sitk.Image, tags: list, series_uid: str, folder: str,
                  prefix: str) -> None:
    for z in range(img.GetDepth()):
        s = img[:, :, z]
        for tag, value in tags:
            s.SetMetaData(tag, value)
        s.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in img.TransformIndexToPhysicalPoint((0, 0, z))))
        s.SetMetaData("0020|0013", str(z + 1))
        s.SetMetaData("0008|0018", f"{series_uid}.{z + 1}")
        writer.SetFileName(os.path.join(folder, f"{prefix}{z:03d}.dcm"))
        writer.Execute(s)


def sphere_image(shape: tuple[int, int, int], spacing: tuple[float, float, float], origin: tuple[float, float, float],
                 radius_mm: float, centre_shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
                 ) -> tuple[sitk.Image, np.ndarray]:
    """An axial int16 image of a bright ball, and its mask (x, y, z)."""
    mask = sphere(shape, spacing, radius_mm, centre_shift)
    return _itk_image(mask, spacing, origin, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)), mask


def make_inputs(folder: str) -> dict[str, dict]:
    """NIfTI, MetaImage and DICOM inputs; name -> {"path", "output" (expected file name), "mask" (x, y, z)}."""
    os.makedirs(folder, exist_ok=True)
    cases: dict[str, dict] = {}
    # NIfTI: anisotropic, oblique (rotated about z), non-zero origin
    c, s = np.cos(0.3), np.sin(0.3)
    spacing, shape = (1.2, 1.0, 0.9), (28, 32, 30)
    mask = sphere(shape, spacing, 9.0, (2, -1, 0))
    img = _itk_image(mask, spacing, (-12.0, 30.5, 7.0), (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0), np.float32)
    path = os.path.join(folder, "patient_a.nii.gz")
    sitk.WriteImage(img, path)
    cases["patient_a.nii.gz"] = {"path": path, "output": "patient_a.mhd", "mask": mask}
    # MetaImage (.mhd + .raw): flipped axes
    spacing, shape = (0.8, 0.8, 1.5), (36, 32, 20)
    mask = sphere(shape, spacing, 8.5)
    img = _itk_image(mask, spacing, (100.0, -50.0, 20.0), (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    path = os.path.join(folder, "patient_b.mhd")
    sitk.WriteImage(img, path)
    cases["patient_b.mhd"] = {"path": path, "output": "patient_b.mhd", "mask": mask}
    # DICOM series folder
    spacing, shape = (0.9, 0.9, 2.0), (32, 32, 14)
    mask = sphere(shape, spacing, 9.0, (0, 1, 0))
    img = _itk_image(mask, spacing, (-14.0, -14.0, -60.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    path = write_dicom_series(img, os.path.join(folder, "series_c"))
    cases["series_c"] = {"path": path, "output": "series_c.mhd", "mask": mask}
    return cases


def read_itk(path: str) -> sitk.Image:
    if os.path.isdir(path):
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(path))
        return reader.Execute()
    return sitk.ReadImage(path)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())
