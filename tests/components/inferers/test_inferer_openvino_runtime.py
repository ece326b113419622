"""runtime="openvino": torch modules converted to OpenVINO (CPU, f32) on first use, kept in step with
their weights, with a torch fallback; equal to the torch path within fp32 rounding."""

import logging

import numpy as np
import pytest
import torch

from ai4med.components.inferers import openvino_runtime
from ai4med.components.inferers.openvino_runtime import OpenVinoModule
from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, resolve_runtime

pytest.importorskip("openvino")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def assert_close_rel(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-4) -> None:
    """max |got - want| <= rel * max |want| (fp32 rounding of a different convolution order)."""
    assert got.shape == want.shape
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= rel * max(scale, 1e-6), (float((got - want).abs().max()), scale)


def tiny_unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=1).eval()


@pytest.mark.parametrize("make", [lambda: None, tiny_unet], ids=["conv", "unet"])
def test_matches_torch_with_dynamic_batch_and_spatial_shape(net, make) -> None:
    model = make() or net
    ov_net = OpenVinoModule(model)
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.inference_mode():
        first = ov_net(x)  # the torch result, while converting
        assert ov_net.active
        torch.testing.assert_close(first, model(x))
        assert_close_rel(ov_net(x), model(x))
        for shape in ((1, 1, 32, 32, 32), (3, 1, 16, 32, 24)):  # other batch and spatial sizes, one conversion
            y = torch.randn(shape)
            assert_close_rel(ov_net(y), model(y))
    assert isinstance(ov_net(x), torch.Tensor) and not ov_net.failed


def test_outputs_are_owned_copies(net) -> None:
    ov_net = OpenVinoModule(net)
    x = torch.randn(1, 1, 16, 16, 16)
    ov_net(x)
    a = ov_net(x)
    a_copy = a.clone()
    ov_net(torch.zeros_like(x))  # a later call must not overwrite an earlier result
    torch.testing.assert_close(a, a_copy, rtol=0, atol=0)


def test_reconverts_when_the_weights_change(net) -> None:
    ov_net = OpenVinoModule(net)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        ov_net(x)
        before = ov_net(x)
    with torch.no_grad():
        next(net.parameters()).mul_(2.0)
    with torch.inference_mode():
        ov_net(x)
        after = ov_net(x)
        assert_close_rel(after, net(x))
    assert ov_net.active and not torch.allclose(before, after)


def test_tuple_outputs(net) -> None:
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            y = self.net(x)
            return y, y.sum(1, keepdim=True)

    two = Two().eval()
    ov_net = OpenVinoModule(two)
    x = torch.randn(1, 1, 16, 16, 16)
    ov_net(x)
    got, want = ov_net(x), two(x)
    assert isinstance(got, tuple) and len(got) == 2
    for g, w in zip(got, want):
        assert_close_rel(g, w.detach())


def test_unconvertible_module_falls_back_to_torch_with_one_warning(net, caplog) -> None:
    class Odd(torch.nn.Module):  # aten::cummax has no ONNX export
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.cummax(self.net(x), 2)[0]

    odd = Odd().eval()
    ov_net = OpenVinoModule(odd)
    x = torch.randn(1, 1, 16, 16, 16)
    with caplog.at_level(logging.WARNING):
        results = [ov_net(x) for _ in range(3)]
    for r in results:
        torch.testing.assert_close(r, odd(x))
    assert ov_net.failed and not ov_net.active
    warned = [r for r in caplog.records if "openvino path unavailable" in r.getMessage()]
    assert len(warned) == 1 and "cummax" in warned[0].getMessage() and "running torch" in warned[0].getMessage()


def test_missing_openvino_is_a_clear_error(net, monkeypatch) -> None:
    monkeypatch.setattr(openvino_runtime, "openvino_available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install openvino"):
        TorchInferenceContext(net, precision="fp32", runtime="openvino")
    # "auto" never asks for a runtime that is not there
    assert TorchInferenceContext(net, precision="auto").runtime == "torch"


def test_runtime_resolution(net) -> None:
    cpu = torch.device("cpu")
    assert resolve_runtime("openvino", "fp32", "fp32", cpu, net, False) == "openvino"
    # auto: OpenVINO only where the automatic precision resolved to fp32 on CPU, for a plain module
    assert resolve_runtime("auto", "auto", "fp32", cpu, net, False) == "openvino"
    assert resolve_runtime("auto", "fp32", "fp32", cpu, net, False) == "torch"  # fp32 asked: exact torch
    assert resolve_runtime("auto", "auto", "bf16", cpu, net, False) == "torch"  # AMX CPUs: bf16 autocast
    assert resolve_runtime("auto", "auto", "fp32", cpu, net, True) == "torch"  # channels_last / compile
    assert resolve_runtime("auto", "auto", "fp32", cpu, torch.jit.script(net), False) == "torch"
    assert resolve_runtime("auto", "auto", "fp32", cpu, lambda x: x, False) == "torch"
    with pytest.raises(ValueError, match="runtime 'openvino' runs fp32 on CPU"):
        resolve_runtime("openvino", "bf16", "bf16", cpu, net, False)
    with pytest.raises(ValueError, match="runtime 'openvino' runs fp32 on CPU"):
        resolve_runtime("openvino", "fp32", "fp32", torch.device("cuda"), net, False)
    with pytest.raises(ValueError, match="fp32"):
        TorchInferenceContext(net, precision="bf16", runtime="openvino")
    ctx = TorchInferenceContext(net, precision="fp32", runtime="openvino")
    assert ctx.runtime == "openvino" and isinstance(ctx.model, OpenVinoModule)
    ctx.set_runtime("torch")
    assert ctx.runtime == "torch" and ctx.model is ctx.module


