"""The deploy app on DICOM folders holding several series (a whole study exported to one folder):
one output per readable series, named `<folder>_<k>` as the data converter names them, with the
series' geometry and the same mask as a run on that series alone; series that are not a volume
ignored with the reason; `--series_filter` / AI4MED_DEPLOY_SERIES_FILTER; the publish folder;
the log and summary naming each series."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from deploy_fixtures import dice, make_app, make_exports, sphere_image, write_dicom_series

from ai4med.deploy.__main__ import main
from ai4med.deploy.app import EXIT_FATAL, EXIT_OK, discover_inputs, split_series
from ai4med.deploy.settings import compile_series_filter

UID = "1.2.826.0.1.3680043.2.1125.7."
#: SeriesNumber order: axial CT (#2) -> study_1, MR (#5) -> study_2, CT with a missing slice (#7) -> study_3
SERIES = {
    "ct": dict(series_uid=UID + "2", series_number=2, description="Abdomen axial", modality="CT", prefix="ct_"),
    "mr": dict(series_uid=UID + "5", series_number=5, description="T1 tra", modality="MR", prefix="mr_"),
    "gap": dict(series_uid=UID + "7", series_number=7, description="Abdomen delayed", modality="CT", prefix="gap_"),
}


def _write(kind: str, folder: str) -> np.ndarray:
    """Series `kind` into `folder`; its mask (x, y, z)."""
    if kind == "ct":
        img, mask = sphere_image((24, 24, 12), (0.9, 0.9, 2.0), (-10.0, -12.0, -50.0), 7.0, (1, 0, 0))
    elif kind == "mr":
        img, mask = sphere_image((20, 28, 8), (1.1, 0.8, 2.5), (5.0, -12.0, -30.0), 6.5)
    else:
        img, mask = sphere_image((16, 16, 6), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), 5.0)
    write_dicom_series(img, folder, **SERIES[kind])
    if kind == "gap":
        os.remove(os.path.join(folder, "gap_003.dcm"))  # a missing middle slice: a 4 mm gap
    return mask


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("series")
    exports = make_exports(str(root / "export"))
    app = make_app(str(root / "app"), exports)
    masks = {}
    for kind in ("ct", "mr", "gap"):
        masks[kind] = _write(kind, str(root / "study_in" / "study"))
    for kind in ("ct", "mr"):  # the same series, each alone in its folder
        _write(kind, str(root / "single_in" / f"{kind}_only"))
    return {"root": root, "app": app, "model": os.path.join(app, "models", "model.onnx"), "masks": masks}


def _run(env: dict, tmp, inputs, *extra: str) -> tuple[int, dict]:
    folders = {k: str(tmp / k) for k in ("output", "publish", "logs")}
    rc = main(["--app", env["app"], "--model", env["model"], "--input", str(inputs), "--output", folders["output"],
               "--publish", folders["publish"], "--logs", folders["logs"], "--no_progress", *extra])
    return rc, folders


def _series_itk(folder: str, uid: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, uid))
    return reader.Execute()


def _labels(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path)).transpose(2, 1, 0)


def _same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-5)


@pytest.fixture(scope="module")
def single(env, tmp_path_factory) -> dict:
    """The run on the single-series folders: today's names, `<folder>.mhd`."""
    rc, out = _run(env, tmp_path_factory.mktemp("single"), env["root"] / "single_in")
    assert rc == EXIT_OK
    assert sorted(os.listdir(out["output"])) == ["ct_only.mhd", "ct_only.raw", "mr_only.mhd", "mr_only.raw"]
    return out


