"""The deploy app against a PACS: stage a study into a folder, run the app on it, store the SEG files back.

Two entry points, both given `run_folder(input_dir, output_dir)`, the app run on one folder
(the deploy app's `deploy()` with `--output_format seg`, so `output_dir` receives `*.seg.dcm`):

* `deploy_dicomweb(url, study_uid, series_uid, run_folder)`: WADO-RS each image series of the
  study (or the one given) into its own folder, run, then STOW-RS every SEG in one request:
  a failure anywhere (wrong study, no image series, a run that fails or writes no SEG, a SEG of
  another study) stores nothing.
* `listen(ae_title, port, destination, run_folder)`: a C-STORE SCP (`ai4med.pacs.dimse`); each
  complete study is split into its volume series, run, and its SEGs are C-STOREd to
  `destination` ("AE@host:port"); failures are logged with the study UID and keep the study in
  the spool's `failed/`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ai4med.io.dicom_seg import SEG_SOP_CLASS_UID
from ai4med.pacs import PacsError

__all__ = ["RunFolder", "deploy_dicomweb", "listen", "process_study_folder", "seg_files"]

logger = logging.getLogger(__name__)

#: run the app on the DICOM series in `input_dir`, writing its results (SEG files) into `output_dir`
RunFolder = Callable[[str, str], Any]


def seg_files(folder: str, study_uid: str, where: str) -> list[str]:
    """The DICOM SEG files under `folder`, each checked to belong to `study_uid`; an error when there are none."""
    import pydicom

    found = []
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "StudyInstanceUID"])
            except Exception:
                continue
            if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS_UID:
                continue
            if str(ds.get("StudyInstanceUID", "")) != study_uid:
                raise PacsError(f"{where}: {path} belongs to study {ds.get('StudyInstanceUID')}, not {study_uid}")
            found.append(path)
    if not found:
        raise PacsError(f"{where}: the run wrote no DICOM SEG into {folder} (is the output format seg?)")
    return found


def _run(run_folder: RunFolder, input_dir: str, output_dir: str, where: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    try:
        run_folder(input_dir, output_dir)
    except PacsError:
        raise
    except Exception as exc:
        raise PacsError(f"{where}: the run failed: {type(exc).__name__}: {exc}") from exc


def deploy_dicomweb(url: str, study_uid: str, series_uid: str | None, run_folder: RunFolder, *,
                    work_dir: str | None = None, timeout: float = 30.0,
                    headers: dict[str, str] | None = None) -> list[str]:
    """Segment a study of a DICOMweb server and store the SEGs back; returns the stored SOP instance UIDs.

    Args:
        url: the DICOMweb root. study_uid / series_uid: what to segment (series None: every image series).
        run_folder: the app on one folder. work_dir: keep `input/<series>/` and `output/<series>/` here
            (default: a temporary folder, removed afterwards).
    """
    from ai4med.pacs.dicomweb import DicomWebClient, retrieve_volume_series

    client = DicomWebClient(url, timeout=timeout, headers=headers)
    staging = work_dir or tempfile.mkdtemp(prefix="ai4med-dicomweb-")
    try:
        series = retrieve_volume_series(client, study_uid, series_uid, os.path.join(staging, "input"))
        segs: list[str] = []
        for uid in series:
            where = f"series {uid} of study {study_uid} from {client.url}"
            out = os.path.join(staging, "output", uid)
            _run(run_folder, os.path.join(staging, "input", uid), out, where)
            segs += seg_files(out, study_uid, where)
        stored = client.store(segs, study_uid=study_uid)  # one STOW-RS request, after every run succeeded
        logger.info("study %s: %d SEG(s) stored on %s", study_uid, len(stored), client.url)
        return stored
    finally:
        if work_dir is None:
            shutil.rmtree(staging, ignore_errors=True)


def process_study_folder(study_folder: str, run_folder: RunFolder, work_dir: str) -> tuple[str, list[str]]:
    """Split a received study into its volume series, run each; returns (study UID, SEG files).

    Non-image instances (reports, existing SEGs) are left out; a study without a readable volume
    series is an error naming it and why each series was refused.
    """
    from ai4med.io.dicom import scan_dicom_files

    files = sorted(os.path.join(study_folder, n) for n in os.listdir(study_folder) if n.endswith(".dcm"))
    scan = scan_dicom_files(files)
    study_uid = _study_uid(files) or os.path.basename(study_folder)
    volumes = [s for s in scan.series if s.ok and _is_image(s.files[0])]
    if not volumes:
        why = "; ".join(f"series {s.series_uid}: {'; '.join(s.problems) or 'not an image SOP class'}"
                        for s in scan.series) or f"{len(scan.skipped)} instance(s) without an image"
        raise PacsError(f"study {study_uid}: no volume series to segment ({why})")
    segs: list[str] = []
    for s in volumes:
        in_dir = os.path.join(work_dir, "input", s.series_uid)
        os.makedirs(in_dir, exist_ok=True)
        for f in s.files:
            _link_or_copy(f, os.path.join(in_dir, os.path.basename(f)))
        where = f"series {s.series_uid} of study {study_uid}"
        out = os.path.join(work_dir, "output", s.series_uid)
        _run(run_folder, in_dir, out, where)
        segs += seg_files(out, study_uid, where)
    return study_uid, segs


def _is_image(path: str) -> bool:
    import pydicom

    from ai4med.pacs.dicomweb import is_image_sop_class

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    return is_image_sop_class(str(ds.get("SOPClassUID", "")))


def _study_uid(files: Sequence[str]) -> str | None:
    import pydicom

    for f in files:
        try:
            return str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["StudyInstanceUID"]).StudyInstanceUID)
        except Exception:
            continue
    return None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def listen(ae_title: str, port: int, destination: str, run_folder: RunFolder, *, spool: str = "/spool",
           host: str = "0.0.0.0", quiet_seconds: float | None = 30.0, workers: int = 1, calling_ae: str | None = None,
           block: bool = True) -> Any:
    """Receive studies as `ae_title` on `port`, segment each, C-STORE its SEGs to `destination` (AE@host:port).

    With `block` (the CLI), runs until SIGINT / SIGTERM and returns None; otherwise returns the
    started `StudyListener` (call `stop()`).
    """
    from ai4med.pacs.dimse import StudyListener, parse_ae_address, send_files

    dest_ae, dest_host, dest_port = parse_ae_address(destination)

    def callback(study_folder: str) -> None:
        work = tempfile.mkdtemp(prefix="ai4med-listen-")
        try:
            study_uid, segs = process_study_folder(study_folder, run_folder, work)
            send_files(segs, dest_host, dest_port, dest_ae, calling_ae or ae_title)
            logger.info("study %s: %d SEG(s) sent to %s", study_uid, len(segs), destination)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    listener = StudyListener(ae_title, port, spool, callback, host=host, quiet_seconds=quiet_seconds,
                             workers=workers).start()
    if not block:
        return listener
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()
    finally:
        for s, h in previous.items():  # None: set outside Python before it started; signal.signal cannot take it
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        listener.stop()
    return None
