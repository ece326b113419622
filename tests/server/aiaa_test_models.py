"""Tiny models for the server tests: checkpoints in the training format + engine_pool.json + configs."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

TINY = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
COMMON = {"precision": "fp32", "runtime": "torch"}


def _unet(path: str, num_in: int, dims: int, num_classes: int = 2) -> dict[str, Any]:
    from ai4med.components.models.unet import Unet

    torch.manual_seed(0)
    args = {"num_classes": num_classes, "num_in_channels": num_in, "n_spatial_dim": dims, **TINY}
    model = Unet(**args)
    torch.save({"model": model.get_module().state_dict(), "epoch": 1}, path)
    return {"name": "Unet", "args": args}


def _classifier(path: str) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    torch.jit.save(torch.jit.script(net.eval()), path)


def build_models(root: str, common: dict[str, Any] | None = None, roi: int = 32) -> str:
    """Write the models, their configs and engine_pool.json under `root`; returns the pool path."""
    common = dict(COMMON if common is None else common)
    os.makedirs(os.path.join(root, "models"), exist_ok=True)
    m = lambda n: os.path.join(root, "models", n)  # noqa: E731
    r3 = [roi] * 3
    configs = {
        "annotation_ct_spleen": {
            "version": "3", "type": "annotation", "labels": ["spleen"], "model format": "checkpoint",
            "model_path": "models/annotation.pt", "network": _unet(m("annotation.pt"), 2, 3), "thresh": 0.5,
            "roi": r3, "padding": 5.0, "batch_size": 1,
            "pre_transforms": [
                {"name": "transforms.VolumeTo4dArray", "fields": ["image", "label"]},
                {"name": "transforms.NormalizeNonzeroIntensities", "fields": "image"},
                {"name": "transforms.AddExtremePointsChannel", "image field": "image", "label field": "label",
                 "sigma": 3, "pert": 0},
            ],
            "post_transforms": [{"name": "transforms.SplitAcrossChannels", "applied key": "model",
                                 "channel names": ["background", "prediction"]}],
            "writers": [{"applied key": "prediction", "name": "writers.WriteNiftyResults", "dtype": "float32"}],
        },
        "segmentation_ct_spleen": {
            "version": "3", "type": "segmentation", "labels": ["spleen"], "model_path": "models/segmentation.pt",
            "network": _unet(m("segmentation.pt"), 1, 3), "roi": r3,
            "pre_transforms": [{"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": -57,
                                "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": True}}],
            "post_transforms": [{"name": "KeepLargestCC", "args": {"fields": "model"}}],
        },
        "clara_deepgrow": {
            "version": "3", "type": "deepgrow", "labels": [], "model_path": "models/deepgrow2d.pt",
            "network": _unet(m("deepgrow2d.pt"), 3, 2), "dimension": 2, "spatial_size": [roi, roi],
        },
        "clara_deepgrow_3d": {
            "version": "3", "type": "deepgrow", "labels": [], "model_path": "models/deepgrow3d.pt",
            "network": _unet(m("deepgrow3d.pt"), 3, 3), "dimension": 3, "spatial_size": r3,
        },
        "clara_xray_classification_chest_amp": {
            "version": "3", "type": "classification", "labels": ["normal", "abnormal"],
            "model_format": "torchscript", "model_path": "models/classifier.ts", "spatial_size": [32, 32],
        },
    }
    _classifier(m("classifier.ts"))
    classes = {"annotation": ("Dextr3dCroppedEngine", "medical.aas.dextr3dcropped"),
               "segmentation": ("SegmentationEngine", "ai4med.server.engines.segmentation"),
               "deepgrow": ("DeepgrowEngine", "ai4med.server.engines.deepgrow"),
               "classification": ("ClassificationEngine", "ai4med.server.engines.classification")}
    pool = []
    for name, cfg in configs.items():
        cfg.update(common)
        path = os.path.join(root, f"{name}.json")
        with open(path, "w") as fh:
            json.dump(cfg, fh, indent=1)
        cls, mod = classes[cfg["type"]]
        pool.append({"name": name, "class": cls, "module": mod, "config_file": path, "labels": cfg["labels"],
                     "description": f"tiny test {cfg['type']} model"})
    pool_path = os.path.join(root, "engine_pool.json")
    with open(pool_path, "w") as fh:
        json.dump(pool, fh, indent=1)
    return pool_path


def write_volume(path: str, shape: tuple[int, ...] = (40, 36, 24), spacing: tuple[float, ...] = (0.8, 0.8, 1.5),
                 seed: int = 0) -> np.ndarray:
    """A synthetic CT-like volume (a bright ellipsoid) as int16 NIfTI; returns its data."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    blob = sum((g / 0.5) ** 2 for g in grid) < 1
    data = (rng.normal(0, 20, shape) + 120 * blob - 50).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), path)
    return data


def write_mask_volume(path: str, shape: tuple[int, ...] = (24, 20, 6)) -> np.ndarray:
    import nibabel as nib

    m = np.zeros(shape, np.uint8)
    m[4:12, 5:15, 1:4] = 1
    m[16:20, 2:6, 2] = 1
    nib.save(nib.Nifti1Image(m, np.eye(4)), path)
    return m


def write_png(path: str, shape: tuple[int, int] = (40, 48), value: int | None = None) -> np.ndarray:
    from PIL import Image

    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    Image.fromarray(a).save(path)
    return a
