"""The per-sample work of an image pipeline: run the transform chain, split batched crops, collate.

`TransformDataset` is a map-style torch Dataset indexed by `SampleKey(epoch, index, position)`:
it runs the chain on one datalist item (or on its cached prefix output) with the generator
`sample_rng(seed, epoch, index)`, and returns `(key, samples)`: one sample, or N when a
batch-by-transform crop stacked N crops on a batch axis. The transforms after such a crop
run on each crop separately, with its own generator (spawned from the sample's), so the
crops of one volume get their own flips, noise, contrast... (as MONAI's list outputs do). `Collator` stacks the samples of
one batch, runs the batch transforms and converts to torch tensors; it runs inside the
loader workers.

Example:
    >>> import numpy as np
    >>> from ai4med.common.medical_image import MedicalImage
    >>> s = split_batched({"image": MedicalImage(np.zeros((3, 1, 4, 4)), "NCHW"), "id": 7})
    >>> len(s), s[0]["image"].shape, s[2]["id"]
    (3, (1, 4, 4), 7)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.data.sampling import sample_rng
from ai4med.errors import UserError

__all__ = ["SampleKey", "SampleError", "TransformDataset", "Collator", "run_chain", "run_chain_per_sample",
           "split_batched", "stack_samples"]


class SampleError(UserError):
    """A transform failed on one datalist item: the message names the item's files, then the error
    (with hundreds of cases, "shapes (32, 32, 32) and (28, 32, 32)" alone does not say which case)."""


def describe_item(item: dict[str, Any]) -> str:
    """`image=a.nii.gz; label=b.nii.gz`: the item's file fields, for messages."""
    from ai4med.io.datalist import field_paths

    parts = [f"{k}={', '.join(paths)}" for k, v in item.items() if (paths := field_paths(v))]
    return "; ".join(parts) or "no file fields"


class SampleKey(NamedTuple):
    """What a loader asks the dataset for: the epoch, the sample's index, the item position.

    `index` seeds the sample's draws (duplicates of an item get distinct indices); `item` is
    the item's global index in the shard, which the smart cache is keyed by (None: `index`).
    """

    epoch: int
    index: int
    position: int
    item: int | None = None

    @property
    def cache_index(self) -> int:
        return self.index if self.item is None else self.item


def run_chain(transforms: Sequence[Any], ctx: TransformContext) -> TransformContext:
    """Apply `transforms` in order (each returns the context, or None meaning 'changed in place')."""
    for t in transforms:
        out = t.transform(ctx) if hasattr(t, "transform") else t(ctx)
        if out is not None:
            ctx = out
    return ctx


def _has_batched(ctx: dict[str, Any]) -> bool:
    return any(isinstance(v, MedicalImage) and v.get_shape_format().has_batch() for v in ctx.values())


def run_chain_per_sample(transforms: Sequence[Any], ctx: TransformContext) -> list[dict[str, Any]]:
    """Run `transforms`; once one outputs batched fields, split them and run the rest on each crop.

    Crop j continues with the j-th generator spawned from the context's, so every crop draws
    its own random parameters, the same ones for the same seed. Returns the samples.
    """
    transforms = list(transforms)
    for i, t in enumerate(transforms):
        out = t.transform(ctx) if hasattr(t, "transform") else t(ctx)
        if out is not None:
            ctx = out
        rest = transforms[i + 1:]
        if rest and _has_batched(ctx):
            parts = split_batched(dict(ctx))
            rngs = ctx.get_rng().spawn(len(parts))
            samples: list[dict[str, Any]] = []
            for part, rng in zip(parts, rngs):
                one = TransformContext(part, rng=rng)
                one.history = list(ctx.history)
                if hasattr(ctx, "epoch"):
                    one.epoch = ctx.epoch
                samples += run_chain_per_sample(rest, one)
            return samples
    return split_batched(dict(ctx))


