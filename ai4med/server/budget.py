"""The compute budget of a request: how many voxels the model will run on, checked before any work.

`work_voxels` reads it from the engine's config and the image, without running anything:
the model's fixed input (`roi` of DEXTR3D, `spatial_size` of deepgrow / classification /
a resampling segmentation model), else the image grid padded to at least one scan window
(`roi`) for scan-window segmentation. `check_budget` answers 413 above the server's
`max_work_voxels` with the limit and how to raise it; the time limit per request and the
small/large lanes (`ai4med.server.queue`) bound the rest.

Example:
    >>> work_voxels("segmentation", {"roi": [96, 96, 96]}, (320, 320, 320))
    32768000
    >>> work_voxels("segmentation", {"roi": [96, 96, 96]}, (24, 24, 24))
    884736
    >>> work_voxels("annotation", {"roi": [128, 128, 128]}, (512, 512, 300))
    2097152
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ai4med.server.errors import ApiError

__all__ = ["work_voxels", "check_budget", "default_work_limit"]

#: default `max_work_voxels` per device kind, so that a scan-window model of the size the
#: benches serve (UNet 16-128 filters, 96^3 windows) answers in seconds on a quiet machine
#: (the issue measured 320^3 in 28 s: 192^3 is 22% of that). On 2 CPU cores shared at load 5-7,
#: `bench/bounded_work.py --steps 2 --big N`: 192^3 18 s, 256^3 60 s. CUDA: not measured here.
DEFAULT_WORK = {"cpu": 192**3, "cuda": 512**3 * 2}


def default_work_limit(device: str) -> int:
    """The default `max_work_voxels` for a server whose models run on `device`."""
    return DEFAULT_WORK["cuda" if str(device).lower().startswith("cuda") else "cpu"]


def _size(value: Any, ndim: int) -> list[int] | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return [max(1, int(v)) for v in value][:ndim] if len(value) >= ndim else [max(1, int(v)) for v in value]
    return None


def work_voxels(model_type: str, config: dict[str, Any], shape: Sequence[int]) -> int:
    """Voxels the model computes on for an image of spatial `shape` (see the module docstring)."""
    shape = [int(s) for s in shape]
    nd = len(shape)
    roi = _size(config.get("roi", config.get("roi_size")), nd)
    fixed = _size(config.get("spatial_size"), nd)
    if model_type == "annotation":
        return math.prod(roi or [128] * 3)
    if model_type == "deepgrow":
        dim = 3 if str(config.get("dimension", config.get("deepgrow", 2))).lower().startswith("3") else 2
        return math.prod(fixed or [128] * dim)
    grid = fixed or shape
    if roi and len(roi) == len(grid):
        grid = [max(g, r) for g, r in zip(grid, roi)]
    return math.prod(grid)


def check_budget(work: int, limit: int | None, what: str) -> None:
    """413 when `work` voxels exceed `limit` (None or 0: no limit)."""
    if limit and work > limit:
        raise ApiError(413, f"{what} would compute on {work} voxels, over this server's limit of {limit} "
                            f"(about {round(limit ** (1 / 3))}^3) per request; send a smaller image or a crop, "
                            "or raise the limit (server setting max_work_voxels: "
                            "`ai4med serve --max-work-voxels N`)")
