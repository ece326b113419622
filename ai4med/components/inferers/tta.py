"""Test-time augmentation by mirroring: the mean of the predictions of every flip combination.

For mirror axes A (spatial axes, 0 = the first), the prediction is
`mean over subsets S of A of flip_S(infer(flip_S(x)))`: 2**len(A) passes, as nnU-Net's
`use_mirroring` (all 8 flips of a 3D volume). Flipping is undone on every output that has the
input's spatial shape, in the output layout (`layout.output_format`).

Example:
    >>> flip_sets([0, 2])
    [(), (0,), (2,), (0, 2)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.layout import output_format

__all__ = ["resolve_tta", "flip_sets", "mirrored_infer"]


def resolve_tta(tta: bool | int | Sequence[int] | None, spatial_dims: int | None = None) -> list[int] | None:
    """The mirror axes of a `tta` option: false/None -> None, true -> all axes, a list -> those axes."""
    if tta is None or tta is False:
        return None
    if tta is True:
        return list(range(spatial_dims)) if spatial_dims is not None else []
    axes = [int(tta)] if isinstance(tta, int) else [int(a) for a in tta]
    if not axes:
        return None
    if len(set(axes)) != len(axes) or min(axes) < 0 or (spatial_dims is not None and max(axes) >= spatial_dims):
        raise ValueError(f"tta: mirror axes must be distinct spatial axes in 0..{(spatial_dims or 3) - 1}, got {tta}")
    return sorted(axes)


def flip_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of `axes`, the empty one (no flip) first."""
    return [c for k in range(len(axes) + 1) for c in combinations(axes, k)]


def mirrored_infer(
    infer_once: Callable[[dict[str, Any]], dict[str, Any]],
    inputs: dict[str, Any],
    fmt: ShapeFormat,
    tta: bool | Sequence[int],
) -> dict[str, Any]:
    """Mean of `infer_once` over the flips of `tta`'s axes (inputs/outputs as numpy arrays in `fmt` layouts)."""
    in_axes = fmt.get_spatial_axes()
    axes = resolve_tta(tta, len(in_axes))
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    if not axes:
        return infer_once(arrays)
    out_axes = output_format(fmt).get_spatial_axes()
    shape = tuple(next(iter(arrays.values())).shape[a] for a in in_axes)
    total: dict[str, np.ndarray] = {}
    sets = flip_sets(axes)
    for flips in sets:
        fin = {k: np.flip(v, [in_axes[a] for a in flips]).copy() if flips else v for k, v in arrays.items()}
        out = infer_once(fin)
        for k, v in out.items():
            v = np.asarray(v, dtype=np.float64)
            if flips and _spatial(v, out_axes) == shape:
                v = np.flip(v, [out_axes[a] for a in flips])
            total[k] = v if k not in total else total[k] + v
    return {k: (v / len(sets)).astype(np.float32) for k, v in total.items()}


def _spatial(v: np.ndarray, axes: Sequence[int]) -> tuple[int, ...] | None:
    try:
        return tuple(v.shape[a] for a in axes)
    except IndexError:
        return None
