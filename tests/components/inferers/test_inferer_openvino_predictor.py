"""OpenVinoInferenceContext: an ONNX file on OpenVINO equals ONNX Runtime; context_for_file's runtime choice."""

import threading

import numpy as np
import pytest
import torch

from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext, OnnxPredictor
from ai4med.components.inferers.sw_inferer import ScanWindowInferer
from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer, predictor_for

pytest.importorskip("openvino")

from ai4med.components.inferers.openvino_predictor import (  # noqa: E402
    OpenVinoInferenceContext,
    OpenVinoPredictor,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

X = np.random.default_rng(0).standard_normal((1, 20, 18, 16)).astype(np.float32)  # CDHW
DYNAMIC = {"image": {0: "n", 2: "d", 3: "h", 4: "w"}, "pred": {0: "n", 2: "d", 3: "h", 4: "w"}}


def _export(net: torch.nn.Module, path, size: int = 16) -> str:
    torch.onnx.export(net.eval(), torch.zeros(1, 1, size, size, size), str(path), input_names=["image"],
                      output_names=["pred"], dynamic_axes=DYNAMIC, dynamo=False)
    return str(path)


def _unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(4, 8, 16), strides=(2, 2),
                num_res_units=1).eval()


@pytest.fixture
def conv_onnx(net, tmp_path) -> str:
    return _export(net, tmp_path / "net.onnx")


def _rel_close(a: np.ndarray, b: np.ndarray, rel: float = 1e-4) -> None:
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= rel * max(np.abs(b).max(), 1e-6)


@pytest.mark.parametrize("kind", ["conv", "unet"])
def test_equals_onnxruntime_on_dynamic_batch_and_spatial_axes(kind, net, tmp_path):
    path = _export(net if kind == "conv" else _unet(), tmp_path / f"{kind}.onnx")
    ov_ctx, ort_ctx = OpenVinoInferenceContext(path), OnnxInferenceContext(path, device="cpu")
    assert ov_ctx.input_names == ort_ctx.input_names == ["image"]
    assert ov_ctx.output_names == ort_ctx.output_names == ["pred"]
    channels = 2 if kind == "conv" else 3
    assert ov_ctx.get_model_input_shapes() == {"image": (None, 1, None, None, None)}
    assert ov_ctx.get_model_output_shapes() == {"pred": (None, channels, None, None, None)}
    rng = np.random.default_rng(1)
    for shape in [(1, 1, 16, 16, 16), (3, 1, 24, 16, 32)]:  # batch and spatial sizes vary
        x = rng.standard_normal(shape).astype(np.float32)
        got, ref = ov_ctx.run([x])["pred"], ort_ctx.run([x])["pred"]
        assert got.shape == (shape[0], channels, *shape[2:])
        _rel_close(got, ref)
    # through the scan window: the argmax masks are equal
    inferer = ScanWindowInferer(OpenVinoPredictor(), [16, 16, 16], 2, blend_mode="gaussian")
    ref_inferer = ScanWindowInferer(OnnxPredictor(), [16, 16, 16], 2, blend_mode="gaussian")
    got = inferer.infer({"image": X}, "CDHW", ov_ctx)["pred"]
    ref = ref_inferer.infer({"image": X}, "CDHW", ort_ctx)["pred"]
    _rel_close(got, ref)
    assert np.array_equal(got.argmax(0), ref.argmax(0))
    # the seed-named inferers pick OpenVinoPredictor from the context
    assert isinstance(predictor_for(ov_ctx), OpenVinoPredictor)
    seed = TorchScanWindowInferer([16, 16, 16], 2, blend_mode="gaussian").infer({"image": X}, "CDHW", ov_ctx)
    np.testing.assert_array_equal(seed["pred"], got)
    for ctx in (ov_ctx, ort_ctx):
        ctx.close()
        with pytest.raises(RuntimeError, match="closed"):
            ctx.run([X[None]])


