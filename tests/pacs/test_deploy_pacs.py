"""The deploy app against Orthanc: the study in by DICOMweb or DIMSE, the app's SEG back, checked voxel by voxel
against the app's own MetaImage output of the same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import requests
from orthanc_util import free_port
from pacs_series import write_series, write_sr
from seg_check import seg_in_nifti_grid

from ai4med.deploy.pacs import deploy_dicomweb, listen
from ai4med.deploy.settings import DeploySettings
from ai4med.io.dicom_seg import read_segmentation
from ai4med.io.image_io import read_image
from ai4med.pacs import PacsError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The base application with the tiny threshold model, on the series' own grid, writing MHD + SEG."""
    from deploy_fixtures import make_app, make_exports

    root = tmp_path_factory.mktemp("app")
    export = make_exports(str(root / "export"))
    folder = make_app(str(root / "app"), export)
    path = os.path.join(folder, "config", "config_inference.json")
    cfg = json.load(open(path))
    for t in cfg["pre_transforms"]:
        if t["name"] == "ScaleByResolution":
            t["args"]["target_resolution"] = [4.0, 4.5, 4.0]
        if t["name"] == "ScaleIntensityRange":
            t["args"].update(a_min=0, a_max=1000)
    cfg["writers"] = [{"name": "MhdWriter", "args": {"field": "model", "dtype": "uint8"}},
                      {"name": "WriteDicomSeg", "args": {"field": "model", "labels": {"1": "bright tissue"}}}]
    json.dump(cfg, open(path, "w"), indent=1)
    return {"app": folder, "model": os.path.join(export, "model.ts"), "logs": str(root / "logs")}


def _run_folder(app, outputs: list):
    """`run_folder` as the deploy app's run() would give it: deploy() on the staged folder."""
    from ai4med.deploy.app import deploy

    def run(input_dir, output_dir):
        result = deploy(DeploySettings.resolve({"app": app["app"], "model": app["model"], "input": input_dir,
                                                "output": output_dir, "logs": app["logs"], "no_publish": True,
                                                "no_progress": True, "device": "cpu"}))
        if result.failed:
            raise RuntimeError(f"deploy failed: {result.failed}")
        outputs.append(output_dir)

    return run


def _check_seg_in_orthanc(orthanc, sop_uid, mhd_path, tmp_path):
    (found,) = orthanc.find("Instance", {"SOPInstanceUID": sop_uid})
    raw = requests.get(f"{orthanc.http}/instances/{found['ID']}/file", timeout=30).content
    (tmp_path / "from_orthanc.dcm").write_bytes(raw)
    arr, aff, names = read_segmentation(str(tmp_path / "from_orthanc.dcm"))
    local = read_image(mhd_path)
    expected = local.get_data()
    assert names == ["bright tissue"] and expected.shape == (48, 48, 40)
    assert 500 < int((expected == 1).sum()) < expected.size // 2  # the model found something, not everything
    np.testing.assert_array_equal(seg_in_nifti_grid(arr, aff, expected.shape, local.get_property("affine")), expected)


def test_deploy_dicomweb_stores_the_seg_of_the_study(orthanc, app, tmp_path):
    series = write_series(str(tmp_path / "T1"), patient_id="DEPLOY-DW")
    for f in series.files:
        orthanc.post("/instances", open(f, "rb").read())
    outputs: list[str] = []
    stored = deploy_dicomweb(orthanc.dicomweb, series.study_uid, None, _run_folder(app, outputs),
                             work_dir=str(tmp_path / "work"))
    assert len(stored) == 1 and outputs == [str(tmp_path / "work" / "output" / series.series_uid)]
    mhd = os.path.join(outputs[0], f"{series.series_uid}.mhd")
    _check_seg_in_orthanc(orthanc, stored[0], mhd, tmp_path)
    seg = orthanc.find("Instance", {"SOPInstanceUID": stored[0]})[0]
    assert orthanc.get(f"/instances/{seg['ID']}/study")["MainDicomTags"]["StudyInstanceUID"] == series.study_uid