def split_batched(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """Split fields holding a batch axis (batch-by-transform crops) into one sample per crop.

    Every batched field must have the same N; other fields are shared by the N samples.
    Per-crop geometry kept by the crops (`batch_affines`, `batch_crop_boxes`) is restored.
    """
    batched = {k: v for k, v in sample.items() if isinstance(v, MedicalImage) and v.get_shape_format().has_batch()}
    if not batched:
        return [sample]
    sizes = {k: v.shape[v.get_shape_format().get_batch_axis()] for k, v in batched.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"batched fields disagree on the number of crops: {sizes}")
    n = next(iter(sizes.values()))
    out = [dict(sample) for _ in range(n)]
    for k, img in batched.items():
        sf = img.get_shape_format()
        ax = sf.get_batch_axis()
        affines = img.get_property("batch_affines")
        boxes = img.get_property("batch_crop_boxes")
        for i in range(n):
            one = img.new_image(np.take(img.get_data(), i, axis=ax), sf.without_batch())
            props = one.get_properties()
            props.pop("batch_affines", None)
            props.pop("batch_crop_boxes", None)
            if affines is not None and i < len(affines) and affines[i] is not None:
                props["affine"] = affines[i]
            if boxes is not None and i < len(boxes) and boxes[i] is not None:
                props["crop_box"] = boxes[i]
            out[i][k] = one
    return out


class TransformDataset(torch.utils.data.Dataset):
    """Map-style dataset: `SampleKey` -> list of transformed samples (dicts of field values).

    Args:
        items: the datalist items (dicts), addressed by `SampleKey.position`.
        transforms: the transforms run on each item (after the cached prefix, when cached).
        seed: the pipeline seed.
        cache: optional mapping `item index -> TransformContext` holding prefix outputs; a key
            whose `cache_index` is cached starts from a copy of that context.
        prefix: the cached transforms; an item missing from `cache` runs them first (drawing
            from `sample_rng(seed, 0, cache_index)` as the cache does), so it gets the same chain.
    """

    def __init__(
        self,
        items: Sequence[dict[str, Any]],
        transforms: Sequence[Any],
        seed: int,
        cache: dict[int, TransformContext] | None = None,
        prefix: Sequence[Any] = (),
    ) -> None:
        self.items = list(items)
        self.transforms = list(transforms)
        self.seed = int(seed)
        self.cache = cache
        self.prefix = list(prefix)

    def __len__(self) -> int:
        return len(self.items)

    def make_context(self, key: SampleKey) -> TransformContext:
        if self.cache is not None and key.cache_index in self.cache:
            ctx = self.cache[key.cache_index].copy()
        else:
            ctx = TransformContext(dict(self.items[key.position]))
            if self.prefix:
                ctx.set_rng(sample_rng(self.seed, 0, key.cache_index))
                ctx = run_chain(self.prefix, ctx)
        ctx.set_rng(sample_rng(self.seed, key.epoch, key.index))
        ctx.epoch = key.epoch  # read by epoch-controlled transforms
        return ctx

    def __getitem__(self, key: SampleKey | tuple) -> tuple[SampleKey, list[dict[str, Any]]]:
        key = SampleKey(*key)
        try:
            return key, run_chain_per_sample(self.transforms, self.make_context(key))
        except UserError:
            raise  # already names its file / key
        except Exception as exc:
            raise SampleError(f"datalist item {key.position} ({describe_item(self.items[key.position])}): "
                              f"{type(exc).__name__}: {exc}") from exc


def stack_samples(samples: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Stack per-sample fields: images -> one MedicalImage with a batch axis, numbers -> arrays, rest -> lists."""
    keys = list(samples[0]) if keys is None else list(keys)
    out: dict[str, Any] = {}
    for k in keys:
        vals = [s.get(k) for s in samples]
        v0 = vals[0]
        if isinstance(v0, MedicalImage):
            shapes = {v.shape for v in vals}
            if len(shapes) != 1:
                raise ValueError(
                    f"cannot batch field {k!r}: samples have shapes {sorted(shapes)}; crop to a fixed size "
                    "or use output_batch_size 1"
                )
            sf = v0.get_shape_format()
            out[k] = v0.new_image(np.stack([v.get_data() for v in vals]), sf.with_batch())
            out[k].set_property("batch_properties", [v.get_properties() for v in vals])
        elif isinstance(v0, (np.ndarray, np.number, int, float, bool)) or (
            isinstance(v0, (list, tuple)) and v0 and all(isinstance(x, (int, float, np.number)) for x in v0)
        ):
            try:
                out[k] = np.stack([np.asarray(v) for v in vals])
            except ValueError:
                out[k] = vals
        else:
            out[k] = vals
    return out


class Collator:
    """collate_fn: flatten per-item sample lists, stack, run batch transforms, convert to torch.

    Args:
        batch_transforms: transforms applied to the stacked batch (images have a batch axis).
        image_field, label_field: names of the image and label fields.
        image_dtype, label_dtype: torch output dtypes (numpy names); None keeps the data's.
        channels_last: move image / label channel axes last.
        crop_size: expected spatial size of the image (-1 = any); checked for every batch.
        image_channels, label_channels: expected channel counts (None = any).
        output_properties: add `batch["properties"] = {field: [per-sample properties]}`.
        keys: the fields to output (None = all).
    """

    def __init__(
        self,
        batch_transforms: Sequence[Any] = (),
        image_field: str = "image",
        label_field: str = "label",
        image_dtype: str | None = "float32",
        label_dtype: str | None = None,
        channels_last: bool = False,
        crop_size: Sequence[int] | None = None,
        image_channels: int | None = None,
        label_channels: int | None = None,
        output_properties: bool = False,
        keys: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.batch_transforms = list(batch_transforms or [])
        self.image_field = image_field
        self.label_field = label_field
        self.image_dtype = image_dtype
        self.label_dtype = label_dtype
        self.channels_last = channels_last
        self.crop_size = list(crop_size) if crop_size is not None else None
        self.image_channels = image_channels
        self.label_channels = label_channels
        self.output_properties = output_properties
        self.keys = list(keys) if keys is not None else None
        self.seed = seed

    def _check(self, name: str, img: MedicalImage, channels: int | None, check_size: bool) -> None:
        sf = img.get_shape_format()
        if check_size and self.crop_size is not None:
            spatial = [img.shape[a] for a in sf.get_spatial_axes()]
            if len(self.crop_size) != len(spatial) or any(
                c not in (-1, None) and int(c) != s for c, s in zip(self.crop_size, spatial)
            ):
                raise ValueError(f"field {name!r} has spatial shape {spatial}, expected output_crop_size {self.crop_size}")
        if channels is not None and sf.has_channel() and img.shape[sf.get_channel_axis()] != channels:
            raise ValueError(
                f"field {name!r} has {img.shape[sf.get_channel_axis()]} channels, expected {channels}"
            )

    def _to_tensor(self, name: str, value: Any) -> Any:
        if isinstance(value, MedicalImage):
            data = value.get_data()
            sf = value.get_shape_format()
            dtype = self.image_dtype if name == self.image_field else self.label_dtype if name == self.label_field else None
            if dtype is not None:
                data = data.astype(dtype, copy=False)
            elif data.dtype == np.uint16 or data.dtype == np.uint32:  # torch lacks these as general types
                data = data.astype(np.int64)
            t = torch.from_numpy(np.ascontiguousarray(data))
            if self.channels_last and sf.has_channel() and sf.is_channels_first():
                t = torch.movedim(t, sf.get_channel_axis(), -1).contiguous()
            return t
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            dtype = self.image_dtype if name == self.image_field else self.label_dtype if name == self.label_field else None
            if dtype is not None:
                value = value.astype(dtype, copy=False)
            return torch.from_numpy(np.ascontiguousarray(value))
        return value

    def __call__(self, batch: Sequence[tuple[SampleKey, list[dict[str, Any]]]]) -> dict[str, Any]:
        samples = [s for _key, item in batch for s in item]
        stacked = stack_samples(samples, self.keys)
        for name, channels in ((self.image_field, self.image_channels), (self.label_field, self.label_channels)):
            v = stacked.get(name)
            if isinstance(v, MedicalImage):
                self._check(name, v, channels, check_size=True)
        if self.batch_transforms:
            k0 = batch[0][0]
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 3, int(k0.epoch), int(k0.index)]))
            ctx = TransformContext(stacked, rng=rng)
            stacked = dict(run_chain(self.batch_transforms, ctx))
        out: dict[str, Any] = {k: self._to_tensor(k, v) for k, v in stacked.items()}
        if self.output_properties:
            out["properties"] = {
                k: v.get_property("batch_properties") for k, v in stacked.items() if isinstance(v, MedicalImage)
            }
        return out


def worker_init(seed: int) -> Callable[[int], None]:
    """A worker_init_fn seeding torch in each worker and keeping it to one thread."""
    return _WorkerInit(seed)


class _WorkerInit:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, worker_id: int) -> None:
        torch.manual_seed(self.seed + worker_id)
        torch.set_num_threads(1)