def test_study_folder_gives_one_output_per_series(env, single, tmp_path, capsys, monkeypatch) -> None:
    import tempfile

    os.makedirs(tmp_path / "tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the series' files are staged
    study = str(env["root"] / "study_in" / "study")
    assert discover_inputs(str(env["root"] / "study_in")) == ([study], [])
    rc, out = _run(env, tmp_path, env["root"] / "study_in")
    assert rc == EXIT_OK  # the broken series is ignored (with its reason), the others are written
    assert sorted(os.listdir(out["output"])) == ["study_1.mhd", "study_1.raw", "study_2.mhd", "study_2.raw"]
    for name, kind in (("study_1", "ct"), ("study_2", "mr")):
        seg_path = os.path.join(out["output"], name + ".mhd")
        seg, src = sitk.ReadImage(seg_path), _series_itk(study, SERIES[kind]["series_uid"])
        _same_geometry(seg, src)
        labels = _labels(seg_path)
        # the same mask as the run on the series alone, and the ball it shows
        np.testing.assert_array_equal(labels, _labels(os.path.join(single["output"], f"{kind}_only.mhd")))
        assert dice(labels, env["masks"][kind]) > 0.9, name
        # publish: several inputs -> one folder each, named as the output; the series as read
        pub = os.path.join(out["publish"], name)
        assert sorted(os.listdir(pub)) == ["config_render.json", "image.mhd", "image.raw", "image.seg.mhd",
                                           "image.seg.raw"]
        image = sitk.ReadImage(os.path.join(pub, "image.mhd"))
        _same_geometry(image, src)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(src))
        np.testing.assert_array_equal(_labels(os.path.join(pub, "image.seg.mhd")), labels)
    assert sorted(os.listdir(out["publish"])) == ["study_1", "study_2"]
    assert os.listdir(tmp_path / "tmp") == []  # the staging folder is gone
    printed = capsys.readouterr().out
    log = open(os.path.join(out["logs"], "deploy.log")).read()
    for text in (printed, log):
        assert "deploy summary: 2 of 2 input(s) segmented" in text
        assert f"study_1 <- {study}: DICOM series #2 'Abdomen axial' (CT, 12 slice(s) of 24x24" in text
        assert f"study_2 <- {study}: DICOM series #5 'T1 tra' (MR, 8 slice(s) of 20x28" in text
        # the broken series: named, with the reason from the DICOM checks
        assert re.search(r"study_3 <- .*#7 'Abdomen delayed' \(CT, 5 slice\(s\) of 16x16.*: ignored: not one "
                         r"volume: .*slice spacing is not uniform.*gap of 4\.000 mm", text)
    assert re.search(rf"ignored {re.escape(study)} \[study_3\]: .*gap of 4\.000 mm", log)
    assert re.search(r"study_1: pre [\d.]+s infer", log) and re.search(r"study_2: pre [\d.]+s infer", log)


def test_series_filter_flag_and_environment(env, tmp_path, monkeypatch, capsys) -> None:
    rc, out = _run(env, tmp_path / "flag", env["root"] / "study_in", "--series_filter", "mr")  # Modality, any case
    assert rc == EXIT_OK
    assert sorted(os.listdir(out["output"])) == ["study_2.mhd", "study_2.raw"]  # the name does not depend on it
    # one input: the publish folder is flat, as for any single input
    assert sorted(os.listdir(out["publish"])) == ["config_render.json", "image.mhd", "image.raw", "image.seg.mhd",
                                                  "image.seg.raw"]
    log = open(os.path.join(out["logs"], "deploy.log")).read()
    assert re.search(r"ignored .*\[study_1\]: .*'Abdomen axial'.* does not match the series filter 'mr'", log)
    capsys.readouterr()
    monkeypatch.setenv("AI4MED_DEPLOY_SERIES_FILTER", "^abdomen")  # SeriesDescription; the gap series matches too
    rc, out = _run(env, tmp_path / "env", env["root"] / "study_in")
    assert rc == EXIT_OK
    assert sorted(os.listdir(out["output"])) == ["study_1.mhd", "study_1.raw"]
    assert "study_3 <- " in capsys.readouterr().out
    # a single-series folder is filtered too; volumes are not
    rc, out = _run(env, tmp_path / "single", env["root"] / "single_in", "--series_filter", "CT")
    assert rc == EXIT_OK and sorted(os.listdir(out["output"])) == ["ct_only.mhd", "ct_only.raw"]


