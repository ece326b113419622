"""The default CPU path: torch modules run through ONNX Runtime where bf16 has no hardware."""

import numpy as np
import pytest
import torch

from ai4med.components.inferers.ort_runtime import OrtModule
from ai4med.components.inferers.precision import cpu_has_amx_bf16
from ai4med.components.inferers.sw_inferer import ScanWindowInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor, resolve_runtime

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_ort_module_matches_and_tracks_weight_updates(net):
    x = torch.randn(2, 1, 12, 10, 8)
    ort_net = OrtModule(net)
    with torch.inference_mode():
        first = ort_net(x)  # torch result while exporting
        assert ort_net.active
        torch.testing.assert_close(ort_net(x), net(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ort_net(x[:1, :, :8]), net(x[:1, :, :8]), atol=1e-5, rtol=1e-5)  # dynamic axes
    with torch.no_grad():
        next(net.parameters()).mul_(2.0)
    with torch.inference_mode():
        torch.testing.assert_close(ort_net(x), net(x), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(first, net(x).detach())


def test_ort_module_falls_back_on_dict_output(caplog):
    class DictNet(torch.nn.Module):
        def forward(self, x):
            return {"pred": x * 2}

    m = OrtModule(DictNet())
    assert torch.equal(m(torch.ones(1, 1, 2))["pred"], torch.full((1, 1, 2), 2.0))
    assert m.failed and "running torch" in caplog.text


def test_runtime_resolution(net):
    cpu = torch.device("cpu")
    # the default CPU path (bench/inference.py): bf16 autocast in torch on AMX CPUs, else OpenVINO fp32
    assert TorchInferenceContext(net).runtime == ("torch" if cpu_has_amx_bf16() else "openvino")
    assert TorchInferenceContext(net, precision="fp32").runtime == "torch"  # exact mode
    assert resolve_runtime("auto", "auto", "fp16", torch.device("cuda"), net, False) == "torch"
    assert resolve_runtime("auto", "auto", "fp32", cpu, net, True) == "torch"  # channels_last / compile asked
    with pytest.raises(ValueError, match="runtime"):
        resolve_runtime("tensorrt", "auto", "fp32", cpu, net, False)
    with pytest.raises(ValueError, match="fp32"):
        resolve_runtime("onnxruntime", "bf16", "bf16", cpu, net, False)


def test_default_path_scan_window_close_to_fp32(net):
    x = np.random.default_rng(0).standard_normal((1, 1, 24, 20, 18)).astype(np.float32)
    inferer = ScanWindowInferer(TorchPredictor(), [16, 16, 16], 2)
    ref = inferer.infer({"image": x}, "NCDHW", TorchInferenceContext(net, precision="fp32"))["pred"]
    got = inferer.infer({"image": x}, "NCDHW", TorchInferenceContext(net, runtime="onnxruntime", precision="fp32"))
    assert np.abs(got["pred"] - ref).max() <= 1e-4
