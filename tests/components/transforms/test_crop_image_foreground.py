"""CropImageForeground: the image's own foreground decides the box; geometry stays true."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.catalog import REGISTRY
from ai4med.components.transforms.crop import CropImageForeground


def _ctx(data, label=None, affine=None):
    img = MedicalImage(data, "CDHW")
    img.set_property(ImageProperty.AFFINE, np.diag([2.0, 1.0, 3.0, 1.0]) if affine is None else affine)
    fields = {"image": img}
    if label is not None:
        lab = MedicalImage(label, "CDHW")
        lab.set_property(ImageProperty.AFFINE, img.get_property(ImageProperty.AFFINE).copy())
        fields["label"] = lab
    return TransformContext(fields)


def test_nonzero_box_cuts_image_and_label_alike_and_moves_the_affine():
    data = np.zeros((2, 10, 12, 8), np.float32)
    data[0, 2:7, 3:9, 1:5] = 5.0
    data[1, 1, 4, 6] = -1.0  # the second channel extends the box (any channel nonzero)
    label = np.zeros((1, 10, 12, 8), np.uint8)
    label[0, 3:5, 4:6, 2:4] = 1
    ctx = CropImageForeground(["image", "label"])(_ctx(data, label))
    img, lab = ctx["image"], ctx["label"]
    assert img.shape == (2, 6, 6, 6) and lab.shape == (1, 6, 6, 6)
    assert img.get_property(ImageProperty.CROP_BOX) == [[1, 7], [3, 9], [1, 7]]
    assert lab.get_data().sum() == label.sum()  # the label's foreground lies inside the box, all of it kept
    np.testing.assert_array_equal(img.get_data(), data[:, 1:7, 3:9, 1:7])
    # voxel (0, 0, 0) of the crop is voxel (1, 3, 1) of the input: world (2, 3, 3) mm
    np.testing.assert_allclose(img.get_property(ImageProperty.AFFINE)[:3, 3], [2.0, 3.0, 3.0])


def test_threshold_and_margin():
    data = np.full((1, 10, 10, 10), -1000.0, np.float32)  # CT air
    data[0, 4:6, 3:8, 5:6] = 40.0
    out = CropImageForeground("image", threshold=-500, margin=2)(_ctx(data))["image"]
    assert out.get_property(ImageProperty.CROP_BOX) == [[2, 8], [1, 10], [3, 8]]  # clamped at the far edge
    nonzero = CropImageForeground("image")(_ctx(data))["image"]  # air is nonzero: nothing cropped
    assert nonzero.shape == (1, 10, 10, 10)


def test_empty_image_left_whole_and_registry_and_bad_margin():
    ctx = CropImageForeground("image")(_ctx(np.zeros((1, 4, 4, 4), np.float32)))
    assert ctx["image"].shape == (1, 4, 4, 4)
    assert REGISTRY.get("CropImageForeground") is CropImageForeground
    with pytest.raises(ValueError, match="margin must be >= 0"):
        CropImageForeground("image", margin=-1)
