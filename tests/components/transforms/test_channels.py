"""Channel / layout transforms: formats, names, batch merging, property copies."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty as P
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import channels as C


@pytest.mark.parametrize(
    ("fmt", "shape", "out_fmt", "out_shape"),
    [
        ("DHW", (4, 5, 6), "CDHW", (1, 4, 5, 6)),
        ("HW", (4, 5), "CHW", (1, 4, 5)),
        ("DHWC", (4, 5, 6, 2), "CDHW", (2, 4, 5, 6)),
        ("HWC", (4, 5, 3), "CHW", (3, 4, 5)),
        ("CDHW", (2, 4, 5, 6), "CDHW", (2, 4, 5, 6)),
        ("NDHWC", (3, 4, 5, 6, 2), "NCDHW", (3, 2, 4, 5, 6)),
    ],
)
def test_convert_to_channels_first(fmt, shape, out_fmt, out_shape):
    x = np.random.default_rng(0).random(shape)
    ctx = TransformContext({"image": MedicalImage(x, fmt, {P.SPACING: (1.0, 2.0, 3.0)})})
    out = C.ConvertToChannelsFirst("image")(ctx)["image"]
    assert str(out.get_shape_format()) == out_fmt and out.shape == out_shape
    assert out.get_property(P.SPACING) == (1.0, 2.0, 3.0)
    if fmt.endswith("C"):
        np.testing.assert_array_equal(np.moveaxis(out.get_data(), 1 if "N" in fmt else 0, -1), x)


def test_volume_to_4d_array_fields():
    ctx = TransformContext({"image": MedicalImage(np.zeros((3, 4, 5)), "DHW"),
                            "label": MedicalImage(np.zeros((3, 4, 5)), "DHW")})
    out = C.VolumeTo4dArray(["image", "label"])(ctx)
    assert out["image"].shape == out["label"].shape == (1, 3, 4, 5)


def test_np_expand_dims_and_rep_channels():
    ctx = TransformContext({"image": MedicalImage(np.arange(6.0).reshape(2, 3), "HW")})
    out = C.NPExpandDims(applied_keys="image", expand_axis=0)(ctx)["image"]
    assert str(out.get_shape_format()) == "CHW" and out.shape == (1, 2, 3)
    out = C.NPRepChannels(applied_keys="image", channel_axis=0, repeat=3)(TransformContext({"image": out}))["image"]
    assert out.shape == (3, 2, 3)
    np.testing.assert_array_equal(out.get_data()[2], np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="not a supported layout"):
        C.NPExpandDims("image", expand_axis=1)(TransformContext({"image": MedicalImage(np.zeros((2, 3, 4)), "DHW")}))


def test_repeat_channel_grey_to_rgb():
    ctx = TransformContext({"image": MedicalImage(np.random.default_rng(0).random((5, 6)), "HW")})
    out = C.RepeatChannel("image", repeat=3)(ctx)["image"]
    assert out.shape == (3, 5, 6) and str(out.get_shape_format()) == "CHW"
    assert np.all(out.get_data()[0] == out.get_data()[2])


def test_split_across_channels_names_and_squeeze():
    x = np.stack([np.zeros((4, 4, 4)), np.ones((4, 4, 4))]).astype(np.float32)
    img = MedicalImage(x, "CDHW", {P.AFFINE: np.eye(4), P.FILENAME: "/d/a.nii.gz"})
    ctx = TransformContext({"model": img})
    out = C.SplitAcrossChannels(applied_key="model", squeeze=True, channel_names=["background", "prediction"])(ctx)
    assert out["prediction"].shape == (4, 4, 4) and str(out["prediction"].get_shape_format()) == "DHW"
    assert np.all(out["prediction"].get_data() == 1) and np.all(out["background"].get_data() == 0)
    assert out["prediction"].get_property(P.FILENAME) == "/d/a.nii.gz"
    out = C.SplitAcrossChannels("model")(TransformContext({"model": img}))
    assert out["model1"].shape == (1, 4, 4, 4) and str(out["model1"].get_shape_format()) == "CDHW"
    with pytest.raises(ValueError, match="channel_names"):
        C.SplitAcrossChannels("model", channel_names=["only_one"])(TransformContext({"model": img}))


def test_merge_batch_dims_flattens_leading_batch():
    x = np.arange(2 * 3 * 1 * 2 * 2).reshape(2, 3, 1, 2, 2)
    out = C.MergeBatchDims("image")(TransformContext({"image": x}))["image"]
    assert out.shape == (6, 1, 2, 2)
    np.testing.assert_array_equal(out[4], x[1, 1])
    torch = pytest.importorskip("torch")
    t = C.MergeBatchDims("image")(TransformContext({"image": torch.from_numpy(x)}))["image"]
    assert tuple(t.shape) == (6, 1, 2, 2)
    crops = [MedicalImage(np.full((4, 1, 2, 2), i), "NCHW") for i in range(2)]
    merged = C.MergeBatchDims("image")(TransformContext({"image": crops}))["image"]
    assert merged.shape == (8, 1, 2, 2) and str(merged.get_shape_format()) == "NCHW"
    np.testing.assert_array_equal(merged.get_data()[4:, 0, 0, 0], 1)


def test_copy_properties_to_model_output():
    src = MedicalImage(np.zeros((1, 4, 4, 4)), "CDHW", {P.AFFINE: np.diag([2.0, 2, 2, 1]), P.FILENAME: "a.nii",
                                                         P.ORIGINAL_SHAPE: (8, 8, 8), "other": 1})
    ctx = TransformContext({"image": src, "model": np.ones((2, 4, 4, 4))})
    out = C.CopyProperties("model", from_field="image")(ctx)["model"]
    assert str(out.get_shape_format()) == "CDHW"
    np.testing.assert_array_equal(out.get_property(P.AFFINE), np.diag([2.0, 2, 2, 1]))
    assert out.get_property(P.ORIGINAL_SHAPE) == (8, 8, 8) and not out.has_property("other")
    out = C.CopyProperties("model", from_field="image", properties=["other"])(
        TransformContext({"image": src, "model": MedicalImage(np.ones((4, 4, 4)), "DHW")}))["model"]
    assert out.get_property("other") == 1 and not out.has_property(P.AFFINE)
