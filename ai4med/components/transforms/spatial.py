"""Spatial transforms: resampling to a spacing / factor / shape, restore, flips, rot90, zoom, rotation, padding.

Every transform keeps the geometry true: the returned image's AFFINE (and SPACING /
ORIGIN / DIRECTION) describe the returned array's grid, so the array written with its
AFFINE lands where the input was in world space. Resampling transforms leave
ORIGINAL_SHAPE / ORIGINAL_AFFINE (set by the loader) untouched, so `RestoreOriginalShape`
puts a prediction back on the input grid. Label fields (`utils.is_label`, or `is_label`
/ `label_field` arguments) are resampled with nearest neighbour.

Kernels work on numpy arrays; linear interpolation on a separable (axis-aligned) mapping
uses torch (multi-threaded, float32); other mappings use `torch.nn.functional.grid_sample`.

Example:
    >>> import numpy as np
    >>> resize(np.array([0.0, 1.0, 2.0]), (5,), order=1).tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer
from ai4med.components.transforms.transformer import Transformer
from ai4med.components.transforms.utils import (
    affine_after_flip,
    affine_after_index_map,
    affine_after_pad,
    affine_after_resize,
    affine_after_rot90,
    as_list,
    batch_size_of,
    get_affine,
    is_label,
    resolve_fields,
    set_affine,
    spatial_shape,
    stack_batch,
    unstack_batch,
)

__all__ = [
    "resample_separable", "resample_affine", "resample_to_grid", "resize", "spacing_grid",
    "flip", "rot90", "rotation_matrix", "symmetric_pad_div",
    "ResampleVolume", "ScaleByResolution", "ScaleBySpacing", "ScaleByFactor", "ScaleToShape",
    "RestoreOriginalShape", "NPResizeImage", "NP2DRotate", "NPRandomFlip3D", "NPRandomZoom3D",
    "NPRandomRot90_XY", "FlipAxisRandom", "RandomZoom", "RandomAxisFlip", "RandomSpatialFlip",
    "RandomRotate2D", "RandomRotate3D", "SymmetricPadderDiv",
]


# =====================================================================================
# kernels
# =====================================================================================
def _axis_identity(c: np.ndarray, n: int) -> bool:
    return c.shape[0] == n and bool(np.allclose(c, np.arange(n), atol=1e-6, rtol=0))


def _linear_weights(c: np.ndarray, n: int, padding: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w, inside) of linear interpolation at source indices `c` on an axis of size `n`."""
    f = np.floor(c)
    w = c - f
    i0 = np.clip(f, 0, n - 1).astype(np.int64)
    i1 = np.clip(f + 1, 0, n - 1).astype(np.int64)
    inside = (c >= -0.5) & (c <= n - 0.5) if padding == "zeros" else np.ones(c.shape, bool)
    return i0, i1, w, inside


def resample_separable(
    data: np.ndarray, coords: dict[int, np.ndarray], order: int = 1, padding: str = "border"
) -> np.ndarray:
    """Resample `data` along some axes: output index `o` on axis `a` reads source index `coords[a][o]`.

    One pass per axis, in the order that shrinks the data first: two `np.take` gathers and
    an in-place (multi-threaded) torch `lerp_`. The result keeps the input's memory order
    (nibabel's Fortran-ordered volumes stay Fortran-ordered: no transposed copy).

    Args:
        data: any array; axes not in `coords` (channels, batch) are left as they are.
        coords: axis -> 1D float array of source indices (one per output index).
        order: 0 nearest (keeps the dtype), 1 linear (float32; float64 kept).
        padding: "border" (clamp to the edge voxel) or "zeros" (0 beyond half a voxel outside).

    Returns:
        The resampled array.
    """
    import torch

    plans = []
    for ax, c in coords.items():
        c = np.asarray(c, dtype=np.float64)
        n = data.shape[ax]
        if _axis_identity(c, n):
            continue
        plans.append((c.shape[0] / max(n, 1), ax, c, n))
    if order != 0 and data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float32)
    if not plans:
        return data.copy()
    plans.sort(key=lambda p: p[0])  # shrink first: less work for the later axes
    # work on the view whose axes are in memory order (np.take writes C-order: no transposing copies)
    keys = [-abs(st) if n > 1 else -np.inf for st, n in zip(data.strides, data.shape)]  # size-1 axes first
    perm = [int(i) for i in np.argsort(keys, kind="stable")]
    pos = {ax: i for i, ax in enumerate(perm)}
    x = data.transpose(perm)
    for _, ax, c, n in plans:
        ax = pos[ax]
        if order == 0:
            x = np.take(x, np.clip(np.floor(c + 0.5), 0, n - 1).astype(np.intp), axis=ax, mode="clip")
        else:
            i0, i1, w, _ = _linear_weights(c, n, padding)
            x0 = np.take(x, i0, axis=ax, mode="clip")
            if np.any(w > 1e-7):
                shape = [1] * x.ndim
                shape[ax] = -1
                x1 = np.take(x, i1, axis=ax, mode="clip")
                torch.from_numpy(x0).lerp_(torch.from_numpy(x1), torch.from_numpy(w.astype(x0.dtype)).view(shape))
            x = x0
        x = _mask_zeros(x, ax, c, n, padding)
    return x.transpose(np.argsort(perm))


