"""Post / label-conversion transforms: exact values and valid shape formats."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import post as P


def ctx_of(**fields):
    return TransformContext({k: MedicalImage(*v) for k, v in fields.items()})


BRATS = np.array([[[0, 1, 2], [4, 0, 2]]], dtype=np.uint8)  # (1, 2, 3) "CHW"


def test_brats_multichannel_values():
    for cls in (P.ConvertToMultiChannelBasedOnBratsClasses, P.BratsConvertLabels):
        ctx = ctx_of(label=(BRATS, "CHW"))
        cls(fields="label").transform(ctx)
        out = ctx["label"]
        assert out.shape == (3, 2, 3) and str(out.get_shape_format()) == "CHW"
        tc, wt, et = out.get_data()
        assert tc.tolist() == [[0, 1, 0], [1, 0, 0]]
        assert wt.tolist() == [[0, 1, 1], [1, 0, 1]]
        assert et.tolist() == [[0, 0, 0], [1, 0, 0]]


def test_brats_from_channelless_map():
    ctx = ctx_of(label=(BRATS[0], "HW"))
    P.ConvertToMultiChannelBasedOnBratsClasses("label").transform(ctx)
    assert ctx["label"].shape == (3, 2, 3) and str(ctx["label"].get_shape_format()) == "CHW"


def test_split_based_on_brats_classes_label_and_channels():
    ctx = ctx_of(label=(BRATS, "CHW"))
    P.SplitBasedOnBratsClasses(field="label").transform(ctx)
    assert ctx["WT"].get_data()[0].tolist() == [[0, 1, 1], [1, 0, 1]]
    assert ctx["ET"].shape == (1, 2, 3)
    probs = np.random.default_rng(0).random((3, 4, 4)).astype(np.float32)
    ctx = ctx_of(model=(probs, "CHW"))
    P.SplitBasedOnBratsClasses(field="model", channel_names=["a", "b", "c"]).transform(ctx)
    np.testing.assert_array_equal(ctx["b"].get_data()[0], probs[1])


def test_one_hot_values():
    lab = np.array([[[0, 1], [2, 1]]], dtype=np.int32)
    ctx = ctx_of(label=(lab, "CHW"))
    P.ConvertToMultiChannelBasedOnLabel("label", num_classes=3).transform(ctx)
    out = ctx["label"].get_data()
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out.argmax(0), lab[0])
    assert out.sum(0).tolist() == [[1, 1], [1, 1]]
    ctx = ctx_of(label=(lab[0], "HW"))
    P.ConvertToMultiChannelBasedOnLabel("label", labels=[2, 1]).transform(ctx)
    assert ctx["label"].get_data().tolist() == [[[0, 0], [1, 0]], [[0, 1], [0, 1]]]


def test_split_based_on_label():
    lab = np.array([[[0, 1], [2, 1]]], dtype=np.uint8)
    ctx = ctx_of(label=(lab, "CHW"))
    P.SplitBasedOnLabel("label", ["bg", "liver", "tumor"]).transform(ctx)
    assert ctx["liver"].get_data()[0].tolist() == [[0, 1], [0, 1]]
    assert ctx["tumor"].get_data()[0].tolist() == [[0, 0], [1, 0]]
    assert ctx["bg"].get_data()[0].tolist() == [[1, 0], [0, 0]]
    onehot = np.stack([lab[0] == v for v in range(3)]).astype(np.float32)
    ctx = ctx_of(model=(onehot, "CHW"))
    P.SplitBasedOnLabel("model", ["bg", "liver", "tumor"]).transform(ctx)
    np.testing.assert_array_equal(ctx["tumor"].get_data()[0], onehot[2])
    with pytest.raises(ValueError):
        P.SplitBasedOnLabel("model", ["a", "b"]).transform(ctx_of(model=(onehot, "CHW")))


def test_threshold_values():
    data = np.array([[0.1, 0.5, 0.51, 0.9]], dtype=np.float32)
    ctx = ctx_of(model=(data, "HW"))
    P.ThresholdValues("model", threshold=0.5).transform(ctx)
    assert ctx["model"].get_data().tolist() == [[0, 0, 1, 1]] and ctx["model"].dtype == np.float32
    ctx = ctx_of(model=(data, "HW"))
    P.ThresholdValues("model", threshold=0.05, dtype="uint8").transform(ctx)
    assert ctx["model"].get_data().tolist() == [[1, 1, 1, 1]] and ctx["model"].dtype == np.uint8


def test_argmax_across_channels():
    logits = np.zeros((3, 2, 2), np.float32)
    logits[0, 0, 0] = logits[1, 0, 1] = logits[2, 1, 0] = logits[2, 1, 1] = 5
    ctx = ctx_of(model=(logits, "CHW"))
    P.ArgmaxAcrossChannels("model").transform(ctx)
    assert ctx["model"].shape == (1, 2, 2) and str(ctx["model"].get_shape_format()) == "CHW"
    assert ctx["model"].get_data()[0].tolist() == [[0, 1], [2, 2]]
    ctx = ctx_of(model=(np.stack([logits, logits]), "NCHW"))
    P.ArgmaxAcrossChannels("model", keepdims=False).transform(ctx)
    assert ctx["model"].shape == (2, 2, 2) and str(ctx["model"].get_shape_format()) == "NHW"
    with pytest.raises(ValueError):
        P.ArgmaxAcrossChannels("model").transform(ctx_of(model=(logits[0], "HW")))


def test_keep_largest_cc_kernel_keeps_exactly_largest():
    m = np.zeros((12, 12, 12), np.uint8)
    m[0:3, 0:3, 0:3] = 1  # 27
    m[5:10, 5:10, 5:8] = 1  # 75 (largest)
    m[11, 11, 11] = 1
    out = P.keep_largest_cc(m)
    expected = np.zeros_like(m)
    expected[5:10, 5:10, 5:8] = 1
    np.testing.assert_array_equal(out, expected)


def test_keep_largest_cc_connectivity():
    m = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], np.uint8)
    assert P.keep_largest_cc(m, connectivity=1).tolist() == [[0, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert P.keep_largest_cc(m).tolist() == m.tolist()  # full connectivity: one component


def test_keep_largest_cc_transform_label_map_and_channels():
    lab = np.zeros((1, 10, 10, 10), np.uint8)
    lab[0, 0:2, 0:2, 0:2] = 1
    lab[0, 4:8, 4:8, 4:8] = 1
    lab[0, 0:3, 7:10, 7:10] = 2
    lab[0, 9, 0, 0] = 2
    ctx = ctx_of(model=(lab, "CDHW"))
    P.KeepLargestCC("model").transform(ctx)
    out = ctx["model"].get_data()
    assert out[0, 0:2, 0:2, 0:2].sum() == 0 and (out[0, 4:8, 4:8, 4:8] == 1).all()
    assert (out[0, 0:3, 7:10, 7:10] == 2).all() and out[0, 9, 0, 0] == 0
    ctx = ctx_of(model=(lab, "CDHW"))
    P.KeepLargestCC("model", independent=False).transform(ctx)
    out = ctx["model"].get_data()
    assert (out[0, 4:8, 4:8, 4:8] == 1).all() and out[0, 0:3, 7:10, 7:10].sum() == 0
    onehot = np.stack([lab[0] == 1, lab[0] == 2]).astype(np.float32)
    ctx = ctx_of(model=(onehot, "CDHW"))
    P.KeepLargestCC("model").transform(ctx)
    out = ctx["model"].get_data()
    assert out[0].sum() == 64 and out[1].sum() == 27
