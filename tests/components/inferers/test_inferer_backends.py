"""Every predictor back-end gives the torch predictor's output (SimpleInferer and ScanWindowInferer)."""

import time

import numpy as np
import pytest
import torch

from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext, OnnxPredictor
from ai4med.components.inferers.precision import resolve_precision, tune_malloc
from ai4med.components.inferers.simple_inferer import SimpleInferer
from ai4med.components.inferers.sw_inferer import ScanWindowInferer
from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer, TorchSimpleInferer
from ai4med.components.inferers.torch_predictor import (
    TorchInferenceContext,
    TorchPredictor,
    TorchScriptInferenceContext,
    TorchScriptPredictor,
)
from ai4med.components.inferers.triton_predictor import TritonInferenceContext, TritonUnavailableError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

X = np.random.default_rng(0).standard_normal((1, 20, 18, 16)).astype(np.float32)  # CDHW


@pytest.fixture
def contexts(net, tmp_path):
    sample = torch.zeros(1, 1, 16, 16, 16)
    ts_path, onnx_path = tmp_path / "net.ts", tmp_path / "net.onnx"
    torch.jit.trace(net, sample).save(str(ts_path))
    torch.onnx.export(
        net, sample, str(onnx_path), input_names=["image"], output_names=["pred"], dynamo=False,
        dynamic_axes={"image": {0: "n", 2: "d", 3: "h", 4: "w"}, "pred": {0: "n", 2: "d", 3: "h", 4: "w"}},
    )
    ref = TorchInferenceContext(net, precision="fp32")
    others = {
        "torchscript": (TorchScriptPredictor(), TorchScriptInferenceContext(ts_path, precision="fp32")),
        "onnx": (OnnxPredictor(), OnnxInferenceContext(onnx_path, device="cpu")),
    }
    return ref, others


INFERERS = {
    "simple": (lambda p: SimpleInferer(p), TorchSimpleInferer),
    "scan_window": (
        lambda p: ScanWindowInferer(p, [16, 16, 16], 2, blend_mode="gaussian"),
        lambda: TorchScanWindowInferer([16, 16, 16], 2, blend_mode="gaussian"),
    ),
}


@pytest.mark.parametrize("kind", sorted(INFERERS))
def test_backends_match_torch(contexts, kind):
    make, make_seed_named = INFERERS[kind]
    ref_ctx, others = contexts
    ref = make(TorchPredictor()).infer({"image": X}, "CDHW", ref_ctx)["pred"]
    assert ref.shape == (2, 20, 18, 16)
    for name, (predictor, ctx) in others.items():
        got = make(predictor).infer({"image": X}, "CDHW", ctx)["pred"]
        assert np.abs(got - ref).max() <= 1e-5, name
        # the seed-named inferers pick the back-end's predictor from the context
        assert np.abs(make_seed_named().infer({"image": X}, "CDHW", ctx)["pred"] - ref).max() <= 1e-5, name


def test_context_shapes_and_close(contexts):
    ref_ctx, others = contexts
    assert ref_ctx.get_model_input_shapes() == {"image": (None, 1, None, None, None)}
    onnx_ctx = others["onnx"][1]
    assert onnx_ctx.get_model_input_shapes() == {"image": (None, 1, None, None, None)}
    assert onnx_ctx.get_model_output_shapes() == {"pred": (None, 2, None, None, None)}
    TorchPredictor().predict({"image": X}, "CDHW", ref_ctx)
    assert ref_ctx.get_model_output_shapes() == {"pred": (None, 2, None, None, None)}
    for ctx in (ref_ctx, onnx_ctx):
        ctx.close()
        with pytest.raises(RuntimeError, match="closed"):
            ctx.run([X[None]])


