"""Geometry on real files, checked against nibabel's and SimpleITK's own reading.

* nilearn's MNI152 T1 template (always present: nilearn is a dependency);
* ITK's KmeansTest T1, anisotropic (2 x 2 x 3 mm) and non-RAS (L, S, A), from the
  Debian package insighttoolkit5-examples (skipped where it is not installed).
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ai4med.common.constants import ImageProperty as P
from ai4med.io.image_io import read_image, write_image


def mni_t1_path() -> str:
    import nilearn

    return os.path.join(
        os.path.dirname(nilearn.__file__), "datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )


KMEANS = "/usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz"
KMEANS_SEG = "/usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1KmeansPrelimSegmentation.nii.gz"
needs_kmeans = pytest.mark.skipif(
    not os.path.exists(KMEANS),
    reason=f"{KMEANS} absent: `apt-get install insighttoolkit5-examples` provides the ITK KmeansTest data",
)


def check_against_libraries(path: str) -> None:
    img = read_image(path)
    nimg = nib.load(path)
    s = sitk.ReadImage(path)
    # ours == nibabel: affine, array, index order
    np.testing.assert_array_equal(img.get_property(P.AFFINE), nimg.affine)
    np.testing.assert_array_equal(img.get_data(), np.asanyarray(nimg.dataobj))
    assert img.shape == nimg.shape == s.GetSize()
    # ours == SimpleITK: origin, spacing, direction, and the array transposed from (z, y, x)
    np.testing.assert_allclose(img.get_property(P.ORIGIN), s.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.SPACING), s.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.DIRECTION), s.GetDirection(), atol=1e-5)
    np.testing.assert_array_equal(img.get_data(), sitk.GetArrayFromImage(s).transpose(2, 1, 0))
    assert img.get_property(P.ORIGINAL_SHAPE) == nimg.shape
    assert img.get_property(P.FILE_FORMAT) == "nifti"
    assert img.get_property(P.DTYPE) == np.dtype(nimg.get_data_dtype()).name


def check_mha_round_trip(path: str, tmp_path) -> None:
    img = read_image(path)
    out = write_image(img, str(tmp_path / "copy.mha"))
    back = read_image(out)
    np.testing.assert_array_equal(back.get_data(), img.get_data())
    assert back.get_data().dtype == img.get_data().dtype
    np.testing.assert_allclose(back.get_property(P.AFFINE), img.get_property(P.AFFINE), atol=1e-5)
    for key in (P.ORIGIN, P.SPACING, P.DIRECTION):
        np.testing.assert_allclose(back.get_property(key), img.get_property(key), atol=1e-5)
    s_in, s_out = sitk.ReadImage(path), sitk.ReadImage(out)
    np.testing.assert_allclose(s_out.GetOrigin(), s_in.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(s_out.GetSpacing(), s_in.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(s_out.GetDirection(), s_in.GetDirection(), atol=1e-5)
    # and back to NIfTI: nibabel sees the original affine
    nii = write_image(back, str(tmp_path / "copy.nii.gz"))
    np.testing.assert_allclose(nib.load(nii).affine, nib.load(path).affine, atol=1e-5)


def test_mni152_matches_nibabel_and_simpleitk():
    path = mni_t1_path()
    check_against_libraries(path)
    img = read_image(path)
    assert img.shape == (197, 233, 189)
    np.testing.assert_allclose(img.get_property(P.SPACING), (1.0, 1.0, 1.0))
    assert nib.aff2axcodes(img.get_property(P.AFFINE)) == ("R", "A", "S")


def test_mni152_mha_round_trip(tmp_path):
    check_mha_round_trip(mni_t1_path(), tmp_path)


@needs_kmeans
def test_kmeans_anisotropic_matches_nibabel_and_simpleitk():
    check_against_libraries(KMEANS)
    check_against_libraries(KMEANS_SEG)
    img = read_image(KMEANS)
    assert img.shape == (128, 128, 62)
    np.testing.assert_allclose(sorted(img.get_property(P.SPACING)), [2.0, 2.0, 3.0], atol=1e-5)
    assert nib.aff2axcodes(img.get_property(P.AFFINE)) == ("L", "S", "A")


@needs_kmeans
def test_kmeans_round_trips_and_canonical(tmp_path):
    check_mha_round_trip(KMEANS, tmp_path)
    canon = read_image(KMEANS, as_closest_canonical=True)
    ref = nib.as_closest_canonical(nib.load(KMEANS))
    np.testing.assert_allclose(canon.get_property(P.AFFINE), ref.affine, atol=1e-6)
    np.testing.assert_array_equal(canon.get_data(), np.asanyarray(ref.dataobj))
    np.testing.assert_array_equal(canon.get_property(P.ORIGINAL_AFFINE), nib.load(KMEANS).affine)
    assert canon.get_property(P.ORIGINAL_SHAPE) == (128, 128, 62)
    # the canonical grid written to NRRD: every voxel still at the same world point for ITK
    out = write_image(canon, str(tmp_path / "canon.nrrd"))
    s = sitk.ReadImage(out)
    orig = sitk.ReadImage(KMEANS)
    for idx in [(0, 0, 0), (10, 20, 30), (127, 61, 127)]:
        world = np.array(s.TransformIndexToPhysicalPoint(idx))
        cont = orig.TransformPhysicalPointToContinuousIndex(tuple(world))
        src = tuple(int(round(c)) for c in cont)
        np.testing.assert_allclose(cont, src, atol=1e-4)
        assert s.GetPixel(*idx) == orig.GetPixel(*src)
