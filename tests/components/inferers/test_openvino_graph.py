"""Thin transposed convolutions run in OpenVINO as sub-pixel convolutions (Convolution + DepthToSpace):
the same outputs as the layer (and as torch) for every padding, kernel, stride and spatial size, and
only the layers that qualify are rewritten."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ai4med.components.inferers.openvino_graph import MAX_OUT_CHANNELS, split_thin_transposed_convs
from ai4med.components.inferers.ort_runtime import export_to_bytes

ov = pytest.importorskip("openvino")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def ov_model(module: torch.nn.Module, x: torch.Tensor):
    return ov.Core().read_model(export_to_bytes(module, (x,), 1))


def run(model, x: torch.Tensor) -> np.ndarray:
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled({compiled.inputs[0].get_any_name(): x.numpy()}).to_tuple()[0]


def op_types(model) -> list[str]:
    return [op.get_type_name() for op in model.get_ordered_ops()]


LAYERS = {  # (2D or 3D, ConvTranspose arguments, input shape)
    "unet-top k3 s2 p1 op1": (3, dict(in_channels=8, out_channels=2, kernel_size=3, stride=2, padding=1,
                                      output_padding=1), (2, 8, 6, 7, 5)),
    "k2 s2 p0": (3, dict(in_channels=8, out_channels=3, kernel_size=2, stride=2, padding=0), (1, 8, 5, 6, 4)),
    "k4 s2 p1 no bias": (3, dict(in_channels=4, out_channels=1, kernel_size=4, stride=2, padding=1, bias=False),
                         (1, 4, 5, 5, 6)),
    "k3 s2 p0 (odd length: cropped)": (3, dict(in_channels=4, out_channels=2, kernel_size=3, stride=2, padding=0),
                                       (1, 4, 5, 4, 6)),
    "per-axis kernel, padding, output padding": (3, dict(in_channels=4, out_channels=2, kernel_size=(3, 2, 4),
                                                         stride=2, padding=(1, 0, 1), output_padding=(1, 0, 0)),
                                                 (1, 4, 5, 4, 6)),
    "2D k3 s2": (2, dict(in_channels=6, out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1),
                 (2, 6, 9, 7)),
    "2D k5 s3 p2 op1": (2, dict(in_channels=6, out_channels=2, kernel_size=5, stride=3, padding=2, output_padding=1),
                        (1, 6, 7, 8)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_rewritten_layer_equals_the_transposed_convolution(name) -> None:
    dims, kwargs, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = (torch.nn.ConvTranspose3d if dims == 3 else torch.nn.ConvTranspose2d)(**kwargs).eval()
    x = torch.randn(shape)
    model = ov_model(layer, x)
    assert split_thin_transposed_convs(model) == 1
    assert "ConvolutionBackpropData" not in op_types(model) and "DepthToSpace" in op_types(model)
    with torch.no_grad():
        for inp in (x, torch.randn(*shape[:2], *[s + 1 for s in shape[2:]])):  # the model keeps dynamic shapes
            want = layer(inp).numpy()
            got = run(model, inp)
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=8, out_channels=MAX_OUT_CHANNELS + 1, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(in_channels=8, out_channels=2, kernel_size=3, stride=1, padding=1),  # no up-sampling: nothing to gain
    dict(in_channels=8, out_channels=2, kernel_size=3, stride=(2, 1, 2), padding=1),  # no single block size
    dict(in_channels=8, out_channels=2, kernel_size=3, stride=2, dilation=2),
], ids=["wide", "stride 1", "uneven strides", "dilated"])
def test_layers_that_do_not_qualify_are_kept(kwargs) -> None:
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose3d(**kwargs).eval()
    x = torch.randn(1, 8, 5, 5, 5)
    model = ov_model(layer, x)
    assert split_thin_transposed_convs(model) == 0
    assert "ConvolutionBackpropData" in op_types(model)
    with torch.no_grad():
        np.testing.assert_allclose(run(model, x), layer(x).numpy(), rtol=0, atol=1e-4)


def test_unet_output_and_its_name_are_kept() -> None:
    """The UNet's last up-sampling layer (2 classes) is rewritten, the wider ones are not; the output
    equals torch's and keeps its name."""
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(8, 16, 32), strides=(2, 2), num_res_units=1).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    model = ov_model(net, x)
    before = op_types(model).count("ConvolutionBackpropData")
    name = model.outputs[0].get_any_name()
    assert split_thin_transposed_convs(model) == 1
    assert op_types(model).count("ConvolutionBackpropData") == before - 1
    assert model.outputs[0].get_any_name() == name
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(run(model, x), want, rtol=0, atol=1e-4 * float(np.abs(want).max()))
