"""Predictions back onto the input grid and into label maps: the one rule every door uses.

* `to_grid` / `restore_to_input`: an image resampled through its AFFINE onto another grid (the grid
  the image was loaded on), linear for probabilities, nearest for label maps, zeros outside;
* `to_label_map`: argmax over several channels, `> threshold` for one, integer maps as they are;
* `to_input_labels`: probabilities still on the network's grid resampled linearly onto the input
  grid, then labelled (as MONAI's Invertd + AsDiscreted and nnU-Net's export do);
* `SegmentationPostProcess` (a transform, registered): `to_input_labels` (+ largest component).

Example:
    >>> from ai4med.common.transform_ctx import TransformContext
    >>> ctx = TransformContext({"model": MedicalImage(np.array([[[[0.2, 0.9]]], [[[0.8, 0.1]]]]), "CDHW")})
    >>> SegmentationPostProcess(restore=False).transform(ctx)["model"].get_data().tolist()
    [[[[1, 0]]]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext

__all__ = ["SegmentationPostProcess", "to_label_map", "to_input_labels", "to_grid", "grid_of", "same_grid",
           "restore_to_input", "spatial_data"]


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
        img = transform_ctx.get_image(self.field)
        if self.restore:  # probabilities resampled (linear) onto the input grid, then labelled: see to_input_labels
            src = transform_ctx.get(self.src_field)
            img = to_input_labels(img, src if isinstance(src, MedicalImage) else None, self.threshold)
        else:
            img = to_label_map(img, self.threshold)
        if self.keep_largest_cc:
            from ai4med.components.transforms.post import KeepLargestCC

            transform_ctx.set_image(self.field, img)
            KeepLargestCC(self.field).transform(transform_ctx)
            img = transform_ctx.get_image(self.field)
        sf = img.get_shape_format()
        img = img.new_image(np.expand_dims(img.get_data(), 0), sf.with_channel(first=True))
        transform_ctx.set_image(self.field, img)
        return transform_ctx


def to_input_labels(img: MedicalImage, src: MedicalImage | None, threshold: float = 0.5) -> MedicalImage:
    """A prediction as a label map on the grid `src` was loaded on: probabilities (or logits) still on the
    network's grid are resampled linearly onto the input grid first and labelled there (as MONAI's Invertd
    + AsDiscreted and nnU-Net's export do), so a voxel of the input half-way between two network voxels
    takes the blend of both; a prediction that is already a label map is resampled with nearest neighbour."""
    data = img.get_data()
    if not np.issubdtype(data.dtype, np.floating):
        return restore_to_input(to_label_map(img, threshold), src)
    sf = img.get_shape_format()
    if sf.has_channel() and sf.get_channel_axis() == 0 and data.shape[0] == 2:
        # two classes: argmax is `p1 - p0 > 0`, and linear resampling commutes with the difference, so one
        # channel is resampled instead of two (e2e bench, AVX2: 0.18 -> 0.10 s a 512x512x120 case)
        margin = img.new_image(data[1:2] - data[0:1], sf)
        return to_label_map(restore_to_input(margin, src), 0.0)
    return to_label_map(restore_to_input(img, src), threshold)
