"""The data converter's units of work: find the inputs, and convert one input (read -> resample -> write).

Everything here runs on `SimpleITK.Image`s end to end, so origin, direction and spacing
go from the reader to the writer untouched; only the resampler changes the grid, and it
keeps origin and direction (see `output_grid`).

A `ConvertTask` is one output file; `convert_one` never raises: it returns a
`TaskResult` saying converted / failed and why, so one bad input never stops the others
(and it is what a worker process sends back).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ai4med.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import SimpleITK as sitk

__all__ = [
    "SRC_EXTENSIONS",
    "DST_EXTENSIONS",
    "ConvertTask",
    "ConvertOptions",
    "TaskResult",
    "normalize_ext",
    "discover",
    "output_grid",
    "resample_to_spacing",
    "write_image_atomic",
    "convert_one",
]

SRC_EXTENSIONS = (".dcm", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")
DST_EXTENSIONS = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")

#: numpy dtype names accepted for an explicit output pixel type
_PIXEL_TYPES = {
    "uint8": "sitkUInt8", "int8": "sitkInt8", "uint16": "sitkUInt16", "int16": "sitkInt16",
    "uint32": "sitkUInt32", "int32": "sitkInt32", "uint64": "sitkUInt64", "int64": "sitkInt64",
    "float32": "sitkFloat32", "float64": "sitkFloat64",
}


@dataclass(frozen=True)
class ConvertTask:
    """One output to produce.

    Attributes:
        name: what the summary calls it (the input's path relative to the input folder).
        source: the input file, or the DICOM series folder.
        output: the output file.
        dicom_files: for a DICOM series, its files (the series is re-checked when read).
        series_uid: for a DICOM series, its SeriesInstanceUID.
        problem: set when discovery already knows this input cannot be converted.
    """

    name: str
    source: str
    output: str
    dicom_files: tuple[str, ...] = ()
    series_uid: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ConvertOptions:
    spacing: tuple[float, ...] | None = None
    label: bool = False
    force: bool = False
    pixel_type: str | None = None


@dataclass(frozen=True)
class TaskResult:
    name: str
    status: str  # "converted" | "failed" | "skipped"
    message: str = ""
    output: str | None = None
    seconds: float = 0.0


def normalize_ext(ext: str, allowed: Sequence[str], what: str) -> str:
    """".nii.gz" from "nii.gz" / ".NII.GZ"; a `UserError` listing `allowed` when unsupported."""
    e = ext.strip().lower()
    if e and not e.startswith("."):
        e = "." + e
    if e not in allowed:
        raise UserError(f"unsupported {what} extension {ext!r}; supported: {', '.join(allowed)}")
    return e


def _has_ext(name: str, ext: str) -> bool:
    low = name.lower()
    if not low.endswith(ext):
        return False
    return not (ext == ".nii" and low.endswith(".nii.gz"))


def _stem(name: str, ext: str) -> str:
    return name[: len(name) - len(ext)]


def _walk(input_dir: str, exclude: str | None):
    for root, dirs, files in os.walk(input_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (exclude is None or os.path.abspath(os.path.join(root, d)) != exclude))
        yield root, sorted(f for f in files if not f.startswith("."))


def discover(
    input_dir: str, output_dir: str, src_ext: str, dst_ext: str
) -> tuple[list[ConvertTask], list[TaskResult]]:
    """The tasks for every input under `input_dir`, and the results already known (skips, failures).

    * `src_ext` ".dcm": every folder (the input folder itself included) that directly holds
      DICOM image files is one input; file names do not matter (pydicom's test series have
      no extension). Its output is named after the folder, placed at the folder's relative
      location: `IN/p1/CT5N/*` -> `OUT/p1/CT5N.nii.gz`. A folder holding several series
      gives one output per series, `NAME_1`, `NAME_2` ... in SeriesNumber order.
    * other extensions: every file ending in `src_ext` (hidden files skipped), output
      `OUT/<relative folder>/<stem><dst_ext>`.

    The output folder is never searched when it lies inside the input folder.
    """
    input_dir = os.path.abspath(input_dir)
    output_dir = os.path.abspath(output_dir)
    exclude = output_dir if output_dir != input_dir else None
    tasks: list[ConvertTask] = []
    known: list[TaskResult] = []
    if src_ext == ".dcm":
        from ai4med.io.dicom import scan_dicom_files

        for root, files in _walk(input_dir, exclude):
            if not files:
                continue
            scan = scan_dicom_files([os.path.join(root, f) for f in files])
            rel = os.path.relpath(root, input_dir)
            base = os.path.basename(input_dir) if rel == "." else os.path.basename(root)
            out_folder = output_dir if rel == "." else os.path.join(output_dir, os.path.dirname(rel))
            label = os.path.basename(input_dir) if rel == "." else rel
            for path, why in scan.unreadable:
                known.append(TaskResult(os.path.relpath(path, input_dir), "failed", f"{path}: {why}"))
            if not scan.series:
                if scan.unreadable:
                    continue
                # a folder of only non-image files is not an input; say so when it looks like DICOM data
                dicom_like = [(p, w) for p, w in scan.skipped if w != "not a DICOM file"]
                if dicom_like:
                    why = dicom_like[0][1].replace("DICOM without an image ", "")
                    example = f"{os.path.basename(dicom_like[0][0])} {why}"
                    known.append(TaskResult(label, "skipped", f"no DICOM image series here ({len(dicom_like)} "
                                            f"DICOM file(s) without an image, e.g. {example})"))
                continue
            multi = len(scan.series) > 1
            for k, series in enumerate(scan.series, start=1):
                name = f"{base}_{k}" if multi else base
                tasks.append(ConvertTask(
                    name=f"{label} [series {series.series_uid}]" if multi else label,
                    source=root,
                    output=os.path.join(out_folder, name + dst_ext),
                    dicom_files=series.files,
                    series_uid=series.series_uid,
                    problem="; ".join(series.problems) or None,
                ))
    else:
        for root, files in _walk(input_dir, exclude):
            rel = os.path.relpath(root, input_dir)
            out_folder = output_dir if rel == "." else os.path.join(output_dir, rel)
            for f in files:
                if _has_ext(f, src_ext):
                    path = os.path.join(root, f)
                    tasks.append(ConvertTask(
                        name=os.path.relpath(path, input_dir), source=path,
                        output=os.path.join(out_folder, _stem(f, src_ext) + dst_ext),
                    ))
    # two inputs must never write the same output
    seen: dict[str, ConvertTask] = {}
    unique: list[ConvertTask] = []
    for t in tasks:
        key = os.path.normcase(t.output)
        if key in seen:
            known.append(TaskResult(t.name, "failed",
                                    f"output {t.output} would also be written by {seen[key].name}; rename one input"))
            continue
        seen[key] = t
        unique.append(t)
    return unique, known


# --------------------------------------------------------------------------- resampling
def _expand_spacing(spacing: Sequence[float], dim: int, where: str) -> tuple[float, ...]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) == 1:
        sp = sp * dim
    if len(sp) != dim:
        raise UserError(f"{where}: -r gives {len(sp)} spacings but the image has {dim} dimensions")
    if any(not math.isfinite(s) or s <= 0 for s in sp):
        raise UserError(f"{where}: spacings must be positive, got {sp}")
    return sp


def output_grid(img: sitk.Image, spacing: Sequence[float]) -> tuple[list[int], tuple[float, ...]]:
    """The resampled grid: same origin and direction, new spacing, size = round(size * spacing / new).

    Rounding is half up (`floor(x + 0.5)`), at least one voxel per axis.
    """
    sp = _expand_spacing(spacing, img.GetDimension(), "resampling")
    size = [max(1, int(math.floor(n * s / t + 0.5))) for n, s, t in zip(img.GetSize(), img.GetSpacing(), sp)]
    return size, sp


def resample_to_spacing(img: sitk.Image, spacing: Sequence[float], label: bool = False) -> sitk.Image:
    """Resample `img` onto `output_grid(img, spacing)`, keeping its pixel type.

    Linear interpolation (nearest neighbour for labels); points past the input's last
    voxel (the grid may reach up to half an output voxel beyond it) take the nearest
    edge value instead of 0, so a CT is not framed by a slab of 0 HU.

    Example:
        >>> import numpy as np, SimpleITK as sitk
        >>> img = sitk.GetImageFromArray(np.zeros((5, 16, 16), np.int16))
        >>> img.SetSpacing((0.5, 0.5, 2.5))
        >>> resample_to_spacing(img, [1.0]).GetSize()
        (8, 8, 13)
    """
    import SimpleITK as sitk

    size, sp = output_grid(img, spacing)
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(img, size, sitk.Transform(), interp, img.GetOrigin(), sp, img.GetDirection(),
                         0.0, img.GetPixelID(), True)


# --------------------------------------------------------------------------- writing
def write_image_atomic(img: sitk.Image, path: str) -> None:
    """Write `img` to `path` so that `path` appears only complete (see `write_sitk_atomic`)."""
    from ai4med.io.image_io import write_sitk_atomic

    write_sitk_atomic(img, path)


# --------------------------------------------------------------------------- one task
def _reason(exc: BaseException) -> str:
    """One line from an exception, prefixed with its type unless it is a UserError."""
    from ai4med.io.image_io import error_reason

    line = error_reason(exc, limit=400)
    return line if isinstance(exc, UserError) else f"{type(exc).__name__}: {line}"


def _read(task: ConvertTask) -> sitk.Image:
    import SimpleITK as sitk

    if task.dicom_files:
        from ai4med.io.dicom import read_dicom_series_sitk

        return read_dicom_series_sitk(list(task.dicom_files), task.series_uid)
    return sitk.ReadImage(task.source)


def _convert(task: ConvertTask, opts: ConvertOptions) -> str:
    import SimpleITK as sitk

    if task.problem:
        raise UserError(task.problem)
    if os.path.exists(task.output) and not opts.force:
        raise UserError(f"output exists: {task.output} (use -f to overwrite)")
    img = _read(task)
    dim = img.GetDimension()
    note = ""
    if opts.spacing is not None:
        if dim not in (2, 3):
            raise UserError(f"{task.source}: cannot resample a {dim}D image (only 2D and 3D)")
        if len(opts.spacing) == 3 and dim == 2:
            raise UserError(f"{task.source}: -r gives 3 spacings but the image is 2D")
        old = img.GetSpacing()
        img = resample_to_spacing(img, opts.spacing, opts.label)
        note = " resampled " + "x".join(f"{s:g}" for s in old) + " -> " + "x".join(f"{s:g}" for s in img.GetSpacing())
    if opts.pixel_type:
        img = sitk.Cast(img, getattr(sitk, _PIXEL_TYPES[opts.pixel_type]))
    write_image_atomic(img, task.output)
    return "size " + "x".join(str(s) for s in img.GetSize()) + note


def convert_one(task: ConvertTask, opts: ConvertOptions) -> TaskResult:
    """Convert one input; never raises (a failure comes back as a failed `TaskResult`)."""
    start = time.perf_counter()
    try:
        message = _convert(task, opts)
    except Exception as exc:
        return TaskResult(task.name, "failed", _reason(exc), None, time.perf_counter() - start)
    return TaskResult(task.name, "converted", message, task.output, time.perf_counter() - start)


def init_worker(threads: int) -> None:
    """Worker-process start-up: share the cores between workers (SimpleITK is multi-threaded)."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, threads))
