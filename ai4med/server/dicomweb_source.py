"""Images from a DICOMweb server (MONAI Label's `--studies` idea) and results back to it as DICOM SEG.

With `ai4med serve --dicomweb URL`, a request may name a series instead of uploading an image:
`params` `{"study": StudyInstanceUID, "series": SeriesInstanceUID}` (the series may be left out
when the study has one image series). The series is retrieved by WADO-RS into the request's
temporary folder and read like an uploaded DICOM folder; `"store_seg": true` stores the returned
label back in the study as a DICOM SEG (STOW-RS) and the reply's params carry its
`seg_sop_instance_uid`. Errors name the UID and are 4xx (502 for an unreachable server).

Example:
    >>> series_ref({"study": "1.2.3", "series": "1.2.3.4"})
    ('1.2.3', '1.2.3.4')
    >>> series_ref({}) is None
    True
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ai4med.server.errors import ApiError

__all__ = ["series_ref", "fetch_series", "store_seg"]


def series_ref(params: Any) -> tuple[str, str | None] | None:
    """(study, series) named by the request params, else None (an uploaded image is expected)."""
    if not isinstance(params, dict):
        return None
    study = params.get("study", params.get("StudyInstanceUID"))
    series = params.get("series", params.get("SeriesInstanceUID"))
    if study is None and series is None:
        return None
    if not isinstance(study, str) or not study.strip():
        raise ApiError(400, "params.study must be a StudyInstanceUID (a string) when a DICOMweb series is named")
    if series is not None and (not isinstance(series, str) or not series.strip()):
        raise ApiError(400, "params.series must be a SeriesInstanceUID (a string)")
    return study.strip(), (series.strip() if isinstance(series, str) else None)


def fetch_series(url: str | None, study: str, series: str | None, folder: str) -> tuple[str, str]:
    """Retrieve the series into `folder`; returns (series folder, a name for the reply file)."""
    if not url:
        raise ApiError(400, "this server has no DICOMweb source: start it with --dicomweb URL, or upload the image")
    from ai4med.pacs import PacsError
    from ai4med.pacs.dicomweb import DicomWebClient, retrieve_volume_series

    try:
        client = DicomWebClient(url)
        got = retrieve_volume_series(client, study, series, folder)
    except PacsError as exc:
        text = str(exc)
        status = 502 if "unreachable" in text.lower() or "connect" in text.lower() else 404 if (
            "not found" in text.lower()) else 400
        raise ApiError(status, text[:400]) from None
    if not got:
        raise ApiError(404, f"study {study}: no image series on the DICOMweb server")
    if len(got) > 1:
        raise ApiError(400, f"study {study} has {len(got)} image series ({', '.join(sorted(got))}): name one in "
                            "params.series")
    uid = next(iter(got))
    return os.path.join(folder, uid), f"{uid}.nii.gz"


def store_seg(url: str, image: Any, mask: np.ndarray, labels: list[str]) -> str:
    """Store `mask` (on the series' grid, as read) as a DICOM SEG in the series' study; its SOP instance UID."""
    from ai4med.common.constants import ImageProperty
    from ai4med.io.dicom_seg import DicomSegError, build_segmentation, segment_specs
    from ai4med.pacs import PacsError
    from ai4med.pacs.dicomweb import DicomWebClient

    meta = image.get_property(ImageProperty.DICOM_META) or {}
    files = meta.get("files") if isinstance(meta, dict) else None
    if not files:
        raise ApiError(400, "store_seg needs an image read from DICOM (a DICOMweb series)")
    values = sorted(int(v) for v in np.unique(mask) if v > 0)
    names = {v: (labels[v - 1] if 0 < v <= len(labels) else f"segment_{v}") for v in values} or {1: (
        labels[0] if labels else "segment_1")}
    try:
        seg = build_segmentation(np.asarray(mask, np.uint8), files, segment_specs(names))
        stored = DicomWebClient(url).store([seg], study_uid=meta.get("study_uid") or meta.get("StudyInstanceUID"))
    except (DicomSegError, PacsError) as exc:
        raise ApiError(502 if isinstance(exc, PacsError) else 422, f"cannot store the SEG: {str(exc)[:300]}") from None
    return stored[0] if stored else ""
