"""The deploy app's own components: seed 003's `TRTISScanWindowInferer` and `TRTISModelLoader`,
and the writers of the output and publish folders.

* `TRTISScanWindowInferer`: the scanning-window inferer of training/validation, running
  client-side; its windows go in batches to whatever model the app loaded (Triton, or a
  local TorchScript / ONNX Runtime model). `ip` / `port` / `protocol` are the defaults of
  the Triton connection; the app overrides them at run time (flag, environment variable),
  and `roi_size` comes from `model_config.json`'s `network_input_size` unless given.
* `TRTISModelLoader`: a model served by Triton; its name is `model_config.json`'s
  `model_name` (else the `name:` of the `config.pbtxt` named by `model_spec_file_name`).
* `MhdWriter`: `<output>/<input name>.mhd` + `.raw`, the input's geometry, atomic.
* `PublishWriter`: `image.mhd`/`.raw` (the input as read), `image.seg.mhd`/`.raw` and
  `config_render.json` for the render server.

Example:
    >>> import os, tempfile, numpy as np
    >>> from ai4med.common.constants import ImageProperty
    >>> from ai4med.common.medical_image import MedicalImage
    >>> from ai4med.common.transform_ctx import TransformContext
    >>> img = MedicalImage(np.zeros((1, 4, 4, 4), np.float32), "CDHW")
    >>> img.set_property(ImageProperty.FILENAME, "/input/case 1.nii.gz")
    >>> ctx = TransformContext({"image": img, "model": img.new_image(np.ones((1, 4, 4, 4), np.uint8))})
    >>> os.path.basename(MhdWriter().write(ctx, tempfile.mkdtemp()))
    'case 1.mhd'
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer
from ai4med.components.inferers.triton_predictor import TritonInferenceContext, TritonUnavailableError
from ai4med.workflows.bulk_evaluator import PredictionWriter

__all__ = [
    "TRTISScanWindowInferer",
    "TRTISModelLoader",
    "FailFastTritonContext",
    "MhdWriter",
    "PublishWriter",
    "output_stem",
    "pbtxt_model_name",
]

logger = logging.getLogger(__name__)

_INPUT_EXTS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")


def output_stem(path: str) -> str:
    """The output name of an input: its base name without the image extension (a folder: its name)."""
    name = os.path.basename(os.path.normpath(path))
    for ext in _INPUT_EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _filename(ctx: TransformContext, field: str) -> str | None:
    value = ctx.get(field)
    name = value.get_property(ImageProperty.FILENAME) if isinstance(value, MedicalImage) else value
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) else None


# --- inferer and model loader --------------------------------------------------------------------
class TRTISScanWindowInferer(TorchScanWindowInferer):
    """Seed 003's inferer: scanning windows client-side, batches of windows to the model.

    Args:
        ip / port / protocol ("HTTP" or "GRPC"): the default Triton address (overridden at
            run time by `--triton_url`, `AI4MED_TRITON_URL` or `NVIDIA_CLARA_TRTISURI`).
        roi_size: window size (default: `network_input_size` of model_config.json).
        batch_size, overlap, blend_mode, ...: as `ScanWindowInferer`.
    """

    def __init__(self, ip: str = "localhost", port: int = 8000, protocol: str = "HTTP",
                 roi_size: Sequence[int] | None = None, batch_size: int = 1, **kwargs: Any) -> None:
        super().__init__(roi_size, batch_size, **kwargs)
        self.ip, self.port, self.protocol = str(ip), int(port), str(protocol).lower()

    @property
    def url(self) -> str:
        return f"{self.ip}:{self.port}"


def pbtxt_model_name(path: str | None) -> str | None:
    """The `name: "..."` of a Triton `config.pbtxt` (None when absent or unreadable)."""
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            m = re.search(r'^\s*name\s*:\s*"([^"]+)"', fh.read(), re.MULTILINE)
    except OSError:
        return None
    return m.group(1) if m else None


class FailFastTritonContext(TritonInferenceContext):
    """A Triton context that, once the server has failed a request, fails the next ones at
    once (so a server lost in the middle of a run costs one timeout, not one per case)."""

    _failure: str | None = None

    def run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        if self._failure is not None:
            raise TritonUnavailableError(f"Triton server lost earlier in this run: {self._failure}")
        try:
            return super().run(inputs)
        except TritonUnavailableError as e:
            self._failure = str(e)
            raise


class TRTISModelLoader:
    """Seed 003's model loader: the model served by Triton.

    Args:
        model_spec_file_name: a `config.pbtxt` (its `name:` is the model name when
            model_config.json has none).
        model_name: the model's name on the server (default: model_config.json's).
        url / protocol / timeout: connection (the app passes the resolved ones).
    """

    def __init__(self, model_spec_file_name: str | None = None, model_name: str | None = None,
                 url: str | None = None, protocol: str | None = None, timeout: float = 10.0) -> None:
        self.model_spec_file_name = model_spec_file_name or None
        self.model_name = model_name
        self.url, self.protocol, self.timeout = url, protocol, float(timeout)

    def connect(self, model_name: str | None, url: str, protocol: str, timeout: float) -> FailFastTritonContext:
        name = self.model_name or model_name or pbtxt_model_name(self.model_spec_file_name)
        if not name:
            raise ValueError("no Triton model name: set model_name in config/model_config.json")
        return FailFastTritonContext(name, url, protocol, timeout=timeout)


# --- writers ---------------------------------------------------------------------------------
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
        return os.path.join(write_path, output_stem(name) + self.ext)


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
        return os.path.join(self.publish_dir, output_stem(name)) if self.per_case else self.publish_dir

    def write(self, transform_ctx: TransformContext, write_path: str | None = None) -> list[str]:
        from ai4med.io.atomic import atomic_path
        from ai4med.io.image_io import read_image, write_image

        source = _filename(transform_ctx, self.src_field)
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
