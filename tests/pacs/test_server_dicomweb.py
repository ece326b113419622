"""The annotation server with a DICOMweb source (issue 15 item 2): a request names a series of Orthanc instead of
uploading an image (upload-free segmentation and sessions), the mask equals the one of the same series uploaded
as a file, and `store_seg` stores it back as a DICOM SEG whose voxels are the mask."""

from __future__ import annotations

import json
import os
import sys

import nibabel as nib
import numpy as np
import pytest
import requests
from pacs_series import write_series
from seg_check import seg_in_nifti_grid

from ai4med.io.dicom_seg import read_segmentation

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "server"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "deploy"))


@pytest.fixture(scope="module")
def served(orthanc, tmp_path_factory):
    from aiaa_test_client import AIAAClient
    from deploy_fixtures import make_app, make_exports
    from live_server import LiveServer

    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    root = tmp_path_factory.mktemp("server_dw")
    export = make_exports(str(root / "export"))
    app = make_app(str(root / "app"), export)
    derived = json.load(open(os.path.join(app, "config", "config_inference.json")))
    for t in derived["pre_transforms"]:
        if t["name"] == "ScaleIntensityRange":
            t["args"].update(a_min=0, a_max=1000)
    model = {"type": "segmentation", "labels": ["bright tissue"], "model_path": os.path.join(export, "model.ts"),
             "pre_transforms": derived["pre_transforms"], "inferer": derived["inferer"]}
    (root / "seg.json").write_text(json.dumps(model))
    (root / "pool.json").write_text(json.dumps([{"name": "seg", "class": "SegmentationEngine",
                                                 "config_file": str(root / "seg.json")}]))
    settings = ServerSettings(engine_pool=str(root / "pool.json"), workspace=str(root / "ws"),
                              dicomweb=orthanc.dicomweb)
    live = LiveServer(create_app(settings)).start()
    series = write_series(str(root / "T1"), patient_id="SERVER-DW")
    for f in series.files:
        orthanc.post("/instances", open(f, "rb").read())
    yield AIAAClient(live.url), series, root
    live.stop()


def test_a_named_series_segments_as_its_upload_and_stores_a_seg(served, orthanc, tmp_path):
    client, series, root = served
    ref = {"study": series.study_uid, "series": series.series_uid}
    r = client.http_multipart("POST", "/v1/segmentation?model=seg", {"params": json.dumps(ref)}, {})
    assert r.status == 200, r.body
    by_ref = tmp_path / "ref.nii.gz"
    by_ref.write_bytes(r.files[next(iter(r.files))])
    mask = np.asarray(nib.load(str(by_ref)).dataobj)
    assert mask.shape == (48, 48, 40) and 200 < int(mask.sum()) < mask.size // 2
    # the same series as an uploaded DICOM-converted volume gives the same mask: read it locally, upload NIfTI
    from ai4med.io.image_io import read_image, write_image

    local = str(tmp_path / "series.nii.gz")
    write_image(read_image(os.path.dirname(series.files[0])), local)
    up = client.segmentation("seg", local)
    assert up.status == 200
    (tmp_path / "up.nii.gz").write_bytes(up.files["result.nii.gz"])
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "up.nii.gz")).dataobj), mask)
    # a session on the named series
    s = client.http_multipart("PUT", "/session/", {"params": json.dumps(ref)}, {}, False)
    assert s.status == 200, s.body
    r2 = client.segmentation("seg", None, session_id=s.json()["session_id"])
    assert r2.status == 200
    (tmp_path / "s.nii.gz").write_bytes(r2.files[next(iter(r2.files))])
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "s.nii.gz")).dataobj), mask)
    # store_seg: the SEG in Orthanc holds the mask
    before = len(orthanc.instances())
    r3 = client.http_multipart("POST", "/v1/segmentation?model=seg", {"params": json.dumps({**ref, "store_seg": True})},
                               {})
    assert r3.status == 200, r3.body
    uid = r3.params["seg_sop_instance_uid"]
    assert len(orthanc.instances()) == before + 1
    (found,) = orthanc.find("Instance", {"SOPInstanceUID": uid})
    (tmp_path / "seg.dcm").write_bytes(requests.get(f"{orthanc.http}/instances/{found['ID']}/file", timeout=30).content)
    arr, aff, names = read_segmentation(str(tmp_path / "seg.dcm"))
    on_grid = seg_in_nifti_grid(arr, aff, mask.shape, nib.load(str(by_ref)).affine)
    assert names == ["bright tissue"] and np.array_equal(on_grid.astype(np.uint8), mask.astype(np.uint8))


def test_bad_references_are_4xx_naming_the_uid(served):
    client, series, _ = served
    r = client.http_multipart("POST", "/v1/segmentation?model=seg",
                              {"params": json.dumps({"study": "1.2.999.77"})}, {})
    assert r.status == 404 and "1.2.999.77" in r.json()["error"]
    r = client.http_multipart("POST", "/v1/segmentation?model=seg", {"params": json.dumps({"study": 5})}, {})
    assert r.status == 400 and "params.study" in r.json()["error"]
