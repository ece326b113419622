"""ai4med dataconvert / tlt-dataconvert: DICOM and file inputs, resampling vs a SimpleITK reference, failures."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pydicom.data
import pytest
import SimpleITK as sitk

from ai4med.apps.dataconvert import convert
from ai4med.cli import main

TESTS = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "dicomdirtests")
CT5N = os.path.join(TESTS, "98892001", "CT5N")
DIRECTION = tuple(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).ravel())  # a permuted (non-RAS) grid


def _ct5n_reference() -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(CT5N))
    return reader.Execute()


def _reference_resample(img: sitk.Image, spacing, label: bool) -> sitk.Image:
    """What the converter must produce, written out independently with SimpleITK."""
    sp = [float(spacing[0])] * 3 if len(spacing) == 1 else [float(s) for s in spacing]
    size = [max(1, math.floor(n * s / t + 0.5)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), sp)]
    rs = sitk.ResampleImageFilter()
    rs.SetSize(size)
    rs.SetOutputOrigin(img.GetOrigin())
    rs.SetOutputSpacing(sp)
    rs.SetOutputDirection(img.GetDirection())
    rs.SetInterpolator(sitk.sitkNearestNeighbor if label else sitk.sitkLinear)
    rs.SetOutputPixelType(img.GetPixelID())
    rs.SetDefaultPixelValue(0)
    rs.SetUseNearestNeighborExtrapolator(True)
    return rs.Execute(img)


def _assert_same(out: sitk.Image, ref: sitk.Image, tol: float = 1e-4) -> None:
    assert out.GetSize() == ref.GetSize()
    np.testing.assert_allclose(out.GetOrigin(), ref.GetOrigin(), atol=tol)
    np.testing.assert_allclose(out.GetSpacing(), ref.GetSpacing(), atol=tol)
    np.testing.assert_allclose(out.GetDirection(), ref.GetDirection(), atol=tol)
    assert out.GetPixelID() == ref.GetPixelID()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(ref))


@pytest.fixture()
def dicom_dir(tmp_path):
    root = tmp_path / "dicom"
    shutil.copytree(CT5N, root / "CT5N")
    return root


def _write(path, arr, spacing=(0.8, 1.1, 2.7), origin=(-12.0, 30.5, 7.25)) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(DIRECTION)
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    sitk.WriteImage(img, str(path))
    return sitk.ReadImage(str(path))


def _label_volume(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lab = np.zeros((9, 14, 11), np.uint8)
    lab[2:6, 3:10, 2:8] = 1
    lab[4:8, 6:12, 5:10] = 3
    lab[rng.random(lab.shape) < 0.02] = 7
    return lab


# --- DICOM ----------------------------------------------------------------------------------
def test_dicom_to_nifti_round_trip_keeps_pixels_and_geometry(dicom_dir, tmp_path):
    out = tmp_path / "out"
    summary = convert(str(dicom_dir), str(out), ".dcm", ".nii.gz")
    assert summary.exit_code == 0 and [r.name for r in summary.converted] == ["CT5N"]
    assert os.listdir(out) == ["CT5N.nii.gz"]
    _assert_same(sitk.ReadImage(str(out / "CT5N.nii.gz")), _ct5n_reference())


@pytest.mark.parametrize("ext", [".nii.gz", ".mha", ".mhd"])
@pytest.mark.parametrize("res", [[1.0], [0.7, 0.3, 1.1]])
def test_dicom_resampled_matches_simpleitk_reference(dicom_dir, tmp_path, ext, res):
    out = tmp_path / "out"
    summary = convert(str(dicom_dir), str(out), "dcm", ext, resolution=res)
    assert summary.exit_code == 0, summary.format()
    result = sitk.ReadImage(str(out / f"CT5N{ext}"))
    _assert_same(result, _reference_resample(_ct5n_reference(), res, label=False))
    if ext == ".mhd":  # the header names the final data file; no temporary left behind
        assert sorted(os.listdir(out)) == ["CT5N.mhd", "CT5N.raw"]
        assert "ElementDataFile = CT5N.raw" in (out / "CT5N.mhd").read_text()


def test_real_problem_series_fail_and_good_ones_convert(tmp_path):
    src = tmp_path / "in"
    for rel in ("98892001/CT5N", "77654033/CT2", "98892003/MR2", "98892003/MR700"):
        shutil.copytree(os.path.join(TESTS, rel), src / os.path.basename(rel))
    summary = convert(str(src), str(tmp_path / "out"), ".dcm", ".nii")
    assert summary.exit_code == 1
    assert sorted(r.name for r in summary.converted) == ["CT5N", "MR2 [series 1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.481]"]
    failed = {r.name.split(" ")[0]: r.message for r in summary.failed}
    assert "gap of 202.500 mm" in failed["CT2"]
    assert "mixes 3 slice orientations" in failed["MR2"]
    assert "non-parallel" in failed["MR700"] and "4528" in failed["MR700"]
    assert sorted(os.listdir(tmp_path / "out")) == ["CT5N.nii", "MR2_1.nii"]


# --- files and labels ----------------------------------------------------------------------
def test_label_mode_keeps_label_set_and_dtype(tmp_path):
    ref_in = _write(tmp_path / "labels" / "case1.nii.gz", _label_volume())
    summary = convert(str(tmp_path / "labels"), str(tmp_path / "out"), ".nii.gz", ".nii.gz", resolution=[0.6], label=True)
    assert summary.exit_code == 0
    result = sitk.ReadImage(str(tmp_path / "out" / "case1.nii.gz"))
    assert result.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(result))) == {0, 1, 3, 7}
    _assert_same(result, _reference_resample(ref_in, [0.6], label=True))


def test_intensity_file_resampled_linear_keeps_float_type(tmp_path):
    arr = np.random.default_rng(1).normal(size=(6, 7, 8)).astype(np.float32)
    ref_in = _write(tmp_path / "img" / "a.mha", arr)
    summary = convert(str(tmp_path / "img"), str(tmp_path / "out"), ".mha", ".nii", resolution=[1.5, 0.9, 2.0])
    assert summary.exit_code == 0
    out = sitk.ReadImage(str(tmp_path / "out" / "a.nii"))
    ref = _reference_resample(ref_in, [1.5, 0.9, 2.0], label=False)
    assert out.GetPixelID() == sitk.sitkFloat32 and out.GetSize() == ref.GetSize()
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(ref), atol=1e-6)


def test_existing_output_is_an_error_unless_force(tmp_path, capsys):
    _write(tmp_path / "in" / "a.nii.gz", _label_volume())
    args = ["dataconvert", "-d", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-s", ".nii.gz", "-e", ".mha"]
    assert main(args) == 0
    target = tmp_path / "out" / "a.mha"
    before = target.read_bytes()
    capsys.readouterr()
    assert main(args + ["-r", "2"]) == 1
    text = capsys.readouterr().out
    assert "0 converted" in text and "1 failed" in text and f"output exists: {target}" in text
    assert target.read_bytes() == before
    assert main(args + ["-r", "2", "-f"]) == 0
    assert sitk.ReadImage(str(target)).GetSpacing() == (2.0, 2.0, 2.0)


def test_corrupt_input_among_good_ones(tmp_path, capsys):
    for i in range(3):
        _write(tmp_path / "in" / f"good{i}.nii.gz", _label_volume(i))
    (tmp_path / "in" / "bad.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "in" / "._good0.nii.gz").write_bytes(b"resource fork")  # hidden: ignored
    code = main(["tlt-dataconvert", "-d", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "-s", ".nii.gz", "-e", ".nii.gz", "-r", "1", "-l"])
    assert code == 1
    text = capsys.readouterr().out
    assert "3 converted, 0 skipped, 1 failed" in text and "bad.nii.gz:" in text
    assert sorted(os.listdir(tmp_path / "out")) == ["good0.nii.gz", "good1.nii.gz", "good2.nii.gz"]


def test_parallel_workers_give_the_same_outputs(tmp_path):
    for i in range(3):
        _write(tmp_path / "in" / "sub" / f"c{i}.nii", _label_volume(i))
    serial = convert(str(tmp_path / "in"), str(tmp_path / "o1"), ".nii", ".nii.gz", resolution=[0.9], jobs=1)
    parallel = convert(str(tmp_path / "in"), str(tmp_path / "o2"), ".nii", ".nii.gz", resolution=[0.9], jobs=2)
    assert serial.exit_code == parallel.exit_code == 0 and len(parallel.converted) == 3
    for i in range(3):
        a = sitk.ReadImage(str(tmp_path / "o1" / "sub" / f"c{i}.nii.gz"))
        b = sitk.ReadImage(str(tmp_path / "o2" / "sub" / f"c{i}.nii.gz"))
        _assert_same(a, b, tol=0)


def test_datalist_pairs_images_and_labels(tmp_path):
    for i in range(2):
        _write(tmp_path / "img" / f"case{i}.nii.gz", _label_volume(i).astype(np.float32))
        _write(tmp_path / "lab" / f"case{i}.nii.gz", _label_volume(i))
    dl = tmp_path / "out" / "datalist.json"
    convert(str(tmp_path / "img"), str(tmp_path / "out" / "images"), ".nii.gz", ".nii.gz", datalist=str(dl))
    convert(str(tmp_path / "lab"), str(tmp_path / "out" / "labels"), ".nii.gz", ".nii.gz", label=True,
            datalist=str(dl))
    assert json.loads(dl.read_text()) == {"training": [
        {"image": "images/case0.nii.gz", "label": "labels/case0.nii.gz"},
        {"image": "images/case1.nii.gz", "label": "labels/case1.nii.gz"},
    ]}


def test_output_inside_input_is_not_searched(tmp_path):
    _write(tmp_path / "in" / "a.nii.gz", _label_volume())
    convert(str(tmp_path / "in"), str(tmp_path / "in" / "res"), ".nii.gz", ".nii.gz", resolution=[1])
    summary = convert(str(tmp_path / "in"), str(tmp_path / "in" / "res"), ".nii.gz", ".nii.gz", resolution=[1],
                      force=True)
    assert [r.name for r in summary.results] == ["a.nii.gz"]


# --- argument errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, message",
    [
        (["-s", ".nii.gz", "-e", ".png"], "unsupported destination (-e) extension '.png'"),
        (["-s", ".jpg", "-e", ".nii"], "unsupported source (-s) extension '.jpg'"),
        (["-s", ".nii", "-e", ".nii", "-r", "1", "2"], "-r takes one value (isotropic) or three"),
        (["-s", ".mha", "-e", ".nii"], "no files ending in .mha found in"),
        (["-s", ".dcm", "-e", ".nii"], "no DICOM series (folders of DICOM image files) found in"),
    ],
)
def test_argument_errors(tmp_path, capsys, extra, message):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("x")
    assert main(["dataconvert", "-d", str(tmp_path / "in"), "-o", str(tmp_path / "out")] + extra) == 1
    assert message in capsys.readouterr().err


def test_missing_input_folder(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["tlt-dataconvert", "-d", str(missing), "-o", str(tmp_path / "o"), "-s", ".dcm", "-e", ".nii"]) == 1
    assert f"input folder {missing} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("ext", [".nii.gz", ".mhd"])
def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch, ext):
    _write(tmp_path / "in" / "a.nii.gz", _label_volume())
    real_write = sitk.WriteImage

    def write_then_die(img, path, *args, **kwargs):  # a crash after the bytes hit the disk
        real_write(img, path, *args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", write_then_die)
    summary = convert(str(tmp_path / "in"), str(tmp_path / "out"), ".nii.gz", ext)
    assert summary.exit_code == 1 and "disk full" in summary.failed[0].message
    assert os.listdir(tmp_path / "out") == []  # neither the output nor a temporary


def test_image_io_reads_a_dicom_folder():
    from ai4med.io.image_io import read_image

    img = read_image(CT5N)
    np.testing.assert_array_equal(img.get_data(), sitk.GetArrayFromImage(_ct5n_reference()).transpose(2, 1, 0))


# --- a full disk, stale temporaries (issue 17 items 3, 4) ------------------------------------
def _noise_inputs(folder, n: int = 4, shape=(90, 60, 60)) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):  # float32 noise: 1296000 data bytes each, barely compressible
        _write(folder / f"case_{i:03d}.nii.gz", rng.random(shape, dtype=np.float32), spacing=(1.0, 1.0, 1.0))


def _complete(path: str) -> bool:
    try:
        img = sitk.ReadImage(path)
        sitk.GetArrayFromImage(img)
    except RuntimeError:
        return False
    return img.GetSize() == (60, 60, 90)


@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".mha", ".mhd"])
def test_full_disk_fails_the_inputs_and_leaves_no_short_file(tmp_path, small_tmpfs, ext):
    import subprocess
    import sys

    _noise_inputs(tmp_path / "in")
    out = os.path.join(small_tmpfs("1m"), "out")  # room for none of the 1.3 MB outputs
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "ai4med", "dataconvert", "-d", str(tmp_path / "in"), "-o", out,
                        "-s", ".nii.gz", "-e", ext], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "0 converted" in r.stdout and "4 failed" in r.stdout, r.stdout
    for i in range(4):  # each input is reported failed with the writer's reason
        line = next(x for x in r.stdout.splitlines() if x.strip().startswith(f"case_{i:03d}"))
        assert any(w in line for w in ("disk full", "No space left", "cannot be written")), line
    left = os.listdir(out)
    assert left == [], left  # no short file under a final name, no temporary


def test_partly_full_disk_keeps_only_complete_outputs(tmp_path, small_tmpfs):
    _noise_inputs(tmp_path / "in")
    out = os.path.join(small_tmpfs("3m"), "out")  # room for two .nii outputs of 1.3 MB, not four
    summary = convert(str(tmp_path / "in"), out, ".nii.gz", ".nii")
    assert summary.exit_code == 1 and len(summary.converted) == 2 and len(summary.failed) == 2, summary.format()
    names = sorted(os.listdir(out))
    assert names == sorted(os.path.basename(r.output) for r in summary.converted)
    assert all(_complete(os.path.join(out, n)) for n in names)


def test_stale_temporaries_of_a_killed_run_are_removed_at_the_next_start(tmp_path):
    import time

    _write(tmp_path / "in" / "a.nii.gz", _label_volume())
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    old = time.time() - 3600
    stale = [out / ".tmp-1a2b3c4d-case_000.nii", out / ".tmp-0badcafe.999999999-model.pt",
             out / "sub" / ".tmp-deadbeef-x.nii.gz"]
    stale_dir = out / ".tmp-abcdef01-a.mhd.d"
    kept = [out / ".tmp-notours", out / "notes.tmp-1a2b3c4d-x", out / ".tmp-12345678-fresh.nii"]
    live = out / f".tmp-feedf00d.{os.getppid()}-busy.nii"  # an older file of a live writer (another process)
    for p in stale + kept + [live]:
        p.write_bytes(b"x" * 100)
    stale_dir.mkdir()
    (stale_dir / "a.raw").write_bytes(b"y")
    for p in stale + [stale_dir, live] + kept[:2]:
        os.utime(p, (old, old))
    future = time.time() + 3600  # written after this run started (a concurrent run's)
    os.utime(kept[2], (future, future))
    summary = convert(str(tmp_path / "in"), str(out), ".nii.gz", ".nii")
    assert summary.exit_code == 0
    assert not any(p.exists() for p in stale + [stale_dir])
    assert all(p.exists() for p in kept + [live])
    assert (out / "a.nii").exists()
