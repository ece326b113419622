"""The engines on the one template (issue 12): a 128^3 DEXTR3D ROI gives a full 128^3 mask (the last plane
too), configured post-transforms run as configured (ArgmaxAcrossChannels, KeepLargestCC: once silently
dropped), guidance transforms are named in the log, and ONNX models run as the CLI runs them."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.server.engines.dextr3d import Dextr3dCroppedEngine
from ai4med.server.engines.segmentation import SegmentationEngine
from ai4med.server.images import spatial_view


class _Everywhere(torch.nn.Module):
    """Foreground logits everywhere (2 output channels, any input channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:, :1])
        return torch.cat([-5 * ones, 5 * ones], 1)


class _Bright(torch.nn.Module):
    """Class 1 where the image is above 0.5 (logits 10 * (x - 0.5))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = 10 * (x[:, :1] - 0.5)
        return torch.cat([-d, d], 1)


def _save(module: torch.nn.Module, path: str) -> str:
    torch.jit.save(torch.jit.script(module), path)
    return path


def _image(data: np.ndarray) -> MedicalImage:
    img = MedicalImage(data.astype(np.float32), "DHW")
    img.set_property(ImageProperty.AFFINE, np.eye(4))
    img.set_property(ImageProperty.SPACING, (1.0, 1.0, 1.0))
    img.set_property(ImageProperty.ORIGINAL_SHAPE, data.shape)
    img.set_property(ImageProperty.ORIGINAL_AFFINE, np.eye(4))
    return img


def test_dextr3d_128_roi_gives_a_full_128_mask(tmp_path, caplog):
    path = _save(_Everywhere(), str(tmp_path / "m.ts"))
    config = {"model_path": path, "roi": [16, 16, 16], "padding": 20.0, "precision": "fp32",
              "pre_transforms": [{"name": "transforms.AddExtremePointsChannel", "image_field": "image",
                                  "label_field": "label", "sigma": 3, "pert": 0}]}
    engine = Dextr3dCroppedEngine("d", {"name": "d"}, config, str(tmp_path / "c.json"))
    with caplog.at_level(logging.INFO, logger="ai4med.server.engines.base"):
        engine.load()
    assert "AddExtremePointsChannel is done by the engine" in caplog.text
    view = spatial_view(_image(np.zeros((128, 128, 128))))
    pts = [[20, 64, 64], [108, 64, 64], [64, 20, 64], [64, 108, 64], [64, 64, 20], [64, 64, 108]]
    result = engine.run(view, {"points": pts})
    assert result.params["crop"] == [[0, 128], [0, 128], [0, 128]]
    assert result.mask.shape == (128, 128, 128) and result.mask.all(), "the last plane of each axis is kept"


def test_configured_post_transforms_run_as_configured(tmp_path):
    path = _save(_Bright(), str(tmp_path / "m.ts"))
    data = np.zeros((24, 24, 24))
    data[2:10, 2:10, 2:10] = 1.0  # the larger object
    data[16:19, 16:19, 16:19] = 1.0  # a small one
    base = {"model_path": path, "precision": "fp32", "inferer": {"name": "TorchSimpleInferer"}}
    plain = SegmentationEngine("s", {"name": "s"}, base, str(tmp_path / "c.json"))
    plain.load()
    both = plain.run(spatial_view(_image(data)), {}).mask
    assert both.sum() == 8 ** 3 + 27
    post = [{"name": "ArgmaxAcrossChannels", "args": {"fields": "model"}},
            {"name": "KeepLargestCC", "args": {"fields": "model"}}]
    cleaned = SegmentationEngine("s2", {"name": "s2"}, {**base, "post_transforms": post}, str(tmp_path / "c.json"))
    cleaned.load()
    mask = cleaned.run(spatial_view(_image(data)), {}).mask
    assert mask.sum() == 8 ** 3 and mask[2:10, 2:10, 2:10].all()


def test_server_runs_onnx_files_as_the_cli_does(tmp_path):
    """One runtime rule: an ONNX file runs on OpenVINO on a CPU in the CLI, deploy and the server."""
    pytest.importorskip("openvino")
    from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext
    from ai4med.inference.models import open_model
    from ai4med.server.engines.config import build_context

    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.Softmax(1)).eval()
    onnx_path = str(tmp_path / "m.onnx")
    torch.onnx.export(net, (torch.zeros(1, 1, 4, 4, 4),), onnx_path, dynamo=False,
                      dynamic_axes={"input": {0: "b", 2: "x", 3: "y", 4: "z"}}, input_names=["input"])
    assert isinstance(build_context({"model_path": onnx_path}, str(tmp_path), "cpu"), OpenVinoInferenceContext)
    assert type(open_model(onnx_path)) is OpenVinoInferenceContext
    assert os.path.exists(onnx_path)
