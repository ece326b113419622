"""Grad-CAM saliency inferer/predictor."""

import numpy as np
import pytest
import torch

from ai4med.components.inferers.saliency import (
    TorchSaliencyInferer,
    TorchSaliencyPredictor,
    find_layer,
    grad_cam,
    resize_volume,
)
from ai4med.components.inferers.torch_predictor import TorchInferenceContext


class Detector(torch.nn.Module):
    """Class 1 logit = mean of the bright voxels' feature: the CAM must light up where the input is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Conv3d(1, 1, 1, bias=False)
        torch.nn.init.ones_(self.features.weight)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        f = self.relu(self.features(x))
        return torch.cat([-f, f], 1)


def test_grad_cam_highlights_the_evidence():
    x = torch.zeros(1, 1, 8, 8, 8)
    x[..., 2:4, 2:4, 2:4] = 1.0
    model = Detector()
    cam = grad_cam(model, model.relu, x)
    assert cam.shape == (1, 1, 8, 8, 8)
    assert cam[..., 2:4, 2:4, 2:4].min() > 0 and cam.sum() == cam[..., 2:4, 2:4, 2:4].sum()


def test_saliency_shapes_and_resizing():
    model = Detector()
    ctx = TorchInferenceContext(model, precision="fp32")
    x = np.zeros((12, 10, 8), np.float32)
    x[3:6, 3:6, 2:5] = 1.0
    out = TorchSaliencyInferer("relu", network_input_size=(8, 8, 8)).infer({"image": x}, "DHW", ctx)
    assert out["saliency"].shape == (1, 12, 10, 8) and out["processed_input"].shape == (1, 12, 10, 8)
    assert 0.0 <= out["saliency"].min() and out["saliency"].max() == pytest.approx(1.0)
    assert np.unravel_index(out["saliency"][0].argmax(), x.shape) in {
        (i, j, k) for i in range(2, 7) for j in range(2, 7) for k in range(1, 6)
    }
    same = TorchSaliencyPredictor().predict({"image": x}, "DHW", ctx)  # default: last convolution
    np.testing.assert_allclose(same["processed_input"][0], x)


def test_unknown_layer_lists_close_names():
    with pytest.raises(KeyError, match="features"):
        find_layer(Detector(), "feature")


def test_resize_volume():
    assert resize_volume(np.ones((4, 6)), (8, 3)).shape == (8, 3)
    assert resize_volume(np.arange(8.0).reshape(2, 2, 2), (4, 4, 4), order=0)[3, 3, 3] == 7.0