def test_series_filter_errors(env, tmp_path, capsys) -> None:
    rc, _ = _run(env, tmp_path / "bad", env["root"] / "study_in", "--series_filter", "CT(")
    assert rc == EXIT_FATAL
    err = capsys.readouterr().err
    assert err.startswith("error: series filter 'CT(' (flag --series_filter) is not a valid regular expression")
    rc, out = _run(env, tmp_path / "none", env["root"] / "study_in", "--series_filter", "PET")
    assert rc == EXIT_FATAL
    assert "the series filter 'PET' matched no DICOM series" in capsys.readouterr().err
    with pytest.raises(ValueError, match="AI4MED_DEPLOY_SERIES_FILTER"):
        compile_series_filter("[", "AI4MED_DEPLOY_SERIES_FILTER")
    # a study none of whose series is a volume: the folder fails, with the reasons
    _localizer(str(tmp_path / "in" / "scout"))
    _write("gap", str(tmp_path / "in" / "scout"))
    rc, out = _run(env, tmp_path / "broken", tmp_path / "in")
    assert rc == EXIT_FATAL
    err = capsys.readouterr().err
    assert err.startswith("error: no input could be segmented: scout: none of the 2 DICOM series of")
    assert "a localizer?" in err and "gap of 4.000 mm" in err
    assert "scout_1 <- " in open(os.path.join(out["logs"], "deploy.log")).read()


def _localizer(folder: str) -> None:
    """A tri-plane localizer: one axial, one sagittal, one coronal slice in one series."""
    for k, direction in enumerate([(1, 0, 0, 0, 1, 0, 0, 0, 1), (0, 0, 1, 1, 0, 0, 0, 1, 0),
                                   (1, 0, 0, 0, 0, 1, 0, 1, 0)]):
        img, _ = sphere_image((12, 12, 1), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), 4.0)
        img.SetDirection([float(v) for v in direction])
        write_dicom_series(img, folder, series_uid=UID + "1", series_number=1, description="Localizer",
                           prefix=f"loc{k}_")


def test_split_series_names_and_broken_series(env, tmp_path) -> None:
    study = str(tmp_path / "scan")
    shutil.copytree(env["root"] / "study_in" / "study", study)
    _localizer(study)
    plan = split_series([study])
    assert [(c.name, c.series.series_number) for c in plan.cases] == [("scan_2", 2), ("scan_3", 5)]
    assert all(c.split and c.path == study for c in plan.cases)
    assert sorted(plan.skipped) == ["scan_1", "scan_4"]
    assert "mixes 3 slice orientations (a localizer?)" in plan.skipped["scan_1"]
    assert "gap of 4.000 mm" in plan.skipped["scan_4"]
    assert [w for w, _ in plan.ignored] == [f"{study} [scan_1]", f"{study} [scan_4]"]
    assert plan.failed == {}
    # the filter keeps the numbering
    plan = split_series([study], compile_series_filter("t1"))
    assert [c.name for c in plan.cases] == ["scan_3"] and len(plan.ignored) == 3
    # no series of the folder can run: the folder fails, with every reason
    broken = str(tmp_path / "broken")
    _localizer(broken)
    _write("gap", broken)
    plan = split_series([broken])
    assert plan.cases == [] and list(plan.failed) == ["broken"]
    assert "none of the 2 DICOM series" in plan.failed["broken"]
    assert "a localizer?" in plan.failed["broken"] and "gap of 4.000 mm" in plan.failed["broken"]
    # a single-series folder keeps its name, and is not checked here (it fails when read, as before)
    single = str(env["root"] / "single_in" / "ct_only")
    assert [(c.name, c.split) for c in split_series([single]).cases] == [("ct_only", False)]
