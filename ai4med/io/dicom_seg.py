"""DICOM Segmentation (SEG) objects from a label map on a DICOM series' grid (highdicom).

A PACS stores results as DICOM, not NIfTI: `build_segmentation` turns a prediction on the
voxel grid of a series read by `ai4med.io.dicom.read_dicom_series` (array order (i, j, k) =
(column, row, slice along the slice normal)) into a `highdicom.seg.Segmentation` that
references the source instances (frame of reference, one source image per frame) and carries
one segment per label, named from the model's `labels` (or `output_channel_dict`).

* binary: an integer label map (i, j, k); label value v becomes a segment (0 is background).
* fractional: a (segments, i, j, k) float array of probabilities in [0, 1] (PROBABILITY, 8 bit).

Segment codes (category / type) default to SNOMED CT "Tissue"; a label whose name is a known
SNOMED concept of pydicom's code dictionary (liver, spleen, kidney, brain, "gray matter", ...)
gets that concept as type and "Anatomical Structure" as category. `concepts` overrides them per
name: `{"liver": {"category": ["SCT", "91723000", "Anatomical Structure"],
"type": ["SCT", "10200004", "Liver"]}}`.

Example:
    >>> specs = segment_specs({"0": "background", "1": "liver", "2": "lesion", "3": "zone_a"})
    >>> [(s.value, s.name, s.category.meaning, s.type.meaning) for s in specs]  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'liver', 'Anatomical Structure', 'Liver'), (2, 'lesion', 'Anatomical Structure', 'Lesion'),
     (3, 'zone_a', 'Tissue', 'Tissue')]
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ai4med.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import highdicom as hd
    import pydicom

__all__ = [
    "DicomSegError", "SegmentSpec", "segment_specs", "sort_source_datasets", "build_segmentation",
    "write_segmentation", "read_segmentation", "SEG_SOP_CLASS_UID",
]

logger = logging.getLogger(__name__)

SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
_DEFAULT_CATEGORY = ("SCT", "85756007", "Tissue")
_ANATOMY_CATEGORY = ("SCT", "91723000", "Anatomical Structure")
_BACKGROUND = {"background", "bg", "bkg", "_background_"}


class DicomSegError(UserError):
    """A label map, source series or segment description that cannot make a DICOM SEG; says which."""


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: the label value in the map, its name and its SNOMED (or other) codes."""

    value: int
    name: str
    category: Any  # highdicom CodedConcept
    type: Any


def _concept(value: Any, where: str) -> Any:
    from highdicom.sr.coding import CodedConcept
    from pydicom.sr.coding import Code

    if isinstance(value, (CodedConcept, Code)):
        return CodedConcept(value.value, value.scheme_designator, value.meaning)
    if isinstance(value, Mapping):
        keys = {k.lower(): v for k, v in value.items()}
        try:
            value = (keys["scheme"], keys["value"], keys["meaning"])
        except KeyError as exc:
            raise DicomSegError(f"{where}: a coded concept needs scheme, value, meaning; got {dict(value)!r}") from exc
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (str, int)) for v in value):
        scheme, code, meaning = (str(v) for v in value)
        return CodedConcept(code, scheme, meaning)
    raise DicomSegError(f"{where}: expected [scheme, value, meaning] (e.g. [\"SCT\", \"10200004\", \"Liver\"]), "
                        f"got {value!r}")


def _known_type(name: str) -> Any | None:
    """The SNOMED concept pydicom knows by this name ("gray_matter" -> GrayMatter), else None."""
    from pydicom.sr.codedict import codes

    words = re.split(r"[\s_\-]+", name.strip().replace("grey", "gray").replace("Grey", "Gray"))
    key = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not key:
        return None
    try:
        return getattr(codes.SCT, key)
    except AttributeError:
        return None


