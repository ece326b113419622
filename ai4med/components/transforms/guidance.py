"""Guidance transforms for interactive (DExtr3D-style) annotation: extreme points of a label.

The extreme points of an object are, for each spatial axis, its voxel with the smallest
and its voxel with the largest index on that axis (2 x ndim points). `AddExtremePointsChannel`
renders them as Gaussian blobs in an extra image channel; `FetchExtremePoints` returns the
points themselves.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((5, 5), bool); mask[1:4, 2] = True
    >>> extreme_points(mask).tolist()
    [[1, 2], [3, 2], [2, 2], [2, 2]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.transformer import Transformer

__all__ = ["AddExtremePointsChannel", "FetchExtremePoints", "extreme_points", "points_heatmap"]


# --------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------
def extreme_points(mask: np.ndarray, pert: float = 0, rng: np.random.Generator | None = None) -> np.ndarray:
    """The 2 x ndim extreme points of a boolean mask, as an int array of shape (2 * ndim, ndim).

    Points come in the order (min axis 0, max axis 0, min axis 1, max axis 1, ...). Where
    several voxels share the extreme index, the one nearest their centroid is taken, so the
    result is deterministic. With `pert > 0` every coordinate is moved by an integer drawn
    uniformly in [-pert, pert] (from `rng`) and clipped to the array.

    Raises:
        ValueError: the mask is empty.
    """
    coords = np.argwhere(mask)
    if coords.size == 0:
        raise ValueError("extreme_points: the mask has no foreground")
    pts = []
    for ax in range(mask.ndim):
        for pick in (coords[:, ax].min(), coords[:, ax].max()):
            ties = coords[coords[:, ax] == pick]
            centroid = ties.mean(axis=0)
            pts.append(ties[np.argmin(((ties - centroid) ** 2).sum(axis=1))])
    out = np.asarray(pts, dtype=np.int64)
    if pert and pert > 0:
        if rng is None:
            raise ValueError("extreme_points: a generator is needed to perturb the points")
        p = int(np.floor(pert))
        out = out + rng.integers(-p, p + 1, size=out.shape)
        out = np.clip(out, 0, np.asarray(mask.shape) - 1)
    return out


def points_heatmap(
    shape: Sequence[int],
    points: np.ndarray,
    sigma: float | Sequence[float],
    rescale_min: float = -1.0,
    rescale_max: float = 1.0,
) -> np.ndarray:
    """A map that is the maximum over the points of exp(-|x - p|^2 / (2 sigma^2)), rescaled to [min, max].

    The map peaks (= `rescale_max`) exactly at each point; with no points it is `rescale_min`.
    """
    nd = len(shape)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (nd,))
    heat = np.zeros(shape, dtype=np.float32)
    axes = [np.arange(s, dtype=np.float64) for s in shape]
    for p in np.asarray(points).reshape(-1, nd):
        g = None
        for d in range(nd):
            g1 = np.exp(-((axes[d] - p[d]) ** 2) / (2.0 * max(sig[d], 1e-6) ** 2)).astype(np.float32)
            g = g1 if g is None else np.multiply.outer(g, g1)
        np.maximum(heat, g, out=heat)
    lo, hi = float(heat.min()), float(heat.max())
    if hi - lo <= 0:
        return np.full(shape, rescale_min, dtype=np.float32)
    return ((heat - lo) / (hi - lo) * (rescale_max - rescale_min) + rescale_min).astype(np.float32)


def _spatial_mask(img: MedicalImage) -> np.ndarray:
    data = img.get_data()
    sf = img.get_shape_format()
    drop = tuple(i for i in range(data.ndim) if i not in sf.get_spatial_axes())
    mask = data > 0
    return mask.any(axis=drop) if drop else mask


# --------------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------------
class AddExtremePointsChannel(Transformer):
    """Append a channel holding Gaussian blobs at the label's (optionally perturbed) extreme points.

    The image becomes channel-first with one more channel (a "DHW" image becomes "CDHW" with
    2 channels). The drawn points are recorded in the context history.

    Args:
        image_field: the image field.
        label_field: the label field (foreground = label > 0).
        dtype: output dtype of the image.
        sigma: standard deviation of each Gaussian, in voxels.
        pert: each point coordinate is moved by up to `pert` voxels at random (0: none).
        permutation: Clara 3.1's name of `pert` (used when `pert` is 0).
        rescale_min, rescale_max: the range of the points channel.
        points_channel_field: if given, the points channel is also stored in this field.

    Example:
        >>> t = AddExtremePointsChannel(image_field="image", label_field="label", sigma=3, pert=3)
    """

    def __init__(
        self,
        image_field: str = "image",
        label_field: str = "label",
        dtype: str = "float32",
        sigma: float = 3.0,
        pert: float = 0.0,
        permutation: float = 0.0,
        rescale_min: float = -1.0,
        rescale_max: float = 1.0,
        points_channel_field: str | None = None,
    ) -> None:
        super().__init__(image_field)
        self.image_field = image_field
        self.label_field = label_field
        self.dtype = np.dtype(dtype)
        self.sigma = sigma
        self.pert = float(pert) if pert else float(permutation or 0)
        self.rescale_min = float(rescale_min)
        self.rescale_max = float(rescale_max)
        self.points_channel_field = points_channel_field

    def is_deterministic(self) -> bool:
        return self.pert <= 0

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        image = transform_ctx.get_image(self.image_field)
        label = transform_ctx.get_image(self.label_field)
        mask = _spatial_mask(label)
        sf = image.get_shape_format()
        if sf.has_batch():
            raise ValueError(f"{self.get_name()} works on one volume; apply it before batching crops")
        spatial = tuple(image.shape[a] for a in sf.get_spatial_axes())
        if mask.shape != spatial:
            raise ValueError(f"image spatial shape {spatial} and label spatial shape {mask.shape} differ")
        if mask.any():
            rng = transform_ctx.get_rng() if self.pert > 0 else None
            pts = extreme_points(mask, self.pert, rng)
        else:
            pts = np.zeros((0, mask.ndim), dtype=np.int64)
        transform_ctx.record(self.get_name(), {"points": pts.tolist()})
        return self.add_channel(transform_ctx, pts)

    def add_channel(self, transform_ctx: TransformContext, pts: np.ndarray) -> TransformContext:
        """Append the points channel for `pts` (indices in the image's current grid), as `transform`
        does for the label's extreme points; the annotation server calls this with the clicked points."""
        image = transform_ctx.get_image(self.image_field)
        sf = image.get_shape_format()
        spatial = tuple(image.shape[a] for a in sf.get_spatial_axes())
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, len(spatial))
        heat = points_heatmap(spatial, pts, self.sigma, self.rescale_min, self.rescale_max)
        data = image.get_data()
        if not sf.has_channel():
            out_sf = sf.with_channel(first=True)
            c_ax = out_sf.get_channel_axis()
            data = np.expand_dims(data, c_ax)
        else:
            out_sf = sf
            c_ax = sf.get_channel_axis()
        heat_b = np.expand_dims(heat, c_ax)
        out = np.concatenate([data.astype(self.dtype, copy=False), heat_b.astype(self.dtype)], axis=c_ax)
        transform_ctx.set_image(self.image_field, image.new_image(out, out_sf))
        if self.points_channel_field:
            pimg = image.new_image(heat_b.astype(self.dtype), out_sf)
            pimg.set_property(ImageProperty.IS_LABEL, False)
            transform_ctx.set_image(self.points_channel_field, pimg)
        return transform_ctx


