"""Geometry conventions: voxel index -> world affines (RAS, nibabel) and ITK's LPS triple.

Every image ai4med loads carries both descriptions of the same grid:

* `ImageProperty.AFFINE`: a 4x4 float64 matrix mapping voxel indices (i, j, k) to world
  RAS millimetres, exactly as nibabel reports `img.affine`;
* `ImageProperty.ORIGIN` / `SPACING` / `DIRECTION`: ITK's description in LPS, as
  SimpleITK's `GetOrigin()` / `GetSpacing()` / `GetDirection()` report it (direction is
  row-major, its columns are the unit vectors of the index axes).

The two are related by `affine = diag(-1, -1, 1, 1) @ [[direction * spacing, origin], [0, 1]]`.

Example:
    >>> import numpy as np
    >>> a = affine_from_itk((10.0, 20.0, 30.0), (1.0, 2.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    >>> a[:3, 3].tolist(), spacing_from_affine(a)
    ([-10.0, -20.0, 30.0], (1.0, 2.0, 3.0))
    >>> itk_from_affine(a)[0]
    (10.0, 20.0, 30.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "LPS_TO_RAS",
    "affine_from_itk",
    "itk_from_affine",
    "spacing_from_affine",
    "to_4x4",
    "geometry_properties",
]

#: Flips the first two world axes: LPS <-> RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_4x4(affine: np.ndarray | Sequence) -> np.ndarray:
    """Embed a 2D (3x3) or 3D (4x4) homogeneous affine in a 4x4 float64 matrix."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape == (4, 4):
        return a.copy()
    if a.shape == (3, 3):  # 2D homogeneous: rows/cols 0, 1 and the translation column
        out = np.eye(4)
        out[:2, :2] = a[:2, :2]
        out[:2, 3] = a[:2, 2]
        return out
    raise ValueError(f"affine must be 4x4 (or 3x3 for 2D), got shape {a.shape}")


def affine_from_itk(
    origin: Sequence[float], spacing: Sequence[float], direction: Sequence[float] | np.ndarray
) -> np.ndarray:
    """The 4x4 voxel -> RAS affine of an ITK (LPS) origin, spacing and direction.

    Args:
        origin: world position (LPS, mm) of voxel (0, 0, 0); 2 or 3 values (2D is put in z = 0).
        spacing: voxel size along each index axis.
        direction: the direction cosines, row-major (4 or 9 values) or a square matrix.

    Returns:
        A 4x4 float64 array, the nibabel convention.
    """
    origin = np.asarray(origin, dtype=np.float64).ravel()
    spacing = np.asarray(spacing, dtype=np.float64).ravel()
    n = origin.size
    if n not in (2, 3) or spacing.size != n:
        raise ValueError(f"origin and spacing must both have 2 or 3 values, got {origin.size} and {spacing.size}")
    d = np.asarray(direction, dtype=np.float64).reshape(n, n)
    lps = np.eye(4)
    lps[:n, :n] = d * spacing[None, :]
    lps[:n, 3] = origin
    return LPS_TO_RAS @ lps


def itk_from_affine(
    affine: np.ndarray | Sequence, ndim: int = 3
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK's (origin, spacing, direction) in LPS for a voxel -> RAS affine.

    Args:
        affine: 4x4 voxel -> RAS affine.
        ndim: 3 (default) or 2; for 2 the in-plane part of the affine is returned
            (origin 2 values, spacing 2, direction 4).

    Returns:
        `(origin, spacing, direction)` as tuples, direction row-major, ready for
        `SimpleITK.Image.SetOrigin/SetSpacing/SetDirection`. A degenerate (zero) axis
        gets spacing 1 and its unit direction.
    """
    lps = LPS_TO_RAS @ to_4x4(affine)
    m = lps[:ndim, :ndim]
    spacing = np.linalg.norm(m, axis=0)
    safe = np.where(spacing > 0, spacing, 1.0)
    direction = m / safe[None, :]
    for ax in np.flatnonzero(spacing <= 0):  # a zero column: fall back to the unit axis
        direction[:, ax] = np.eye(ndim)[:, ax]
    origin = lps[:ndim, 3]
    return (
        tuple(float(v) for v in origin),
        tuple(float(v) for v in safe),
        tuple(float(v) for v in direction.ravel()),
    )


def spacing_from_affine(affine: np.ndarray | Sequence, ndim: int = 3) -> tuple[float, ...]:
    """Voxel sizes along the index axes: the norms of the affine's first `ndim` columns."""
    a = to_4x4(affine)
    return tuple(float(v) for v in np.linalg.norm(a[:3, :ndim], axis=0))


def geometry_properties(affine: np.ndarray, spatial_shape: Sequence[int]) -> dict:
    """The geometry property dictionary of a grid: AFFINE, SPACING, ORIGIN, DIRECTION and ORIGINAL_*.

    The ORIGIN / DIRECTION are 3D for 3D grids and 2D (2 and 4 values) for 2D grids,
    like SimpleITK reports them for an image of that dimension.
    """
    from ai4med.common.constants import ImageProperty as P

    affine = to_4x4(affine)
    ndim = 2 if len(spatial_shape) == 2 else 3
    origin, spacing, direction = itk_from_affine(affine, ndim)
    spacing = spacing_from_affine(affine, ndim)
    return {
        P.AFFINE: affine,
        P.SPACING: spacing,
        P.ORIGIN: origin,
        P.DIRECTION: direction,
        P.ORIGINAL_AFFINE: affine.copy(),
        P.ORIGINAL_SHAPE: tuple(int(s) for s in spatial_shape),
        P.ORIGINAL_SPACING: spacing,
    }
