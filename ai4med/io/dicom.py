"""DICOM series: find the series in a folder, check they form a volume, read them (pydicom).

A folder may hold several series; files are grouped by SeriesInstanceUID, and each
series is checked before any pixel is read:

* every slice has the same size and ImageOrientationPatient. A series that mixes
  orientations is **refused**, never split: in practice that is a tri-plane localizer
  (MR2 of pydicom's test data: one slice each of sagittal, coronal and axial) or a
  radial acquisition (MR700: every slice rotated), and neither is a volume. The message
  names the folder, the series, the orientations and their files;
* slices are sorted by their position along the slice normal (the cross product of the
  row and column cosines, dotted with ImagePositionPatient), positions lie on that
  normal (no shear / gantry tilt) and no two slices share a position;
* the distance between neighbouring slices is uniform (within 1 % of the median or
  1 micrometre). A gap (CT2: one slice ~200 mm away from the others) is an error naming
  where the gap is and how large, never stacked silently onto a wrong grid.

A folder with several valid series is not an error for `list_series`; `read_dicom_series`
then needs the `series_uid` to choose (the message lists them), and the data converter
writes one output per series.

Geometry is ITK's (as `SimpleITK.ImageSeriesReader` reports it): origin = position of
the first slice along the normal, direction columns = (row cosine, column cosine,
normal), spacing = (PixelSpacing[1], PixelSpacing[0], slice distance), in LPS.
RescaleSlope / RescaleIntercept are applied; the result is an integer type wide enough
for the rescaled range of the stored bits when slope and intercept are integers (CT:
int32 for signed 16-bit storage, like GDCM), float32 otherwise.

Example:
    >>> import os, pydicom.data
    >>> ct5n = os.path.join(os.path.dirname(pydicom.data.__file__),
    ...                     "test_files", "dicomdirtests", "98892001", "CT5N")
    >>> [s.num_slices for s in list_series(ct5n)]
    [5]
    >>> img = read_dicom_series_sitk(ct5n)
    >>> img.GetSize(), img.GetSpacing()[2]
    ((16, 16, 5), 2.5)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ai4med.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

    from ai4med.common.medical_image import MedicalImage

__all__ = [
    "DicomSeriesError",
    "DicomScan",
    "SeriesInfo",
    "list_series",
    "scan_dicom_files",
    "read_dicom_series",
    "read_dicom_series_sitk",
    "is_dicom_folder",
]

logger = logging.getLogger(__name__)

#: Two orientations are the same when no direction cosine differs by more than this.
ORIENTATION_TOL = 1e-4
#: Neighbouring slice distances may differ from the median by this fraction ...
SPACING_REL_TOL = 1e-2
#: ... or by this many millimetres, whichever is larger.
SPACING_ABS_TOL = 1e-3

_HEADER_TAGS = [
    "SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
    "SpacingBetweenSlices", "ImagerPixelSpacing", "Rows", "Columns", "InstanceNumber", "NumberOfFrames", "SamplesPerPixel",
    "RescaleSlope", "RescaleIntercept", "BitsStored", "PixelRepresentation", "SOPClassUID",
]


class DicomSeriesError(UserError):
    """A DICOM folder or series that cannot be read as one volume; the message says where and why."""


@dataclass(frozen=True)
class _Slice:
    path: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    columns: int
    instance: int | None
    frames: int
    samples: int
    slice_thickness: float | None
    spacing_between: float | None


@dataclass
class SeriesInfo:
    """One series of a folder, checked but not read.

    Attributes:
        folder: the folder the files were found in (the common folder of `files`).
        series_uid: SeriesInstanceUID.
        files: the slice files, sorted along the slice normal when the geometry allows
            (otherwise by InstanceNumber, then name).
        series_number, description, modality: from the first slice's header.
        size: (columns, rows, slices): the volume's size along i, j, k.
        spacing: (column spacing, row spacing, slice distance) in mm, or None when unknown.
        problems: why this series cannot be read as a volume (empty when it can).
    """

    folder: str
    series_uid: str
    files: tuple[str, ...]
    series_number: int | None = None
    description: str = ""
    modality: str = ""
    size: tuple[int, int, int] = (0, 0, 0)
    spacing: tuple[float, float, float] | None = None
    problems: tuple[str, ...] = ()
    _slices: tuple[_Slice, ...] = field(default=(), repr=False, compare=False)

    @property
    def num_slices(self) -> int:
        return len(self.files)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> None:
        """Raise `DicomSeriesError` with all problems of this series."""
        if self.problems:
            raise DicomSeriesError("; ".join(self.problems))


# --------------------------------------------------------------------------- header scan
def _pydicom():
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - pydicom is a dependency of the I/O extra
        raise DicomSeriesError("reading DICOM needs pydicom: pip install pydicom") from exc
    return pydicom


def _read_header(path: str) -> Any | None:
    """The header of `path` without pixel data; None when it is not a DICOM file."""
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except InvalidDicomError:
        pass  # no 'DICM' preamble: maybe a bare dataset (old exports); try once more below
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=_HEADER_TAGS)
    except Exception:
        return None
    if "SeriesInstanceUID" in ds and "Rows" in ds:
        return ds
    return None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _slice_of(path: str, ds: Any) -> _Slice:
    spacing = _floats(ds.get("PixelSpacing"), 2) or _floats(ds.get("ImagerPixelSpacing"), 2)
    return _Slice(
        path=path,
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=spacing,  # type: ignore[arg-type]
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        instance=_int_or_none(ds.get("InstanceNumber")),
        frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        samples=_int_or_none(ds.get("SamplesPerPixel")) or 1,
        slice_thickness=_float_or_none(ds.get("SliceThickness")),
        spacing_between=_float_or_none(ds.get("SpacingBetweenSlices")),
    )


@dataclass
class DicomScan:
    """What `scan_dicom_files` found: the series, files that are not images, unreadable files."""

    series: list[SeriesInfo]
    skipped: list[tuple[str, str]]  # (path, reason): not DICOM, or DICOM without an image
    unreadable: list[tuple[str, str]]  # (path, reason): named .dcm but not readable


def _folder_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise DicomSeriesError(f"DICOM folder not found: {folder}")
    return sorted(
        os.path.join(folder, n) for n in os.listdir(folder)
        if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))
    )


def scan_dicom_files(files: Sequence[str]) -> DicomScan:
    """Read the headers of `files`, group the images by SeriesInstanceUID and check each series.

    Files that are not DICOM are skipped (a `.dcm` file that cannot be parsed is listed
    as unreadable instead); DICOM files without an image (DICOMDIR, reports) are skipped.
    """
    groups: dict[str, list[tuple[_Slice, Any]]] = {}
    skipped: list[tuple[str, str]] = []
    unreadable: list[tuple[str, str]] = []
    for path in files:
        try:
            ds = _read_header(path)
        except Exception as exc:  # a header that parses halfway
            ds, why = None, f"{type(exc).__name__}: {exc}"
        else:
            why = "not a DICOM file"
        if ds is None:
            (unreadable if path.lower().endswith(".dcm") else skipped).append((path, why))
            continue
        if "Rows" not in ds or "Columns" not in ds:
            skipped.append((path, f"DICOM without an image ({_sop_class(ds)})"))
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "") or "(no SeriesInstanceUID)"
        groups.setdefault(uid, []).append((_slice_of(path, ds), ds))
    series = [_check_series(uid, members) for uid, members in groups.items()]
    series.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30,
                               s.files[0] if s.files else "", s.series_uid))
    return DicomScan(series, skipped, unreadable)


def _sop_class(ds: Any) -> str:
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(getattr(uid, "name", uid) or "unknown SOP class")


def list_series(folder: str) -> list[SeriesInfo]:
    """The image series whose files lie directly in `folder`, each checked (see `SeriesInfo.problems`).

    Args:
        folder: a folder of DICOM files (any file names; non-DICOM files are ignored).

    Returns:
        The series sorted by SeriesNumber, then file name; empty when the folder holds no
        DICOM image.
    """
    return scan_dicom_files(_folder_files(folder)).series


def is_dicom_folder(folder: str) -> bool:
    """True when `folder` directly holds at least one DICOM image file (reads headers until one is found)."""
    try:
        files = _folder_files(folder)
    except DicomSeriesError:
        return False
    for path in files:
        try:
            ds = _read_header(path)
        except Exception:
            continue
        if ds is not None and "Rows" in ds:
            return True
    return False


# --------------------------------------------------------------------------- checks
def _fmt_vec(v: Sequence[float]) -> str:
    return "[" + ", ".join(f"{x:g}" for x in np.round(np.asarray(v, dtype=float), 4) + 0.0) + "]"


def _names(slices: Sequence[_Slice], limit: int = 4) -> str:
    names = [os.path.basename(s.path) for s in slices]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _normal(orientation: Sequence[float]) -> np.ndarray:
    o = np.asarray(orientation, dtype=float)
    n = np.cross(o[:3], o[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def _orientation_problem(where: str, slices: Sequence[_Slice]) -> str | None:
    groups: list[tuple[tuple[float, ...], list[_Slice]]] = []
    for s in slices:
        assert s.orientation is not None
        for ori, members in groups:
            if np.max(np.abs(np.subtract(ori, s.orientation))) <= ORIENTATION_TOL:
                members.append(s)
                break
        else:
            groups.append((s.orientation, [s]))
    if len(groups) == 1:
        return None
    normals = [_normal(o) for o, _ in groups]
    orthogonal = all(abs(float(np.dot(a, b))) < 1e-3 for i, a in enumerate(normals) for b in normals[i + 1:])
    if orthogonal and len(groups) <= 3:
        listing = "; ".join(f"{_fmt_vec(o)} (files {_names(m)})" for o, m in groups)
        return (
            f"{where} mixes {len(groups)} slice orientations (a localizer?), refusing to stack them into "
            f"one volume: ImageOrientationPatient {listing}"
        )
    first = slices[0]
    other = next(s for s in slices if s.orientation is not None and s is not first
                 and np.max(np.abs(np.subtract(s.orientation, first.orientation))) > ORIENTATION_TOL)
    angle = np.degrees(np.arccos(np.clip(abs(float(np.dot(_normal(first.orientation), _normal(other.orientation)))),
                                         -1.0, 1.0)))
    return (
        f"{where} has non-parallel slices ({len(groups)} orientations): file {os.path.basename(other.path)} "
        f"(ImageOrientationPatient {_fmt_vec(other.orientation)}) is tilted {angle:.1f} degrees against file "
        f"{os.path.basename(first.path)} ({_fmt_vec(first.orientation)})"
    )


def _check_series(uid: str, members: list[tuple[_Slice, Any]]) -> SeriesInfo:
    slices = [s for s, _ in members]
    ds0 = members[0][1]
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(s.path)) for s in slices])
    where = f"DICOM series {uid} in {folder}"
    problems: list[str] = []
    # fall-back order until the geometry is known to be good
    slices.sort(key=lambda s: (s.instance if s.instance is not None else 1 << 30, s.path))

    def info(files: Sequence[_Slice], spacing: tuple[float, float, float] | None) -> SeriesInfo:
        f0 = files[0]
        return SeriesInfo(
            folder=folder, series_uid=uid, files=tuple(s.path for s in files),
            series_number=_int_or_none(ds0.get("SeriesNumber")),
            description=str(ds0.get("SeriesDescription", "") or ""), modality=str(ds0.get("Modality", "") or ""),
            size=(f0.columns, f0.rows, len(files)), spacing=spacing, problems=tuple(problems),
            _slices=tuple(files),
        )

    multi = [s for s in slices if s.frames > 1]
    if multi:
        problems.append(f"{where}: multi-frame (enhanced) DICOM is not supported: file {_names(multi)} "
                        f"has {multi[0].frames} frames")
    color = [s for s in slices if s.samples != 1]
    if color:
        problems.append(f"{where}: only grey-scale images are supported: file {_names(color)} has "
                        f"{color[0].samples} samples per pixel")
    sizes = {(s.rows, s.columns) for s in slices}
    if len(sizes) > 1:
        odd = [s for s in slices if (s.rows, s.columns) != (slices[0].rows, slices[0].columns)]
        problems.append(f"{where}: slices differ in size: file {_names(slices[:1])} is {slices[0].rows}x"
                        f"{slices[0].columns} (rows x columns) but file {_names(odd)} is {odd[0].rows}x{odd[0].columns}")
    no_geom = [s for s in slices if s.position is None or s.orientation is None]
    if no_geom:
        problems.append(f"{where}: no ImagePositionPatient / ImageOrientationPatient in file {_names(no_geom)}: "
                        f"cannot place the slices in space")
    no_spacing = [s for s in slices if s.pixel_spacing is None]
    if no_spacing:
        problems.append(f"{where}: no PixelSpacing in file {_names(no_spacing)}")
    if no_geom or no_spacing:
        return info(slices, None)
    ori_problem = _orientation_problem(where, slices)
    if ori_problem:
        problems.append(ori_problem)
        return info(slices, None)

    normal = _normal(slices[0].orientation)  # type: ignore[arg-type]
    slices.sort(key=lambda s: (float(np.dot(normal, s.position)), s.path))  # type: ignore[arg-type]
    pos = np.array([s.position for s in slices], dtype=float)
    dist = pos @ normal
    ps = slices[0].pixel_spacing
    assert ps is not None
    if len(slices) == 1:
        s0 = slices[0]
        dz = s0.spacing_between or s0.slice_thickness or 1.0
        return info(slices, (ps[1], ps[0], float(abs(dz))))

    offsets = pos - pos[0]
    inplane = offsets - np.outer(offsets @ normal, normal)
    shear = np.linalg.norm(inplane, axis=1)
    bad = int(np.argmax(shear))
    if shear[bad] > 1e-3 * max(1.0, float(np.abs(dist[bad] - dist[0]))) + 1e-3:
        problems.append(
            f"{where}: slice positions do not lie along the slice normal {_fmt_vec(normal)} (gantry tilt or "
            f"shear): file {os.path.basename(slices[bad].path)} is {shear[bad]:.3f} mm off the line through "
            f"file {os.path.basename(slices[0].path)}"
        )
    steps = np.diff(dist)
    dup = np.flatnonzero(steps <= SPACING_ABS_TOL)
    if dup.size:
        i = int(dup[0])
        problems.append(
            f"{where}: slices share a position ({dup.size} duplicate position(s); several echoes, phases or "
            f"repeated acquisitions?): files {os.path.basename(slices[i].path)} and "
            f"{os.path.basename(slices[i + 1].path)} both lie at {dist[i]:.3f} mm along the normal"
        )
        return info(slices, None)
    median = float(np.median(steps))
    tol = max(SPACING_ABS_TOL, SPACING_REL_TOL * median)
    off = np.flatnonzero(np.abs(steps - median) > tol)
    if off.size:
        parts = [
            f"{'gap' if steps[i] > median else 'step'} of {steps[i]:.3f} mm between slice {i} at {dist[i]:.3f} mm "
            f"(file {os.path.basename(slices[i].path)}) and slice {i + 1} at {dist[i + 1]:.3f} mm "
            f"(file {os.path.basename(slices[i + 1].path)})"
            for i in off[:3]
        ]
        more = f" and {off.size - 3} more" if off.size > 3 else ""
        problems.append(
            f"{where}: slice spacing is not uniform (slices are {median:.3f} mm apart elsewhere): "
            + "; ".join(parts) + more + "; refusing to stack them on one grid"
        )
    dz = float((dist[-1] - dist[0]) / (len(slices) - 1))
    return info(slices, (ps[1], ps[0], dz))


# --------------------------------------------------------------------------- reading
def _select(folder_or_files: str | os.PathLike | Sequence[str], series_uid: str | None) -> SeriesInfo:
    if isinstance(folder_or_files, (str, os.PathLike)):
        src = os.fspath(folder_or_files)
        if os.path.isdir(src):
            files, label = _folder_files(src), src
        elif os.path.isfile(src):
            files, label = [src], src
        else:
            raise DicomSeriesError(f"DICOM folder or file not found: {src}")
    else:
        files = [os.fspath(f) for f in folder_or_files]
        label = os.path.commonpath([os.path.abspath(f) for f in files]) if files else "(no files)"
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise DicomSeriesError(f"DICOM file not found: {', '.join(missing[:5])}")
    scan = scan_dicom_files(files)
    if scan.unreadable:
        listing = "; ".join(f"{p}: {why}" for p, why in scan.unreadable[:5])
        raise DicomSeriesError(f"unreadable DICOM file in {label}: {listing}")
    if not scan.series:
        raise DicomSeriesError(f"no DICOM image found in {label}")
    if series_uid is not None:
        chosen = [s for s in scan.series if s.series_uid == series_uid]
        if not chosen:
            raise DicomSeriesError(
                f"series {series_uid} not found in {label}; it holds {', '.join(s.series_uid for s in scan.series)}"
            )
        series = chosen[0]
    elif len(scan.series) > 1:
        listing = "; ".join(
            f"{s.series_uid} (#{s.series_number}, {s.description or s.modality or '?'}, {s.num_slices} files)"
            for s in scan.series
        )
        raise DicomSeriesError(
            f"{label} holds {len(scan.series)} DICOM series; pass series_uid to choose one: {listing}"
        )
    else:
        series = scan.series[0]
    series.raise_if_invalid()
    return series


def _rescaled_dtype(ds: Any, slope: float, intercept: float, stored: np.dtype) -> np.dtype:
    """The integer type of GDCM for integral rescales (from the stored bits' range), else float32."""
    if float(slope).is_integer() and float(intercept).is_integer():
        if slope == 1 and intercept == 0:
            return np.dtype(stored)
        bits = int(ds.get("BitsStored", stored.itemsize * 8) or stored.itemsize * 8)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        ends = sorted((lo * slope + intercept, hi * slope + intercept))
        for cand in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64):
            info = np.iinfo(cand)
            if info.min <= ends[0] and ends[1] <= info.max:
                return np.dtype(cand)
    return np.dtype(np.float32)


