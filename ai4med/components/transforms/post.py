"""Post-processing and label-conversion transforms: thresholds, argmax, one-hot, BraTS classes, largest CC.

Shape formats stay valid: a conversion to channels adds / fills the channel axis (a "DHW"
label becomes "CDHW"); splits write one field per class with a single channel.

Example:
    >>> import numpy as np
    >>> keep_largest_cc(np.array([1, 1, 0, 1, 0, 0])).tolist()
    [1, 1, 0, 0, 0, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.shape_format import ShapeFormat
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer
from ai4med.components.transforms.transformer import Transformer

__all__ = [
    "BratsConvertLabels",
    "SplitBasedOnLabel",
    "SplitBasedOnBratsClasses",
    "ConvertToMultiChannelBasedOnBratsClasses",
    "ConvertToMultiChannelBasedOnLabel",
    "ThresholdValues",
    "ArgmaxAcrossChannels",
    "KeepLargestCC",
    "brats_classes",
    "one_hot",
    "keep_largest_cc",
]

BRATS_CLASS_NAMES = ("TC", "WT", "ET")


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------
def brats_classes(label: np.ndarray, enhancing_label: int = 4) -> list[np.ndarray]:
    """BraTS nested regions of a label map (1 necrosis, 2 edema, `enhancing_label` enhancing tumour).

    Returns `[TC, WT, ET]` boolean masks: tumour core = 1 | ET, whole tumour = 1 | 2 | ET,
    enhancing tumour = ET.
    """
    et = label == enhancing_label
    tc = (label == 1) | et
    wt = tc | (label == 2)
    return [tc, wt, et]


def one_hot(label: np.ndarray, values: Sequence[float]) -> list[np.ndarray]:
    """One boolean mask per value in `values`."""
    return [label == v for v in values]


def keep_largest_cc(mask: np.ndarray, connectivity: int | None = None) -> np.ndarray:
    """Keep only the largest connected component of a (boolean or 0/1) mask, as the input's dtype.

    Args:
        mask: the mask (nonzero = foreground).
        connectivity: neighbourhood rank (1 = faces ... ndim = full); default full.
    """
    fg = mask != 0
    structure = ndimage.generate_binary_structure(fg.ndim, connectivity or fg.ndim)
    lab, n = ndimage.label(fg, structure=structure)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    keep = lab == int(np.argmax(sizes))
    return np.where(keep, mask, np.zeros_like(mask))


def _label_map(img: MedicalImage) -> tuple[np.ndarray, ShapeFormat]:
    """The label map without its (size-1) channel axis, and the format without channel."""
    sf = img.get_shape_format()
    data = img.get_data()
    if sf.has_channel():
        c = sf.get_channel_axis()
        if data.shape[c] != 1:
            raise ValueError(f"expected a label map with one channel, got shape {data.shape} ({sf})")
        return np.squeeze(data, axis=c), sf.without_channel()
    return data, sf


def _stack_channels(masks: list[np.ndarray], sf_no_channel: ShapeFormat, dtype: np.dtype) -> tuple[np.ndarray, ShapeFormat]:
    out_sf = sf_no_channel.with_channel(first=True)
    return np.stack([m.astype(dtype) for m in masks], axis=out_sf.get_channel_axis()), out_sf


def _channels(img: MedicalImage) -> list[np.ndarray]:
    sf = img.get_shape_format()
    c = sf.get_channel_axis()
    data = img.get_data()
    return [np.take(data, [i], axis=c) for i in range(data.shape[c])]


def _as_label(img: MedicalImage) -> MedicalImage:
    img.set_property(ImageProperty.IS_LABEL, True)
    return img


# --------------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------------
class ConvertToMultiChannelBasedOnBratsClasses(MultiFieldTransformer):
    """Convert a BraTS label map (1, 2, 4) into 3 channels: tumour core, whole tumour, enhancing tumour.

    Args:
        fields: label field(s); a "DHW" map becomes "CDHW", a 1-channel "CDHW" keeps its format.
        enhancing_label: the label value of the enhancing tumour (4 in BraTS files).

    Example:
        >>> t = ConvertToMultiChannelBasedOnBratsClasses(fields="label")
    """

    def __init__(self, fields: str | Sequence[str], enhancing_label: int = 4) -> None:
        super().__init__(fields)
        self.enhancing_label = enhancing_label

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            lab, sf = _label_map(img)
            data, out_sf = _stack_channels(brats_classes(lab, self.enhancing_label), sf, img.dtype)
            transform_ctx.set_image(f, _as_label(img.new_image(data, out_sf)))
        return transform_ctx


class BratsConvertLabels(ConvertToMultiChannelBasedOnBratsClasses):
    """The 2019 name: convert BraTS label indices (1, 2, 4) into the 3-channel TC / WT / ET format.

    Args:
        fields: label field(s), e.g. ["label"].

    Example:
        >>> t = BratsConvertLabels(fields=["label"])
    """

    def __init__(self, fields: str | Sequence[str]) -> None:
        super().__init__(fields)


class ConvertToMultiChannelBasedOnLabel(MultiFieldTransformer):
    """One-hot encode a label map: channel i is (label == labels[i]).

    Args:
        fields: label field(s).
        labels: the label values, one channel each (default: 0 .. num_classes - 1).
        num_classes: number of classes when `labels` is not given; if neither is given the
            values present in the data are used (the channel count then varies per sample).

    Example:
        >>> t = ConvertToMultiChannelBasedOnLabel(fields="label", num_classes=3)
    """

    def __init__(
        self, fields: str | Sequence[str], labels: Sequence[float] | None = None, num_classes: int | None = None
    ) -> None:
        super().__init__(fields)
        self.labels = list(labels) if labels is not None else None
        self.num_classes = num_classes

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            lab, sf = _label_map(img)
            if self.labels is not None:
                values = self.labels
            elif self.num_classes is not None:
                values = list(range(int(self.num_classes)))
            else:
                values = np.unique(lab).tolist()
            data, out_sf = _stack_channels(one_hot(lab, values), sf, img.dtype)
            transform_ctx.set_image(f, _as_label(img.new_image(data, out_sf)))
        return transform_ctx


class SplitBasedOnLabel(Transformer):
    """Split a label into one binary field per class (for per-class metrics and writers).

    A label map (no channel, or one channel) gives `label_names[i]` = (label == label_values[i]);
    a multi-channel (one-hot / probability) image gives `label_names[i]` = channel i.

    Args:
        field: the label / prediction field.
        label_names: names of the output fields, one per class.
        label_values: the label value of each name (default 0, 1, 2, ...).

    Example:
        >>> t = SplitBasedOnLabel(field="model", label_names=["background", "liver", "tumor"])
    """

    def __init__(self, field: str, label_names: Sequence[str], label_values: Sequence[float] | None = None) -> None:
        super().__init__(field)
        self.label_names = list(label_names)
        self.label_values = list(label_values) if label_values is not None else list(range(len(self.label_names)))
        if len(self.label_values) != len(self.label_names):
            raise ValueError("label_values must have one value per label name")

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        img = transform_ctx.get_image(self.field)
        sf = img.get_shape_format()
        if sf.has_channel() and img.shape[sf.get_channel_axis()] > 1:
            chans = _channels(img)
            if len(chans) != len(self.label_names):
                raise ValueError(f"{self.field!r} has {len(chans)} channels but {len(self.label_names)} label names")
            for name, ch in zip(self.label_names, chans):
                transform_ctx.set_image(name, img.new_image(ch, sf))
            return transform_ctx
        lab = img.get_data()
        for name, m in zip(self.label_names, one_hot(lab, self.label_values)):
            transform_ctx.set_image(name, _as_label(img.new_image(m.astype(img.dtype), sf)))
        return transform_ctx


class SplitBasedOnBratsClasses(Transformer):
    """Split BraTS output into the fields TC, WT, ET (names configurable).

    A 3-channel image (e.g. the network's sigmoid output) is split channel by channel; a
    label map (1, 2, 4) is converted with the BraTS nested-region rules first.

    Args:
        field: the prediction / label field.
        channel_names: names of the three output fields (default ["TC", "WT", "ET"]).
        enhancing_label: label value of the enhancing tumour in label maps.

    Example:
        >>> t = SplitBasedOnBratsClasses(field="model")
    """

    def __init__(
        self, field: str, channel_names: Sequence[str] = BRATS_CLASS_NAMES, enhancing_label: int = 4
    ) -> None:
        super().__init__(field)
        self.channel_names = list(channel_names)
        if len(self.channel_names) != 3:
            raise ValueError("channel_names must name the 3 BraTS classes (TC, WT, ET)")
        self.enhancing_label = enhancing_label

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        img = transform_ctx.get_image(self.field)
        sf = img.get_shape_format()
        if sf.has_channel() and img.shape[sf.get_channel_axis()] == 3:
            for name, ch in zip(self.channel_names, _channels(img)):
                transform_ctx.set_image(name, img.new_image(ch, sf))
            return transform_ctx
        lab, sf0 = _label_map(img)
        out_sf = sf0.with_channel(first=True)
        for name, m in zip(self.channel_names, brats_classes(lab, self.enhancing_label)):
            data = np.expand_dims(m.astype(img.dtype), out_sf.get_channel_axis())
            transform_ctx.set_image(name, _as_label(img.new_image(data, out_sf)))
        return transform_ctx


# --------------------------------------------------------------------------------------------
# post-processing
# --------------------------------------------------------------------------------------------
class ThresholdValues(MultiFieldTransformer):
    """Binarise: 1 where value > threshold, else 0.

    Args:
        fields: field(s) to threshold.
        threshold: the threshold.
        dtype: output dtype (default: the input's).

    Example:
        >>> t = ThresholdValues(fields="model", threshold=0.5)
    """

    def __init__(self, fields: str | Sequence[str], threshold: float = 0.5, dtype: str | None = None) -> None:
        super().__init__(fields)
        self.threshold = float(threshold)
        self.dtype = np.dtype(dtype) if dtype else None

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            data = (img.get_data() > self.threshold).astype(self.dtype or img.dtype)
            transform_ctx.set_image(f, _as_label(img.new_image(data)))
        return transform_ctx


class ArgmaxAcrossChannels(MultiFieldTransformer):
    """Replace a multi-channel prediction by the index of its largest channel.

    Args:
        fields: field(s) holding channel-axis data ("CDHW", "NCDHW", ...).
        keepdims: keep the channel axis (size 1) so the format stays the same; False drops it.
        dtype: output dtype.

    Example:
        >>> t = ArgmaxAcrossChannels(fields="model")
    """

    def __init__(self, fields: str | Sequence[str], keepdims: bool = True, dtype: str = "uint8") -> None:
        super().__init__(fields)
        self.keepdims = bool(keepdims)
        self.dtype = np.dtype(dtype)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            sf = img.get_shape_format()
            if not sf.has_channel():
                raise ValueError(f"ArgmaxAcrossChannels: field {f!r} has no channel axis ({sf})")
            c = sf.get_channel_axis()
            data = np.argmax(img.get_data(), axis=c).astype(self.dtype)
            if self.keepdims:
                out = img.new_image(np.expand_dims(data, c), sf)
            else:
                out = img.new_image(data, sf.without_channel())
            transform_ctx.set_image(f, _as_label(out))
        return transform_ctx


class KeepLargestCC(MultiFieldTransformer):
    """Keep the largest connected component of a segmentation (scipy.ndimage.label).

    Works on label maps and on one-hot / binary channels (each channel on its own). For a
    label map, `independent=True` keeps the largest component of each label value;
    False keeps the largest component of the union of `applied_labels` and zeroes the rest.

    Args:
        fields: field(s) to clean.
        applied_labels: the label values to process (default: every value > 0).
        independent: treat each label value separately.
        connectivity: 1 (faces) .. ndim (full, default).

    Example:
        >>> t = KeepLargestCC(fields="model")
    """

    def __init__(
        self,
        fields: str | Sequence[str],
        applied_labels: Sequence[float] | None = None,
        independent: bool = True,
        connectivity: int | None = None,
    ) -> None:
        super().__init__(fields)
        self.applied_labels = list(applied_labels) if applied_labels is not None else None
        self.independent = bool(independent)
        self.connectivity = connectivity

    def _clean_map(self, lab: np.ndarray) -> np.ndarray:
        values = self.applied_labels if self.applied_labels is not None else [v for v in np.unique(lab) if v > 0]
        out = lab.copy()
        if self.independent:
            for v in values:
                m = lab == v
                out[m & ~keep_largest_cc(m, self.connectivity)] = 0
        elif values:
            m = np.isin(lab, values)
            out[m & ~keep_largest_cc(m, self.connectivity)] = 0
        return out

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            sf = img.get_shape_format()
            data = img.get_data()
            spatial = sf.get_spatial_axes()
            lead_axes = [i for i in range(data.ndim) if i not in spatial]
            moved = np.moveaxis(data, lead_axes, list(range(len(lead_axes))))
            flat = moved.reshape((-1, *moved.shape[len(lead_axes) :]))
            multi = sf.has_channel() and data.shape[sf.get_channel_axis()] > 1
            cleaned = np.stack([
                (keep_largest_cc(x, self.connectivity) if multi else self._clean_map(x)) for x in flat
            ]).reshape(moved.shape)
            out = np.moveaxis(cleaned, list(range(len(lead_axes))), lead_axes)
            transform_ctx.set_image(f, img.new_image(out))
        return transform_ctx
