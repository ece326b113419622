"""SegmentationEngine: automatic segmentation by scan-window inference (aiaa_api.md §3.3).

The reply params carry the extreme points of the result (`points`, [x, y, z]; `[]` for
an empty result), which the clients use to seed DEXTR3D.

Example:
    >>> import numpy as np
    >>> m = np.zeros((4, 4, 4), np.uint8); m[1:3, 1, 2] = 1
    >>> result_points(m, False)
    [[1, 1, 2], [2, 1, 2], [1, 1, 2], [1, 1, 2], [1, 1, 2], [1, 1, 2]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ai4med.components.transforms.guidance import extreme_points
from ai4med.server.engines.base import Engine, EngineResult, float_image
from ai4med.server.images import SpatialView, from_index


def result_points(mask: np.ndarray, picture: bool) -> list[list[int]]:
    """Extreme points of the foreground as wire points; [] when the mask is empty."""
    if not mask.any():
        return []
    return from_index(extreme_points(mask > 0), picture).astype(int).tolist()


class SegmentationEngine(Engine):
    """Scan-window segmentation; model `type` "segmentation".

    Config keys: `roi` (scan window, [96,96,96]), `batch_size`, `inferer` (overrides),
    `spatial_size` (resample the whole image to this size first, optional), `thresh`,
    `pre_transforms` / `post_transforms`.
    """

    model_type = "segmentation"
    internal_name = "SegmentationEngine"

    def default_inferer(self) -> dict[str, Any]:
        roi = self.config.get("roi", self.config.get("roi_size", [96, 96, 96]))
        return {"name": "TorchScanWindowInferer",
                "args": {"roi_size": list(roi), "batch_size": int(self.config.get("batch_size", 1))}}

    def warmup_input(self) -> np.ndarray | None:
        roi = self.config.get("roi", self.config.get("roi_size"))
        return np.zeros((self.in_channels(), *roi), np.float32) if roi else None

    def process(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        lat: dict[str, float] = {}
        size = self.config.get("spatial_size")
        guidance = None
        if size:
            from ai4med.components.transforms.spatial import ScaleToShape

            resize = ScaleToShape("image", shape=[int(v) for v in size])
            guidance = {"spatial_size": (resize.transform, "first")}
        label = self.run_case(float_image(view), lat, guidance)
        pts = result_points(label, view.picture)
        return EngineResult(label, {"points": pts, "label_names": self.labels, "latencies": lat}, points=pts)