def segment_specs(
    labels: Mapping[Any, str] | Sequence[str] | int | None = None,
    concepts: Mapping[str, Any] | None = None,
    output_channel_dict: Mapping[str, int] | None = None,
) -> list[SegmentSpec]:
    """The segments of a model, from its `labels` (or `output_channel_dict`), background left out.

    Args:
        labels: `{value: name}` (datalist style, "0": "background"), a list of names (value = index
            when the list starts with a background name, else index + 1), or a count of foreground labels.
        concepts: per-name overrides `{name: {"category": [scheme, value, meaning], "type": [...]}}`.
        output_channel_dict: used when `labels` is None: `{output: channels}`; a one-output model with
            n channels has labels 1..n-1 (softmax) named `<output>_<k>`.
    """
    pairs: list[tuple[int, str]]
    if labels is None:
        if not output_channel_dict:
            raise DicomSegError("no segment names: the model has neither labels nor output_channel_dict")
        if len(output_channel_dict) != 1:
            raise DicomSegError(f"output_channel_dict {dict(output_channel_dict)!r}: one output expected to name "
                                "the segments; set labels in the model config")
        (out, n), = output_channel_dict.items()
        pairs = [(k, f"{out}_{k}") for k in range(1, max(int(n), 2))]
    elif isinstance(labels, bool):
        raise DicomSegError(f"labels must be a mapping, a list or a count, got {labels!r}")
    elif isinstance(labels, int):
        pairs = [(k, f"segment_{k}") for k in range(1, int(labels) + 1)]
    elif isinstance(labels, Mapping):
        pairs = []
        for key, name in labels.items():
            try:
                pairs.append((int(key), str(name)))
            except (TypeError, ValueError) as exc:
                raise DicomSegError(f"labels: key {key!r} is not an integer label value") from exc
    else:
        names = [str(n) for n in labels]
        start = 0 if names and names[0].lower() in _BACKGROUND else 1
        pairs = [(i + start, n) for i, n in enumerate(names)]
    concepts = {str(k).lower(): v for k, v in (concepts or {}).items()}
    out: list[SegmentSpec] = []
    for value, name in sorted(pairs):
        if value == 0 or name.lower() in _BACKGROUND:
            continue
        if value < 0:
            raise DicomSegError(f"labels: label value {value} ({name!r}) is negative")
        override = concepts.get(name.lower(), {})
        if not isinstance(override, Mapping):
            raise DicomSegError(f"concepts[{name!r}] must be a mapping with category / type, got {override!r}")
        known = _known_type(name)
        cat_default = _ANATOMY_CATEGORY if known is not None else _DEFAULT_CATEGORY
        category = _concept(override.get("category", cat_default), f"concepts[{name!r}].category")
        typ = _concept(override.get("type", known if known is not None else cat_default), f"concepts[{name!r}].type")
        out.append(SegmentSpec(value, name, category, typ))
    if not out:
        raise DicomSegError(f"labels {labels!r}: no foreground label to make a segment of")
    return out


# --------------------------------------------------------------------------- sources
def _normal(ds: Any) -> np.ndarray:
    o = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    return np.cross(o[:3], o[3:])


