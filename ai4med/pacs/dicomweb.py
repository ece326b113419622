"""DICOMweb client layer (dicomweb-client): QIDO-RS search, WADO-RS retrieve to a folder, STOW-RS store.

What a deploy run needs of a DICOMweb PACS (Orthanc, dcm4chee, Google Healthcare API...):
find the volume series of a study, download one series as Part-10 files into a folder that
`ai4med.io.dicom` reads, and store result objects (SEG) back. Every failure is a `PacsError`
naming the URL and the UID: an unreachable server, a study the server does not hold, a study
without any volume series, a series whose SOP class is not an image (SR, SEG, PDF...).

Example:
    >>> client = DicomWebClient("http://localhost:8042/dicom-web")   # doctest: +SKIP
    >>> [s.series_uid for s in client.volume_series("1.2.3")]        # doctest: +SKIP
    >>> client.retrieve_series("1.2.3", "1.2.3.4", "/tmp/in")        # doctest: +SKIP
    >>> client.store(["/tmp/out/case.seg.dcm"])                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ai4med.pacs import PacsError

__all__ = ["DicomWebClient", "SeriesRef", "is_image_sop_class", "retrieve_volume_series"]

logger = logging.getLogger(__name__)

_T = {"study": "0020000D", "series": "0020000E", "sop_class": "00080016", "sop": "00080018",
      "modality": "00080060", "number": "00200011", "description": "0008103E", "count": "00201209",
      "frames": "00280008", "rows": "00280010", "patient": "00100020"}


def is_image_sop_class(uid: str) -> bool:
    """True for the SOP classes that hold images a model can read ("... Image Storage"), not SR/SEG/PDF."""
    from pydicom.uid import UID

    name = UID(uid).name
    return name.endswith("Image Storage") and "Presentation" not in name


def _value(item: dict, tag: str, default: Any = None) -> Any:
    values = (item.get(_T.get(tag, tag)) or {}).get("Value")
    return values[0] if values else default


@dataclass(frozen=True)
class SeriesRef:
    """A series as QIDO-RS reports it."""

    study_uid: str
    series_uid: str
    modality: str
    number: int | None
    description: str
    instances: int

    def __str__(self) -> str:
        return (f"{self.series_uid} (#{self.number}, {self.modality or '?'}, {self.description or 'no description'}, "
                f"{self.instances} instance(s))")


class DicomWebClient:
    """A DICOMweb endpoint (`url` is the service root, e.g. `http://pacs:8042/dicom-web`).

    Args:
        url: the DICOMweb root. timeout: seconds per request. headers: extra HTTP headers
            (e.g. `{"Authorization": "Bearer ..."}`). retries: attempts after the first on a
            connection error or HTTP 408/429/503/504 (exponential back-off from 0.5 s; dicomweb-client's
            own default, 5 attempts up to 16 s apart, makes an unreachable server take half a minute).
    """

    def __init__(self, url: str, timeout: float = 30.0, headers: dict[str, str] | None = None,
                 retries: int = 2) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise PacsError(f"DICOMweb URL must start with http:// or https://, got {url!r}")
        self._client = DICOMwebClient(url=self.url, headers=headers, timeout=timeout)
        self._client.set_http_retry_params(retry=retries > 0, max_attempts=max(1, int(retries) + 1),
                                           wait_exponential_multiplier=250)

    # --------------------------------------------------------------------- errors
    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import requests

        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise PacsError(f"DICOMweb server {self.url} is unreachable ({what}): {_short(exc)}") from exc
        except requests.exceptions.Timeout as exc:
            raise PacsError(f"DICOMweb server {self.url} timed out ({what})") from exc
        except requests.exceptions.HTTPError as exc:
            code = getattr(exc.response, "status_code", None)
            if code == 404:
                raise PacsError(f"{what}: not found on {self.url} (HTTP 404)") from exc
            body = (getattr(exc.response, "text", "") or "")[:300]
            raise PacsError(f"{what}: DICOMweb server {self.url} answered HTTP {code}: {body}") from exc

    # --------------------------------------------------------------------- QIDO-RS
    def find_studies(self, **filters: Any) -> list[dict]:
        """QIDO-RS study search (`PatientID="..."`, `StudyDate="20240101-"`...); DICOM JSON dicts."""
        return self._call("searching studies", self._client.search_for_studies, search_filters=filters or None,
                          get_remaining=True)

    def find_series(self, study_uid: str) -> list[SeriesRef]:
        """The series of `study_uid`; a study the server does not hold is an error naming it."""
        found = self._call(f"study {study_uid}", self._client.search_for_series, study_instance_uid=study_uid,
                           get_remaining=True)
        if not found:
            raise PacsError(f"study {study_uid} not found on {self.url}")
        return [SeriesRef(study_uid, str(_value(s, "series", "")), str(_value(s, "modality", "") or ""),
                          _value(s, "number"), str(_value(s, "description", "") or ""),
                          int(_value(s, "count", 0) or 0)) for s in found]

    def _sop_classes(self, study_uid: str, series_uid: str) -> set[str]:
        items = self._call(f"series {series_uid} of study {study_uid}", self._client.search_for_instances,
                           study_instance_uid=study_uid, series_instance_uid=series_uid,
                           fields=[_T["sop_class"]], get_remaining=True)
        if not items:
            raise PacsError(f"series {series_uid} not found in study {study_uid} on {self.url}")
        return {str(_value(i, "sop_class", "")) for i in items}

    def volume_series(self, study_uid: str) -> list[SeriesRef]:
        """The series of a study that can be a volume: image SOP classes (checked per instance)."""
        series = self.find_series(study_uid)
        out = [s for s in series if all(is_image_sop_class(c) for c in self._sop_classes(study_uid, s.series_uid))]
        if not out:
            listing = "; ".join(str(s) for s in series)
            raise PacsError(f"study {study_uid} on {self.url} has no image series to run a model on: {listing}")
        return out

    def check_series(self, study_uid: str, series_uid: str) -> None:
        """Refuse a series whose instances are not images (naming its SOP class) before anything is read."""
        classes = self._sop_classes(study_uid, series_uid)
        bad = sorted(c for c in classes if not is_image_sop_class(c))
        if bad:
            from pydicom.uid import UID

            names = ", ".join(f"{UID(c).name} ({c})" for c in bad)
            raise PacsError(f"series {series_uid} of study {study_uid} on {self.url} is not an image series: "
                            f"SOP class {names}")

    # --------------------------------------------------------------------- WADO-RS
    def retrieve_series(self, study_uid: str, series_uid: str, folder: str) -> list[str]:
        """Download a series (WADO-RS) as `<folder>/<SOPInstanceUID>.dcm`; returns the files.

        Each file is written atomically, so an interrupted download leaves no partial file.
        """
        from ai4med.io.atomic import atomic_path

        self.check_series(study_uid, series_uid)
        os.makedirs(folder, exist_ok=True)
        files: list[str] = []
        what = f"retrieving series {series_uid} of study {study_uid}"
        iterator = self._call(what, self._client.iter_series, study_uid, series_uid)
        while True:
            ds = self._call(what, next, iterator, None)
            if ds is None:
                break
            path = os.path.join(folder, f"{ds.SOPInstanceUID}.dcm")
            with atomic_path(path) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            files.append(path)
        if not files:
            raise PacsError(f"{what}: {self.url} returned no instance")
        logger.info("retrieved series %s of study %s from %s: %d instance(s) into %s", series_uid, study_uid,
                    self.url, len(files), folder)
        return files

    # --------------------------------------------------------------------- STOW-RS
    def store(self, items: Iterable[str | Any], study_uid: str | None = None) -> list[str]:
        """Store DICOM files or datasets (STOW-RS) in one request; returns the stored SOP instance UIDs.

        A failed instance (the server's FailedSOPSequence) is an error naming it.
        """
        import pydicom

        datasets = []
        for item in items:
            if not isinstance(item, (str, os.PathLike)):
                datasets.append(item)
                continue
            try:
                datasets.append(pydicom.dcmread(item))
            except Exception as exc:
                raise PacsError(f"cannot store {item}: not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
        if not datasets:
            raise PacsError("nothing to store")
        uids = [str(d.SOPInstanceUID) for d in datasets]
        study = study_uid or str(datasets[0].StudyInstanceUID)
        resp = self._call(f"storing {len(datasets)} instance(s) in study {study}", self._client.store_instances,
                          datasets, study_instance_uid=study_uid)
        failed = [str(getattr(f, "ReferencedSOPInstanceUID", "?")) for f in getattr(resp, "FailedSOPSequence", [])]
        if failed:
            raise PacsError(f"{self.url} refused instance(s) {', '.join(failed)} of study {study}")
        logger.info("stored %d instance(s) in study %s on %s", len(uids), study, self.url)
        return uids


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def retrieve_volume_series(client: DicomWebClient, study_uid: str, series_uid: str | None,
                           folder: str) -> dict[str, list[str]]:
    """Retrieve the chosen series (or every image series of the study) into `<folder>/<series_uid>/`."""
    if series_uid is not None:
        client.find_series(study_uid)  # a wrong study is named before the series
        chosen: Sequence[str] = [series_uid]
    else:
        chosen = [s.series_uid for s in client.volume_series(study_uid)]
    return {uid: client.retrieve_series(study_uid, uid, os.path.join(folder, uid)) for uid in chosen}
