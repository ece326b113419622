"""DICOMweb against a real Orthanc: QIDO-RS, WADO-RS voxels, STOW-RS of a SEG, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
import requests
from orthanc_util import free_port
from pacs_series import LABELS, write_series, write_sr
from seg_check import seg_in_nifti_grid

from ai4med.io.dicom import read_dicom_series
from ai4med.io.dicom_seg import build_segmentation, read_segmentation, segment_specs, write_segmentation
from ai4med.pacs import PacsError
from ai4med.pacs.dicomweb import DicomWebClient, retrieve_volume_series


@pytest.fixture(scope="module")
def study(orthanc, tmp_path_factory):
    """The MR series and a report (SR) in one study, uploaded through Orthanc's REST API."""
    root = tmp_path_factory.mktemp("dw")
    series = write_series(str(root / "T1"), patient_id="DW-1")
    sr = write_sr(str(root / "report.dcm"), series.study_uid, patient_id="DW-1")
    for f in [*series.files, sr]:
        with open(f, "rb") as fh:
            orthanc.post("/instances", fh.read())
    series.sr_series_uid = str(pydicom.dcmread(sr).SeriesInstanceUID)
    return series


def test_qido_finds_the_study_and_its_image_series(orthanc, study):
    client = DicomWebClient(orthanc.dicomweb)
    studies = client.find_studies(PatientID="DW-1")
    assert [s["0020000D"]["Value"][0] for s in studies] == [study.study_uid]
    all_series = {s.series_uid: s for s in client.find_series(study.study_uid)}
    assert set(all_series) == {study.series_uid, study.sr_series_uid}
    assert (all_series[study.series_uid].modality, all_series[study.series_uid].instances) == ("MR", 40)
    assert [s.series_uid for s in client.volume_series(study.study_uid)] == [study.series_uid]


def test_wado_retrieve_gives_the_original_voxels(orthanc, study, tmp_path):
    client = DicomWebClient(orthanc.dicomweb)
    got = retrieve_volume_series(client, study.study_uid, None, str(tmp_path))
    assert list(got) == [study.series_uid] and len(got[study.series_uid]) == 40
    back = read_dicom_series(str(tmp_path / study.series_uid))
    original = read_dicom_series(study.folder)
    np.testing.assert_array_equal(back.get_data(), study.image)
    np.testing.assert_allclose(back.get_property("affine"), original.get_property("affine"), atol=1e-6)


def test_stow_a_seg_and_read_it_back_from_orthanc(orthanc, study, tmp_path):
    client = DicomWebClient(orthanc.dicomweb)
    seg = build_segmentation(study.tissue, study.files, segment_specs(LABELS))
    path = write_segmentation(seg, str(tmp_path / "seg.dcm"))
    assert client.store([path]) == [str(seg.SOPInstanceUID)]
    (found,) = orthanc.find("Instance", {"SOPInstanceUID": str(seg.SOPInstanceUID)})
    raw = requests.get(f"{orthanc.http}/instances/{found['ID']}/file", timeout=30).content
    (tmp_path / "back.dcm").write_bytes(raw)
    arr, aff, names = read_segmentation(str(tmp_path / "back.dcm"))
    ref = read_dicom_series(study.folder)
    np.testing.assert_array_equal(seg_in_nifti_grid(arr, aff, study.tissue.shape, ref.get_property("affine")),
                                  study.tissue)
    assert names == ["csf_other", "grey_matter", "white_matter"]
    # the SEG landed in the source study, beside the MR series
    assert str(seg.SeriesInstanceUID) in {s.series_uid for s in client.find_series(study.study_uid)}


def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(PacsError, match=rf"DICOMweb server {url} is unreachable \(study 1\.2\.3\)"):
        DicomWebClient(url, timeout=5).find_series("1.2.3")
    with pytest.raises(PacsError, match="must start with http"):
        DicomWebClient("pacs:8042")


def test_wrong_study_uid_and_non_image_series_are_named(orthanc, study, tmp_path):
    client = DicomWebClient(orthanc.dicomweb)
    before = orthanc.instances()
    with pytest.raises(PacsError, match=rf"study 1\.2\.999\.1 not found on {orthanc.dicomweb}"):
        retrieve_volume_series(client, "1.2.999.1", None, str(tmp_path))
    with pytest.raises(PacsError, match=rf"series {study.sr_series_uid} of study {study.study_uid} .* is not an "
                                        r"image series: SOP class Basic Text SR Storage"):
        retrieve_volume_series(client, study.study_uid, study.sr_series_uid, str(tmp_path))
    with pytest.raises(PacsError, match=rf"series 1\.2\.999\.2 not found in study {study.study_uid}"):
        client.retrieve_series(study.study_uid, "1.2.999.2", str(tmp_path))
    assert os.listdir(tmp_path) == [] and orthanc.instances() == before


def test_study_without_a_volume_series(orthanc, tmp_path):
    from pydicom.uid import generate_uid

    uid = generate_uid()
    sr = write_sr(str(tmp_path / "only_report.dcm"), uid, patient_id="DW-2")
    with open(sr, "rb") as fh:
        orthanc.post("/instances", fh.read())
    with pytest.raises(PacsError, match=rf"study {uid} on .* has no image series to run a model on: .*\(#99, SR"):
        DicomWebClient(orthanc.dicomweb).volume_series(uid)