class FetchExtremePoints(Transformer):
    """Compute the extreme points of a label (e.g. a prediction) and store them in the context.

    The points are expressed in the voxel grid of `image_field` (mapped through the AFFINEs
    when the two differ), as an int array of shape (2 * ndim, ndim) in field `points`.

    Args:
        image_field: the image whose voxel grid the points are given in.
        label_field: the label / prediction (foreground = value > 0).
        points: the field that receives the points.

    Example:
        >>> t = FetchExtremePoints(image_field="image", label_field="model", points="points")
    """

    def __init__(self, image_field: str = "image", label_field: str = "label", points: str = "points") -> None:
        super().__init__(label_field)
        self.image_field = image_field
        self.label_field = label_field
        self.points = points

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        label = transform_ctx.get_image(self.label_field)
        mask = _spatial_mask(label)
        pts = extreme_points(mask) if mask.any() else np.zeros((0, mask.ndim), dtype=np.int64)
        image = transform_ctx.get(self.image_field)
        la = label.get_property(ImageProperty.AFFINE)
        ia = image.get_property(ImageProperty.AFFINE) if isinstance(image, MedicalImage) else None
        if pts.size and la is not None and ia is not None and not np.allclose(la, ia):
            nd = mask.ndim
            hom = np.zeros((pts.shape[0], 4))
            hom[:, :nd] = pts
            hom[:, 3] = 1
            vox = (np.linalg.inv(np.asarray(ia, dtype=np.float64)) @ np.asarray(la, dtype=np.float64) @ hom.T).T
            pts = np.rint(vox[:, :nd]).astype(np.int64)
        transform_ctx[self.points] = pts
        return transform_ctx
