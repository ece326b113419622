"""DIMSE against a real Orthanc: Orthanc pushes a study into our C-STORE SCP, our SCU stores a SEG into Orthanc."""

from __future__ import annotations

import logging
import os
import shutil
import threading

import numpy as np
import pytest
import requests
from orthanc_util import free_port
from pacs_series import LABELS, write_series
from seg_check import seg_in_nifti_grid

from ai4med.io.dicom import read_dicom_series
from ai4med.io.dicom_seg import build_segmentation, read_segmentation, segment_specs, write_segmentation
from ai4med.pacs import PacsError
from ai4med.pacs.dimse import StudyListener, echo, parse_ae_address, send_files


def _upload(orthanc, files) -> str:
    for f in files:
        with open(f, "rb") as fh:
            orthanc.post("/instances", fh.read())
    return orthanc.find("Study", {"StudyInstanceUID": _study_uid(files[0])})[0]["ID"]


def _study_uid(path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_orthanc_pushes_a_study_and_the_callback_sees_all_of_it(orthanc, tmp_path):
    series = write_series(str(tmp_path / "T1"), patient_id="DIMSE-1")
    study_id = _upload(orthanc, series.files)
    seen: dict[str, np.ndarray] = {}

    def callback(folder):
        img = read_dicom_series(folder)
        seen[_study_uid(os.path.join(folder, sorted(os.listdir(folder))[0]))] = img.get_data()
        seen["n"] = len(os.listdir(folder))

    spool = tmp_path / "spool"
    with StudyListener("AI4MED", orthanc.listener_port, str(spool), callback, host="127.0.0.1",
                       quiet_seconds=None) as listener:
        echo("127.0.0.1", orthanc.listener_port, "AI4MED")
        orthanc.post("/modalities/ai4med/store", study_id)  # Orthanc's own C-STORE SCU, synchronous
        assert listener.wait_idle(60)
    assert seen["n"] == 40
    np.testing.assert_array_equal(seen[series.study_uid], series.image)
    assert listener.processed == [series.study_uid] and listener.failed == []
    assert os.listdir(spool / "queued") == [] and os.listdir(spool / "incoming") == []


def test_our_scu_stores_a_seg_in_orthanc(orthanc, tmp_path):
    series = write_series(str(tmp_path / "T1"), patient_id="DIMSE-2")
    _upload(orthanc, series.files)
    seg = build_segmentation(series.tissue, series.files, segment_specs(LABELS))
    path = write_segmentation(seg, str(tmp_path / "seg.dcm"))
    assert send_files([path], "127.0.0.1", orthanc.dicom_port, orthanc.aet) == [str(seg.SOPInstanceUID)]
    (found,) = orthanc.find("Instance", {"SOPInstanceUID": str(seg.SOPInstanceUID)})
    (tmp_path / "back.dcm").write_bytes(requests.get(f"{orthanc.http}/instances/{found['ID']}/file", timeout=30).content)
    arr, aff, _ = read_segmentation(str(tmp_path / "back.dcm"))
    affine = read_dicom_series(series.folder).get_property("affine")
    np.testing.assert_array_equal(seg_in_nifti_grid(arr, aff, series.tissue.shape, affine), series.tissue)


def test_a_failing_study_does_not_block_the_next_and_is_logged(tmp_path, caplog):
    """Two studies over our own SCU: the first one's callback raises, the second is still processed."""
    a = write_series(str(tmp_path / "A"), patient_id="DIMSE-A")
    b = write_series(str(tmp_path / "B"), patient_id="DIMSE-B")
    done: list[str] = []
    release = threading.Event()

    def callback(folder):
        uid = _study_uid(os.path.join(folder, os.listdir(folder)[0]))
        if uid == a.study_uid:
            release.wait(10)
            raise RuntimeError("model crashed")
        done.append(uid)

    port = free_port()
    caplog.set_level(logging.INFO, logger="ai4med.pacs.dimse")
    with StudyListener("AI4MED", port, str(tmp_path / "spool"), callback, host="127.0.0.1", workers=2,
                       quiet_seconds=None) as listener:
        send_files(a.files, "127.0.0.1", port, "AI4MED")
        send_files(b.files, "127.0.0.1", port, "AI4MED")
        for _ in range(200):  # b finishes while a is still held in its callback
            if done:
                break
            threading.Event().wait(0.05)
        assert done == [b.study_uid]
        release.set()
        assert listener.wait_idle(30)
    assert [uid for uid, _ in listener.failed] == [a.study_uid]
    (failed,) = os.listdir(tmp_path / "spool" / "failed")
    kept = os.listdir(tmp_path / "spool" / "failed" / failed)
    assert len(kept) == 41 and "error.txt" in kept  # every received instance kept, with the error
    assert any(a.study_uid in r.getMessage() and "model crashed" in r.getMessage() for r in caplog.records
               if r.levelno >= logging.ERROR)


def test_nothing_is_lost_on_restart_and_quiet_period(tmp_path):
    """Files left in incoming/ by a stopped listener are processed on the next start; a quiet study completes."""
    a = write_series(str(tmp_path / "A"), patient_id="DIMSE-R")
    spool = tmp_path / "spool"
    left = spool / "incoming" / a.study_uid
    left.mkdir(parents=True)
    for f in a.files[:20]:  # half of the study had arrived before the stop
        shutil.copy(f, left)
    got: list[int] = []
    port = free_port()
    with StudyListener("AI4MED", port, str(spool), lambda f: got.append(len(os.listdir(f))), host="127.0.0.1",
                       quiet_seconds=0.5) as listener:
        assert listener.wait_idle(30) and got == [20]
        # an open association that goes quiet: the study completes after quiet_seconds
        from pynetdicom import AE

        ae = AE(ae_title="SENDER")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="AI4MED")
        assert assoc.is_established
        import pydicom

        for f in a.files[20:]:
            assert assoc.send_c_store(pydicom.dcmread(f)).Status == 0
        for _ in range(100):
            if len(got) == 2:
                break
            threading.Event().wait(0.05)
        assoc.release()
        assert got == [20, 20]
        assert listener.wait_idle(30)


