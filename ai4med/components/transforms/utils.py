"""Helpers shared by the transform families: field lists, label detection, geometry.

Geometry helpers keep `ImageProperty.AFFINE` (4x4 voxel -> RAS world, the nibabel
convention, spatial array axis `s` = affine column `s`) true for the array a spatial
transform returns, and re-derive SPACING / ORIGIN / DIRECTION (ITK's LPS triple, see
`ai4med.io.geometry`) from it.

Example:
    >>> import numpy as np
    >>> a = affine_after_crop(np.diag([2.0, 2.0, 2.0, 1.0]), (1, 0, 3))
    >>> a[:3, 3].tolist()
    [2.0, 0.0, 6.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.shape_format import ShapeFormat

__all__ = [
    "as_list",
    "resolve_fields",
    "is_label",
    "spatial_shape",
    "apply_per_volume",
    "batch_size_of",
    "unstack_batch",
    "stack_batch",
    "get_affine",
    "set_affine",
    "affine_after_crop",
    "affine_after_pad",
    "affine_after_flip",
    "affine_after_rot90",
    "affine_after_resize",
    "affine_after_index_map",
    "set_spatial_geometry",
]


# --- fields -------------------------------------------------------------------
def as_list(value: Any) -> list:
    """`None` -> [], a scalar or string -> [value], a sequence -> list(value)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray, tuple)):
        return [value]
    return list(value)


def resolve_fields(*candidates: Any, name: str = "transform") -> list[str]:
    """The first non-empty of several spellings of a field list (fields, field, applied_keys...).

    Example:
        >>> resolve_fields(None, "image", None)
        ['image']
    """
    for c in candidates:
        fields = as_list(c)
        if fields:
            if not all(isinstance(f, str) for f in fields):
                raise ValueError(f"{name}: field names must be strings, got {fields!r}")
            return fields
    raise ValueError(f"{name}: give the field(s) to apply to (fields / field / applied_keys)")


_LABEL_WORDS = ("label", "seg", "mask")


def is_label(img: MedicalImage, field: str | None = None, label_fields: Sequence[str] = ()) -> bool:
    """Whether a field holds a label map (nearest-neighbour resampling, no intensity changes).

    In order: named in `label_fields` -> True; the image's IS_LABEL property, when set,
    decides; otherwise a field whose name contains "label", "seg" or "mask" (the seed
    configs' "label") is a label.
    """
    if field is not None and field in label_fields:
        return True
    flag = img.get_property(ImageProperty.IS_LABEL)
    if flag is not None:
        return bool(flag)
    return field is not None and any(w in field.lower() for w in _LABEL_WORDS)


