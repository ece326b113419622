"""CasePipeline: one case through pre-transforms -> inferer -> post-transforms -> input grid -> writers.

MONAI Label's inference template, done once for every door (`ai4med infer` / `evaluate`, the
annotation server's engines, the deploy app):

1. **pre**: the item's fields through the configured pre-transforms (steps on the label field
   are dropped when the case has no label, so a validation chain serves bare images too);
2. **infer**: the inferer runs the image field on the inference context; the first output
   becomes the field `model`, a `MedicalImage` with the image's geometry (its AFFINE is the
   grid the network saw);
3. **post**: the configured post-transforms, as configured (none: `SegmentationPostProcess`,
   argmax over channels or threshold, back onto the input grid);
4. **result**: `result()` gives a label map of a field on the grid the image was loaded on:
   float probabilities become labels (argmax for several channels, `> threshold` for one), and
   a map still on the network's grid (cropped, resampled) is brought back through the AFFINEs
   (nearest neighbour, zeros outside what the network saw);
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

__all__ = ["CasePipeline", "CaseOutput", "SegmentationPostProcess", "to_label_map", "to_grid", "grid_of",
           "same_grid", "restore_to_input", "without_field", "run_chain", "spatial_data"]

logger = logging.getLogger(__name__)


def run_chain(transforms: Iterable[Any], ctx: TransformContext) -> TransformContext:
    """Apply transforms (objects with `transform(ctx)`, or callables) in order."""
    for t in transforms:
        out = t.transform(ctx) if hasattr(t, "transform") else t(ctx)
        ctx = out if out is not None else ctx
    return ctx


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


# --- grids and label maps ------------------------------------------------------------------------
def spatial_data(img: MedicalImage) -> tuple[np.ndarray, tuple[int, ...]]:
    """(data with spatial axes last and at most one leading channel axis, spatial shape)."""
    sf = img.get_shape_format()
    data = img.get_data()
    axes = list(sf.get_spatial_axes())
    other = [i for i in range(data.ndim) if i not in axes]
    data = np.transpose(data, other + axes) if other + axes != list(range(data.ndim)) else data
    spatial = tuple(data.shape[len(other):])
    return data.reshape((-1, *spatial)) if other else data, spatial


def grid_of(img: MedicalImage) -> tuple[np.ndarray, tuple[int, ...]]:
    """(affine, spatial shape) of an image (identity scaled by SPACING when it has no AFFINE)."""
    from ai4med.components.transforms.spatial import _affine_or_identity

    _, spatial = spatial_data(img)
    return np.asarray(_affine_or_identity(img), np.float64), spatial


def same_grid(a: tuple[np.ndarray, Sequence[int]], b: tuple[np.ndarray, Sequence[int]], atol: float = 1e-4) -> bool:
    return tuple(a[1]) == tuple(b[1]) and bool(np.allclose(a[0], b[0], atol=atol))


def to_grid(img: MedicalImage, affine: np.ndarray, shape: Sequence[int], order: int | None = None) -> MedicalImage:
    """`img` resampled onto the grid (`affine`, `shape`) through its own AFFINE (nearest for label maps,
    zeros outside); returned as is when it is already on that grid."""
    from ai4med.components.transforms.spatial import resample_to_grid
    from ai4med.components.transforms.utils import set_affine

    own = grid_of(img)
    target = (np.asarray(affine, np.float64), tuple(int(s) for s in shape))
    if same_grid(own, target, atol=1e-6):
        return img
    data = img.get_data()
    if order is None:
        order = 0 if (np.issubdtype(data.dtype, np.integer) or data.dtype == bool) else 1
    sf = img.get_shape_format()
    out = resample_to_grid(data, own[0], target[0], target[1], order, "zeros", sf.get_spatial_axes())
    if order == 0:
        out = out.astype(data.dtype, copy=False)
    res = img.new_image(out, sf)
    set_affine(res, target[0])
    return res


def restore_to_input(img: MedicalImage, src: MedicalImage | None) -> MedicalImage:
    """`img` on the grid `src` was loaded on (its ORIGINAL_AFFINE / ORIGINAL_SHAPE), geometry copied."""
    if src is None or src.get_property(ImageProperty.ORIGINAL_SHAPE) is None:
        return img
    from ai4med.components.transforms.spatial import _affine_or_identity

    _, spatial = spatial_data(img)
    shape = tuple(int(s) for s in src.get_property(ImageProperty.ORIGINAL_SHAPE))[-len(spatial):]
    orig = src.get_property(ImageProperty.ORIGINAL_AFFINE)
    affine = np.asarray(orig, np.float64) if orig is not None else _affine_or_identity(src)
    out = to_grid(img, affine, shape)
    for key in (ImageProperty.ORIGINAL_SHAPE, ImageProperty.ORIGINAL_AFFINE, ImageProperty.ORIGINAL_SPACING,
                ImageProperty.FILENAME):
        if src.get_property(key) is not None:
            out.set_property(key, src.get_property(key))
    return out


def to_label_map(img: MedicalImage, threshold: float = 0.5) -> MedicalImage:
    """A label map without channel axis (uint8): integer data as it is, several channels by argmax,
    one channel of probabilities by `> threshold`. The one rule of every door."""
    sf = img.get_shape_format()
    data = img.get_data()
    if sf.has_batch():
        raise ValueError(f"a batch of predictions ({sf}) is not one label map")
    channels = data.shape[sf.get_channel_axis()] if sf.has_channel() else 1
    if np.issubdtype(data.dtype, np.integer) or data.dtype == bool:
        out = data if not sf.has_channel() else (
            np.squeeze(data, sf.get_channel_axis()) if channels == 1 else np.argmax(data, sf.get_channel_axis()))
    elif channels == 2 and sf.get_channel_axis() == 0:
        out = data[1] > data[0]  # argmax of two channels (ties -> 0, as argmax), without its index pass
    elif channels > 1:
        out = np.argmax(data, axis=sf.get_channel_axis())
    else:
        squeezed = np.squeeze(data, sf.get_channel_axis()) if sf.has_channel() else data
        out = squeezed > threshold
    new_sf = sf.without_channel() if sf.has_channel() else sf
    if out.max(initial=0) > 255:
        return img.new_image(out.astype(np.int32, copy=False), new_sf)
    return img.new_image(out.astype(np.uint8, copy=False), new_sf)


class SegmentationPostProcess:
    """The default post-processing (a transform): `to_label_map` (argmax, or `> threshold` for one
    channel), optionally the largest connected component of each class, then back onto the grid the
    image was loaded on. Keeps a channel axis of 1 (what the metrics expect).

    Args:
        field: the prediction field ("model"). src_field: the image field ("image").
        threshold: for single-channel predictions. keep_largest_cc: clean each class.
        restore: return to the input's original grid.

    Example:
        >>> ctx = TransformContext({"model": MedicalImage(np.array([[[[0.2, 0.9]]], [[[0.8, 0.1]]]]), "CDHW")})
        >>> SegmentationPostProcess(restore=False).transform(ctx)["model"].get_data().tolist()
        [[[[1, 0]]]]
    """

    def __init__(self, field: str = "model", src_field: str = "image", threshold: float = 0.5,
                 keep_largest_cc: bool = False, restore: bool = True) -> None:
        self.field = field
        self.src_field = src_field
        self.threshold = float(threshold)
        self.keep_largest_cc = bool(keep_largest_cc)
        self.restore = bool(restore)

    def is_deterministic(self) -> bool:
        return True

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        img = to_label_map(transform_ctx.get_image(self.field), self.threshold)
        if self.keep_largest_cc:
            from ai4med.components.transforms.post import KeepLargestCC

            transform_ctx.set_image(self.field, img)
            KeepLargestCC(self.field).transform(transform_ctx)
            img = transform_ctx.get_image(self.field)
        if self.restore:
            src = transform_ctx.get(self.src_field)
            img = restore_to_input(img, src if isinstance(src, MedicalImage) else None)
        sf = img.get_shape_format()
        img = img.new_image(np.expand_dims(img.get_data(), 0), sf.with_channel(first=True))
        transform_ctx.set_image(self.field, img)
        return transform_ctx


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
        """The label map of the result field on the grid the image was loaded on."""
        img = ctx.get_image(field_name or self.result_name(ctx))
        src = ctx.get(self.image_field)
        return restore_to_input(to_label_map(img, self.threshold), src if isinstance(src, MedicalImage) else None)

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
