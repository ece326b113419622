"""Writers of predictions: the one place where a case's output files are named and written.

* `PredictionWriter`: `<out>/<case>/<case>_<field><ext>` (Clara's eval/ layout; `ai4med infer`);
* `MhdWriter`: `<out>/<input name>.mhd` + `.raw` (seed 003's deploy app);
* `PublishWriter`: the render server's `image.mhd`, `image.seg.mhd` and `config_render.json`.

Each writes a field with its own geometry (its AFFINE; else the image field's), squeezes a single
channel, and writes atomically. Names come from `ai4med.io.names.image_stem`.

Example:
    >>> import os, tempfile
    >>> from ai4med.common.constants import ImageProperty
    >>> img = MedicalImage(np.zeros((1, 4, 4, 4), np.float32), "CDHW")
    >>> img.set_property(ImageProperty.FILENAME, "/input/case 1.nii.gz")
    >>> ctx = TransformContext({"image": img, "model": img.new_image(np.ones((1, 4, 4, 4), np.uint8))})
    >>> os.path.basename(MhdWriter().write(ctx, tempfile.mkdtemp()))
    'case 1.mhd'
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.io.names import image_stem

__all__ = ["PredictionWriter", "MhdWriter", "PublishWriter", "source_filename"]


def source_filename(ctx: TransformContext, field: str) -> str | None:
    """The file (first file of a multi-file field) a field was read from, else None."""
    value = ctx.get(field)
    name = value.get_property(ImageProperty.FILENAME) if isinstance(value, MedicalImage) else value
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) else None


class PredictionWriter:
    """Writes a field to `<write_path>/<case>/<case>_<field><ext>` with its image geometry.

    A single-channel image is written as a 3D (2D) volume; the AFFINE is the field's own
    (after `RestoreOriginalShape`: the input file's), else `src_field`'s. Atomic.

    Args:
        field: the field to write ("model"). dtype: on-disk type ("uint8"; None keeps it).
        ext: ".nii.gz", ".nii", ".mha", ... src_field: image field for the name and geometry.
    """

    def __init__(self, field: str = "model", dtype: str | None = "uint8", ext: str = ".nii.gz",
                 src_field: str = "image") -> None:
        self.field = field
        self.dtype = dtype
        self.ext = ext if ext.startswith(".") else "." + ext
        self.src_field = src_field

    def output_path(self, write_path: str, name: str) -> str:
        stem = image_stem(name)
        return os.path.join(write_path, stem, f"{stem}_{self.field}{self.ext}")

    def write(self, transform_ctx: TransformContext, write_path: str | None = None) -> str:
        from ai4med.io.image_io import write_image

        value = transform_ctx[self.field]
        src = transform_ctx.get(self.src_field)
        src = src if isinstance(src, MedicalImage) else None
        if not isinstance(value, MedicalImage):
            from ai4med.components.transforms.channels import _wrap_like

            value = _wrap_like(np.asarray(value), src.get_shape_format()) if src is not None else MedicalImage(
                np.asarray(value), {2: "HW", 3: "DHW", 4: "CDHW"}[np.asarray(value).ndim])
        sf = value.get_shape_format()
        if sf.has_channel() and value.shape[sf.get_channel_axis()] == 1:
            value = value.new_image(np.squeeze(value.get_data(), sf.get_channel_axis()), sf.without_channel())
        affine = value.get_property(ImageProperty.AFFINE)
        if affine is None and src is not None:
            affine = src.get_property(ImageProperty.AFFINE)
        filename = value.get_property(ImageProperty.FILENAME) or (
            src.get_property(ImageProperty.FILENAME) if src is not None else None) or "output"
        if isinstance(filename, (list, tuple)):
            filename = filename[0] if filename else "output"
        path = self.output_path(write_path or os.getcwd(), os.path.basename(str(filename)))
        return write_image(value, path, affine=affine, dtype=self.dtype)


class MhdWriter(PredictionWriter):
    """Writes a field as `<write_path>/<input name>.mhd` + `.raw` with the input's geometry.

    The name is the input file's (`liver_0.nii.gz` -> `liver_0.mhd`; a DICOM series folder
    `CT5N` -> `CT5N.mhd`); a single-channel field is written as a volume; atomic (the
    `.raw` lands before the `.mhd` that names it).

    Args:
        field: the field to write ("model"). dtype: on-disk type ("uint8"). ext: ".mhd" or ".mha".
        src_field: the image field giving the name (and geometry when the field has none).
    """

    def __init__(self, field: str = "model", dtype: str | None = "uint8", ext: str = ".mhd",
                 src_field: str = "image") -> None:
        super().__init__(field, dtype, ext, src_field)

    def output_path(self, write_path: str, name: str) -> str:
        return os.path.join(write_path, image_stem(name) + self.ext)


class _NamedWriter(MhdWriter):
    def __init__(self, name: str, *args: Any) -> None:
        super().__init__(*args)
        self.name = name

    def output_path(self, write_path: str, name: str) -> str:
        return os.path.join(write_path, self.name)


class PublishWriter:
    """The render server's files: `image.mhd` (the input as read, before any transform),
    `image.seg.mhd` (the field) and `config_render.json`, in `publish_dir` (or, with
    `per_case`, in `publish_dir/<input name>/`).

    Args:
        publish_dir: the publish folder. render_config: the `config_render.json` to copy (None: none).
        field / src_field / dtype: as `MhdWriter`. per_case: one sub-folder per input.
    """

    def __init__(self, publish_dir: str, render_config: str | None = None, field: str = "model",
                 src_field: str = "image", dtype: str | None = "uint8", per_case: bool = False) -> None:
        self.publish_dir = publish_dir
        self.render_config = render_config
        self.field, self.src_field, self.dtype = field, src_field, dtype
        self.per_case = bool(per_case)
        self._seg = _NamedWriter("image.seg.mhd", field, dtype, ".mhd", src_field)

    def folder(self, name: str) -> str:
        return os.path.join(self.publish_dir, image_stem(name)) if self.per_case else self.publish_dir

    def write(self, transform_ctx: TransformContext, write_path: str | None = None) -> list[str]:
        from ai4med.io.atomic import atomic_path
        from ai4med.io.image_io import read_image, write_image

        source = source_filename(transform_ctx, self.src_field)
        if source is None:
            raise ValueError(f"cannot publish: the {self.src_field!r} field has no file name")
        folder = self.folder(source)
        os.makedirs(folder, exist_ok=True)
        written = [write_image(read_image(source), os.path.join(folder, "image.mhd"))]
        written.append(self._seg.write(transform_ctx, folder))
        if self.render_config:
            target = os.path.join(folder, "config_render.json")
            with atomic_path(target) as tmp:
                shutil.copyfile(self.render_config, tmp)
            written.append(target)
        return written