def test_deploy_dicomweb_bad_input_stores_nothing(orthanc, app, tmp_path):
    series = write_series(str(tmp_path / "T1"), patient_id="DEPLOY-BAD")
    sr = write_sr(str(tmp_path / "sr.dcm"), series.study_uid, patient_id="DEPLOY-BAD")
    for f in [*series.files, sr]:
        orthanc.post("/instances", open(f, "rb").read())
    before = orthanc.instances()
    run = _run_folder(app, [])
    sr_series = str(pydicom.dcmread(sr).SeriesInstanceUID)
    with pytest.raises(PacsError, match=rf"series {sr_series} of study {series.study_uid} .*not an image series"):
        deploy_dicomweb(orthanc.dicomweb, series.study_uid, sr_series, run)
    with pytest.raises(PacsError, match=r"study 1\.2\.999\.7 not found"):
        deploy_dicomweb(orthanc.dicomweb, "1.2.999.7", None, run)

    def crashes(input_dir, output_dir):
        raise RuntimeError("out of GPU memory")

    with pytest.raises(PacsError, match=rf"series {series.series_uid} of study {series.study_uid} .*the run failed: "
                                        "RuntimeError: out of GPU memory"):
        deploy_dicomweb(orthanc.dicomweb, series.study_uid, None, crashes)
    with pytest.raises(PacsError, match="the run wrote no DICOM SEG"):
        deploy_dicomweb(orthanc.dicomweb, series.study_uid, None, lambda i, o: None)
    assert orthanc.instances() == before  # nothing half-written


