"""`WriteDicomSeg`: write a prediction on a DICOM series' grid as a DICOM Segmentation file.

The writer of inference / deploy configs for a PACS: the input must have been read from a
DICOM series by ai4med's loaders (`ai4med.io.dicom.read_dicom_series`; its image carries
`ImageProperty.DICOM_META` with the sorted source files and UIDs), and the prediction must be
back on that series' grid (after `RestoreOriginalShape` or any resampling back). See
`ai4med.io.dicom_seg` for the object written.

Example config entry (in `writers` / a post-transform list):
    {"name": "WriteDicomSeg", "args": {"field": "model", "labels": {"1": "liver", "2": "lesion"}}}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.io.dicom_seg import DicomSegError, build_segmentation, segment_specs, write_segmentation

__all__ = ["WriteDicomSeg", "dicom_source_files"]

logger = logging.getLogger(__name__)


def _stem(name: str) -> str:
    base = os.path.basename(os.path.normpath(name))
    for ext in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".dcm"):
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base or "output"


def dicom_source_files(image: MedicalImage | None, field: str = "image") -> list[str]:
    """The sorted source files of an image read from a DICOM series (its DICOM_META), else an error."""
    meta = image.get_property(ImageProperty.DICOM_META) if isinstance(image, MedicalImage) else None
    files = list((meta or {}).get("files") or [])
    if not files:
        fmt = image.get_property(ImageProperty.FILE_FORMAT) if isinstance(image, MedicalImage) else None
        raise DicomSegError(
            f"a DICOM SEG needs the source DICOM series: the {field!r} field was not read from a DICOM series "
            f"(file format {fmt or 'unknown'}, file {image.get_property(ImageProperty.FILENAME) if image else None})")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise DicomSegError(f"source DICOM file(s) of the {field!r} field are gone: {', '.join(missing[:3])}")
    return files


class WriteDicomSeg:
    """Writes `field` as `<write_path>/<input name>.seg.dcm`, a DICOM SEG referencing the input series.

    Args:
        field: the prediction field ("model"): a label map (i, j, k) / (1, i, j, k), or per-class
            probabilities (C, i, j, k) with `fractional` (C = segments, or segments + background).
        src_field: the input image field, read from a DICOM series ("image").
        labels: segment names: `{value: name}`, a list of names or a count (see `segment_specs`).
        output_channel_dict: the model's `{output: channels}`, used for names when `labels` is None.
            With neither, each label value found in a prediction is a segment `segment_<value>`
            (fractional: one per channel after the background).
        concepts: per-name coded concepts `{name: {"category": [...], "type": [...]}}`.
        fractional: write probabilities (FRACTIONAL SEG) instead of a BINARY one.
        write_path: output folder when `write` gets none. series_description / series_number /
        omit_empty_frames: passed to `build_segmentation`.
    """

    def __init__(self, field: str = "model", src_field: str = "image",
                 labels: Mapping[Any, str] | Sequence[str] | int | None = None,
                 output_channel_dict: Mapping[str, int] | None = None, concepts: Mapping[str, Any] | None = None,
                 fractional: bool = False, write_path: str | None = None,
                 series_description: str = "ai4med segmentation", series_number: int = 300,
                 omit_empty_frames: bool = False, applied_key: str | None = None) -> None:
        self.field = applied_key or field
        self.src_field = src_field
        # no names given: one segment per label value found in each prediction ("segment_<v>")
        self.concepts = concepts
        self.segments = None if labels is None and not output_channel_dict else segment_specs(
            labels, concepts, output_channel_dict)
        self.fractional = bool(fractional)
        self.write_path = write_path
        self.series_description, self.series_number = series_description, int(series_number)
        self.omit_empty_frames = bool(omit_empty_frames)

    def output_path(self, write_path: str, name: str) -> str:
        return os.path.join(write_path, _stem(name) + ".seg.dcm")

    def _array(self, value: Any, src: MedicalImage) -> np.ndarray:
        data = value.get_data() if isinstance(value, MedicalImage) else np.asarray(value)
        sf = value.get_shape_format() if isinstance(value, MedicalImage) else None
        if sf is not None and sf.has_batch():
            if data.shape[0] != 1:
                raise DicomSegError(f"field {self.field!r}: a batch of {data.shape[0]} predictions; write one at a time")
            data = data[0]
        if self.fractional:
            n = len(self.segments) if self.segments is not None else data.shape[0] - 1
            if data.ndim != 4:
                raise DicomSegError(f"field {self.field!r}: a fractional SEG needs (channels, i, j, k) "
                                    f"probabilities, got shape {data.shape}")
            if data.shape[0] == n + 1:  # softmax with background first
                data = data[1:]
            return data
        if data.ndim == 4:
            if data.shape[0] != 1:
                raise DicomSegError(f"field {self.field!r}: {data.shape[0]} channels; a binary SEG needs one label "
                                    "map (add ArgmaxAcrossChannels) or set fractional")
            data = data[0]
        return data

    def write(self, transform_ctx: TransformContext, write_path: str | None = None) -> str:
        """Write the SEG of one case; returns the file written."""
        src = transform_ctx.get(self.src_field)
        src = src if isinstance(src, MedicalImage) else None
        files = dicom_source_files(src, self.src_field)
        value = transform_ctx[self.field]
        affine = value.get_property(ImageProperty.AFFINE) if isinstance(value, MedicalImage) else None
        assert src is not None
        src_affine = src.get_property(ImageProperty.ORIGINAL_AFFINE)
        if src_affine is None:
            src_affine = src.get_property(ImageProperty.AFFINE)
        if affine is not None and src_affine is not None and not np.allclose(affine, src_affine, atol=1e-3):
            raise DicomSegError(f"field {self.field!r} is not on the grid of its DICOM series (affine differs from "
                                f"the input's); restore the original shape / spacing before WriteDicomSeg")
        data = self._array(value, src)
        segments = self.segments
        if segments is None:
            if self.fractional:
                count = data.shape[0]
            else:
                found = sorted(int(v) for v in np.unique(data) if v != 0)
                count = {v: f"segment_{v}" for v in found} if found else 1
            segments = segment_specs(count, self.concepts)
        seg = build_segmentation(
            data, files, segments, fractional=self.fractional, series_description=self.series_description,
            series_number=self.series_number, omit_empty_frames=self.omit_empty_frames)
        name = src.get_property(ImageProperty.FILENAME) or files[0]
        folder = write_path or self.write_path or os.getcwd()
        path = write_segmentation(seg, self.output_path(folder, str(name)))
        meta = src.get_property(ImageProperty.DICOM_META) or {}
        logger.info("wrote DICOM SEG %s for series %s (study %s)", path, meta.get("SeriesInstanceUID"),
                    meta.get("StudyInstanceUID"))
        return path

    def __call__(self, transform_ctx: TransformContext, write_path: str | None = None) -> TransformContext:
        self.write(transform_ctx, write_path)
        return transform_ctx