def to_float(data: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """`data` as a new floating array (float32 unless it already is a float type) to write into."""
    if np.issubdtype(data.dtype, np.floating) and dtype is None:
        return data.copy()
    return np.array(data, dtype=dtype if dtype is not None else np.float32, copy=True)


# --- arrays -------------------------------------------------------------------
def spatial_shape(img: MedicalImage) -> tuple[int, ...]:
    """The sizes of the spatial axes (D, H, W or H, W) of an image."""
    axes = img.get_shape_format().get_spatial_axes()
    return tuple(int(img.shape[a]) for a in axes)


def _leading_layout(sf: ShapeFormat) -> tuple[list[int], list[int]]:
    spatial = list(sf.get_spatial_axes())
    other = [i for i in range(sf.get_number_of_dims()) if i not in spatial]
    return other, spatial


def apply_per_volume(
    data: np.ndarray, shape_format: ShapeFormat, fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Apply `fn` (spatial array -> spatial array) to every channel / batch item of `data`.

    The non-spatial axes (N, C) keep their positions. A plain spatial format calls `fn` once.
    """
    other, spatial = _leading_layout(shape_format)
    if not other:
        return fn(data)
    perm = other + spatial
    moved = np.transpose(data, perm) if perm != list(range(data.ndim)) else data
    lead = moved.shape[: len(other)]
    flat = moved.reshape((-1,) + moved.shape[len(other):])
    outs = [fn(flat[i]) for i in range(flat.shape[0])]
    out = np.stack(outs, 0).reshape(lead + outs[0].shape)
    if perm != list(range(data.ndim)):
        out = np.transpose(out, np.argsort(perm))
    return out


def batch_size_of(img: Any) -> int | None:
    """Number of items on the batch axis of a MedicalImage (batch-by-transform crops), else None."""
    if not isinstance(img, MedicalImage) or not img.get_shape_format().has_batch():
        return None
    return int(img.shape[img.get_shape_format().get_batch_axis()])


def unstack_batch(img: MedicalImage) -> list[MedicalImage]:
    """The items of a batched image, each with its own AFFINE / CROP_BOX (kept by the crops)."""
    sf = img.get_shape_format()
    ax = sf.get_batch_axis()
    affines = img.get_property("batch_affines")
    boxes = img.get_property("batch_crop_boxes")
    out = []
    for i in range(img.shape[ax]):
        one = img.new_image(np.take(img.get_data(), i, axis=ax), sf.without_batch())
        props = one.get_properties()
        props.pop("batch_affines", None)
        props.pop("batch_crop_boxes", None)
        if affines is not None and i < len(affines) and affines[i] is not None:
            set_affine(one, affines[i])
        if boxes is not None and i < len(boxes) and boxes[i] is not None:
            props[ImageProperty.CROP_BOX] = boxes[i]
        out.append(one)
    return out


def stack_batch(images: Sequence[MedicalImage]) -> MedicalImage:
    """`unstack_batch`'s inverse: items -> one image with a leading batch axis (per-item geometry kept)."""
    first = images[0]
    data = np.stack([np.asarray(im.get_data(), dtype=np.result_type(*[i.get_data() for i in images]))
                     for im in images])
    out = first.new_image(data, first.get_shape_format().with_batch())
    out.set_property("batch_affines", [im.get_property(ImageProperty.AFFINE) for im in images])
    out.set_property("batch_crop_boxes", [im.get_property(ImageProperty.CROP_BOX) for im in images])
    return out


# --- geometry -----------------------------------------------------------------
def get_affine(img: MedicalImage) -> np.ndarray | None:
    """The image's 4x4 voxel -> world affine (float64 copy), or None if it has none."""
    a = img.get_property(ImageProperty.AFFINE)
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if a.shape == (3, 3):
        from ai4med.io.geometry import to_4x4

        a = to_4x4(a)
    return a.copy()


def set_affine(img: MedicalImage, affine: np.ndarray) -> None:
    """Set AFFINE and re-derive SPACING / ORIGIN / DIRECTION of `img` from it."""
    from ai4med.io.geometry import itk_from_affine, spacing_from_affine

    affine = np.asarray(affine, dtype=np.float64)
    img.set_property(ImageProperty.AFFINE, affine)
    nd = img.get_shape_format().get_number_of_spatial_dims()
    img.set_property(ImageProperty.SPACING, spacing_from_affine(affine, nd))
    origin, _, direction = itk_from_affine(affine, nd)
    img.set_property(ImageProperty.ORIGIN, origin)
    img.set_property(ImageProperty.DIRECTION, direction)


def affine_after_index_map(affine: np.ndarray, matrix: np.ndarray, offset: Sequence[float]) -> np.ndarray:
    """Affine of a grid whose index `o` sits at old index `matrix @ o + offset`.

    `matrix` is n x n (n spatial dims <= 3); the affine's first n columns are changed.
    """
    affine = np.asarray(affine, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    t = np.eye(affine.shape[0])
    t[:n, :n] = m
    t[:n, -1] = np.asarray(offset, dtype=np.float64)
    return affine @ t


def affine_after_crop(affine: np.ndarray, start: Sequence[int]) -> np.ndarray:
    """Affine of the sub-array starting at spatial index `start` (negative = padding)."""
    n = len(start)
    return affine_after_index_map(affine, np.eye(n), start)


def affine_after_pad(affine: np.ndarray, pad_before: Sequence[int]) -> np.ndarray:
    """Affine after padding `pad_before` voxels in front of each spatial axis."""
    return affine_after_crop(affine, [-int(p) for p in pad_before])


def affine_after_flip(affine: np.ndarray, axes: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Affine after flipping spatial `axes` of a grid of spatial `shape` (array stays in place)."""
    n = len(shape)
    m = np.eye(n)
    off = np.zeros(n)
    for a in axes:
        m[a, a] = -1.0
        off[a] = shape[a] - 1
    return affine_after_index_map(affine, m, off)


def affine_after_rot90(affine: np.ndarray, k: int, axes: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Affine after `np.rot90(x, k, axes)` on spatial axes of a grid of spatial `shape`."""
    n = len(shape)
    a0, a1 = axes
    m = np.eye(n)
    off = np.zeros(n)
    k %= 4
    s0, s1 = shape[a0], shape[a1]
    # np.rot90 (k=1): out[..., i, ..., j] = in[..., j, ..., s1 - 1 - i] (new a0 index i, new a1 index j)
    if k == 1:
        m[a0, a0], m[a0, a1], m[a1, a0], m[a1, a1] = 0.0, 1.0, -1.0, 0.0
        off[a1] = s1 - 1
    elif k == 2:
        m[a0, a0], m[a1, a1] = -1.0, -1.0
        off[a0], off[a1] = s0 - 1, s1 - 1
    elif k == 3:
        m[a0, a0], m[a0, a1], m[a1, a0], m[a1, a1] = 0.0, -1.0, 1.0, 0.0
        off[a0] = s0 - 1
    return affine_after_index_map(affine, m, off)


def affine_after_resize(
    affine: np.ndarray, in_shape: Sequence[int], out_shape: Sequence[int], align_corners: bool = True
) -> np.ndarray:
    """Affine after resizing a grid of `in_shape` to `out_shape`.

    align_corners=True (scipy.ndimage.zoom, the default here): first and last voxel centres
    stay put; False: the outer voxel edges stay put (the FOV is kept).
    """
    n = len(in_shape)
    scale = np.ones(n)
    off = np.zeros(n)
    for a in range(n):
        i, o = float(in_shape[a]), float(out_shape[a])
        if align_corners:
            scale[a] = (i - 1.0) / (o - 1.0) if o > 1 else 1.0
            off[a] = 0.0 if o > 1 else (i - 1.0) / 2.0
        else:
            scale[a] = i / o
            off[a] = 0.5 * scale[a] - 0.5
    return affine_after_index_map(affine, np.diag(scale), off)


def set_spatial_geometry(img: MedicalImage, new_affine_fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """If `img` has an AFFINE, replace it by `new_affine_fn(affine)` (and SPACING/ORIGIN/DIRECTION)."""
    a = get_affine(img)
    if a is not None:
        set_affine(img, new_affine_fn(a))