def test_predictor_checks_the_context(net, conv_onnx):
    with pytest.raises(TypeError, match="OpenVinoInferenceContext"):
        OpenVinoPredictor().predict({"image": X}, "CDHW", OnnxInferenceContext(conv_onnx, device="cpu"))
    with pytest.raises(ValueError, match="CPU"):
        OpenVinoInferenceContext(conv_onnx, device="cuda")


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 1)

    def forward(self, image, scale):
        y = self.conv(image) * scale
        return y, y.sum(1, keepdim=True)


def test_extra_inputs_and_outputs_as_onnxruntime(tmp_path):
    path = str(tmp_path / "two.onnx")
    torch.onnx.export(TwoHeads(), (torch.zeros(1, 1, 8, 8, 8), torch.tensor(1.0)), path,
                      input_names=["image", "scale"], output_names=["pred", "aux"], dynamo=False,
                      dynamic_axes={"image": {0: "n", 2: "d", 3: "h", 4: "w"}, "pred": {0: "n", 2: "d"},
                                    "aux": {0: "n", 2: "d"}})
    results = []
    contexts = (OpenVinoInferenceContext(path), OnnxInferenceContext(path, device="cpu"))
    for ctx in contexts:
        assert ctx.input_names == ["image", "scale"] and ctx.output_names == ["pred", "aux"]
        ctx.set_extra_input_values({"scale": np.asarray(2.0, np.float32)})
        ctx.input_names, ctx.output_names = ["image"], ["pred"]  # scale and aux become extras
        ctx.set_extra_output_names(["aux"])
        out = ScanWindowInferer(predictor_for(ctx), [8, 8, 8], 4).infer({"image": X}, "CDHW", ctx)
        assert set(out) == {"pred", "aux"} and out["aux"].shape == (1, 20, 18, 16)
        results.append(out)
    for name in ("pred", "aux"):
        _rel_close(results[0][name], results[1][name])
    ov_builds = list(contexts[0].compiled.static.values())
    assert ov_builds and all(b is not None for b in ov_builds)  # the recurring window batch ran a static build


def test_calls_from_threads(conv_onnx):
    ctx = OpenVinoInferenceContext(conv_onnx)
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((1, 1, 12, 12, 12)).astype(np.float32) for _ in range(6)]
    expected = [ctx.run([x])["pred"] for x in xs]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(3):
            got[i] = ctx.run([xs[i]])["pred"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, e in enumerate(expected):
        np.testing.assert_array_equal(got[i], e)


def test_context_for_file_runtime_choice(conv_onnx):
    from ai4med.errors import UserError
    from ai4med.inference.models import onnx_runtime_for, open_model

    assert isinstance(open_model(conv_onnx, device="cpu"), OpenVinoInferenceContext)
    assert isinstance(open_model(conv_onnx, device="cpu", runtime="openvino"), OpenVinoInferenceContext)
    assert isinstance(open_model(conv_onnx, device="cpu", runtime="onnxruntime"), OnnxInferenceContext)
    assert onnx_runtime_for("cuda", "auto") == "onnxruntime"  # the CUDA provider on a GPU
    with pytest.raises(UserError, match="runtime 'torch' does not run an ONNX file"):
        open_model(conv_onnx, device="cpu", runtime="torch")
    with pytest.raises(UserError, match="on the CPU"):
        onnx_runtime_for("cuda", "openvino")


def test_onnx_file_contexts_tune_malloc_as_the_torch_cpu_path(tmp_path, monkeypatch):
    """Without it a scan's full-volume buffers were page-faulted in on every call (measured: a 192x192x128 INT8
    scan stitched in 43 ms instead of 32)."""
    import ai4med.components.inferers.onnx_predictor as onnx_mod
    import ai4med.components.inferers.openvino_predictor as ov_mod

    path = _export(torch.nn.Conv3d(1, 2, 3, padding=1), tmp_path / "conv.onnx")
    calls = []
    monkeypatch.setattr(ov_mod, "tune_malloc", lambda: calls.append("openvino"))
    monkeypatch.setattr(onnx_mod, "tune_malloc", lambda: calls.append("onnxruntime"))
    OpenVinoInferenceContext(path)
    OnnxInferenceContext(path, device="cpu")
    assert calls == ["openvino", "onnxruntime"]
