"""CasePipeline: one case through pre-transforms -> inferer -> post-transforms -> input grid -> writers.

MONAI Label's inference template, done once for every door (`ai4med infer` / `evaluate`, the
annotation server's engines, the deploy app):

1. **pre**: the item's fields through the configured pre-transforms (steps on the label field
   are dropped when the case has no label, so a validation chain serves bare images too);
2. **infer**: the inferer runs the image field on the inference context; the first output
   becomes the field `model`, a `MedicalImage` with the image's geometry (its AFFINE is the
   grid the network saw);
3. **post**: the configured post-transforms, as configured (none: `SegmentationPostProcess`:
   the probabilities back onto the input grid, then argmax over channels or threshold);
4. **result**: `result()` gives a label map of a field on the grid the image was loaded on:
   probabilities still on the network's grid (cropped, resampled) are brought back through the
   AFFINEs linearly (zeros outside what the network saw) and labelled there (argmax for several
   channels, `> threshold` for one), as MONAI's Invertd and nnU-Net do; a label map comes back
   with nearest neighbour;
5. **write**: the writers write what they are configured to write.

Every stage is timed (`CaseOutput.seconds`: pre, infer, post, write).

Example:
    >>> import torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> ctx = TorchInferenceContext(torch.nn.Conv3d(1, 2, 1), precision="fp32", runtime="torch")
    >>> image = MedicalImage(np.zeros((1, 4, 4, 4), np.float32), "CDHW")
    >>> out = CasePipeline(ctx).run({"image": image})
    >>> out.result().shape, sorted(out.seconds)
    ((4, 4, 4), ['infer', 'post', 'pre'])
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.data.dataset import run_chain
from ai4med.components.transforms.restore import (  # the one label rule, also a transform
    SegmentationPostProcess,
    grid_of,
    restore_to_input,
    same_grid,
    spatial_data,
    to_grid,
    to_input_labels,
    to_label_map,
)

__all__ = ["CasePipeline", "CaseOutput", "SegmentationPostProcess", "to_label_map", "to_grid", "grid_of",
           "same_grid", "restore_to_input", "to_input_labels", "without_field", "run_chain", "spatial_data"]

logger = logging.getLogger(__name__)


def without_field(transforms: Iterable[Any], name: str) -> list[Any]:
    """The chain with `name` removed from multi-field transforms; steps only on `name` dropped."""
    out = []
    for t in transforms:
        fields = getattr(t, "fields", None)
        if isinstance(fields, list) and name in fields:
            rest = [f for f in fields if f != name]
            if not rest:
                continue
            t = copy.copy(t)
            t.fields = rest
            t.field = rest[0]
        elif getattr(t, "field", None) == name and not isinstance(fields, list):
            continue
        out.append(t)
    return out


def short_error(exc: BaseException, limit: int = 300) -> str:
    """The meaningful line of an error (TorchScript / ONNX Runtime messages carry whole tracebacks)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln.split(":")[0] or ln.startswith(("RuntimeError", "ValueError")):
            return ln[:limit]
    return (lines[-1] if lines else type(exc).__name__)[:limit]


def check_channels(image: MedicalImage, context: Any) -> None:
    """A clear error when the image's channels are not the model's input channels (e.g. a 4-D file given
    to a single-channel model), before the model is called."""
    try:
        shapes = context.get_model_input_shapes()
    except Exception:  # a context that cannot tell
        return
    shape = tuple(next(iter(shapes.values()), ())) if isinstance(shapes, dict) else ()
    sf = image.get_shape_format()
    spatial = len(sf.get_spatial_axes())
    # (batch, channels, *spatial) only: a Triton config with server-side batching declares no batch axis
    want = shape[1] if len(shape) == spatial + 2 and isinstance(shape[1], int) and shape[1] > 0 else None
    have = image.shape[sf.get_channel_axis()] if sf.has_channel() else 1
    if want is not None and have != want and not sf.has_batch():
        what = f"a {image.get_data().ndim}-D image with {have} channels"
        raise ValueError(f"{what} ({sf}, shape {image.shape}) for a model that takes {want} input channel(s): give "
                         "single-volume images, or pre-transforms that make the model's channels")


# --- the pipeline ------------------------------------------------------------------------------------
@dataclass
class CaseOutput:
    """One case after the pipeline: the context (every field), seconds per stage, files written."""

    ctx: TransformContext
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    pipeline: Any = None

    def result(self, field_name: str | None = None) -> np.ndarray:
        """The label map of `field_name` (default: the pipeline's result field) on the input grid."""
        return self.pipeline.result(self.ctx, field_name).get_data()


