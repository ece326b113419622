"""Mask <-> polygons for `/v1/mask2polygon` and `/v1/fixpolygon` (aiaa_api.md §3.7, §3.8).

Polygons are lists of `[x, y]` vertices. In a volume, x and y are the first two voxel
indices and the list has one entry per z slice; in a PNG, x is the column and y the row.

Example:
    >>> import numpy as np
    >>> m = np.zeros((6, 6), bool); m[1:4, 2:5] = True
    >>> polys = slice_polygons(m, more_points=10)
    >>> len(polys), sorted(map(tuple, polys[0]))[0]
    (1, (1, 2))
    >>> int(rasterize([polys[0]], (6, 6)).sum())
    9
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.server.errors import ApiError
from ai4med.server.points import is_number, short_json

__all__ = ["mask_polygons", "slice_polygons", "rasterize", "move_vertex", "parse_polygons"]

_NB = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]  # clockwise


def trace_boundary(mask: np.ndarray) -> np.ndarray:
    """Outer boundary pixels (Moore-neighbour tracing) of a 2D mask's first component, in order."""
    p = np.pad(mask.astype(bool), 1)
    r, c = (int(v) for v in np.argwhere(p)[0])
    start, cur, b = (r, c), (r, c), 6  # entered from the west
    out = [start]
    first_state = None
    for _ in range(4 * p.size + 8):
        nxt = None
        for k in range(1, 9):
            d = (b + k) % 8
            nr, nc = cur[0] + _NB[d][0], cur[1] + _NB[d][1]
            if p[nr, nc]:
                pd = (b + k - 1) % 8
                back = (cur[0] + _NB[pd][0] - nr, cur[1] + _NB[pd][1] - nc)
                nxt, b = (nr, nc), _NB.index(back)
                break
        if nxt is None:  # a single pixel
            break
        cur = nxt
        state = (cur, b)
        if first_state is None:
            first_state = state
        elif state == first_state:
            out.pop()
            break
        out.append(cur)
    return np.asarray(out, dtype=np.int64) - 1


def _dp(points: np.ndarray, eps: float) -> np.ndarray:
    """Douglas-Peucker simplification of an open polyline."""
    if len(points) < 3:
        return points
    a, b = points[0].astype(float), points[-1].astype(float)
    ab = b - a
    norm = np.hypot(*ab)
    rel = points.astype(float) - a
    dist = np.abs(ab[0] * rel[:, 1] - ab[1] * rel[:, 0]) / norm if norm > 0 else np.hypot(rel[:, 0], rel[:, 1])
    i = int(np.argmax(dist))
    if dist[i] <= eps:
        return np.stack([points[0], points[-1]])
    return np.concatenate([_dp(points[: i + 1], eps)[:-1], _dp(points[i:], eps)])


def _spanning(ring: np.ndarray) -> np.ndarray:
    """The ring's first vertex, its farthest vertex and, on each side of the line between
    them, the vertex farthest from it (a quadrilateral, or a triangle for a one-sided ring)."""
    far = int(np.argmax(((ring - ring[0]) ** 2).sum(axis=1)))
    ab = (ring[far] - ring[0]).astype(float)
    rel = (ring - ring[0]).astype(float)
    cross = ab[0] * rel[:, 1] - ab[1] * rel[:, 0]
    keep = {0, far, int(np.argmax(cross)), int(np.argmin(cross))}
    return ring[sorted(keep)]


def simplify(ring: np.ndarray, eps: float) -> np.ndarray:
    """Simplify a closed ring (split at its farthest point from the first vertex).

    A coarse tolerance never takes the ring below 3 vertices (a quadrilateral spanning it):
    Douglas-Peucker alone turns any small region into a 2-vertex segment.
    """
    if len(ring) <= 4 or eps <= 0:
        return ring
    far = int(np.argmax(((ring - ring[0]) ** 2).sum(axis=1)))
    left = _dp(ring[: far + 1], eps)
    right = _dp(np.concatenate([ring[far:], ring[:1]]), eps)
    out = np.concatenate([left[:-1], right[:-1]])
    return out if len(out) >= 3 else _spanning(ring)


