"""Scan-window kernels, ScanWindowInferer parity with MONAI, ScanClassWindowInferer rules."""

import numpy as np
import pytest
import torch
from inferer_fixtures import make_net
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference
from monai.inferers.utils import compute_importance_map

from ai4med.components.inferers import scan_window as sw
from ai4med.components.inferers.sw_class_inferer import ScanClassWindowInferer, resolve_scan_interval
from ai4med.components.inferers.sw_inferer import ScanWindowInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor


def test_resolve_roi_falls_back_to_image_size():
    assert sw.resolve_roi(None, (5, 6, 7)) == (5, 6, 7)
    assert sw.resolve_roi([4, -1, None], (5, 6, 7)) == (4, 6, 7)
    assert sw.resolve_roi(3, (5, 6)) == (3, 3)
    with pytest.raises(ValueError, match="axes"):
        sw.resolve_roi([4, 4], (5, 6, 7))


def test_scan_intervals():
    assert sw.scan_intervals((192, 96, 10), (96, 96, 8), 0.25) == (72, 96, 6)
    assert sw.scan_intervals((9,), (1,), 0.5) == (1,)
    with pytest.raises(ValueError):
        sw.scan_intervals((9,), (3,), 1.0)


@pytest.mark.parametrize("size,roi,step", [(128, 96, 72), (10, 4, 3), (7, 7, 7), (5, 8, 6), (33, 16, 1)])
def test_window_starts_match_monai(size, roi, step):
    ref = [s[0].start for s in dense_patch_slices((size,), (roi,), (step,))]
    assert sw.window_starts(size, roi, step) == ref


def test_window_grid_order_matches_monai():
    ref = [tuple(s.start for s in sl) for sl in dense_patch_slices((20, 9, 12), (8, 9, 5), (6, 9, 4))]
    assert sw.window_grid((20, 9, 12), (8, 9, 5), (6, 9, 4)) == ref


def test_batched():
    assert list(sw.batched(list(range(5)), 2)) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError):
        list(sw.batched([1], 0))


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
def test_importance_map_matches_monai(mode):
    ref = compute_importance_map((9, 16, 5), mode=mode, sigma_scale=0.125)
    torch.testing.assert_close(sw.importance_map((9, 16, 5), mode), ref.float())
    with pytest.raises(ValueError, match="blend mode"):
        sw.importance_map((4,), "cosine")


def test_pad_crop_gather_blend():
    x = torch.arange(2 * 3 * 5, dtype=torch.float).reshape(1, 1, 2, 3, 5)
    padded, before = sw.pad_to_roi(x, (4, 3, 4))
    assert padded.shape == (1, 1, 4, 3, 5) and before == (1, 0, 0)
    assert torch.equal(sw.crop(padded, before, (2, 3, 5)), x)
    win = sw.gather_windows(padded, [(0, (0, 0, 0)), (0, (0, 0, 1))], (4, 3, 4))
    assert win.shape == (2, 1, 4, 3, 4) and torch.equal(win[1], padded[0, :, :, :, 1:])
    out = torch.zeros(1, 1, 4, 3, 5)
    sw.blend_window(out, win[1], 0, (0, 0, 1), torch.full((4, 3, 4), 2.0))
    assert torch.equal(out[..., 1:], 2 * padded[..., 1:]) and out[..., 0].abs().sum() == 0
    total = sw.weight_sum((4, 3, 5), [(0, 0, 0), (0, 0, 1)], torch.ones(4, 3, 4))
    assert total[0, 0, 0, 0].tolist() == [1, 2, 2, 2, 1]


CASES = [
    ((1, 1, 40, 33, 20), (16, 16, 16), 0.25),
    ((2, 1, 10, 30, 17), (16, 8, 12), 0.5),  # padded: image smaller than roi on one axis
    ((1, 1, 24, 24, 24), (24, 24, 24), 0.25),
]


@pytest.mark.parametrize("shape,roi,overlap", CASES)
@pytest.mark.parametrize("mode", ["constant", "gaussian"])
def test_scan_window_equals_monai(net, shape, roi, overlap, mode):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ctx = TorchInferenceContext(net, precision="fp32")
    with torch.inference_mode():
        ref = sliding_window_inference(x, roi, 3, net, overlap=overlap, mode=mode).numpy()
    got = ScanWindowInferer(TorchPredictor(), roi, 3, overlap=overlap, blend_mode=mode).infer(
        {"image": x.numpy()}, "NCDHW", ctx
    )["pred"]
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-5


def test_scan_window_2d_and_layouts():
    net = make_net(dims=2)
    ctx = TorchInferenceContext(net, precision="fp32")
    x = torch.randn(1, 1, 30, 21)
    ref = sliding_window_inference(x, (16, 16), 2, net, overlap=0.25).detach().numpy()
    inferer = ScanWindowInferer(TorchPredictor(), (16, 16), 2)
    assert np.abs(inferer.infer({"image": x[0, 0].numpy()}, "HW", ctx)["pred"] - ref[0]).max() <= 1e-5
    hwc = inferer.infer({"image": x[0].permute(1, 2, 0).numpy()}, "HWC", ctx)["pred"]
    assert np.abs(hwc - ref[0].transpose(1, 2, 0)).max() <= 1e-5


def test_scan_window_rejects_bad_args(net):
    with pytest.raises(ValueError, match="blend_mode"):
        ScanWindowInferer(TorchPredictor(), (8, 8, 8), blend_mode="mean")
    with pytest.raises(ValueError, match="overlap"):
        ScanWindowInferer(TorchPredictor(), (8, 8, 8), overlap=1.5)


def test_scan_interval_rule():
    image, roi = (64, 64, 64), (32, 32, 32)
    assert resolve_scan_interval(None, image, roi) == (24, 24, 24)  # default heuristic: 25 % overlap
    assert resolve_scan_interval([8, 16.0, 31], image, roi) == (8, 16, 31)  # > 1: voxels
    assert resolve_scan_interval([0.25, 0.5, 1], image, roi) == (16, 32, 32)  # <= 1: fraction (kept <= roi)
    with pytest.raises(ValueError):
        resolve_scan_interval([8, 8], image, roi)


def test_scan_class_window_inferer(net):
    ctx = TorchInferenceContext(net, precision="fp32")
    x = torch.randn(1, 1, 20, 20, 20)
    inferer = ScanClassWindowInferer(TorchPredictor(), [12, 12, 12], 2, scan_interval=[6, 0.3, None],
                                     final_activation="softmax")
    out = inferer.infer({"image": x.numpy()}, "NCDHW", ctx)["pred"]
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)  # blended probabilities
    plain = ScanClassWindowInferer(TorchPredictor(), [12, 12, 12], 2, scan_interval=[6, 0.3, None])
    ref = sliding_window_inference(x, (12, 12, 12), 2, lambda t: net(t).softmax(1), overlap=0.25)
    with pytest.raises(ValueError, match="final_activation"):
        ScanClassWindowInferer(TorchPredictor(), final_activation="tanh")
    # scan interval 9 (>= 0.25 overlap) on every axis equals MONAI with overlap 0.25
    same = ScanClassWindowInferer(TorchPredictor(), [12, 12, 12], 2, scan_interval=9, final_activation="softmax")
    assert np.abs(same.infer({"image": x.numpy()}, "NCDHW", ctx)["pred"] - ref.detach().numpy()).max() <= 1e-5
    assert plain.infer({"image": x.numpy()}, "NCDHW", ctx)["pred"].shape == (1, 2, 20, 20, 20)