def test_predict_list_and_context_type(net):
    ctx = TorchInferenceContext(net, precision="fp32")
    outs = TorchPredictor().predict_list([{"image": X}, {"image": X[:, :16]}], "CDHW", ctx)
    assert [o["pred"].shape for o in outs] == [(2, 20, 18, 16), (2, 16, 18, 16)]
    with pytest.raises(TypeError, match="OnnxInferenceContext"):
        OnnxPredictor().predict({"image": X}, "CDHW", ctx)
    with pytest.raises(KeyError, match="model inputs"):
        TorchPredictor().predict({"a": X, "b": X}, "CDHW", ctx)


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 1)

    def forward(self, image, scale=None):
        y = self.conv(image) * (1.0 if scale is None else scale)
        return {"pred": y, "aux": y.sum(1, keepdim=True)}


def test_extra_inputs_and_outputs():
    ctx = TorchInferenceContext(TwoHeads(), precision="fp32")
    ctx.set_extra_input_values({"scale": 2.0})
    ctx.set_extra_output_names(["aux"])
    assert ctx.get_extra_input_names() == ["scale"] and ctx.get_extra_output_names() == ["aux"]
    inferer = ScanWindowInferer(TorchPredictor(), [8, 8, 8], 4)
    out = inferer.infer({"image": X}, "CDHW", ctx)
    assert set(out) == {"pred", "aux"} and out["aux"].shape == (1, 20, 18, 16)
    np.testing.assert_allclose(out["aux"][0], out["pred"].sum(0), atol=1e-5)
    assert inferer.get_supported_output_names(["aux"]) == ["aux"]


def test_from_checkpoint(net, tmp_path):
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    torch.save({"model": {"module." + k: v for k, v in conv.state_dict().items()}}, tmp_path / "conv.pt")
    node = {"path": "torch.nn.Conv3d", "args": {"in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1}}
    ctx = TorchInferenceContext.from_checkpoint(node, tmp_path / "conv.pt", precision="fp32")
    want = conv(torch.as_tensor(X)[None]).detach().numpy()[0]
    assert isinstance(ctx, InferenceContext)
    assert np.abs(SimpleInferer(TorchPredictor()).infer({"image": X}, "CDHW", ctx)["pred"] - want).max() <= 1e-5


def test_channels_last_matches(net):
    ref = SimpleInferer(TorchPredictor()).infer({"image": X}, "CDHW", TorchInferenceContext(net, precision="fp32"))
    ctx = TorchInferenceContext(net, precision="fp32", channels_last=True)
    got = SimpleInferer(TorchPredictor()).infer({"image": X}, "CDHW", ctx)
    assert np.abs(got["pred"] - ref["pred"]).max() <= 1e-5


def test_precision_resolution():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", "cpu")
    assert isinstance(tune_malloc(), bool)


@pytest.mark.parametrize("protocol,url", [("http", "127.0.0.1:9"), ("grpc", "127.0.0.1:9")])
def test_triton_unreachable_is_clear_and_bounded(protocol, url):
    start = time.monotonic()
    with pytest.raises(TritonUnavailableError, match=f"127.0.0.1:9 \\({protocol}"):
        TritonInferenceContext("seg", url=url, protocol=protocol, timeout=1.0)
    assert time.monotonic() - start < 10


def test_triton_bad_protocol():
    with pytest.raises(ValueError, match="protocol"):
        TritonInferenceContext("seg", protocol="ftp")


@pytest.mark.parametrize("cap", ["AVX2", "avx512_core_bf16", "AVX512_CORE"])
def test_a_onednn_isa_cap_below_amx_makes_auto_precision_fp32(monkeypatch, cap):
    """With oneDNN capped below AMX, bf16 convolutions are emulated (measured 3.6 s against 29 ms
    fp32 for one 16-channel 64^3 conv under ONEDNN_MAX_CPU_ISA=AVX2): "auto" must not pick them."""
    from ai4med.components.inferers import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16", "amx_tile"}))
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert precision.cpu_has_amx_bf16() is False
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert precision.cpu_has_amx_bf16() is True
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    assert precision.cpu_has_amx_bf16() is False