def area(poly: Sequence[Sequence[float]]) -> float:
    """Unsigned area of a polygon (shoelace); 0 for fewer than 3 vertices or collinear ones."""
    if len(poly) < 3:
        return 0.0
    p = np.asarray(poly, dtype=float)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def slice_polygons(mask2d: np.ndarray, more_points: int = 10, min_area: int = 1) -> list[list[list[int]]]:
    """Polygons ([[a, b], ...] in the array's index order) of each connected region of a 2D mask.

    `more_points` sets the detail: the simplification tolerance is 10 / more_points pixels
    (0 or less keeps every boundary pixel). Every polygon has at least 3 vertices and a
    non-zero area: a region whose boundary pixels are collinear (a speckle of 1-2 pixels,
    a 1-pixel-wide line) encloses no area between its pixel centres and gives no polygon.
    """
    from scipy import ndimage

    labels, n = ndimage.label(mask2d > 0, structure=np.ones((3, 3), int))
    eps = 10.0 / more_points if more_points and more_points > 0 else 0.0
    polys = []
    for i in range(1, n + 1):
        comp = labels == i
        if int(comp.sum()) < max(3, min_area):
            continue
        ring = simplify(trace_boundary(comp), eps)
        if len(ring) < 3 or area(ring) == 0:
            continue
        polys.append(ring.astype(int).tolist())
    return polys


def mask_polygons(mask: np.ndarray, picture: bool, more_points: int = 10) -> list[list[list[list[int]]]]:
    """Per z slice (3D) or one entry (2D): the polygons as `[x, y]` vertices."""
    if mask.ndim == 2:
        polys = slice_polygons(mask, more_points)
        return [[[[p[1], p[0]] for p in poly] for poly in polys]] if picture else [polys]
    return [slice_polygons(mask[:, :, z], more_points) for z in range(mask.shape[2])]


def rasterize(polygons: Sequence[Sequence[Sequence[float]]], shape: Sequence[int], swap: bool = False) -> np.ndarray:
    """Fill polygons ([a, b] vertices = array indices, or [col, row] with `swap`) into a uint8 mask."""
    from PIL import Image, ImageDraw

    rows, cols = int(shape[0]), int(shape[1])
    im = Image.new("L", (rows, cols) if not swap else (cols, rows), 0)
    draw = ImageDraw.Draw(im)
    for poly in polygons:
        if len(poly) == 0:
            continue
        pts = [(float(v[0]), float(v[1])) for v in poly]
        if len(pts) == 1:
            draw.point(pts, fill=1)
        else:
            draw.polygon(pts, fill=1, outline=1)
    arr = np.array(im, dtype=np.uint8)
    return arr if swap else arr.T


def _check_poly(poly: Any, what: str) -> list[list[float]]:
    if not isinstance(poly, list):
        raise ApiError(400, f"{what} must be a list of [x, y] vertices")
    out = []
    for j, v in enumerate(poly):
        ok = isinstance(v, list) and len(v) == 2 and all(is_number(c) and abs(c) < 1e7 for c in v)
        if not ok:
            raise ApiError(400, f"{what}[{j}] must be a finite [x, y] vertex (|x|, |y| < 1e7), got {short_json(v, 60)}")
        out.append([float(v[0]), float(v[1])])
    return out


def parse_polygons(value: Any, dimension: int) -> list[Any]:
    """`poly` as polygons (2D) or per-slice polygons (3D), validated."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError(400, "poly is not valid JSON") from None
    if not isinstance(value, list):
        raise ApiError(400, "poly must be a list")
    if dimension == 2:
        return [_check_poly(p, f"poly[{i}]") for i, p in enumerate(value)]
    out = []
    for s, polys in enumerate(value):
        if not isinstance(polys, list):
            raise ApiError(400, f"poly[{s}] must be a list of polygons")
        out.append([_check_poly(p, f"poly[{s}][{i}]") for i, p in enumerate(polys)])
    return out


def move_vertex(poly: list[list[float]], index: int, offset: Sequence[float], neighbors: int,
                weight: float = 1.0) -> list[list[float]]:
    """Move vertex `index` by `offset * weight` and its `neighbors` on each side by a linearly decaying share."""
    n = len(poly)
    out = [list(v) for v in poly]
    if n == 0:
        return out
    reach = min(max(0, int(neighbors)), n // 2)
    done = set()
    for k in range(-reach, reach + 1):
        j = (index + k) % n
        if j in done:
            continue
        done.add(j)
        w = weight * (1.0 - abs(k) / (reach + 1))
        out[j] = [out[j][0] + offset[0] * w, out[j][1] + offset[1] * w]
    return out


def rounded(polys: Any) -> Any:
    """Vertices rounded to ints (the clients' vertex type)."""
    if isinstance(polys, list) and polys and isinstance(polys[0], (int, float)):
        return [int(round(c)) for c in polys]
    return [rounded(p) for p in polys] if isinstance(polys, list) else polys
