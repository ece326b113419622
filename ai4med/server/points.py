"""Validation of client points: `[[x, y, z], ...]` voxel indices, as a JSON array or a string of one.

Every point is checked (numbers, finite, the right length, inside the image) so bad input
is a 400 with a message, never an exception deep in an engine.

Example:
    >>> parse_points("[[1, 2, 3]]", "points", (4, 4, 4)).tolist()
    [[1, 2, 3]]
    >>> parse_point_or_list([1, 2, 3], "current_point", (4, 4, 4)).tolist()
    [[1, 2, 3]]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.server.errors import ApiError

__all__ = ["parse_points", "parse_point_or_list", "int_list", "is_number", "short_json"]

MAX_POINTS = 10000


def is_number(c: Any) -> bool:
    """A finite JSON number (not a bool). Ints of any size are finite: `math.isfinite(10**400)`
    would raise OverflowError, so ints are never converted to float here."""
    if isinstance(c, bool):
        return False
    if isinstance(c, int):
        return True
    return isinstance(c, float) and math.isfinite(c)


def short_json(value: Any, limit: int = 80) -> str:
    """JSON of `value` cut to `limit` characters (a huge int prints only its start)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _decode(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else []
        except ValueError:
            raise ApiError(400, f"{name} must be a JSON array of [x, y, z] points; got an unparsable string") from None
    return value


def parse_points(
    value: Any,
    name: str,
    shape: Sequence[int],
    min_count: int = 0,
    max_count: int = MAX_POINTS,
) -> np.ndarray:
    """`value` as an (N, ndim) int array of voxel indices inside `shape`.

    A 2D image also accepts 3D points whose last coordinate is 0 (clients send [x, y, 0]).

    Raises:
        ApiError: 400 naming the first bad point.
    """
    value = _decode(value, name)
    if value is None:
        value = []
    if not isinstance(value, list):
        raise ApiError(400, f"{name} must be a list of [x, y, z] points, got {type(value).__name__}")
    if len(value) > max_count:
        raise ApiError(400, f"{name}: too many points ({len(value)} > {max_count})")
    if len(value) < min_count:
        raise ApiError(400, f"{name}: at least {min_count} points are needed, got {len(value)}")
    nd = len(shape)
    out = np.zeros((len(value), nd), dtype=np.int64)
    for i, p in enumerate(value):
        if not isinstance(p, list) or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p):
            raise ApiError(400, f"{name}[{i}] must be a list of numbers, got {short_json(p)}")
        if nd == 2 and len(p) == 3 and p[2] == 0:
            p = p[:2]
        if len(p) != nd:
            raise ApiError(400, f"{name}[{i}] has {len(p)} coordinates; the image has {nd} dimensions")
        if not all(is_number(c) for c in p):
            raise ApiError(400, f"{name}[{i}] has a NaN or infinite coordinate")
        q = [c if isinstance(c, int) else int(round(c)) for c in p]
        for d, (c, s) in enumerate(zip(q, shape)):
            if c < 0 or c >= s:
                raise ApiError(400, f"{name}[{i}] = {short_json(q)} is outside the image of size {list(shape)} (axis {d})")
        out[i] = q
    return out


def parse_point_or_list(value: Any, name: str, shape: Sequence[int]) -> np.ndarray:
    """`[x, y, z]` or `[[x, y, z], ...]` (both forms of `current_point`) as an (N, ndim) array."""
    value = _decode(value, name)
    if isinstance(value, list) and value and all(isinstance(c, (int, float)) for c in value):
        value = [value]
    return parse_points(value, name, shape)


def int_list(value: Any, name: str, length: int | None = None, lo: int = 1, hi: int = 4096) -> list[int]:
    """A list of ints in [lo, hi] (e.g. `spatial_size`); 400 otherwise."""
    value = _decode(value, name)
    ok = isinstance(value, list) and all(is_number(v) for v in value)
    if not ok or (length is not None and len(value) != length) or not value:
        raise ApiError(400, f"{name} must be a list of {length or 'some'} integers, got {short_json(value)}")
    out = [int(v) for v in value]
    if any(v < lo or v > hi for v in out):
        raise ApiError(400, f"{name} values must be in [{lo}, {hi}], got {short_json(out)}")
    return out
