"""Test-time mirroring = mean of the flipped predictions; an ensemble = mean of its members' probabilities."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch

from ai4med.components.inferers.ensemble import EnsembleInferenceContext, EnsemblePredictor
from ai4med.components.inferers.simple_inferer import SimpleInferer
from ai4med.components.inferers.sw_inferer import ScanWindowInferer
from ai4med.components.inferers.torch_inferers import AutoPredictor, TorchScanWindowInferer, TorchSimpleInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor


def _net(seed: int, out_ch: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv3d(4, out_ch, 3, padding=1)).eval()


def _ctx(seed: int = 0, out_ch: int = 2) -> TorchInferenceContext:
    return TorchInferenceContext(_net(seed, out_ch), precision="fp32")


def _x(shape=(1, 12, 10, 8)) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _mean_of_flips(infer, x, axes, fmt_spatial=(1, 2, 3)):
    outs = []
    for k in range(len(axes) + 1):
        for flips in combinations(axes, k):
            ax = [fmt_spatial[a] for a in flips]
            xf = np.flip(x, ax).copy() if ax else x
            y = infer(xf)
            outs.append(np.flip(y, ax) if ax else y)
    return np.mean(outs, axis=0), len(outs)


@pytest.mark.parametrize("axes", [[0, 1, 2], [1], [0, 2]])
def test_simple_inferer_tta_equals_mean_of_flips(axes):
    ctx, x = _ctx(), _x()
    plain = SimpleInferer(TorchPredictor())
    expected, n = _mean_of_flips(lambda v: plain.infer({"image": v}, "CDHW", ctx)["pred"], x, axes)
    assert n == 2 ** len(axes)
    got = SimpleInferer(TorchPredictor(), tta=axes).infer({"image": x}, "CDHW", ctx)["pred"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # a real change: the network is not flip-invariant
    assert np.abs(got - plain.infer({"image": x}, "CDHW", ctx)["pred"]).max() > 1e-3


def test_scan_window_tta_true_means_all_axes():
    ctx, x = _ctx(), _x((1, 20, 18, 16))
    plain = ScanWindowInferer(TorchPredictor(), roi_size=[8, 8, 8], batch_size=3)
    expected, n = _mean_of_flips(lambda v: plain.infer({"image": v}, "CDHW", ctx)["pred"], x, [0, 1, 2])
    got = ScanWindowInferer(TorchPredictor(), roi_size=[8, 8, 8], batch_size=3, tta=True).infer(
        {"image": x}, "CDHW", ctx)["pred"]
    assert n == 8 and got.shape == (2, 20, 18, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_tta_with_batch_layout_and_torch_inferers():
    ctx, x = _ctx(), _x((2, 1, 8, 8, 8))
    got = TorchSimpleInferer(tta=[2]).infer({"image": x}, "NCDHW", ctx)["pred"]
    plain = TorchSimpleInferer().infer
    a = plain({"image": x}, "NCDHW", ctx)["pred"]
    b = np.flip(plain({"image": np.flip(x, 4).copy()}, "NCDHW", ctx)["pred"], 4)
    np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-5, atol=1e-6)
    sw = TorchScanWindowInferer([8, 8, 8], 1, tta=[0])
    assert sw.infer({"image": x}, "NCDHW", ctx)["pred"].shape == (2, 2, 8, 8, 8)


def test_tta_bad_axes():
    with pytest.raises(ValueError, match="distinct spatial axes"):
        SimpleInferer(TorchPredictor(), tta=[0, 0])
    with pytest.raises(ValueError, match="distinct spatial axes"):
        SimpleInferer(TorchPredictor(), tta=[3]).infer({"image": _x()}, "CDHW", _ctx())


def test_ensemble_is_the_mean_of_member_softmax():
    members = [_ctx(s) for s in (1, 2, 3)]
    x = _x((1, 1, 8, 8, 8))
    with torch.no_grad():
        probs = [torch.softmax(m.module(torch.from_numpy(x)), 1).numpy() for m in members]
    ens = EnsembleInferenceContext(members)
    got = EnsemblePredictor().predict({"image": x}, "NCDHW", ens)["pred"]
    np.testing.assert_allclose(got, np.mean(probs, axis=0), rtol=1e-5, atol=1e-6)
    assert np.abs(got - probs[0]).max() > 1e-3
    # the same through an inferer's AutoPredictor, with TTA on top
    via = ScanWindowInferer(AutoPredictor(), roi_size=[8, 8, 8]).infer({"image": x[0]}, "CDHW", ens)["pred"]
    np.testing.assert_allclose(via, got[0], rtol=1e-5, atol=1e-6)
    assert ens.get_model_input_shapes() == members[0].get_model_input_shapes()


def test_ensemble_sigmoid_for_one_channel_and_probability_members():
    members = [_ctx(s, out_ch=1) for s in (4, 5)]
    x = _x((1, 1, 6, 6, 6))
    with torch.no_grad():
        sig = [torch.sigmoid(m.module(torch.from_numpy(x))).numpy() for m in members]
    got = EnsemblePredictor().predict({"image": x}, "NCDHW", EnsembleInferenceContext(members))["pred"]
    np.testing.assert_allclose(got, np.mean(sig, axis=0), rtol=1e-5, atol=1e-6)

    class Soft(torch.nn.Module):  # a member that already returns probabilities is not softmaxed twice
        def __init__(self, seed):
            super().__init__()
            self.net = _net(seed)

        def forward(self, v):
            return torch.softmax(self.net(v), 1)

    soft = [TorchInferenceContext(Soft(s).eval(), precision="fp32") for s in (6, 7)]
    with torch.no_grad():
        p = [m.module(torch.from_numpy(x)).numpy() for m in soft]
    got = EnsemblePredictor().predict({"image": x}, "NCDHW", EnsembleInferenceContext(soft))["pred"]
    np.testing.assert_allclose(got, np.mean(p, axis=0), rtol=1e-5, atol=1e-6)
    w = EnsemblePredictor().predict({"image": x}, "NCDHW", EnsembleInferenceContext(soft, weights=[3, 1]))["pred"]
    np.testing.assert_allclose(w, 0.75 * p[0] + 0.25 * p[1], rtol=1e-5, atol=1e-6)


def test_ensemble_errors():
    with pytest.raises(ValueError, match="at least one"):
        EnsembleInferenceContext([])
    with pytest.raises(ValueError, match="weights"):
        EnsembleInferenceContext([_ctx()], weights=[1, 2])
    a, b = _ctx(), TorchInferenceContext(_net(1), output_names=("logits",), precision="fp32")
    with pytest.raises(ValueError, match="member 1"):
        EnsembleInferenceContext([a, b])