def test_scan_window_through_openvino_equals_the_torch_path() -> None:
    unet = tiny_unet()
    x = np.random.default_rng(0).standard_normal((1, 1, 40, 36, 28)).astype(np.float32)
    inferer = TorchScanWindowInferer([16, 16, 16], 4, overlap=0.25)
    ref = inferer.infer({"image": x}, "NCDHW", TorchInferenceContext(unet, precision="fp32"))["pred"]
    ctx = TorchInferenceContext(unet, precision="fp32", runtime="openvino")
    got = inferer.infer({"image": x}, "NCDHW", ctx)["pred"]
    got = inferer.infer({"image": x}, "NCDHW", ctx)["pred"]  # the first call ran torch while converting
    assert ctx.model.active
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert np.array_equal(got.argmax(1), ref.argmax(1))


def _specialised(net: torch.nn.Module, max_static: int = 2) -> "openvino_runtime.ShapeSpecialisedModel":
    from ai4med.components.inferers.ort_runtime import export_to_bytes

    model = openvino_runtime.compile_for_cpu(export_to_bytes(net, (torch.zeros(1, 1, 16, 16, 16),), 1))
    model.max_static = max_static
    return model


def test_recurring_shapes_run_a_static_build_with_the_same_outputs() -> None:
    net = tiny_unet()
    model = _specialised(net)
    x = np.random.default_rng(0).standard_normal((2, 1, 16, 16, 16)).astype(np.float32)
    feeds = {"input_0": x}
    key = (("input_0", x.shape),)
    builds = [model.build_for(feeds) for _ in range(model.SPECIALISE_AFTER + 1)]
    assert builds[0] is model.dynamic and builds[1] is model.dynamic  # a shape seen once or twice: dynamic
    static = model.static[key]
    assert builds[2] is static and builds[3] is static and static is not model.dynamic
    assert static.inputs[0].get_partial_shape().is_static and not model.dynamic.inputs[0].get_partial_shape().is_static
    assert tuple(static.inputs[0].get_partial_shape().to_shape()) == x.shape
    dynamic_out = model.dynamic(feeds, share_outputs=False).to_tuple()[0]
    static_out = model(feeds, share_outputs=False).to_tuple()[0]
    np.testing.assert_allclose(static_out, dynamic_out, rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        assert_close_rel(torch.from_numpy(static_out), net(torch.from_numpy(x)))


def test_static_builds_are_bounded_least_recently_used_out() -> None:
    model = _specialised(tiny_unet(), max_static=2)
    shapes = [(1, 1, 16, 16, 16), (2, 1, 16, 16, 16), (1, 1, 24, 16, 16)]
    feeds = [{"input_0": np.zeros(s, np.float32)} for s in shapes]
    for f in feeds[:2]:
        for _ in range(model.SPECIALISE_AFTER):
            model(f)
    model(feeds[0])  # used last: the second shape is now the least recently used
    for _ in range(model.SPECIALISE_AFTER):
        model(feeds[2])
    assert [k[0][1] for k in model.static] == [shapes[0], shapes[2]]
    out = model(feeds[1]).to_tuple()[0]  # an evicted shape still runs (dynamic build)
    assert out.shape == (2, 2, 16, 16, 16)


def test_a_shape_that_cannot_be_static_stays_dynamic() -> None:
    model = _specialised(tiny_unet())

    class Unclonable:
        def clone(self):
            raise RuntimeError("refused")

    model.model = Unclonable()
    feeds = {"input_0": np.ones((1, 1, 16, 16, 16), np.float32)}
    outs = [model(feeds).to_tuple()[0] for _ in range(model.SPECIALISE_AFTER + 2)]
    assert list(model.static.values()) == [None]
    assert model.build_for(feeds) is model.dynamic
    np.testing.assert_array_equal(outs[-1], outs[0])


def test_module_outputs_stay_owned_copies_on_the_static_build(net) -> None:
    ov_net = OpenVinoModule(net)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        for _ in range(openvino_runtime.ShapeSpecialisedModel.SPECIALISE_AFTER + 1):
            a = ov_net(x)
        assert ov_net.compiled.static  # the calls above made a static build, which ran the last one
        a_copy = a.clone()
        ov_net(torch.zeros_like(x))
        torch.testing.assert_close(a, a_copy, rtol=0, atol=0)
        assert_close_rel(a, net(x))


def test_ever_new_shapes_keep_bounded_bookkeeping_and_stay_dynamic() -> None:
    model = _specialised(tiny_unet())
    model.TRACKED_SHAPES = 4
    outs = [model({"input_0": np.zeros((1, 1, 16, 16, 8 + 2 * i), np.float32)}).to_tuple()[0] for i in range(10)]
    assert [o.shape[-1] for o in outs] == [8 + 2 * i for i in range(10)]
    assert len(model.calls) == 4 and not model.static  # the 4 newest shapes, each seen once; nothing compiled
    assert [k[0][1][-1] for k in model.calls] == [20, 22, 24, 26]
