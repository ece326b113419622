"""Seed 000 (`ai4med.components.inferers`) through the seed's own signatures: `InferenceContext`'s
shapes and supported names, `SimpleInferer(predictor)`, `ScanWindowInferer(predictor, roi_size,
batch_size)`, `ScanClassWindowInferer(predictor, roi_size, batch_size, scan_interval,
final_activation)`, each `infer(model_input_values, input_shape_format, inference_ctx)`, and
`Predictor.predict(model_input_values, input_shape_format, inference_ctx)`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.simple_inferer import SimpleInferer
from ai4med.components.inferers.sw_class_inferer import ScanClassWindowInferer
from ai4med.components.inferers.sw_inferer import ScanWindowInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor


def scaled_copy(in_ch: int = 1, out_ch: int = 2) -> torch.nn.Module:
    """A 1x1x1 convolution whose output channel k is (k + 1) x the input: exact expected values."""
    conv = torch.nn.Conv3d(in_ch, out_ch, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for k in range(out_ch):
            conv.weight[k, 0] = k + 1.0
    return conv


IMAGE = np.random.default_rng(0).normal(size=(1, 20, 18, 16)).astype(np.float32)


def test_context_reports_real_output_shapes_and_only_the_models_names():
    ctx = TorchInferenceContext(scaled_copy(1, 3), precision="fp32")
    assert isinstance(ctx, InferenceContext)
    assert ctx.get_model_input_shapes() == {"image": (None, 1, None, None, None)}
    assert ctx.get_model_output_shapes() == {"pred": (None, 3, None, None, None)}  # before any call
    assert ctx.get_supported_input_names(["image", "foo"]) == ["image"]
    assert ctx.get_supported_output_names(["foo", "pred"]) == ["pred"]


def test_simple_inferer_with_the_seed_signature():
    ctx = TorchInferenceContext(scaled_copy(), precision="fp32")
    inferer = SimpleInferer(TorchPredictor())
    assert inferer.get_supported_input_names(["image"]) == []  # no model seen yet: nothing is promised
    out = inferer.infer(model_input_values={"image": IMAGE}, input_shape_format=ShapeFormat("CDHW"),
                        inference_ctx=ctx)
    np.testing.assert_allclose(out["pred"], np.concatenate([IMAGE, 2 * IMAGE]), rtol=1e-5, atol=1e-6)
    assert inferer.get_supported_input_names(["image", "foo"]) == ["image"]
    assert inferer.get_supported_output_names(["pred", "foo"]) == ["pred"]


def test_scan_window_inferers_with_the_seed_signatures():
    ctx = TorchInferenceContext(scaled_copy(), precision="fp32")
    expected = np.concatenate([IMAGE, 2 * IMAGE])
    sw = ScanWindowInferer(TorchPredictor(), roi_size=[8, 8, 8], batch_size=3)
    np.testing.assert_allclose(sw.infer({"image": IMAGE}, "CDHW", ctx)["pred"], expected, rtol=1e-5, atol=1e-5)
    scw = ScanClassWindowInferer(TorchPredictor(), roi_size=[8, 8, 8], batch_size=2, scan_interval=[4, 4, 4],
                                 final_activation="softmax")
    out = scw.infer({"image": IMAGE}, "CDHW", ctx)["pred"]
    e = np.exp(expected - expected.max(0))
    np.testing.assert_allclose(out, e / e.sum(0), rtol=1e-4, atol=1e-5)
    assert scw.get_supported_output_names(["pred", "logits"]) == ["pred"]


def test_predictor_with_the_seed_signature():
    ctx = TorchInferenceContext(scaled_copy(), precision="fp32")
    predictor = TorchPredictor()
    assert isinstance(predictor, Predictor)
    out = predictor.predict({"image": IMAGE[None]}, ShapeFormat("NCDHW"), ctx)
    assert out["pred"].shape == (1, 2, 20, 18, 16)
    np.testing.assert_allclose(out["pred"][0, 1], 2 * IMAGE[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".ts", ".onnx"])
def test_exported_model_contexts_report_shapes_and_names(tmp_path, suffix):
    from ai4med.apps.export import export_onnx, export_torchscript
    from ai4med.inference.models import open_model

    net, x = scaled_copy(1, 3), torch.zeros(1, 1, 8, 8, 8)
    path = str(tmp_path / f"m{suffix}")
    (export_torchscript if suffix == ".ts" else export_onnx)(net, x, path)
    ctx = open_model(path, device="cpu", precision="fp32", runtime="torch" if suffix == ".ts" else "onnxruntime")
    (inp,), (out,) = ctx.input_names, ctx.output_names
    assert ctx.get_model_output_shapes()[out][1] == 3
    assert ctx.get_supported_input_names([inp, "foo"]) == [inp]
    assert ctx.get_supported_output_names(["foo", out]) == [out]