def _read_pixels(series: SeriesInfo) -> tuple[np.ndarray, dict[str, Any]]:
    """The (slices, rows, columns) array of the series, rescaled, and a little header metadata."""
    pydicom = _pydicom()
    planes: list[np.ndarray] = []
    rescales: list[tuple[float, float]] = []
    dtypes: list[np.dtype] = []
    first = None
    for path in series.files:
        ds = None
        try:
            ds = pydicom.dcmread(path, force=True)
            arr = np.asarray(ds.pixel_array)
        except Exception as exc:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            hint = f" (transfer syntax {syntax.name}: a decoder such as pylibjpeg or gdcm may be needed)" if syntax else ""
            raise DicomSeriesError(
                f"cannot read the pixels of DICOM file {path}: {type(exc).__name__}: {exc}{hint}"
            ) from exc
        if arr.shape != (series.size[1], series.size[0]):
            raise DicomSeriesError(f"DICOM file {path}: pixel array {arr.shape} does not match Rows x Columns "
                                   f"{series.size[1]}x{series.size[0]}")
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        planes.append(arr)
        rescales.append((slope, intercept))
        dtypes.append(_rescaled_dtype(ds, slope, intercept, arr.dtype))
        if first is None:
            first = ds
    out_dtype = np.result_type(*dtypes)
    vol = np.empty((len(planes), *planes[0].shape), dtype=out_dtype)
    for k, (arr, (slope, intercept)) in enumerate(zip(planes, rescales)):
        if slope == 1 and intercept == 0:
            vol[k] = arr
        elif out_dtype.kind == "f":
            vol[k] = arr.astype(np.float64) * slope + intercept
        else:
            vol[k] = arr.astype(np.int64) * int(slope) + int(intercept)
    assert first is not None
    meta = {tag: _plain(first.get(tag)) for tag in
            ("SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
             "Manufacturer", "RescaleSlope", "RescaleIntercept") if tag in first}
    meta["files"] = list(series.files)
    return vol, meta