def sort_source_datasets(datasets: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The slices in the k order of `read_dicom_series` (position along the slice normal)."""
    if not datasets:
        raise DicomSegError("no source DICOM instances to reference")
    for ds in datasets:
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "FrameOfReferenceUID", "SOPInstanceUID"):
            if tag not in ds:
                raise DicomSegError(f"source instance {ds.get('SOPInstanceUID', '?')}: no {tag}; a SEG needs it")
    n = _normal(datasets[0])
    return sorted(datasets, key=lambda d: float(np.dot(n, [float(v) for v in d.ImagePositionPatient])))


def _read_sources(files: Sequence[str]) -> list[pydicom.Dataset]:
    import pydicom

    return [pydicom.dcmread(f) for f in files]


# --------------------------------------------------------------------------- build
def build_segmentation(
    label_map: np.ndarray,
    source: Sequence[pydicom.Dataset] | Sequence[str],
    segments: Sequence[SegmentSpec],
    *,
    fractional: bool = False,
    series_description: str = "ai4med segmentation",
    series_number: int = 300,
    algorithm_name: str = "ai4med",
    algorithm_version: str | None = None,
    manufacturer: str = "ai4med",
    omit_empty_frames: bool = False,
) -> hd.seg.Segmentation:
    """A DICOM SEG of `label_map` referencing the `source` series (datasets or file paths).

    Args:
        label_map: binary: integer (i, j, k) label values on the series' grid (i = column, j = row,
            k = slice along the normal, as `read_dicom_series` returns); fractional: (segments, i, j, k)
            probabilities in [0, 1], one channel per entry of `segments`.
        source: the series' instances (any order; sorted along the normal here).
        segments: from `segment_specs`; a label value absent from it is an error (never dropped silently).
        fractional: write a FRACTIONAL (probability) SEG instead of BINARY.
        omit_empty_frames: leave out frames without any segment (smaller; some viewers need all frames).
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    import ai4med

    datasets = _read_sources(source) if source and isinstance(source[0], (str, os.PathLike)) else list(source)
    datasets = sort_source_datasets(datasets)  # type: ignore[arg-type]
    arr = np.asarray(label_map)
    if not segments:
        raise DicomSegError("no segments to write")
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    grid = (cols, rows, len(datasets))
    spatial = arr.shape[1:] if fractional else arr.shape
    if fractional and arr.ndim != 4:
        raise DicomSegError(f"a fractional SEG needs a (segments, i, j, k) array, got shape {arr.shape}")
    if not fractional and arr.ndim != 3:
        raise DicomSegError(f"a binary SEG needs an (i, j, k) label map, got shape {arr.shape}")
    if tuple(spatial) != grid:
        raise DicomSegError(
            f"the label map's grid {tuple(spatial)} is not the source series' grid {grid} (columns, rows, slices) of "
            f"series {datasets[0].get('SeriesInstanceUID', '?')}; resample the prediction to the input first")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=s.name[:64], segmented_property_category=s.category,
            segmented_property_type=s.type, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name=algorithm_name, version=algorithm_version or ai4med.__version__,
                family=hd.sr.CodedConcept("123109", "DCM", "Artificial Intelligence")),
            tracking_uid=generate_uid(), tracking_id=f"{s.name[:58]}#{s.value}",
        )
        for i, s in enumerate(segments)
    ]
    if fractional:
        if arr.shape[0] != len(segments):
            raise DicomSegError(f"fractional map has {arr.shape[0]} channels but {len(segments)} segments")
        data = arr.astype(np.float32)
        if not np.isfinite(data).all() or data.min() < 0 or data.max() > 1:
            raise DicomSegError(f"fractional values must be probabilities in [0, 1]; got [{np.nanmin(data):g}, "
                                f"{np.nanmax(data):g}]")
        pixels = np.ascontiguousarray(data.transpose(3, 2, 1, 0))  # (frames, rows, columns, segments)
        seg_type = hd.seg.SegmentationTypeValues.FRACTIONAL
    else:
        if arr.dtype.kind == "f":
            if not np.array_equal(arr, np.round(arr)):
                raise DicomSegError("a binary SEG needs integer label values; got fractional values (pass "
                                    "fractional=True with per-segment probabilities)")
        values = {int(v) for v in np.unique(arr)} - {0}
        known = {s.value for s in segments}
        unknown = sorted(values - known)
        if unknown:
            raise DicomSegError(f"label value(s) {unknown} in the prediction have no segment (segments: "
                                f"{', '.join(f'{s.value}={s.name}' for s in segments)}); add them to labels")
        lut = np.zeros(max(known | values | {0}) + 1, np.uint8)
        for i, s in enumerate(segments):
            lut[s.value] = i + 1
        pixels = np.ascontiguousarray(lut[arr.astype(np.int64)].transpose(2, 1, 0))  # (frames, rows, columns)
        seg_type = hd.seg.SegmentationTypeValues.BINARY
        if len(segments) == 1:
            pixels = pixels.astype(bool)
    src0 = datasets[0]
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=pixels, segmentation_type=seg_type,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=int(series_number),
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=manufacturer,
        manufacturer_model_name=algorithm_name[:64], software_versions=ai4med.__version__,
        device_serial_number="0", series_description=series_description[:64],
        content_label="AI4MED_SEG", content_description=series_description[:64],
        omit_empty_frames=omit_empty_frames,
    )
    logger.info("DICOM SEG of series %s: %d segment(s), %s, %d frame(s)", src0.get("SeriesInstanceUID", "?"),
                len(segments), seg_type.value, int(seg.NumberOfFrames))
    return seg


def write_segmentation(seg: pydicom.Dataset, path: str) -> str:
    """Write a SEG (or any dataset) to `path` atomically (DICOM file format); returns the absolute path."""
    from ai4med.io.atomic import atomic_path

    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return path


def read_segmentation(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A SEG file back as (label map, voxel -> LPS affine, segment labels), in highdicom's volume order.

    The label map is (slices, rows, columns) with value = segment number (segments combined) for
    BINARY, or (slices, rows, columns, segments) probabilities for FRACTIONAL; the affine maps those
    indices to patient (LPS) millimetres. A BINARY SEG written by ai4med gives the original label
    values back (segment numbers must be 1..n, so labels {1, 3} are stored as segments 1, 2).
    """
    import highdicom as hd

    seg = hd.seg.segread(path)
    fractional = seg.SegmentationType == "FRACTIONAL"
    vol = seg.get_volume(combine_segments=not fractional, skip_overlap_checks=False)
    numbers = list(seg.get_segment_numbers())
    descriptions = [seg.get_segment_description(n) for n in numbers]
    names = [str(d.segment_label) for d in descriptions]
    arr = np.asarray(vol.array)
    if not fractional:
        # segment numbers are 1..n by the standard; ai4med's tracking IDs ("name#value") keep the label values
        values = [_tracked_value(d) for d in descriptions]
        if all(v is not None for v in values) and values != numbers:
            lut = np.zeros(max(numbers) + 1, dtype=np.int64)
            lut[numbers] = values
            arr = lut[arr].astype(np.min_scalar_type(max(values)))
    return arr, np.asarray(vol.affine, dtype=np.float64), names


def _tracked_value(description: Any) -> int | None:
    tid = str(getattr(description, "tracking_id", None) or "")
    head, sep, tail = tid.rpartition("#")
    return int(tail) if sep and tail.isdigit() else None
