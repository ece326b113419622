"""Channel and layout transforms: add / move / repeat / split channels, merge batch dims, copy properties.

Example:
    >>> import numpy as np
    >>> to_channels_first(np.zeros((4, 5, 3)), "HWC")[0].shape
    (3, 4, 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.shape_format import ShapeFormat
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer
from ai4med.components.transforms.utils import as_list, resolve_fields

__all__ = [
    "to_channels_first", "expand_dims_format", "repeat_channels", "split_channels", "merge_batch_dims",
    "VolumeTo4dArray", "ConvertToChannelsFirst", "NPExpandDims", "NPRepChannels", "RepeatChannel",
    "SplitAcrossChannels", "MergeBatchDims", "CopyProperties",
]


# --- kernels --------------------------------------------------------------------
def to_channels_first(data: np.ndarray, shape_format: ShapeFormat | str) -> tuple[np.ndarray, ShapeFormat]:
    """Put the channel axis right after the batch axis (adding a size-1 channel if there is none)."""
    sf = ShapeFormat(shape_format)
    target = sf.with_channel(first=True) if not sf.has_channel() else ShapeFormat(
        ("N" if sf.has_batch() else "") + "C" + ("DHW" if sf.is_3d() else "HW")
    )
    if not sf.has_channel():
        return np.expand_dims(data, 1 if sf.has_batch() else 0), target
    ch = sf.get_channel_axis()
    dst = 1 if sf.has_batch() else 0
    return (data if ch == dst else np.moveaxis(data, ch, dst)), target


def expand_dims_format(shape_format: ShapeFormat | str, axis: int) -> ShapeFormat:
    """The format after inserting a channel axis at `axis` (must give one of the 12 formats)."""
    sf = ShapeFormat(shape_format)
    if sf.has_channel():
        raise ValueError(f"cannot add a channel axis to {sf.value}: it already has one")
    n = sf.get_number_of_dims() + 1
    pos = axis if axis >= 0 else n + axis
    text = sf.value[:pos] + "C" + sf.value[pos:]
    try:
        return ShapeFormat(text)
    except ValueError:
        raise ValueError(f"a channel axis at {axis} of {sf.value} gives {text}, not a supported layout") from None


def repeat_channels(data: np.ndarray, channel_axis: int, repeat: int) -> np.ndarray:
    """Repeat each element `repeat` times along `channel_axis` (`np.repeat`)."""
    if int(repeat) < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    return np.repeat(data, int(repeat), axis=channel_axis)


def split_channels(data: np.ndarray, channel_axis: int, squeeze: bool) -> list[np.ndarray]:
    """The channels of `data` as separate arrays (size-1 channel kept unless `squeeze`)."""
    n = data.shape[channel_axis]
    out = []
    for i in range(n):
        part = np.take(data, [i], axis=channel_axis)
        out.append(np.squeeze(part, axis=channel_axis) if squeeze else part)
    return out


def merge_batch_dims(data: Any) -> Any:
    """Flatten the two leading (batch, crops) dimensions into one: (B, T, ...) -> (B*T, ...)."""
    if data.ndim < 2:
        raise ValueError(f"need at least 2 dimensions to merge, got shape {tuple(data.shape)}")
    return data.reshape((data.shape[0] * data.shape[1],) + tuple(data.shape[2:]))


# --- transforms -----------------------------------------------------------------
class _FieldsTransformer(MultiFieldTransformer):
    def __init__(self, *spellings: Any) -> None:
        super().__init__(resolve_fields(*spellings, name=type(self).__name__))


class ConvertToChannelsFirst(_FieldsTransformer):
    """Make images channel-first: add a channel axis if none ("DHW" -> "CDHW"), or move it to the front.

    Args:
        fields: field(s).

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((4, 5, 6)), "DHW")})
        >>> str(ConvertToChannelsFirst("image")(ctx)["image"].get_shape_format())
        'CDHW'
    """

    def __init__(self, fields: Any = None, field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, field, applied_keys)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            data, sf = to_channels_first(img.get_data(), img.get_shape_format())
            if sf != img.get_shape_format() or data is not img.get_data():
                transform_ctx.set_image(f, img.new_image(data, sf))
        return transform_ctx


class VolumeTo4dArray(ConvertToChannelsFirst):
    """The 2019 name of `ConvertToChannelsFirst`: 3D volumes become 4D channel-first arrays.

    Args:
        fields: field(s).

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((4, 5, 6)), "DHW")})
        >>> VolumeTo4dArray(["image"])(ctx)["image"].shape
        (1, 4, 5, 6)
    """


class NPExpandDims(_FieldsTransformer):
    """Insert a size-1 (channel) axis at `expand_axis` ("DHW" + 0 -> "CDHW", + -1 -> "DHWC").

    Args:
        applied_keys: field(s) (also `fields`). expand_axis: where to insert (0).

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((4, 5)), "HW")})
        >>> NPExpandDims("image", expand_axis=-1)(ctx)["image"].shape
        (4, 5, 1)
    """

    def __init__(self, applied_keys: Any = None, expand_axis: int = 0, fields: Any = None) -> None:
        super().__init__(applied_keys, fields)
        self.expand_axis = int(expand_axis)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            sf = expand_dims_format(img.get_shape_format(), self.expand_axis)
            transform_ctx.set_image(f, img.new_image(np.expand_dims(img.get_data(), self.expand_axis), sf))
        return transform_ctx


def _repeat_image(img: MedicalImage, repeat: int, channel_axis: int | None) -> MedicalImage:
    sf = img.get_shape_format()
    data = img.get_data()
    if not sf.has_channel():
        pos = 1 if sf.has_batch() else 0
        if channel_axis is not None and channel_axis != pos:
            sf = expand_dims_format(sf, channel_axis)
            pos = sf.get_channel_axis()
        else:
            sf = sf.with_channel(first=True)
        data = np.expand_dims(data, pos)
    ax = sf.get_channel_axis()
    if channel_axis is not None and channel_axis % data.ndim != ax:
        raise ValueError(f"channel_axis {channel_axis} is not the channel axis of a {sf.value} image")
    return img.new_image(repeat_channels(data, ax, repeat), sf)


class NPRepChannels(_FieldsTransformer):
    """Repeat along the channel axis (adding one there if missing), e.g. grey -> 3-channel.

    Args:
        applied_keys: field(s) (also `fields`). channel_axis: the channel axis. repeat: copies.

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((4, 5)), "HW")})
        >>> NPRepChannels("image", channel_axis=-1, repeat=3)(ctx)["image"].shape
        (4, 5, 3)
    """

    def __init__(self, applied_keys: Any = None, channel_axis: int = 0, repeat: int = 3, fields: Any = None) -> None:
        super().__init__(applied_keys, fields)
        self.channel_axis, self.repeat = int(channel_axis), int(repeat)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            transform_ctx.set_image(f, _repeat_image(transform_ctx.get_image(f), self.repeat, self.channel_axis))
        return transform_ctx


class RepeatChannel(_FieldsTransformer):
    """Repeat the channel axis `repeat` times (grey -> 3 channels for ImageNet networks).

    Args:
        fields: field(s). repeat: number of copies (3).

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((1, 4, 5)), "CHW")})
        >>> RepeatChannel("image", repeat=3)(ctx)["image"].shape
        (3, 4, 5)
    """

    def __init__(self, fields: Any = None, repeat: int = 3, field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, field, applied_keys)
        self.repeat = int(repeat)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            transform_ctx.set_image(f, _repeat_image(transform_ctx.get_image(f), self.repeat, None))
        return transform_ctx


class SplitAcrossChannels(_FieldsTransformer):
    """Split a multi-channel field into one field per channel.

    New fields are named `channel_names[i]`, else `<field><i>` (e.g. "image1").

    Args:
        applied_key: the field (also `field` / `fields`). channel_names: names of the new
            fields, one per channel. squeeze: drop the channel axis of the parts.

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"model": MedicalImage(np.zeros((2, 4, 4)), "CHW")})
        >>> out = SplitAcrossChannels("model", channel_names=["background", "prediction"], squeeze=True)(ctx)
        >>> out["prediction"].shape, str(out["prediction"].get_shape_format())
        ((4, 4), 'HW')
    """

    def __init__(self, applied_key: Any = None, channel_names: Sequence[str] | None = None, squeeze: bool = False,
                 field: Any = None, fields: Any = None) -> None:
        super().__init__(applied_key, field, fields)
        self.channel_names = as_list(channel_names)
        self.squeeze = bool(squeeze)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            sf = img.get_shape_format()
            if not sf.has_channel():
                raise ValueError(f"SplitAcrossChannels: field {f!r} ({sf.value}) has no channel axis")
            parts = split_channels(img.get_data(), sf.get_channel_axis(), self.squeeze)
            if self.channel_names and len(self.channel_names) != len(parts):
                raise ValueError(
                    f"SplitAcrossChannels: {f!r} has {len(parts)} channels but channel_names has "
                    f"{len(self.channel_names)}: {self.channel_names}"
                )
            names = self.channel_names or [f"{f}{i}" for i in range(len(parts))]
            out_sf = sf.without_channel() if self.squeeze else sf
            for name, part in zip(names, parts):
                transform_ctx.set_image(name, img.new_image(part, out_sf))
        return transform_ctx


class MergeBatchDims(_FieldsTransformer):
    """Flatten the (batch, crops) leading dims of batched fields into one batch (for `batch_transforms`).

    A field may hold an array or tensor shaped (B, T, ...) -> (B*T, ...), or a list of
    batched `MedicalImage`s / arrays, which are concatenated along their batch axis.

    Args:
        fields: field(s).

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": np.zeros((2, 4, 1, 8, 8))})
        >>> MergeBatchDims("image")(ctx)["image"].shape
        (8, 1, 8, 8)
    """

    def __init__(self, fields: Any = None, field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, field, applied_keys)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            value = transform_ctx[f]
            if isinstance(value, (list, tuple)):
                if value and isinstance(value[0], MedicalImage):
                    first = value[0]
                    sf = first.get_shape_format()
                    ax = max(sf.get_batch_axis(), 0)
                    data = np.concatenate([v.get_data() if sf.has_batch() else v.get_data()[None] for v in value], ax)
                    transform_ctx[f] = first.new_image(data, sf.with_batch())
                else:
                    transform_ctx[f] = np.concatenate([np.asarray(v) for v in value], 0)
            elif isinstance(value, MedicalImage):
                continue  # already one batch
            else:
                transform_ctx[f] = merge_batch_dims(value)
        return transform_ctx


_GEOMETRY = (
    ImageProperty.AFFINE, ImageProperty.SPACING, ImageProperty.ORIGIN, ImageProperty.DIRECTION,
    ImageProperty.ORIGINAL_SHAPE, ImageProperty.ORIGINAL_AFFINE, ImageProperty.ORIGINAL_SPACING,
    ImageProperty.FILENAME, ImageProperty.AS_CANONICAL,
)


class CopyProperties(_FieldsTransformer):
    """Copy properties (default: geometry, original grid and file name) from `from_field` to `fields`.

    A field holding a bare array (e.g. a model output) becomes a `MedicalImage` with the
    source's layout (plus a leading channel axis if it has one dimension more).

    Args:
        fields: field(s) to receive. from_field: the source image field.
        properties: property names to copy (default: geometry, ORIGINAL_*, FILENAME).

    Example:
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> src = MedicalImage(np.zeros((4, 4)), "HW", {"affine": np.eye(4)})
        >>> ctx = TransformContext({"image": src, "model": np.ones((2, 4, 4))})
        >>> out = CopyProperties("model", from_field="image")(ctx)["model"]
        >>> str(out.get_shape_format()), out.has_property("affine")
        ('CHW', True)
    """

    def __init__(self, fields: Any = None, from_field: str = "image", properties: Sequence[str] | None = None,
                 field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, field, applied_keys)
        self.from_field = from_field
        self.properties = as_list(properties) or list(_GEOMETRY)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        src = transform_ctx.get_image(self.from_field)
        for f in self.fields:
            value = transform_ctx[f]
            if isinstance(value, MedicalImage):
                img = value.new_image(value.get_data())
            else:
                img = _wrap_like(np.asarray(value), src.get_shape_format())
            for key in self.properties:
                if src.has_property(key):
                    v = src.get_property(key)
                    img.set_property(key, v.copy() if isinstance(v, np.ndarray) else v)
            transform_ctx.set_image(f, img)
        return transform_ctx


def _wrap_like(data: np.ndarray, sf: ShapeFormat) -> MedicalImage:
    if data.ndim == sf.get_number_of_dims():
        return MedicalImage(data, sf)
    if data.ndim == sf.get_number_of_dims() + 1 and not sf.has_channel():
        return MedicalImage(data, sf.with_channel(first=True))
    if data.ndim == sf.get_number_of_dims() - 1 and sf.has_channel():
        return MedicalImage(data, sf.without_channel())
    raise ValueError(f"cannot give an array of shape {data.shape} the layout of a {sf.value} image")
