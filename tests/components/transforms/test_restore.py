"""to_input_labels: probabilities on the network's grid back onto the input grid as a label map. Two classes
take a one-channel shortcut (the resampled margin p1 - p0); it must label every voxel as resampling both
channels and taking the argmax does. And label maps written from C- or Fortran-ordered arrays are the same."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.channels import ConvertToChannelsFirst
from ai4med.components.transforms.io import LoadNifti
from ai4med.components.transforms.restore import restore_to_input, to_input_labels
from ai4med.components.transforms.spatial import ScaleBySpacing
from ai4med.io.memory_order import fortran_order
from ai4med.io.nifti import write_nifti


def _loaded(tmp_path) -> MedicalImage:
    """An image loaded and resampled (1 mm -> 1.7 x 0.6 x 2.3 mm) as an inference config does."""
    rng = np.random.default_rng(1)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-5.0, 3.0, 7.0]
    path = write_nifti(rng.random((23, 17, 19)).astype(np.float32), affine, str(tmp_path / "im.nii.gz"))
    ctx = TransformContext({"image": path})
    for t in (LoadNifti("image"), ConvertToChannelsFirst("image"), ScaleBySpacing("image", [1.7, 0.6, 2.3])):
        ctx = t.transform(ctx)
    return ctx["image"]


@pytest.mark.parametrize("classes", [2, 3])
def test_labels_equal_the_argmax_of_every_resampled_channel(tmp_path, classes):
    src = _loaded(tmp_path)
    rng = np.random.default_rng(classes)
    shape = src.get_data().shape[1:]
    probs = rng.random((classes, *shape)).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    pred = src.new_image(probs, src.get_shape_format())
    labels = to_input_labels(pred, src).get_data()
    every = restore_to_input(pred, src).get_data()  # each channel on the input grid
    assert labels.shape == every.shape[1:] == (23, 17, 19)
    expected = np.argmax(every, axis=0)
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)
    assert 0 < (labels == 1).mean() < 1  # both classes present: the comparison means something


def test_fortran_order_keeps_values_shape_and_dtype():
    rng = np.random.default_rng(0)
    for a in (rng.integers(0, 3, (5, 6, 7)).astype(np.uint8), rng.random((4, 5, 6)) > 0.5,
              rng.random((3, 4, 5, 2)).astype(">f4"), rng.random((6, 5, 4))[::2]):
        f = fortran_order(a)
        assert f.flags.f_contiguous and f.shape == a.shape and f.dtype == a.dtype and np.array_equal(f, a)
    g = np.asfortranarray(rng.random((3, 4, 5)))
    assert fortran_order(g) is g


def test_nifti_written_from_c_or_fortran_order_is_the_same(tmp_path):
    import nibabel as nib

    mask = np.zeros((40, 30, 20), np.uint8)
    mask[5:25, 10:20, 3:17] = 1
    mask[30:, :5, 15:] = 2
    a = write_nifti(np.ascontiguousarray(mask), np.eye(4), str(tmp_path / "c.nii.gz"))
    b = write_nifti(np.asfortranarray(mask), np.eye(4), str(tmp_path / "f.nii.gz"))
    for p in (a, b):
        assert np.array_equal(np.asanyarray(nib.load(p).dataobj), mask) and os.path.getsize(p) > 0