def _mask_zeros(x: np.ndarray, a: int, c: np.ndarray, n: int, padding: str) -> np.ndarray:
    """Zero the output slices along axis `a` whose source index lies outside the input (zeros padding)."""
    if padding != "zeros":
        return x
    inside = (c >= -0.5) & (c <= n - 0.5)
    if inside.all():
        return x
    sl = [slice(None)] * x.ndim
    sl[a] = np.flatnonzero(~inside)
    x[tuple(sl)] = 0
    return x


def resample_affine(
    data: np.ndarray,
    matrix: np.ndarray,
    offset: Sequence[float],
    out_shape: Sequence[int],
    order: int = 1,
    padding: str = "border",
    spatial_axes: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample the spatial axes: output index `o` reads source index `matrix @ o + offset`.

    A diagonal `matrix` (or a scaled axis permutation, e.g. undoing a rot90) takes the
    separable path; any other uses torch `grid_sample`
    (align_corners=True, so index space maps exactly). Leading non-spatial axes are kept.

    Args:
        data: array whose last `len(out_shape)` axes (or `spatial_axes`) are spatial.
        matrix, offset: the output -> source index map.
        out_shape: spatial shape of the output.
        order: 0 nearest, 1 linear. padding: "border" or "zeros".
    """
    m = np.asarray(matrix, dtype=np.float64)
    off = np.asarray(offset, dtype=np.float64)
    nd = len(out_shape)
    axes = list(spatial_axes) if spatial_axes is not None else list(range(data.ndim - nd, data.ndim))
    nz = np.abs(m) > 1e-9
    if (nz.sum(axis=0) == 1).all() and (nz.sum(axis=1) == 1).all():
        # a scaled, signed axis permutation (resampling after flips / rot90): transpose, then separable
        src_of = [int(np.flatnonzero(nz[:, c])[0]) for c in range(nd)]
        perm = list(range(data.ndim))
        for c, r in enumerate(src_of):
            perm[axes[c]] = axes[r]
        coords = {axes[c]: np.arange(out_shape[c]) * m[r, c] + off[r] for c, r in enumerate(src_of)}
        return resample_separable(data.transpose(perm), coords, order, padding)
    return _grid_sample(data, m, off, out_shape, order, padding, axes)


def _grid_sample(data, m, off, out_shape, order, padding, axes):
    import torch
    import torch.nn.functional as F

    nd = len(out_shape)
    other = [i for i in range(data.ndim) if i not in axes]
    moved = np.transpose(data, other + list(axes))
    lead = moved.shape[: len(other)]
    in_sp = moved.shape[len(other):]
    orig_dtype = data.dtype
    work = moved.reshape((1, -1) + tuple(in_sp))
    if work.dtype not in (np.float32, np.float64):
        work = work.astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(work))
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in out_shape], indexing="ij")
    pts = torch.stack([g.reshape(-1) for g in grids], 0)  # nd x P
    src = torch.from_numpy(m) @ pts + torch.from_numpy(off)[:, None]
    # normalise to [-1, 1] (align_corners=True) and reverse to grid_sample's (x, y, z) = (W, H, D)
    norm = torch.stack([2.0 * src[i] / max(in_sp[i] - 1, 1) - 1.0 for i in range(nd)][::-1], -1)
    grid = norm.reshape((1,) + tuple(out_shape) + (nd,)).to(x.dtype)
    out = F.grid_sample(
        x, grid, mode="nearest" if order == 0 else "bilinear",
        padding_mode="border" if padding == "border" else "zeros", align_corners=True,
    )
    res = out.numpy().reshape(tuple(lead) + tuple(out_shape))
    res = np.transpose(res, np.argsort(other + list(axes)))
    if order == 0:
        res = res.astype(orig_dtype, copy=False)
    return np.ascontiguousarray(res)


def resample_to_grid(
    data: np.ndarray,
    src_affine: np.ndarray,
    dst_affine: np.ndarray,
    dst_shape: Sequence[int],
    order: int = 1,
    padding: str = "border",
    spatial_axes: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample `data` (on the grid `src_affine`) onto the grid (`dst_affine`, `dst_shape`)."""
    nd = len(dst_shape)
    t = np.linalg.solve(np.asarray(src_affine, np.float64), np.asarray(dst_affine, np.float64))
    return resample_affine(data, t[:nd, :nd], t[:nd, -1], dst_shape, order, padding, spatial_axes)


def resize(data: np.ndarray, out_shape: Sequence[int], order: int = 1, spatial_axes: Sequence[int] | None = None):
    """Resize the spatial axes to `out_shape`, first and last voxel centres aligned
    (the mapping of `scipy.ndimage.zoom(..., grid_mode=False)`)."""
    nd = len(out_shape)
    axes = list(spatial_axes) if spatial_axes is not None else list(range(data.ndim - nd, data.ndim))
    coords = {}
    for i, ax in enumerate(axes):
        n, o = data.shape[ax], int(out_shape[i])
        coords[ax] = np.arange(o) * ((n - 1) / (o - 1)) if o > 1 else np.array([(n - 1) / 2.0])
    return resample_separable(data, coords, order, "border")


def spacing_grid(
    affine: np.ndarray, shape: Sequence[int], target_spacing: Sequence[float]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """The grid of spacing `target_spacing` covering a grid (MONAI `Spacing`'s convention).

    Voxel (0, ...) keeps its world position and the axis directions stay; the new shape
    is `round((n - 1) * s / t + 1)`. Returns `(new_affine, new_shape)`.
    """
    a = np.asarray(affine, dtype=np.float64)
    nd = len(shape)
    cur = np.linalg.norm(a[:3, :nd], axis=0) if a.shape[0] == 4 else np.linalg.norm(a[:nd, :nd], axis=0)
    cur = np.where(cur > 0, cur, 1.0)
    tgt = np.asarray(target_spacing, dtype=np.float64)
    if tgt.size != nd:
        raise ValueError(f"target spacing {tuple(target_spacing)} has {tgt.size} values for a {nd}D image")
    if np.any(tgt <= 0):
        raise ValueError(f"target spacing must be > 0, got {tuple(target_spacing)}")
    ratio = cur / tgt
    new_shape = tuple(max(1, int(np.round((n - 1) * r + 1.0))) for n, r in zip(shape, ratio))
    new_aff = affine_after_index_map(a, np.diag(1.0 / ratio), np.zeros(nd))
    return new_aff, new_shape


def flip(data: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """`np.flip` on `axes`, returned contiguous."""
    return np.ascontiguousarray(np.flip(data, tuple(axes))) if len(axes) else data


def rot90(data: np.ndarray, k: int, axes: Sequence[int]) -> np.ndarray:
    """`np.rot90(data, k, axes)`, returned contiguous."""
    return np.ascontiguousarray(np.rot90(data, k, tuple(axes)))


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Output -> source index rotation for 1 angle (2D) or 3 angles (3D, about axes 0, 1, 2), radians.

    In 2D a positive angle turns the picture as `np.rot90` / `scipy.ndimage.rotate` do.
    """
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, s], [-s, c]])
    a, b, g = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(g), -math.sin(g), 0], [math.sin(g), math.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _centre_map(matrix: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) of an index map `o -> matrix @ (o - c) + c` about the grid centre c."""
    c = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    return matrix, c - matrix @ c


def symmetric_pad_div(shape: Sequence[int], divisor: int | Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) padding per axis making each size divisible by `divisor`, split evenly."""
    divs = as_list(divisor)
    if len(divs) == 1:
        divs = divs * len(shape)
    pads = []
    for n, k in zip(shape, divs):
        k = int(k)
        total = (-n) % k if k > 0 else 0
        pads.append((total // 2, total - total // 2))
    return pads


# =====================================================================================
# plumbing
# =====================================================================================
def _affine_or_identity(img: MedicalImage) -> np.ndarray:
    a = get_affine(img)
    if a is not None:
        return a
    spacing = img.get_property(ImageProperty.SPACING)
    out = np.eye(4)
    if spacing is not None:
        for i, s in enumerate(as_list(spacing)[:3]):
            out[i, i] = float(s)
    return out


def _ensure_original(img: MedicalImage) -> None:
    """Record the grid an image came on, if its loader did not (numpy / png loaders)."""
    if img.get_property(ImageProperty.ORIGINAL_SHAPE) is None:
        img.set_property(ImageProperty.ORIGINAL_SHAPE, spatial_shape(img))
    if img.get_property(ImageProperty.ORIGINAL_AFFINE) is None:
        img.set_property(ImageProperty.ORIGINAL_AFFINE, _affine_or_identity(img))


def _spatial_out(img: MedicalImage, data: np.ndarray, new_affine: np.ndarray | None) -> MedicalImage:
    out = img.new_image(data, img.get_shape_format())
    if new_affine is not None:
        set_affine(out, new_affine)
    return out


def _order(img: MedicalImage, field: str, label_fields: Sequence[str], force_label: bool = False) -> int:
    return 0 if (force_label or is_label(img, field, label_fields)) else 1


class _SpatialTransformer(MultiFieldTransformer):
    """Resolves the field spellings and the label fields of a spatial transform."""

    def __init__(self, fields: Any, *others: Any, label_field: Any = None, image_field: Any = None) -> None:
        names = resolve_fields(fields, *others, _join(image_field, label_field), name=type(self).__name__)
        super().__init__(names)
        self.label_fields = as_list(label_field)

    def _order(self, img: MedicalImage, field: str) -> int:
        return _order(img, field, self.label_fields, getattr(self, "is_label", False))


def _join(*values: Any) -> list[str] | None:
    out: list[str] = []
    for v in values:
        out += [x for x in as_list(v) if x not in out]
    return out or None


def _prob_ok(p: float, name: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: probability must be in [0, 1], got {p}")
    return p


# =====================================================================================
# resampling transforms
# =====================================================================================
class ScaleByResolution(_SpatialTransformer):
    """Resample to a target voxel spacing (mm), as MONAI `Spacing` does (linear; nearest for labels).

    The new grid keeps voxel 0's world position and the axis directions; its shape is
    `round((n - 1) * spacing / target + 1)`. AFFINE / SPACING describe the new grid;
    ORIGINAL_* are kept for `RestoreOriginalShape`.

    Args:
        fields: field(s) to resample. target_resolution: spacing per spatial axis (mm).
        is_label: resample all `fields` with nearest neighbour (else per `utils.is_label`).
        label_field: field(s) that are labels (nearest). resolution: the input's spacing
            when the image has no AFFINE (else read from the image).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> img = MedicalImage(np.zeros((10, 10, 5), np.float32), "DHW")
        >>> img.set_property(ImageProperty.AFFINE, np.diag([1.0, 1.0, 2.0, 1.0]))
        >>> ctx = ScaleByResolution("image", target_resolution=[2, 2, 2])(TransformContext({"image": img}))
        >>> ctx["image"].shape, ctx["image"].get_property(ImageProperty.SPACING)
        ((6, 6, 5), (2.0, 2.0, 2.0))
    """

    def __init__(
        self, fields: Any = None, target_resolution: Sequence[float] | None = None, is_label: bool = False,
        label_field: Any = None, resolution: Sequence[float] | None = None, field: Any = None,
        applied_keys: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, label_field=label_field)
        if target_resolution is None:
            raise ValueError(f"{self.get_name()}: target_resolution is required")
        self.target = [float(v) for v in as_list(target_resolution)]
        self.is_label = bool(is_label)
        self.resolution = None if resolution is None else [float(v) for v in as_list(resolution)]

    def _input_affine(self, img: MedicalImage) -> np.ndarray:
        if self.resolution is not None and get_affine(img) is None:
            a = np.eye(4)
            for i, s in enumerate(self.resolution[:3]):
                a[i, i] = s
            return a
        return _affine_or_identity(img)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            _ensure_original(img)
            shape = spatial_shape(img)
            target = self.target if len(self.target) == len(shape) else (self.target * len(shape))[: len(shape)]
            src_aff = self._input_affine(img)
            new_aff, new_shape = spacing_grid(src_aff, shape, target)
            data = resample_to_grid(
                img.get_data(), src_aff, new_aff, new_shape, self._order(img, f),
                spatial_axes=img.get_shape_format().get_spatial_axes(),
            )
            transform_ctx.set_image(f, _spatial_out(img, data, new_aff))
        return transform_ctx


class ScaleBySpacing(ScaleByResolution):
    """Resample to a target spacing: `ScaleByResolution` under the argument name `target_spacing`.

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((5, 5), np.float32), "HW")})
        >>> ScaleBySpacing("image", target_spacing=[0.5, 0.5])(ctx)["image"].shape
        (9, 9)
    """

    def __init__(
        self, fields: Any = None, target_spacing: Sequence[float] | None = None, is_label: bool = False,
        label_field: Any = None, field: Any = None, applied_keys: Any = None,
    ) -> None:
        super().__init__(fields, target_spacing, is_label, label_field, None, field, applied_keys)


class ResampleVolume(ScaleByResolution):
    """The 2019 resampler: from `resolution` (or the image's spacing) to `target_resolution`.

    Args:
        applied_key: field (also `fields` / `applied_keys`). resolution: input spacing
            (used when the image has no AFFINE). target_resolution: output spacing.

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((1, 5, 5, 5), np.float32), "CDHW")})
        >>> ResampleVolume(applied_key="image", resolution=[1, 1, 1], target_resolution=[2, 2, 2])(ctx)["image"].shape
        (1, 3, 3, 3)
    """

    def __init__(
        self, applied_key: Any = None, resolution: Sequence[float] | None = None,
        target_resolution: Sequence[float] | None = None, fields: Any = None, applied_keys: Any = None,
        is_label: bool = False, label_field: Any = None,
    ) -> None:
        super().__init__(fields, target_resolution, is_label, label_field, resolution, None, applied_keys, applied_key)


class _ResizeTransformer(_SpatialTransformer):
    """Shared by the resize-type transforms: subclasses give the output spatial shape."""

    def _out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            _ensure_original(img)
            shape = spatial_shape(img)
            out_shape = self._out_shape(shape)
            sf = img.get_shape_format()
            data = resize(img.get_data(), out_shape, self._order(img, f), sf.get_spatial_axes())
            new_aff = affine_after_resize(_affine_or_identity(img), shape, out_shape, align_corners=True)
            transform_ctx.set_image(f, _spatial_out(img, data, new_aff))
        return transform_ctx


class ScaleByFactor(_ResizeTransformer):
    """Zoom by a factor per spatial axis (shape `round(n * factor)`, corner-aligned linear; nearest for labels).

    Args:
        fields: field(s). factor: one factor or one per spatial axis.
        is_label: nearest neighbour for all fields. label_field: label field(s).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((4, 4, 4), np.float32), "DHW")})
        >>> ScaleByFactor("image", factor=0.5)(ctx)["image"].shape
        (2, 2, 2)
    """

    def __init__(
        self, fields: Any = None, factor: Any = 1.0, is_label: bool = False, label_field: Any = None,
        field: Any = None, applied_keys: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        self.factor = [float(v) for v in as_list(factor)]
        if any(v <= 0 for v in self.factor):
            raise ValueError(f"ScaleByFactor: factor must be > 0, got {factor!r}")
        self.is_label = bool(is_label)

    def _out_shape(self, shape):
        f = self.factor * len(shape) if len(self.factor) == 1 else self.factor
        return tuple(max(1, int(round(n * z))) for n, z in zip(shape, f))


class ScaleToShape(_ResizeTransformer):
    """Resize the spatial axes to `shape` (corner-aligned linear; nearest for labels).

    Args:
        fields: field(s). shape: the output spatial shape (-1 keeps an axis).
        is_label: nearest neighbour for all fields. label_field: label field(s).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((1, 4, 6), np.float32), "CHW")})
        >>> ScaleToShape("image", shape=[8, -1])(ctx)["image"].shape
        (1, 8, 6)
    """

    def __init__(
        self, fields: Any = None, shape: Sequence[int] | None = None, is_label: bool = False,
        label_field: Any = None, field: Any = None, applied_keys: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        if shape is None:
            raise ValueError("ScaleToShape: shape is required")
        self.shape = [int(v) for v in as_list(shape)]
        self.is_label = bool(is_label)

    def _out_shape(self, shape):
        if len(self.shape) != len(shape):
            raise ValueError(f"{self.get_name()}: shape {self.shape} does not match a {len(shape)}D image")
        return tuple(n if s <= 0 else s for n, s in zip(shape, self.shape))


class NPResizeImage(ScaleToShape):
    """Resize a 2D image (any channel layout) to `output_shape` (the 2019 transform).

    Args:
        applied_keys: field(s). output_shape: [rows, cols]. data_format: kept for
            compatibility (the layout is read from the image's ShapeFormat).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((10, 10, 3), np.float32), "HWC")})
        >>> NPResizeImage("image", output_shape=[4, 5])(ctx)["image"].shape
        (4, 5, 3)
    """

    def __init__(
        self, applied_keys: Any = None, output_shape: Sequence[int] | None = None, data_format: str | None = None,
        fields: Any = None, is_label: bool = False, label_field: Any = None,
    ) -> None:
        super().__init__(fields, output_shape, is_label, label_field, None, applied_keys)
        self.data_format = data_format


class RestoreOriginalShape(Transformer):
    """Bring a (prediction) field back onto the grid its source image was loaded on.

    The field's current grid is `src_field`'s AFFINE (the field itself when no source);
    it is resampled onto ORIGINAL_AFFINE / ORIGINAL_SHAPE (nearest for labels, zeros
    outside the current grid, e.g. after a crop), and gets the original geometry.

    Args:
        field: field to restore (also `fields`). src_field: the image whose geometry
            properties describe the field's grid (e.g. "image"); None = the field itself.
        is_label: nearest neighbour (e.g. a label map / argmax prediction).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> img = MedicalImage(np.zeros((10, 10, 5), np.float32), "DHW")
        >>> img.set_property(ImageProperty.AFFINE, np.diag([1.0, 1.0, 2.0, 1.0]))
        >>> ctx = ScaleByResolution("image", target_resolution=[2, 2, 2])(TransformContext({"image": img}))
        >>> ctx["model"] = MedicalImage(np.ones((6, 6, 5), np.float32), "DHW")
        >>> RestoreOriginalShape("model", src_field="image")(ctx)["model"].shape
        (10, 10, 5)
    """

    def __init__(
        self, field: str | None = None, src_field: str | None = None, is_label: bool = False,
        fields: Any = None, dtype: str | None = None,
    ) -> None:
        names = resolve_fields(fields, field, name="RestoreOriginalShape")
        super().__init__(names[0])
        self.fields = names
        self.src_field = src_field
        self.is_label = bool(is_label)
        self.dtype = dtype

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            src = transform_ctx.get_image(self.src_field) if self.src_field else img
            shape = spatial_shape(img)
            src_shape = spatial_shape(src)
            orig_shape = src.get_property(ImageProperty.ORIGINAL_SHAPE)
            if orig_shape is None:
                raise ValueError(
                    f"RestoreOriginalShape: {self.src_field or f!r} has no ORIGINAL_SHAPE property "
                    "(was it loaded by a loader transform?)"
                )
            orig_shape = tuple(int(s) for s in orig_shape)[-len(shape):]
            cur_aff = _affine_or_identity(src)
            if shape != src_shape:  # e.g. a prediction at another resolution over the same field of view
                cur_aff = affine_after_resize(cur_aff, src_shape, shape, align_corners=True)
            orig_aff = src.get_property(ImageProperty.ORIGINAL_AFFINE)
            orig_aff = cur_aff if orig_aff is None else np.asarray(orig_aff, dtype=np.float64)
            order = 0 if (self.is_label or is_label(img, f)) else 1
            sf = img.get_shape_format()
            data = resample_to_grid(img.get_data(), cur_aff, orig_aff, orig_shape, order, "zeros",
                                    sf.get_spatial_axes())
            if self.dtype is not None:
                from ai4med.utils.dtype_utils import str_to_dtype

                data = data.astype(str_to_dtype(self.dtype), copy=False)
            out = img.new_image(data, sf)
            for key in (ImageProperty.ORIGINAL_SHAPE, ImageProperty.ORIGINAL_AFFINE, ImageProperty.ORIGINAL_SPACING,
                        ImageProperty.FILENAME):
                if src.get_property(key) is not None:
                    out.set_property(key, src.get_property(key))
            set_affine(out, orig_aff)
            transform_ctx.set_image(f, out)
        return transform_ctx


# =====================================================================================
# random flips / rotations / zoom
# =====================================================================================
class _RandomSpatial(_SpatialTransformer):
    """Random spatial transform: draws once per call, applies the same draw to every field."""

    def is_deterministic(self) -> bool:
        return False

    def _draw(self, rng: np.random.Generator, nd: int) -> dict[str, Any] | None:
        raise NotImplementedError

    def _apply(self, img: MedicalImage, field: str, params: dict[str, Any]) -> MedicalImage:
        raise NotImplementedError

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        first = transform_ctx.get_image(self.fields[0])
        nd = first.get_shape_format().get_number_of_spatial_dims()
        n = batch_size_of(first)
        if n is not None:  # batch-by-transform crops: one draw per item
            return self._transform_items(transform_ctx, nd, n)
        params = self._draw(transform_ctx.get_rng(), nd)
        transform_ctx.record(self.get_name(), dict(params or {"applied": False}))
        if params is None:
            return transform_ctx
        for f in self.fields:
            img = transform_ctx.get_image(f)
            transform_ctx.set_image(f, self._apply(img, f, params))
        return transform_ctx

    def _transform_items(self, transform_ctx: TransformContext, nd: int, n: int) -> TransformContext:
        rng = transform_ctx.get_rng()
        draws = [self._draw(rng, nd) for _ in range(n)]
        transform_ctx.record(self.get_name(), {"per_item": [dict(d or {"applied": False}) for d in draws]})
        for f in self.fields:
            img = transform_ctx.get_image(f)
            if batch_size_of(img) != n:
                raise ValueError(f"{self.get_name()}: field {f!r} is not batched like {self.fields[0]!r} "
                                 f"({n} crops)")
            items = [one if d is None else self._apply(one, f, d) for one, d in zip(unstack_batch(img), draws)]
            transform_ctx.set_image(f, stack_batch(items))
        return transform_ctx


def _flip_image(img: MedicalImage, axes: Sequence[int]) -> MedicalImage:
    """Flip spatial axes (indices among the spatial axes) of an image, updating its AFFINE."""
    sf = img.get_shape_format()
    sp = sf.get_spatial_axes()
    data = flip(img.get_data(), [sp[a] for a in axes])
    aff = get_affine(img)
    new_aff = None if aff is None else affine_after_flip(aff, axes, spatial_shape(img))
    return _spatial_out(img, data, new_aff)


class _RandomFlipBase(_RandomSpatial):
    def _apply(self, img, field, params):
        return _flip_image(img, params["axes"]) if params["axes"] else img


class NPRandomFlip3D(_RandomFlipBase):
    """Flip along each spatial axis independently with `probability` (the 2019 transform).

    Args:
        applied_keys: field(s) (also `fields`). probability: chance per axis (0.5).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.arange(8.0).reshape(2, 2, 2), "DHW")},
        ...                        rng=np.random.default_rng(0))
        >>> out = NPRandomFlip3D("image", probability=1.0)(ctx)["image"].get_data()
        >>> out[0, 0, 0]
        np.float64(7.0)
    """

    def __init__(self, applied_keys: Any = None, probability: float = 0.5, fields: Any = None,
                 label_field: Any = None) -> None:
        super().__init__(fields, applied_keys, label_field=label_field)
        self.probability = _prob_ok(probability, "NPRandomFlip3D")

    def _draw(self, rng, nd):
        return {"axes": [a for a in range(nd) if rng.random() < self.probability]}


class FlipAxisRandom(_RandomFlipBase):
    """Flip each listed spatial axis with probability 0.5 (or `probability`).

    Args:
        fields: field(s). axis: spatial axes to try (default all), e.g. [0, 1, 2].
        probability: chance per axis (0.5).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.arange(4.0).reshape(1, 4), "HW")},
        ...                        rng=np.random.default_rng(0))
        >>> FlipAxisRandom("image", axis=[1], probability=1.0)(ctx)["image"].get_data()
        array([[3., 2., 1., 0.]])
    """

    def __init__(self, fields: Any = None, axis: Any = None, probability: float = 0.5, field: Any = None,
                 applied_keys: Any = None, label_field: Any = None) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        self.axis = None if axis is None else [int(a) for a in as_list(axis)]
        self.probability = _prob_ok(probability, "FlipAxisRandom")

    def _draw(self, rng, nd):
        axes = self.axis if self.axis is not None else list(range(nd))
        return {"axes": [a for a in axes if rng.random() < self.probability]}


class RandomAxisFlip(_RandomFlipBase):
    """With `probability`, flip along one spatial axis chosen at random.

    Args:
        fields: field(s). probability: chance to flip (0.5).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((2, 2, 2)), "DHW")}, rng=np.random.default_rng(0))
        >>> len(RandomAxisFlip("image", probability=1.0)(ctx).history[0][1]["axes"])
        1
    """

    def __init__(self, fields: Any = None, probability: float = 0.5, field: Any = None, applied_keys: Any = None,
                 label_field: Any = None) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        self.probability = _prob_ok(probability, "RandomAxisFlip")

    def _draw(self, rng, nd):
        if rng.random() >= self.probability:
            return None
        return {"axes": [int(rng.integers(nd))]}


class RandomSpatialFlip(_RandomFlipBase):
    """With `probability`, flip along `spatial_axis` (default: all spatial axes), like MONAI RandFlip.

    Args:
        fields: field(s). probability: chance to flip (0.5). spatial_axis: axes to flip.

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.arange(4.0).reshape(2, 2), "HW")})
        >>> RandomSpatialFlip("image", probability=1.0)(ctx)["image"].get_data()
        array([[3., 2.],
               [1., 0.]])
    """

    def __init__(self, fields: Any = None, probability: float = 0.5, spatial_axis: Any = None, field: Any = None,
                 applied_keys: Any = None, label_field: Any = None) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        self.probability = _prob_ok(probability, "RandomSpatialFlip")
        self.spatial_axis = None if spatial_axis is None else [int(a) for a in as_list(spatial_axis)]

    def _draw(self, rng, nd):
        if rng.random() >= self.probability:
            return None
        return {"axes": list(range(nd)) if self.spatial_axis is None else list(self.spatial_axis)}


class NPRandomRot90_XY(_RandomSpatial):  # noqa: N801 - the seed's name
    """With `probability`, rotate by k * 90 degrees (k in 1..3) in the plane of spatial axes 0 and 1.

    Args:
        applied_keys: field(s) (also `fields`). probability: chance to rotate (0.5).
        spatial_axes: the plane (default (0, 1), the X-Y plane of a NIfTI volume).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((1, 2, 3, 4)), "CDHW")}, rng=np.random.default_rng(1))
        >>> out = NPRandomRot90_XY("image", probability=1.0)(ctx)
        >>> out["image"].shape in [(1, 3, 2, 4), (1, 2, 3, 4)]
        True
    """

    def __init__(self, applied_keys: Any = None, probability: float = 0.5, spatial_axes: Sequence[int] = (0, 1),
                 fields: Any = None, label_field: Any = None) -> None:
        super().__init__(fields, applied_keys, label_field=label_field)
        self.probability = _prob_ok(probability, "NPRandomRot90_XY")
        self.spatial_axes = tuple(int(a) for a in spatial_axes)

    def _draw(self, rng, nd):
        if rng.random() >= self.probability:
            return None
        return {"k": int(rng.integers(1, 4)), "axes": list(self.spatial_axes)}

    def _apply(self, img, field, params):
        sp = img.get_shape_format().get_spatial_axes()
        axes = params["axes"]
        data = rot90(img.get_data(), params["k"], [sp[axes[0]], sp[axes[1]]])
        aff = get_affine(img)
        new_aff = None if aff is None else affine_after_rot90(aff, params["k"], axes, spatial_shape(img))
        return _spatial_out(img, data, new_aff)


def _zoom_coords(shape: Sequence[int], zoom: Sequence[float], keep_size: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(diag matrix, offset, out_shape) of a corner-aligned zoom, centre-cropped/padded if keep_size."""
    zshape = [max(1, int(round(n * z))) for n, z in zip(shape, zoom)]
    scale = np.array([(n - 1) / (o - 1) if o > 1 else 1.0 for n, o in zip(shape, zshape)])
    if not keep_size:
        return np.diag(scale), np.zeros(len(shape)), tuple(zshape)
    start = np.array([(o - n) // 2 for n, o in zip(shape, zshape)], dtype=np.float64)
    return np.diag(scale), start * scale, tuple(int(n) for n in shape)


class NPRandomZoom3D(_RandomSpatial):
    """Random zoom, factor per axis ~ U(lower_limits, upper_limits); labels nearest.

    With `keep_size` the zoomed volume is centre-cropped / edge-padded back to the input
    size (one resampling, no intermediate array).

    Args:
        applied_keys: field(s) (also `fields`). lower_limits, upper_limits: per-axis range.
        keep_size: keep the input shape (False). probability: chance to zoom (1.0).
        data_format, use_gpu: accepted for compatibility (layout comes from the ShapeFormat).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((8, 8, 8)), "DHW")}, rng=np.random.default_rng(0))
        >>> NPRandomZoom3D("image", [0.8] * 3, [1.2] * 3, keep_size=True)(ctx)["image"].shape
        (8, 8, 8)
    """

    def __init__(
        self, applied_keys: Any = None, lower_limits: Sequence[float] = (0.9, 0.9, 0.9),
        upper_limits: Sequence[float] = (1.1, 1.1, 1.1), data_format: str | None = None, use_gpu: bool = False,
        keep_size: bool = False, probability: float = 1.0, fields: Any = None, label_field: Any = None,
        image_field: Any = None,
    ) -> None:
        super().__init__(fields, applied_keys, label_field=label_field, image_field=image_field)
        self.lower = [float(v) for v in as_list(lower_limits)]
        self.upper = [float(v) for v in as_list(upper_limits)]
        if len(self.lower) != len(self.upper) or any(lo <= 0 or lo > hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"{self.get_name()}: need 0 < lower_limits <= upper_limits, got {lower_limits}, {upper_limits}")
        self.keep_size = bool(keep_size)
        self.probability = _prob_ok(probability, self.get_name())
        self.data_format, self.use_gpu = data_format, use_gpu

    def _draw(self, rng, nd):
        if self.probability < 1.0 and rng.random() >= self.probability:
            return None
        lo = (self.lower * nd)[:nd] if len(self.lower) == 1 else self.lower[:nd]
        hi = (self.upper * nd)[:nd] if len(self.upper) == 1 else self.upper[:nd]
        return {"zoom": [float(rng.uniform(a, b)) for a, b in zip(lo, hi)]}

    def _apply(self, img, field, params):
        shape = spatial_shape(img)
        m, off, out_shape = _zoom_coords(shape, params["zoom"], self.keep_size)
        sp = img.get_shape_format().get_spatial_axes()
        data = resample_affine(img.get_data(), m, off, out_shape, self._order(img, field), "border", sp)
        aff = get_affine(img)
        new_aff = None if aff is None else affine_after_index_map(aff, m, off)
        return _spatial_out(img, data, new_aff)


class RandomZoom(NPRandomZoom3D):
    """Random zoom of image and label together (keeps the size by default); labels nearest.

    Args:
        image_field, label_field: the fields (the label is resampled with nearest neighbour).
        lower_limits, upper_limits: per-axis zoom range. keep_size: keep the shape (True).
        probability: chance to zoom (1.0).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((8, 8)), "HW"), "label": MedicalImage(np.zeros((8, 8)), "HW")},
        ...                        rng=np.random.default_rng(0))
        >>> RandomZoom("image", "label", [0.8, 0.8], [1.2, 1.2])(ctx)["label"].shape
        (8, 8)
    """

    def __init__(
        self, image_field: Any = None, label_field: Any = None, lower_limits: Sequence[float] = (0.9, 0.9, 0.9),
        upper_limits: Sequence[float] = (1.1, 1.1, 1.1), keep_size: bool = True, probability: float = 1.0,
        fields: Any = None,
    ) -> None:
        super().__init__(None, lower_limits, upper_limits, None, False, keep_size, probability, fields,
                         label_field, image_field)


class _RandomRotate(_RandomSpatial):
    def _apply(self, img, field, params):
        shape = spatial_shape(img)
        r = rotation_matrix([math.radians(a) for a in params["angles"]])
        m, off = _centre_map(r, shape)
        sp = img.get_shape_format().get_spatial_axes()
        data = resample_affine(img.get_data(), m, off, shape, self._order(img, field), self.padding, sp)
        aff = get_affine(img)
        new_aff = None if aff is None else affine_after_index_map(aff, m, off)
        return _spatial_out(img, data, new_aff)


class NP2DRotate(_RandomRotate):
    """Rotate a 2D image by `angle` degrees about its centre, or by U(-angle, angle) if `random`.

    Args:
        applied_keys: field(s) (also `fields`). angle: degrees. random: draw the angle.
        padding: "zeros" (default) or "border" outside the input.

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> x = np.zeros((5, 5)); x[2, 4] = 1
        >>> ctx = TransformContext({"image": MedicalImage(x, "HW")})
        >>> int(np.argmax(NP2DRotate("image", angle=90)(ctx)["image"].get_data()))  # as np.rot90
        2
    """

    def __init__(self, applied_keys: Any = None, angle: float = 0.0, random: bool = False, fields: Any = None,
                 padding: str = "zeros", label_field: Any = None) -> None:
        super().__init__(fields, applied_keys, label_field=label_field)
        self.angle, self.random, self.padding = float(angle), bool(random), padding

    def is_deterministic(self) -> bool:
        return not self.random

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        if self.random:
            return super().transform(transform_ctx)
        for f in self.fields:
            img = transform_ctx.get_image(f)
            transform_ctx.set_image(f, self._apply(img, f, {"angles": [self.angle]}))
        return transform_ctx

    def _draw(self, rng, nd):
        return {"angles": [float(rng.uniform(-self.angle, self.angle))]}


class RandomRotate2D(_RandomRotate):
    """With `probability`, rotate a 2D image by U(-angle, angle) degrees about its centre.

    Args:
        fields: field(s). probability: chance (0.5). angle: max degrees (15).
        padding: "zeros" or "border".

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.ones((6, 6)), "HW")}, rng=np.random.default_rng(0))
        >>> RandomRotate2D("image", probability=1.0)(ctx)["image"].shape
        (6, 6)
    """

    def __init__(self, fields: Any = None, probability: float = 0.5, angle: float = 15.0, padding: str = "zeros",
                 field: Any = None, applied_keys: Any = None, label_field: Any = None) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        self.probability = _prob_ok(probability, "RandomRotate2D")
        self.angle, self.padding = float(angle), padding

    def _draw(self, rng, nd):
        if rng.random() >= self.probability:
            return None
        return {"angles": [float(rng.uniform(-self.angle, self.angle))]}


class RandomRotate3D(_RandomRotate):
    """With `probability`, rotate a 3D volume by U(-angle, angle) degrees about each spatial axis.

    Args:
        fields: field(s). probability: chance (0.5). angle: max degrees, one or one per axis (15).
        padding: "zeros" or "border".

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.ones((6, 6, 6)), "DHW")}, rng=np.random.default_rng(0))
        >>> RandomRotate3D("image", probability=1.0)(ctx)["image"].shape
        (6, 6, 6)
    """

    def __init__(self, fields: Any = None, probability: float = 0.5, angle: Any = 15.0, padding: str = "zeros",
                 field: Any = None, applied_keys: Any = None, label_field: Any = None) -> None:
        super().__init__(fields, field, applied_keys, label_field=label_field)
        self.probability = _prob_ok(probability, "RandomRotate3D")
        a = [float(v) for v in as_list(angle)]
        self.angles = a * 3 if len(a) == 1 else a
        self.padding = padding

    def _draw(self, rng, nd):
        if rng.random() >= self.probability:
            return None
        return {"angles": [float(rng.uniform(-a, a)) for a in self.angles]}


# =====================================================================================
# padding
# =====================================================================================
class SymmetricPadderDiv(_SpatialTransformer):
    """Pad the spatial axes symmetrically so each size is divisible by `divisor`.

    Args:
        fields: field(s). divisor: one value or one per spatial axis (16).
        mode: `np.pad` mode ("constant" pads with `value`, default 0).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.ones((1, 5, 8)), "CHW")})
        >>> SymmetricPadderDiv("image", divisor=4)(ctx)["image"].shape
        (1, 8, 8)
    """

    def __init__(self, fields: Any = None, divisor: Any = 16, mode: str = "constant", value: float = 0.0,
                 field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, field, applied_keys)
        self.divisor, self.mode, self.value = divisor, mode, float(value)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            sf = img.get_shape_format()
            pads = symmetric_pad_div(spatial_shape(img), self.divisor)
            if not any(p for pair in pads for p in pair):
                continue
            full = [(0, 0)] * img.get_data().ndim
            for ax, p in zip(sf.get_spatial_axes(), pads):
                full[ax] = p
            kw = {"constant_values": self.value} if self.mode == "constant" else {}
            data = np.pad(img.get_data(), full, mode=self.mode, **kw)
            aff = get_affine(img)
            new_aff = None if aff is None else affine_after_pad(aff, [p[0] for p in pads])
            transform_ctx.set_image(f, _spatial_out(img, data, new_aff))
        return transform_ctx