def _plain(value: Any) -> Any:
    """A header value as a plain int, float or str (JSON-friendly)."""
    if value is None:
        return None
    text = str(value)
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _read(folder_or_files: str | os.PathLike | Sequence[str], series_uid: str | None) -> tuple[sitk.Image, dict]:
    import SimpleITK as sitk

    series = _select(folder_or_files, series_uid)
    vol, meta = _read_pixels(series)
    img = sitk.GetImageFromArray(vol)  # (slices, rows, columns) -> size (columns, rows, slices)
    s0 = series._slices[0]
    o = np.asarray(s0.orientation, dtype=float)
    row, col = o[:3] / np.linalg.norm(o[:3]), o[3:] / np.linalg.norm(o[3:])
    direction = np.stack([row, col, _normal(o)], axis=1)
    img.SetOrigin(tuple(float(v) for v in s0.position))  # type: ignore[union-attr]
    img.SetSpacing(tuple(float(v) for v in series.spacing))  # type: ignore[union-attr]
    img.SetDirection(tuple(float(v) for v in direction.ravel()))
    return img, meta


def read_dicom_series_sitk(
    folder_or_files: str | os.PathLike | Sequence[str], series_uid: str | None = None
) -> sitk.Image:
    """Read one DICOM series as a 3D `SimpleITK.Image` (LPS geometry as ITK's series reader gives).

    Args:
        folder_or_files: a folder holding the series' files, a list of files, or one file.
        series_uid: which series when the files hold several.

    Raises:
        DicomSeriesError: no image, several series without `series_uid`, or a series
            that is not one regular volume (mixed orientations, non-parallel slices, gaps,
            shared positions), naming the folder / files.
    """
    return _read(folder_or_files, series_uid)[0]


def read_dicom_series(
    folder_or_files: str | os.PathLike | Sequence[str], series_uid: str | None = None
) -> MedicalImage:
    """Read one DICOM series as a 3D `MedicalImage` (array in (i, j, k) order, geometry properties set).

    Same arguments and errors as `read_dicom_series_sitk`; the image also carries
    `ImageProperty.FILENAME` (the folder, or the first file), `FILE_FORMAT` ("dicom") and
    `DICOM_META` (series/study UIDs, modality, rescale and the sorted file list).
    """
    from ai4med.common.constants import ImageProperty
    from ai4med.io.itk import sitk_to_medical_image

    img, meta = _read(folder_or_files, series_uid)
    out = sitk_to_medical_image(img)
    if isinstance(folder_or_files, (str, os.PathLike)):
        filename = os.fspath(folder_or_files)
    else:
        filename = meta["files"][0]
    out.set_property(ImageProperty.FILENAME, filename)
    out.set_property(ImageProperty.FILE_FORMAT, "dicom")
    out.set_property(ImageProperty.DICOM_META, meta)
    return out