def test_listen_segments_a_pushed_study_and_sends_the_seg_to_orthanc(orthanc, app, tmp_path, caplog):
    series = write_series(str(tmp_path / "T1"), patient_id="DEPLOY-DIMSE")
    for f in series.files:
        orthanc.post("/instances", open(f, "rb").read())
    study_id = orthanc.find("Study", {"StudyInstanceUID": series.study_uid})[0]["ID"]
    outputs: list[str] = []
    kept: dict[str, str] = {}
    run = _run_folder(app, outputs)

    def run_and_keep(input_dir, output_dir):
        run(input_dir, output_dir)
        kept["mhd"] = str(tmp_path / "local.mhd")
        img = read_image(os.path.join(output_dir, f"{series.series_uid}.mhd"))
        from ai4med.io.image_io import write_image

        write_image(img, kept["mhd"])

    listener = listen("AI4MED", orthanc.listener_port, f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
                      run_and_keep, spool=str(tmp_path / "spool"), host="127.0.0.1", quiet_seconds=None, block=False)
    try:
        orthanc.post("/modalities/ai4med/store", study_id)
        assert listener.wait_idle(120)
        assert listener.processed == [series.study_uid], listener.failed
        # a study with only a report: logged with its UID, nothing sent
        sr = write_sr(str(tmp_path / "only_sr.dcm"), "1.2.826.0.1.3680043.8.498.424242", patient_id="DEPLOY-SR")
        orthanc.post("/instances", open(sr, "rb").read())
        sr_study = orthanc.find("Study", {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.424242"})[0]["ID"]
        before = orthanc.instances()
        orthanc.post("/modalities/ai4med/store", sr_study)
        assert listener.wait_idle(60)
        assert [u for u, _ in listener.failed] == ["1.2.826.0.1.3680043.8.498.424242"]
        assert "no volume series to segment" in listener.failed[0][1]
        assert orthanc.instances() == before
    finally:
        listener.stop()
    segs = orthanc.find("Instance", {"StudyInstanceUID": series.study_uid, "Modality": "SEG"})
    assert len(segs) == 1
    _check_seg_in_orthanc(orthanc, segs[0]["MainDicomTags"]["SOPInstanceUID"], kept["mhd"], tmp_path)


def test_pacs_cli_exits_non_zero_naming_the_uid(orthanc, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    out = str(tmp_path / "x")
    r = subprocess.run([sys.executable, "-m", "ai4med.pacs", "retrieve", orthanc.dicomweb, "1.2.999.9", "--out", out],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == f"error: study 1.2.999.9 not found on {orthanc.dicomweb}"
    from pydicom.uid import generate_uid

    study = generate_uid()
    sr = write_sr(str(tmp_path / "sr.dcm"), study, patient_id="CLI-SR")
    orthanc.post("/instances", open(sr, "rb").read())
    sr_series = str(pydicom.dcmread(sr).SeriesInstanceUID)
    r = subprocess.run([sys.executable, "-m", "ai4med.pacs", "retrieve", orthanc.dicomweb, study, "--series", sr_series,
                        "--out", out], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and (f"series {sr_series} of study {study} on {orthanc.dicomweb} is not an image series: "
                                  "SOP class Basic Text SR Storage") in r.stderr
    r = subprocess.run([sys.executable, "-m", "ai4med.pacs", "retrieve", orthanc.dicomweb, study, "--out", out],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and f"study {study} on {orthanc.dicomweb} has no image series" in r.stderr
    assert not os.path.exists(out)  # nothing half-written locally either
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    r = subprocess.run([sys.executable, "-m", "ai4med.pacs", "series", url, "1.2.3"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 1 and f"DICOMweb server {url} is unreachable (study 1.2.3)" in r.stderr


def test_deploy_settings_pacs_flags():
    s = DeploySettings.resolve({"dicomweb": "http://pacs/dicom-web", "study": "1.2.3"}, env={})
    assert (s.dicomweb, s.study, s.series, s.output_format) == ("http://pacs/dicom-web", "1.2.3", None, "seg")
    s = DeploySettings.resolve({"listen": "AI4MED:11112"}, env={"AI4MED_DEPLOY_DESTINATION": "PACS@pacs:104"})
    assert (s.listen_address, s.destination, s.spool, s.output_format) == (("AI4MED", 11112), "PACS@pacs:104",
                                                                            "/spool", "seg")
    assert DeploySettings.resolve({}, env={}).output_format == "mhd"
    for flags, msg in [({"dicomweb": "http://p"}, "needs --study"), ({"study": "1.2"}, "give --dicomweb"),
                       ({"listen": "AI4MED"}, "AE_TITLE:PORT"), ({"listen": "A:104"}, "needs --destination"),
                       ({"listen": "A:104", "destination": "pacs:104"}, "AE_TITLE@host:port"),
                       ({"dicomweb": "http://p", "study": "1", "output_format": "mhd"}, "use --output_format seg"),
                       ({"dicomweb": "pacs:8042", "study": "1"}, "must start with http")]:
        with pytest.raises(ValueError, match=msg):
            DeploySettings.resolve(flags, env={})
    import argparse

    from ai4med.deploy.cli_args import add_deploy_args

    p = argparse.ArgumentParser()
    add_deploy_args(p)
    a = p.parse_args(["--dicomweb", "http://p/dw", "--study", "1.2", "--series", "1.2.3", "--output_format", "seg"])
    assert (a.dicomweb, a.study, a.series, a.output_format) == ("http://p/dw", "1.2", "1.2.3", "seg")


def test_deploy_command_dicomweb_end_to_end(orthanc, app, tmp_path, capsys):
    """`ai4med deploy --dicomweb URL --study UID`: the command itself (run() dispatching to the PACS path) stores
    a SEG whose voxels equal the same app's MetaImage output of the series run from a folder."""
    from ai4med.deploy.__main__ import main as deploy_main

    series = write_series(str(tmp_path / "in" / "T1"), patient_id="DEPLOY-CLI")
    for f in series.files:
        orthanc.post("/instances", open(f, "rb").read())
    before = len(orthanc.instances())
    assert deploy_main(["--app", app["app"], "--model", app["model"], "--dicomweb", orthanc.dicomweb,
                        "--study", series.study_uid, "--logs", str(tmp_path / "logs"), "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert f"study {series.study_uid}: 1 DICOM SEG object(s) stored" in out
    sop_uid = out.strip().splitlines()[-1].strip()
    assert len(orthanc.instances()) == before + 1
    local = tmp_path / "local"
    assert deploy_main(["--app", app["app"], "--model", app["model"], "--input", str(tmp_path / "in"), "--output",
                        str(local), "--no_publish", "--logs", str(tmp_path / "logs2"), "--no_progress"]) == 0
    _check_seg_in_orthanc(orthanc, sop_uid, str(local / "T1.mhd"), tmp_path)
    rc = deploy_main(["--app", app["app"], "--model", app["model"], "--dicomweb", orthanc.dicomweb,
                      "--study", "1.2.999.8", "--logs", str(tmp_path / "logs3"), "--no_progress"])
    assert rc == 1 and "1.2.999.8" in capsys.readouterr().err
    assert len(orthanc.instances()) == before + 1


def test_infer_command_dicomweb_stores_the_seg(orthanc, app, tmp_path, capsys):
    """`ai4med infer --dicomweb URL --study UID`: the same SEG as the deploy app's, through the infer command."""
    from ai4med.cli import main as cli

    series = write_series(str(tmp_path / "in" / "T1"), patient_id="INFER-DW")
    for f in series.files:
        orthanc.post("/instances", open(f, "rb").read())
    before = len(orthanc.instances())
    config = os.path.join(app["app"], "config", "config_inference.json")
    assert cli(["infer", "-c", config, "--model_file_path", app["model"], "--dicomweb", orthanc.dicomweb,
                "--study", series.study_uid, "--no_progress", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"study {series.study_uid}: 1 DICOM SEG object(s) stored" in out
    assert len(orthanc.instances()) == before + 1
    mhd = tmp_path / "out" / f"{series.series_uid}.mhd"  # the config's MhdWriter wrote the same prediction
    _check_seg_in_orthanc(orthanc, out.strip().splitlines()[-1].strip(), str(mhd), tmp_path)
    assert cli(["infer", "-c", config, "--model_file_path", app["model"], "--dicomweb", orthanc.dicomweb,
                "--study", "1.2.999.9", "--no_progress"]) == 1
    assert "1.2.999.9" in capsys.readouterr().err and len(orthanc.instances()) == before + 1


def test_deploy_command_listen_end_to_end(orthanc, app, tmp_path):
    """`ai4med deploy --listen AE:PORT --destination AE@HOST:PORT`: the command receives a study Orthanc pushes,
    segments it and C-STOREs the SEG back; SIGTERM stops it cleanly."""
    import signal
    import socket
    import time

    series = write_series(str(tmp_path / "T1"), patient_id="DEPLOY-LISTEN-CLI")
    for f in series.files:
        orthanc.post("/instances", open(f, "rb").read())
    study_id = orthanc.find("Study", {"StudyInstanceUID": series.study_uid})[0]["ID"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ai4med", "deploy", "--app", app["app"], "--model", app["model"],
         "--listen", f"AI4MED:{orthanc.listener_port}", "--destination",
         f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", "--spool", str(tmp_path / "spool"),
         "--logs", str(tmp_path / "logs"), "--no_progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", orthanc.listener_port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
        orthanc.post("/modalities/ai4med/store", study_id)
        segs: list = []
        deadline = time.monotonic() + 120
        while not segs and time.monotonic() < deadline:
            time.sleep(0.5)
            segs = orthanc.find("Instance", {"StudyInstanceUID": series.study_uid, "Modality": "SEG"})
        assert len(segs) == 1, "no SEG came back"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"listening as AI4MED on port {orthanc.listener_port}" in out