def test_scu_errors_name_the_peer(tmp_path):
    port = free_port()
    with pytest.raises(PacsError, match=rf"DICOM peer ORTHANC@127\.0\.0\.1:{port} is unreachable"):
        send_files([write_series(str(tmp_path / "A")).files[0]], "127.0.0.1", port, "ORTHANC", timeout=5)
    (tmp_path / "x.txt").write_text("not dicom")
    with pytest.raises(PacsError, match=r"x\.txt: not a readable DICOM file"):
        send_files([str(tmp_path / "x.txt")], "127.0.0.1", port, "ORTHANC")
    assert parse_ae_address("ORTHANC@pacs.local:4242") == ("ORTHANC", "pacs.local", 4242)
    with pytest.raises(PacsError, match="AE_TITLE@host:port"):
        parse_ae_address("ORTHANC:4242")


def test_bounded_queue_processes_every_study_in_order(tmp_path):
    """max_queued=1, one worker held busy: later studies wait on disk, none is dropped, order is kept."""
    studies = [write_series(str(tmp_path / f"S{i}"), patient_id=f"Q{i}") for i in range(3)]
    order: list[str] = []
    gate = threading.Event()

    def callback(folder):
        gate.wait(20)
        order.append(_study_uid(os.path.join(folder, os.listdir(folder)[0])))

    port = free_port()
    with StudyListener("AI4MED", port, str(tmp_path / "spool"), callback, host="127.0.0.1", max_queued=1,
                       quiet_seconds=None) as listener:
        for s in studies:
            send_files(s.files[:4], "127.0.0.1", port, "AI4MED")
        for _ in range(100):  # the SCP completes a study when it sees the association released
            if len(os.listdir(tmp_path / "spool" / "queued")) == 3:
                break
            threading.Event().wait(0.05)
        assert order == [] and len(os.listdir(tmp_path / "spool" / "queued")) == 3  # all on disk, none processed
        gate.set()
        assert listener.wait_idle(30)
    assert order == [s.study_uid for s in studies] and listener.failed == []
