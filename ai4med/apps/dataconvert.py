"""`ai4med dataconvert` (alias `tlt-dataconvert`): convert and resample DICOM / NIfTI / MetaImage data.

Seed 004 §5.4: every DICOM series (one per subfolder) or every file with the source
extension under `-d` becomes one output under `-o`, named after the input (series folder
name or file stem) with the destination extension, optionally resampled to `-r`
millimetres (one value: isotropic; three: x y z). Without `-r` the grid is kept.

* images are resampled linearly, labels (`-l`) with nearest neighbour; the pixel type is
  kept (labels stay integer, CT stays int16/int32 ...); origin and direction are kept,
  size = round(size * spacing / new spacing) (see `ai4med.apps._convert_jobs.output_grid`);
* an existing output is a failure naming it unless `-f`;
* each input is converted on its own (in `-j` worker processes when > 1): a failure is
  reported in the summary and never stops the others; outputs are written to a temporary
  name, checked (size / gzip read-back, fsync) and renamed, so no half-written file ever
  carries the final name, even on a full disk where the writer fails silently;
* temporaries a killed earlier run left in `-o` (`.tmp-*`, older than this run) are removed
  at the start;
* the exit code is 1 when any input failed, 0 otherwise;
* `--datalist PATH` writes (or updates) a Decathlon-style datalist of the outputs, see
  `update_datalist`.

Example:
    >>> import os, tempfile, pydicom.data
    >>> tests = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "dicomdirtests")
    >>> out = tempfile.mkdtemp()
    >>> summary = convert(os.path.join(tests, "98892001"), out, ".dcm", ".nii.gz", resolution=[1.0],
    ...                   progress=False)
    >>> sorted(os.listdir(out)), summary.exit_code   # CT2N is a two-orientation localizer: refused
    (['CT5N.nii.gz'], 1)
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, TextIO

from ai4med.apps._convert_jobs import (
    _PIXEL_TYPES,
    DST_EXTENSIONS,
    SRC_EXTENSIONS,
    ConvertOptions,
    ConvertTask,
    TaskResult,
    convert_one,
    discover,
    init_worker,
    normalize_ext,
)
from ai4med.errors import UserError

__all__ = ["run", "convert", "ConvertSummary", "update_datalist"]

logger = logging.getLogger(__name__)


@dataclass
class ConvertSummary:
    """What a conversion did: one `TaskResult` per input, in input order."""

    results: list[TaskResult] = field(default_factory=list)
    seconds: float = 0.0
    output_dir: str = ""

    def by_status(self, status: str) -> list[TaskResult]:
        return [r for r in self.results if r.status == status]

    @property
    def converted(self) -> list[TaskResult]:
        return self.by_status("converted")

    @property
    def failed(self) -> list[TaskResult]:
        return self.by_status("failed")

    @property
    def skipped(self) -> list[TaskResult]:
        return self.by_status("skipped")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def format(self) -> str:
        lines = [
            f"dataconvert: {len(self.converted)} converted, {len(self.skipped)} skipped, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s -> {self.output_dir}"
        ]
        for title, items in (("skipped", self.skipped), ("failed", self.failed)):
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {r.name}: {r.message}" for r in items)
        return "\n".join(lines)


def _resolution(values: Sequence[float] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    vals = tuple(float(v) for v in values)
    if len(vals) not in (1, 3):
        raise UserError(f"-r takes one value (isotropic) or three (x y z), got {len(vals)}: {list(vals)}")
    if any(not v > 0 for v in vals):
        raise UserError(f"-r values must be positive millimetres, got {list(vals)}")
    return vals


def _check_dirs(input_dir: str, output_dir: str, src_ext: str, dst_ext: str) -> None:
    if not os.path.isdir(input_dir):
        what = "is not a folder" if os.path.exists(input_dir) else "does not exist"
        raise UserError(f"input folder {input_dir} {what}")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UserError(f"output path {output_dir} exists and is not a folder")
    if src_ext == dst_ext and os.path.realpath(input_dir) == os.path.realpath(output_dir):
        raise UserError(f"input and output folder are both {input_dir} with the same extension {src_ext}: "
                        "the outputs would replace the inputs; choose another output folder")


def _run_tasks(tasks: list[ConvertTask], opts: ConvertOptions, jobs: int, progress: bool) -> list[TaskResult]:
    from tqdm import tqdm

    results: dict[int, TaskResult] = {}
    bar = tqdm(total=len(tasks), unit="image", desc="dataconvert", disable=not progress, file=sys.stderr)
    try:
        if jobs <= 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                results[i] = convert_one(task, opts)
                bar.update(1)
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            # spawn: a fork of a process whose ITK thread pool already ran can deadlock
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker,
                                     initargs=(threads,)) as pool:
                futures = {pool.submit(convert_one, task, opts): i for i, task in enumerate(tasks)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:  # the worker died (killed, out of memory): this input failed
                        results[i] = TaskResult(tasks[i].name, "failed",
                                                f"worker process failed: {type(exc).__name__}: {exc}")
                    bar.update(1)
    finally:
        bar.close()
    return [results[i] for i in range(len(tasks)) if i in results]


def convert(
    input_dir: str,
    output_dir: str,
    src_ext: str,
    dst_ext: str,
    resolution: Sequence[float] | None = None,
    label: bool = False,
    force: bool = False,
    jobs: int = 1,
    datalist: str | None = None,
    pixel_type: str | None = None,
    progress: bool | None = None,
) -> ConvertSummary:
    """Convert every input under `input_dir` into `output_dir` (the API behind the command).

    Args:
        input_dir: folder of DICOM series folders (`src_ext` ".dcm") or of image files.
        output_dir: where the outputs go (created), mirroring the input's subfolders.
        src_ext: ".dcm", ".nii", ".nii.gz", ".mha", ".mhd" or ".nrrd" (the dot is optional).
        dst_ext: ".nii", ".nii.gz", ".mha", ".mhd" or ".nrrd".
        resolution: output spacing in mm, one value (isotropic) or three; None keeps the grid.
        label: label mode: nearest-neighbour resampling.
        force: overwrite existing outputs (otherwise each is a failure naming it).
        jobs: worker processes (1: convert in this process).
        datalist: also write / update this datalist JSON (see `update_datalist`).
        pixel_type: cast the outputs to this numpy type name ("float32", "int16" ...);
            None keeps the input's pixel type.
        progress: show a progress bar (default: when stderr is a terminal).

    Raises:
        UserError: the input folder is missing or holds no input, or an argument is invalid.
    """
    start = time.perf_counter()
    src = normalize_ext(src_ext, SRC_EXTENSIONS, "source (-s)")
    dst = normalize_ext(dst_ext, DST_EXTENSIONS, "destination (-e)")
    spacing = _resolution(resolution)
    if pixel_type is not None and pixel_type not in _PIXEL_TYPES:
        raise UserError(f"unsupported pixel type {pixel_type!r}; supported: {', '.join(_PIXEL_TYPES)}")
    if jobs < 1:
        raise UserError(f"-j must be at least 1, got {jobs}")
    input_dir, output_dir = os.path.abspath(input_dir), os.path.abspath(output_dir)
    _check_dirs(input_dir, output_dir, src, dst)
    tasks, known = discover(input_dir, output_dir, src, dst)
    if not tasks and not known:
        what = "DICOM series (folders of DICOM image files)" if src == ".dcm" else f"files ending in {src}"
        raise UserError(f"no {what} found in {input_dir}")
    os.makedirs(output_dir, exist_ok=True)
    from ai4med.io.atomic import remove_stale_temporaries

    remove_stale_temporaries(output_dir, recursive=True)  # what a killed earlier run left
    opts = ConvertOptions(spacing=spacing, label=label, force=force, pixel_type=pixel_type)
    logger.info("dataconvert: %d input(s) from %s to %s (%s -> %s%s%s), %d worker(s)", len(tasks), input_dir,
                output_dir, src, dst, f", spacing {list(spacing)}" if spacing else "", ", labels" if label else "",
                jobs)
    if progress is None:
        progress = sys.stderr.isatty()
    results = known + _run_tasks(tasks, opts, jobs, progress)
    for r in results:
        if r.status == "converted":
            logger.debug("%s -> %s (%s, %.2f s)", r.name, r.output, r.message, r.seconds)
        else:
            logger.debug("%s %s: %s", r.name, r.status, r.message)
    summary = ConvertSummary(results, time.perf_counter() - start, output_dir)
    if datalist:
        outputs = [r.output for r in summary.converted if r.output]
        update_datalist(datalist, outputs, label=label, dst_ext=dst)
        logger.info("datalist %s: %d %s(s) recorded", datalist, len(outputs), "label" if label else "image")
    return summary


def _entry_name(path: str, ext: str) -> str:
    base = os.path.basename(path)
    return base[: -len(ext)] if base.lower().endswith(ext) else os.path.splitext(base)[0]


def update_datalist(path: str, outputs: Sequence[str], label: bool = False, dst_ext: str = ".nii.gz",
                    key: str = "training") -> dict[str, Any]:
    """Write or update a Decathlon-style datalist with converted outputs.

    Entries are `{"image": ..., "label": ...}` under `key` ("training"), paths relative to
    the datalist's folder, sorted by name. Images and labels are paired by name (the
    output's file name without extension): convert the images with `--datalist X`, then
    the labels with `-l --datalist X`, and each entry gets its label. A label without an
    image of the same name gets an entry of its own (with only "label"), so nothing
    converted is lost; other keys of an existing datalist are kept.

    Returns:
        The datalist written.
    """
    from ai4med.io.atomic import atomic_write_text

    path = os.path.abspath(path)
    root = os.path.dirname(path)
    data: dict[str, Any] = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot update datalist {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise UserError(f"cannot update datalist {path}: it is not a JSON object")
    entries = data.get(key) or []
    if not isinstance(entries, list):
        raise UserError(f"cannot update datalist {path}: {key!r} is not a list")

    def name_of(entry: dict[str, Any]) -> str:
        ref = entry.get("image") or entry.get("label") or ""
        return _entry_name(str(ref), dst_ext)

    by_name = {name_of(e): e for e in entries if isinstance(e, dict)}
    field_name = "label" if label else "image"
    for out in outputs:
        rel = os.path.relpath(out, root).replace(os.sep, "/")
        by_name.setdefault(_entry_name(out, dst_ext), {})[field_name] = rel
    data[key] = [dict(sorted(by_name[n].items(), key=lambda kv: kv[0] != "image")) for n in sorted(by_name)]
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return data


def run(args: Any, stream: TextIO | None = None) -> int:
    """The command: parse-level arguments in, summary printed, exit code out (1 if any input failed)."""
    summary = convert(
        args.input_dir,
        args.output_dir,
        args.src_ext,
        args.dst_ext,
        resolution=args.resolution,
        label=bool(args.label),
        force=bool(args.force),
        jobs=int(getattr(args, "jobs", 1) or 1),
        datalist=getattr(args, "datalist", None),
        pixel_type=getattr(args, "pixel_type", None),
    )
    print(summary.format(), file=stream or sys.stdout)
    return summary.exit_code
