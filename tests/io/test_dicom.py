"""DICOM series reading on pydicom's real test series (CT5N, CT2, MR2, MR700) and small variants of them."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pydicom
import pydicom.data
import pytest
import SimpleITK as sitk

from ai4med.common.constants import ImageProperty
from ai4med.errors import UserError
from ai4med.io.dicom import DicomSeriesError, list_series, read_dicom_series, read_dicom_series_sitk
from ai4med.io.geometry import affine_from_itk

TESTS = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "dicomdirtests")
CT5N = os.path.join(TESTS, "98892001", "CT5N")
CT2 = os.path.join(TESTS, "77654033", "CT2")
MR2 = os.path.join(TESTS, "98892003", "MR2")
MR700 = os.path.join(TESTS, "98892003", "MR700")


def _sitk_reference(folder: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return reader.Execute()


def _assert_same_geometry(img: sitk.Image, ref: sitk.Image, tol: float = 1e-4) -> None:
    assert img.GetSize() == ref.GetSize()
    np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin(), atol=tol)
    np.testing.assert_allclose(img.GetSpacing(), ref.GetSpacing(), atol=tol)
    np.testing.assert_allclose(img.GetDirection(), ref.GetDirection(), atol=tol)


def test_ct5n_matches_simpleitk_series_reader():
    img = read_dicom_series_sitk(CT5N)
    ref = _sitk_reference(CT5N)
    _assert_same_geometry(img, ref)
    assert img.GetPixelID() == ref.GetPixelID()  # int32: rescaled signed 16-bit, like GDCM
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref))


def test_ct5n_rescale_applied_and_sorted_along_normal():
    files = [os.path.join(CT5N, f) for f in os.listdir(CT5N)]
    random.Random(0).shuffle(files)
    img = read_dicom_series_sitk(files)  # a shuffled file list gives the same volume
    arr = sitk.GetArrayFromImage(img)  # (slices, rows, columns)
    by_z = sorted((float(pydicom.dcmread(f).ImagePositionPatient[2]), f) for f in files)
    for k, (_, f) in enumerate(by_z):
        ds = pydicom.dcmread(f)
        expected = ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        np.testing.assert_array_equal(arr[k], expected)
    assert arr.min() < 0  # Hounsfield units, not stored values
    assert img.GetOrigin()[2] == pytest.approx(by_z[0][0])


def test_read_dicom_series_medical_image():
    mi = read_dicom_series(CT5N)
    ref = _sitk_reference(CT5N)
    assert mi.shape == (16, 16, 5) and mi.get_shape_format().value == "DHW"
    np.testing.assert_array_equal(mi.get_data(), sitk.GetArrayFromImage(ref).transpose(2, 1, 0))
    np.testing.assert_allclose(mi.get_property(ImageProperty.AFFINE),
                               affine_from_itk(ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection()), atol=1e-4)
    meta = mi.get_property(ImageProperty.DICOM_META)
    assert meta["Modality"] == "CT" and meta["RescaleIntercept"] == -1024
    assert [os.path.basename(f) for f in meta["files"]] == ["3353", "3023", "2693", "2392", "2062"]
    assert mi.get_property(ImageProperty.FILE_FORMAT) == "dicom"


def test_ct2_gap_is_reported_not_stacked():
    (series,) = list_series(CT2)
    assert not series.ok
    text = series.problems[0]
    assert "gap of 202.500 mm" in text and "17106" in text and "17136" in text and CT2 in text
    with pytest.raises(DicomSeriesError, match=r"gap of 202\.500 mm between slice 0 at -99\.480 mm"):
        read_dicom_series_sitk(CT2)


def test_mr2_localizers_refused_with_orientations_and_folder():
    series = list_series(MR2)
    assert len(series) == 3
    mixed = [s for s in series if not s.ok]
    assert len(mixed) == 2
    for s in mixed:
        msg = s.problems[0]
        assert MR2 in msg and "mixes 3 slice orientations" in msg
        assert "[1, 0, 0, 0, 0, -1]" in msg and "[0, 1, 0, 0, 0, -1]" in msg and "[1, 0, 0, 0, 1, 0]" in msg
    # without a series_uid the folder is ambiguous: the message lists the series
    with pytest.raises(DicomSeriesError, match="holds 3 DICOM series") as exc:
        read_dicom_series(MR2)
    assert all(s.series_uid in str(exc.value) for s in series)
    with pytest.raises(DicomSeriesError, match="orientations"):
        read_dicom_series_sitk(MR2, series_uid=mixed[0].series_uid)
    # the single-slice localizer series of the folder is a valid (1-slice) volume
    (good,) = [s for s in series if s.ok]
    img = read_dicom_series_sitk(MR2, series_uid=good.series_uid)
    assert img.GetSize() == (16, 16, 1)
    np.testing.assert_allclose(img.GetSpacing(), (1.367188, 1.367188, 10.0), atol=1e-6)


def test_mr700_non_parallel_refused_naming_the_file():
    (series,) = list_series(MR700)
    with pytest.raises(DicomSeriesError, match=r"non-parallel slices .*file 4528") as exc:
        read_dicom_series_sitk(MR700)
    assert isinstance(exc.value, UserError) and MR700 in str(exc.value)


# --- variants written from CT5N -------------------------------------------------------------
def _copy_series(dst: str, edit=None, uid: str | None = None) -> list[str]:
    os.makedirs(dst, exist_ok=True)
    out = []
    for name in sorted(os.listdir(CT5N)):
        ds = pydicom.dcmread(os.path.join(CT5N, name))
        if uid:
            ds.SeriesInstanceUID = uid
        if edit:
            edit(ds)
        path = os.path.join(dst, name + ".dcm")
        ds.save_as(path)
        out.append(path)
    return out


def test_oblique_sagittal_series_matches_simpleitk(tmp_path):
    z = {}

    def sagittal(ds):  # row (0,1,0), column (0,0,-1): normal (-1,0,0); positions along it
        k = len(z)
        z[k] = k
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [10.0 - 2.5 * k, -20.0, 30.0]
        ds.RescaleSlope, ds.RescaleIntercept = 2, -10

    folder = str(tmp_path / "sag")
    _copy_series(folder, sagittal)
    img, ref = read_dicom_series_sitk(folder), _sitk_reference(folder)
    _assert_same_geometry(img, ref)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref))


def test_float_rescale_gives_float32(tmp_path):
    def edit(ds):
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -3.25

    folder = str(tmp_path / "f")
    files = _copy_series(folder, edit)
    arr = sitk.GetArrayFromImage(read_dicom_series_sitk(folder))
    assert arr.dtype == np.float32
    ds = pydicom.dcmread(files[-1])  # the lowest slice comes first
    np.testing.assert_allclose(arr[0], ds.pixel_array * 0.5 - 3.25)


def test_duplicate_positions_refused(tmp_path):
    folder = str(tmp_path / "dup")
    files = _copy_series(folder)
    ds = pydicom.dcmread(files[0])
    ds.ImagePositionPatient = pydicom.dcmread(files[1]).ImagePositionPatient
    ds.save_as(files[0])
    with pytest.raises(DicomSeriesError, match="share a position"):
        read_dicom_series_sitk(folder)


def test_folder_with_two_series_other_files_and_a_corrupt_dcm(tmp_path):
    folder = tmp_path / "mixed"
    _copy_series(str(folder / "a"))
    _copy_series(str(folder / "b"), uid="1.2.3.4.5")
    for sub in ("a", "b"):
        for f in os.listdir(folder / sub):
            shutil.move(str(folder / sub / f), str(folder / f"{sub}_{f}"))
    (folder / "README.txt").write_text("not dicom")
    series = list_series(str(folder))
    assert [s.num_slices for s in series] == [5, 5] and all(s.ok for s in series)
    img = read_dicom_series_sitk(str(folder), series_uid="1.2.3.4.5")
    assert img.GetSize() == (16, 16, 5)
    (folder / "broken.dcm").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(DicomSeriesError, match="unreadable DICOM file .*broken.dcm"):
        read_dicom_series_sitk(str(folder), series_uid="1.2.3.4.5")


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(DicomSeriesError, match="not found"):
        read_dicom_series(str(tmp_path / "nope"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DicomSeriesError, match="no DICOM image found"):
        read_dicom_series(str(tmp_path))