class CasePipeline:
    """The inference template (see the module docstring).

    Args:
        context: the inference context (`ai4med.inference.models.open_model`).
        inferer: an `Inferer` (default `TorchSimpleInferer`: the whole image at once).
        pre_transforms / post_transforms: transform objects (post None: `SegmentationPostProcess`).
        writers: objects with `write(ctx, write_path)`, or transforms.
        image_field / label_field / output_field: context field names.
        result_field: the field `result()` returns (default: the first writer's field when the
            post-transforms renamed the prediction, e.g. SplitAcrossChannels, else `output_field`).
        threshold: for single-channel probabilities in `result()`.
    """

    def __init__(self, context: Any, inferer: Any = None, pre_transforms: Sequence[Any] = (),
                 post_transforms: Sequence[Any] | None = None, writers: Sequence[Any] = (),
                 image_field: str = "image", label_field: str = "label", output_field: str = "model",
                 result_field: str | None = None, threshold: float = 0.5) -> None:
        if inferer is None:
            from ai4med.components.inferers.torch_inferers import TorchSimpleInferer

            inferer = TorchSimpleInferer()
        self.context = context
        self.inferer = inferer
        self.pre_transforms = list(pre_transforms)
        self.post_transforms = (
            [SegmentationPostProcess(output_field, image_field, threshold)] if post_transforms is None
            else list(post_transforms))
        self.writers = list(writers)
        self.image_field = image_field
        self.label_field = label_field
        self.output_field = output_field
        self.result_field = result_field
        self.threshold = float(threshold)
        self._pre_no_label = without_field(self.pre_transforms, label_field)

    # --- stages ------------------------------------------------------------------------------
    def prepare(self, item: Mapping[str, Any] | TransformContext, rng: Any = None) -> TransformContext:
        """The item's fields after the pre-transforms (label steps dropped when it has no label)."""
        ctx = item if isinstance(item, TransformContext) else TransformContext(
            dict(item), rng=rng if rng is not None else np.random.default_rng(0))
        chain = self.pre_transforms if ctx.get(self.label_field) is not None else self._pre_no_label
        return run_chain(chain, ctx)

    def predict(self, ctx: TransformContext) -> MedicalImage:
        """Run the inferer on the image field; the first output as an image with the input's properties."""
        from ai4med.components.inferers.layout import output_format, to_numpy

        image = ctx.get_image(self.image_field)
        sf = image.get_shape_format()
        check_channels(image, self.context)
        try:
            out = self.inferer.infer({self.image_field: image.get_data()}, sf, self.context)
        except RuntimeError as exc:  # a model that cannot take this input: its own words, not its traceback
            raise ValueError(f"the model cannot run this image (shape {image.shape}, {sf}): {short_error(exc)}") from exc
        names = list(getattr(self.context, "output_names", []) or [])
        key = names[0] if names and names[0] in out else next(iter(out))
        pred = to_numpy(out[key])
        if pred.dtype != np.float32 and np.issubdtype(pred.dtype, np.floating):
            pred = pred.astype(np.float32)
        fmt = output_format(sf)
        if pred.ndim != fmt.get_number_of_dims():
            raise ValueError(f"the model returned shape {pred.shape} for an image of shape {image.shape} ({sf})")
        result = image.new_image(pred, fmt)
        result.set_property(ImageProperty.IS_LABEL, False)
        return result

    def postprocess(self, ctx: TransformContext) -> TransformContext:
        return run_chain(self.post_transforms, ctx)

    def result_name(self, ctx: TransformContext) -> str:
        if self.result_field:
            return self.result_field
        if isinstance(ctx.get(self.output_field), MedicalImage):
            return self.output_field
        for w in self.writers:  # the prediction was split / renamed: what the writers write
            name = getattr(w, "field", None) or getattr(w, "applied_key", None)
            if isinstance(name, str) and isinstance(ctx.get(name), MedicalImage):
                return name
        raise KeyError(f"no prediction field after the post-transforms (looked for {self.output_field!r} and the "
                       "writers' fields)")

    def result(self, ctx: TransformContext, field_name: str | None = None) -> MedicalImage:
        """The label map of the result field on the grid the image was loaded on (`to_input_labels`)."""
        img = ctx.get_image(field_name or self.result_name(ctx))
        src = ctx.get(self.image_field)
        return to_input_labels(img, src if isinstance(src, MedicalImage) else None, self.threshold)

    def write(self, ctx: TransformContext, output_dir: str | None) -> list[str]:
        written: list[str] = []
        for w in self.writers:
            out = w.write(ctx, output_dir) if hasattr(w, "write") else run_chain([w], ctx)
            if isinstance(out, str):
                written.append(out)
            elif isinstance(out, (list, tuple)):
                written += [p for p in out if isinstance(p, str)]
        return written

    # --- the whole case ------------------------------------------------------------------------
    def run(self, item: Mapping[str, Any] | TransformContext, output_dir: str | None = None,
            prepared: TransformContext | None = None, write: bool = True) -> CaseOutput:
        """pre (unless `prepared` is given) -> infer -> post -> write (when `write` and writers exist)."""
        out = CaseOutput(TransformContext({}), pipeline=self)
        with _timed(out.seconds, "pre"):
            ctx = prepared if prepared is not None else self.prepare(item)
        with _timed(out.seconds, "infer"):
            ctx[self.output_field] = self.predict(ctx)
        with _timed(out.seconds, "post"):
            ctx = self.postprocess(ctx)
        out.ctx = ctx
        if write and self.writers:
            with _timed(out.seconds, "write"):
                out.outputs = self.write(ctx, output_dir)
        return out


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    t = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - t
