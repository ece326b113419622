"""read_image / write_image: geometry and values survive read -> write -> read in every format.

Each written file is also read back by SimpleITK itself (and nibabel for NIfTI) and
compared with the geometry the synthetic volume was built with.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ai4med.common.constants import ImageProperty as P
from ai4med.common.medical_image import MedicalImage
from ai4med.errors import UserError
from ai4med.io.image_io import ImageReadError, ImageWriteError, read_image, write_image


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# an anisotropic, oblique grid, written down in both conventions independently
ROT_RAS = rotation(0.3, -0.2, 0.6)
SPACING = (0.7, 1.3, 2.9)
ORIGIN_RAS = np.array([-20.0, 15.5, 8.0])
AFFINE = np.eye(4)
AFFINE[:3, :3] = ROT_RAS * np.array(SPACING)
AFFINE[:3, 3] = ORIGIN_RAS
ORIGIN_LPS = (20.0, -15.5, 8.0)
DIRECTION_LPS = (np.diag([-1.0, -1.0, 1.0]) @ ROT_RAS).ravel()
SHAPE = (12, 10, 8)


@pytest.fixture
def volume() -> MedicalImage:
    data = np.random.default_rng(1).integers(-1000, 3000, SHAPE).astype(np.int16)
    img = MedicalImage(data, "DHW")
    img.set_property(P.AFFINE, AFFINE.copy())
    return img


def assert_sitk_geometry(path: str, data: np.ndarray) -> None:
    s = sitk.ReadImage(path)
    np.testing.assert_allclose(s.GetOrigin(), ORIGIN_LPS, atol=1e-5)
    np.testing.assert_allclose(s.GetSpacing(), SPACING, atol=1e-5)
    np.testing.assert_allclose(s.GetDirection(), DIRECTION_LPS, atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(s).transpose(2, 1, 0), data)
    # the same voxel lands at the same world point in both conventions
    lps = np.array(s.TransformIndexToPhysicalPoint((11, 9, 7)))
    np.testing.assert_allclose((AFFINE @ [11, 9, 7, 1])[:3], lps * [-1, -1, 1], atol=1e-4)


def assert_our_geometry(img: MedicalImage) -> None:
    np.testing.assert_allclose(img.get_property(P.AFFINE), AFFINE, atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.ORIGINAL_AFFINE), AFFINE, atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.SPACING), SPACING, atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.ORIGINAL_SPACING), SPACING, atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.ORIGIN), ORIGIN_LPS, atol=1e-5)
    np.testing.assert_allclose(img.get_property(P.DIRECTION), DIRECTION_LPS, atol=1e-5)
    assert img.get_property(P.ORIGINAL_SHAPE) == SHAPE


@pytest.mark.parametrize(
    "name, fmt",
    [("v.nii", "nifti"), ("v.nii.gz", "nifti"), ("v.mha", "metaimage"), ("v.mhd", "metaimage"),
     ("v.nrrd", "nrrd"), ("v.nhdr", "nrrd")],
)
def test_geometry_round_trip(tmp_path, volume, name, fmt):
    path = write_image(volume, str(tmp_path / name))
    assert path == str(tmp_path / name) and os.path.isfile(path)
    assert_sitk_geometry(path, volume.get_data())
    back = read_image(path)
    assert back.get_shape_format().value == "DHW"
    assert back.get_data().dtype == np.int16
    np.testing.assert_array_equal(back.get_data(), volume.get_data())
    assert_our_geometry(back)
    assert back.get_property(P.FILE_FORMAT) == fmt
    assert back.get_property(P.FILENAME) == path
    assert back.get_property(P.DTYPE) == "int16"
    if fmt == "nifti":
        nimg = nib.load(path)
        np.testing.assert_allclose(nimg.affine, AFFINE, atol=1e-5)
        assert int(nimg.header["qform_code"]) > 0 and int(nimg.header["sform_code"]) > 0
        np.testing.assert_array_equal(np.asanyarray(nimg.dataobj), volume.get_data())
    # write what we read: the geometry stays
    again = write_image(back, str(tmp_path / ("again_" + name)))
    assert_sitk_geometry(again, volume.get_data())
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith(".tmp")) == []


def test_detached_header_names_final_data_file(tmp_path, volume):
    write_image(volume, str(tmp_path / "vol.mhd"))
    assert sorted(os.listdir(tmp_path)) == ["vol.mhd", "vol.raw"]
    header = (tmp_path / "vol.mhd").read_text()
    assert "ElementDataFile = vol.raw" in header
    write_image(volume, str(tmp_path / "n.nhdr"))
    assert "n.raw" in (tmp_path / "n.nhdr").read_text()


def test_npy_keeps_data_and_gets_identity_geometry(tmp_path, volume):
    path = write_image(volume, str(tmp_path / "v.npy"))
    np.testing.assert_array_equal(np.load(path), volume.get_data())
    back = read_image(path)
    np.testing.assert_array_equal(back.get_data(), volume.get_data())
    assert back.get_property(P.FILE_FORMAT) == "numpy"
    np.testing.assert_array_equal(back.get_property(P.AFFINE), np.eye(4))
    assert back.get_property(P.SPACING) == (1.0, 1.0, 1.0)


def test_png_grey_rgb_and_16bit(tmp_path):
    grey = np.random.default_rng(2).integers(0, 256, (9, 13)).astype(np.uint8)
    back = read_image(write_image(grey, str(tmp_path / "g.png")))
    assert back.get_shape_format().value == "HW" and back.shape == (9, 13)
    np.testing.assert_array_equal(back.get_data(), grey)
    assert back.get_property(P.FILE_FORMAT) == "png"
    assert back.get_property(P.SPACING) == (1.0, 1.0)
    from PIL import Image

    with Image.open(tmp_path / "g.png") as im:  # rows stay rows: Pillow's own view
        assert im.size == (13, 9) and im.getpixel((12, 8)) == grey[8, 12]

    rgb = np.random.default_rng(3).integers(0, 256, (3, 9, 13)).astype(np.uint8)
    back = read_image(write_image(MedicalImage(rgb, "CHW"), str(tmp_path / "c.png")))
    assert back.get_shape_format().value == "CHW"
    np.testing.assert_array_equal(back.get_data(), rgb)

    deep = (np.arange(9 * 13).reshape(9, 13) * 500).astype(np.uint16)
    back = read_image(write_image(deep, str(tmp_path / "d.png")))
    np.testing.assert_array_equal(back.get_data(), deep)


def test_jpeg_is_close(tmp_path):
    yy, xx = np.mgrid[0:32, 0:40]
    smooth = (100 + 50 * np.sin(xx / 7.0) + 30 * np.cos(yy / 5.0)).astype(np.uint8)
    back = read_image(write_image(smooth, str(tmp_path / "s.jpg")))
    assert back.shape == (32, 40) and back.get_property(P.FILE_FORMAT) == "jpeg"
    assert np.abs(back.get_data().astype(int) - smooth).mean() < 2.0
    back = read_image(write_image(smooth, str(tmp_path / "s.jpeg")))
    assert back.shape == (32, 40)


def test_png_refuses_values_it_cannot_hold(tmp_path):
    with pytest.raises(ImageWriteError, match=r"f\.png.*0\.\.255"):
        write_image(np.full((4, 4), 0.5, np.float32), str(tmp_path / "f.png"))
    assert not os.path.exists(tmp_path / "f.png")


def test_multichannel_nifti_and_metaimage(tmp_path, volume):
    data = np.stack([volume.get_data(), volume.get_data() // 2])
    img = MedicalImage(data, "CDHW", {P.AFFINE: AFFINE})
    p = write_image(img, str(tmp_path / "mc.nii.gz"))
    assert nib.load(p).shape == (*SHAPE, 2)  # channels last on disk
    back = read_image(p)
    assert back.get_shape_format().value == "CDHW"
    np.testing.assert_array_equal(back.get_data(), data)
    assert_our_geometry(back)
    p = write_image(img, str(tmp_path / "mc.mha"))
    assert sitk.ReadImage(p).GetNumberOfComponentsPerPixel() == 2
    back = read_image(p)
    np.testing.assert_array_equal(back.get_data(), data)
    assert_our_geometry(back)


def test_list_of_files_stacks_channels(tmp_path, volume):
    a = write_image(volume, str(tmp_path / "t1.nii.gz"))
    b = write_image(volume.new_image(volume.get_data() + 1), str(tmp_path / "t2.mha"))
    img = read_image([a, b])
    assert img.get_shape_format().value == "CDHW" and img.shape == (2, *SHAPE)
    np.testing.assert_array_equal(img.get_data()[1], volume.get_data() + 1)
    assert img.get_property(P.FILENAME) == a
    assert_our_geometry(img)
    other = write_image(np.zeros((3, 3, 3), np.int16), str(tmp_path / "small.nii"))
    with pytest.raises(ImageReadError, match="small.nii.*differs"):
        read_image([a, other])


def test_dtype_cast_and_bare_array_write(tmp_path):
    arr = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    p = write_image(arr, str(tmp_path / "i.nii.gz"))
    assert nib.load(p).get_data_dtype() == np.int32  # 64-bit ints that fit go to int32
    img = read_image(p, dtype="float32")
    assert img.get_data().dtype == np.float32 and img.get_property(P.DTYPE) == "int32"
    np.testing.assert_array_equal(img.get_data(), arr)
    np.testing.assert_array_equal(img.get_property(P.AFFINE), np.eye(4))
    p = write_image(arr, str(tmp_path / "u.nrrd"), dtype="uint8", affine=np.diag([2.0, 3.0, 4.0, 1.0]))
    s = sitk.ReadImage(p)
    assert s.GetPixelID() == sitk.sitkUInt8 and s.GetSpacing() == (2.0, 3.0, 4.0)
    p = write_image(np.ones((3, 3, 3), bool), str(tmp_path / "b.nii"))
    assert read_image(p).get_data().dtype == np.uint8


def test_as_closest_canonical_matches_nibabel(tmp_path, volume):
    p = write_image(volume, str(tmp_path / "v.nii.gz"))
    ours = read_image(p, as_closest_canonical=True)
    theirs = nib.as_closest_canonical(nib.load(p))
    np.testing.assert_allclose(ours.get_property(P.AFFINE), theirs.affine, atol=1e-6)
    np.testing.assert_array_equal(ours.get_data(), np.asanyarray(theirs.dataobj))
    assert ours.get_property(P.AS_CANONICAL) is True
    np.testing.assert_allclose(ours.get_property(P.ORIGINAL_AFFINE), AFFINE, atol=1e-5)
    assert nib.aff2axcodes(ours.get_property(P.AFFINE)) == ("R", "A", "S")
    # the canonical image written to MetaImage still lands on the same world points
    q = write_image(ours, str(tmp_path / "c.mha"))
    s = sitk.ReadImage(q)
    idx = (1, 2, 3)
    world = (ours.get_property(P.AFFINE) @ [*idx, 1])[:3]
    np.testing.assert_allclose(np.array(s.TransformIndexToPhysicalPoint(idx)) * [-1, -1, 1], world, atol=1e-4)
    assert s.GetPixel(*idx) == ours.get_data()[idx]


def test_read_errors_name_the_file(tmp_path):
    missing = str(tmp_path / "nothere.nii.gz")
    with pytest.raises(ImageReadError, match=r"nothere\.nii\.gz: file not found"):
        read_image(missing)
    odd = tmp_path / "scan.xyz"
    odd.write_bytes(b"data")
    with pytest.raises(ImageReadError, match=r"scan\.xyz: unknown image file type '\.xyz'"):
        read_image(str(odd))
    for name in ("broken.nii.gz", "broken.nii", "broken.mha", "broken.nrrd", "broken.png", "broken.npy"):
        bad = tmp_path / name
        bad.write_bytes(b"this is not an image file at all" * 3)
        with pytest.raises(ImageReadError) as info:
            read_image(str(bad))
        msg = str(info.value)
        assert str(bad) in msg and "cannot read" in msg and "\n" not in msg, msg
        assert isinstance(info.value, UserError)


def test_truncated_nifti_is_reported(tmp_path, volume):
    good = write_image(volume, str(tmp_path / "v.nii.gz"))
    raw = open(good, "rb").read()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.nii\.gz: cannot read nifti"):
        read_image(str(cut))


def test_write_errors_name_the_file(tmp_path, volume):
    with pytest.raises(ImageWriteError, match=r"out\.tif: unknown image file type"):
        write_image(volume, str(tmp_path / "out.tif"))
    with pytest.raises(ImageWriteError, match=r"b\.mha.*batched"):
        write_image(MedicalImage(np.zeros((2, 3, 3, 3)), "NDHW"), str(tmp_path / "b.mha"))
    assert os.listdir(tmp_path) == []
