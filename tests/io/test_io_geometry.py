"""ai4med.io.geometry and ai4med.io.itk: the RAS affine <-> ITK LPS conventions, checked against SimpleITK."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ai4med.common.constants import ImageProperty as P
from ai4med.common.medical_image import MedicalImage
from ai4med.io.geometry import affine_from_itk, itk_from_affine, spacing_from_affine, to_4x4
from ai4med.io.itk import medical_image_to_sitk, sitk_to_medical_image


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


ROT = rotation(0.2, -0.35, 0.5)
SPACING = (0.7, 1.3, 2.9)
ORIGIN_LPS = (12.5, -30.0, 7.25)


def oblique_sitk(shape_zyx=(5, 6, 7), vector: int = 0) -> sitk.Image:
    rng = np.random.default_rng(0)
    if vector:
        arr = rng.integers(0, 500, (*shape_zyx, vector)).astype(np.int16)
    else:
        arr = rng.integers(0, 500, shape_zyx).astype(np.int16)
    img = sitk.GetImageFromArray(arr, isVector=bool(vector))
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN_LPS)
    img.SetDirection(tuple(ROT.ravel()))
    return img


def test_affine_from_itk_maps_indices_like_simpleitk():
    img = oblique_sitk()
    a = affine_from_itk(img.GetOrigin(), img.GetSpacing(), img.GetDirection())
    for idx in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (6, 5, 4), (3, 2, 1)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(idx))
        ras = (a @ [*idx, 1.0])[:3]
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-9)
    assert a.dtype == np.float64 and a.shape == (4, 4)
    np.testing.assert_allclose(a[3], [0, 0, 0, 1])


def test_itk_from_affine_inverts_affine_from_itk():
    a = affine_from_itk(ORIGIN_LPS, SPACING, ROT.ravel())
    origin, spacing, direction = itk_from_affine(a)
    np.testing.assert_allclose(origin, ORIGIN_LPS, atol=1e-12)
    np.testing.assert_allclose(spacing, SPACING, atol=1e-12)
    np.testing.assert_allclose(direction, ROT.ravel(), atol=1e-12)
    np.testing.assert_allclose(spacing_from_affine(a), SPACING, atol=1e-12)
    assert all(isinstance(v, float) for v in origin + spacing + direction)


def test_identity_direction_is_an_lps_flip():
    a = affine_from_itk((1.0, 2.0, 3.0), (2.0, 3.0, 4.0), np.eye(3).ravel())
    np.testing.assert_allclose(a, [[-2, 0, 0, -1], [0, -3, 0, -2], [0, 0, 4, 3], [0, 0, 0, 1]])


def test_2d_geometry():
    a = affine_from_itk((4.0, 5.0), (0.5, 2.0), (0.0, -1.0, 1.0, 0.0))
    origin, spacing, direction = itk_from_affine(a, ndim=2)
    assert origin == (4.0, 5.0)
    assert spacing == (0.5, 2.0)
    np.testing.assert_allclose(direction, (0.0, -1.0, 1.0, 0.0))
    np.testing.assert_allclose(to_4x4(np.array([[2, 0, 1], [0, 3, 2], [0, 0, 1]])),
                               [[2, 0, 0, 1], [0, 3, 0, 2], [0, 0, 1, 0], [0, 0, 0, 1]])


def test_zero_column_gets_unit_spacing():
    a = np.diag([2.0, 0.0, 3.0, 1.0])
    _, spacing, direction = itk_from_affine(a)
    assert spacing == (2.0, 1.0, 3.0)
    np.testing.assert_allclose(np.reshape(direction, (3, 3)), np.diag([-1.0, 1.0, 1.0]))


def test_sitk_to_medical_image_axis_order_and_geometry():
    img = oblique_sitk()
    mi = sitk_to_medical_image(img)
    assert mi.get_shape_format().value == "DHW"
    assert mi.shape == img.GetSize() == (7, 6, 5)
    np.testing.assert_array_equal(mi.get_data(), sitk.GetArrayFromImage(img).transpose(2, 1, 0))
    assert mi.get_data()[6, 5, 4] == img.GetPixel(6, 5, 4)
    assert mi.get_property(P.ORIGIN) == ORIGIN_LPS
    assert mi.get_property(P.SPACING) == SPACING
    assert mi.get_property(P.DIRECTION) == img.GetDirection()
    assert mi.get_property(P.ORIGINAL_SHAPE) == (7, 6, 5)
    assert mi.get_property(P.DTYPE) == "int16"
    np.testing.assert_allclose(mi.get_property(P.ORIGINAL_AFFINE), mi.get_property(P.AFFINE))


def test_medical_image_to_sitk_round_trip():
    img = oblique_sitk()
    back = medical_image_to_sitk(sitk_to_medical_image(img))
    assert back.GetSize() == img.GetSize()
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))


def test_affine_is_the_source_of_truth_when_writing():
    mi = MedicalImage(np.zeros((3, 4, 5), np.float32), "DHW")
    mi.set_property(P.ORIGIN, (99.0, 99.0, 99.0))  # stale ITK values must not win over AFFINE
    mi.set_property(P.SPACING, (9.0, 9.0, 9.0))
    mi.set_property(P.DIRECTION, tuple(np.eye(3).ravel()))
    mi.set_property(P.AFFINE, np.diag([1.5, 2.0, 2.5, 1.0]))
    s = medical_image_to_sitk(mi)
    assert s.GetSize() == (3, 4, 5)
    np.testing.assert_allclose(s.GetSpacing(), (1.5, 2.0, 2.5))
    np.testing.assert_allclose(s.GetOrigin(), (0, 0, 0))
    np.testing.assert_allclose(s.GetDirection(), np.diag([-1.0, -1.0, 1.0]).ravel())


def test_vector_and_bool_images():
    img = oblique_sitk(vector=3)
    mi = sitk_to_medical_image(img)
    assert mi.get_shape_format().value == "CDHW" and mi.shape == (3, 7, 6, 5)
    np.testing.assert_array_equal(mi.get_data()[:, 6, 5, 4], img.GetPixel(6, 5, 4))
    back = medical_image_to_sitk(mi)
    assert back.GetNumberOfComponentsPerPixel() == 3
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))

    b = medical_image_to_sitk(np.ones((2, 3, 4), bool))
    assert b.GetPixelID() == sitk.sitkUInt8 and b.GetSize() == (2, 3, 4)


def test_4d_scalar_becomes_channel_first():
    arr = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (t, z, y, x)
    img = sitk.GetImageFromArray(arr, isVector=False)
    img.SetSpacing((1.0, 2.0, 3.0, 1.0))
    mi = sitk_to_medical_image(img)
    assert mi.get_shape_format().value == "CDHW" and mi.shape == (2, 5, 4, 3)
    assert mi.get_data()[1, 4, 3, 2] == arr[1, 2, 3, 4]
    assert mi.get_property(P.SPACING) == pytest.approx((1.0, 2.0, 3.0))


def test_batched_image_is_refused():
    with pytest.raises(ValueError, match="batched"):
        medical_image_to_sitk(MedicalImage(np.zeros((2, 3, 4, 5)), "NDHW"))
