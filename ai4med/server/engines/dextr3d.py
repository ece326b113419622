"""Dextr3dCroppedEngine: DEXTR3D annotation from extreme points (seed 004 ch. 4, aiaa_api.md §3.4).

The client (Slicer, the Python/C++ libraries) normally crops the image around the points
with `padding` mm, resamples it to `roi` and sends that ROI with ROI-space points. The
engine repeats the same crop on what it receives (for a pre-processed ROI the crop is the
whole ROI, so nothing changes; for a full image, e.g. MITK or a session, it crops here),
resamples to `roi`, adds the Gaussian extreme-points channel (AddExtremePointsChannel's
kernel, `sigma`), infers, and returns a mask on the grid of the uploaded image.

Example:
    >>> import numpy as np
    >>> crop_box(np.array([[5, 5, 5], [9, 9, 9]]), (20, 20, 20), (1.0, 1.0, 1.0), 2.0)
    [[3, 11], [3, 11], [3, 11]]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.components.transforms.guidance import points_heatmap
from ai4med.server.engines.base import Engine, EngineResult, resize, timed
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView, to_index
from ai4med.server.points import parse_points


def crop_box(points: np.ndarray, shape: Sequence[int], spacing: Sequence[float], pad_mm: float) -> list[list[int]]:
    """The client's crop (aiaa_api.md §3.4 step 2-4): points +- pad voxels, end-exclusive, in the image."""
    box = []
    for d, size in enumerate(shape):
        sp = float(spacing[d]) if d < len(spacing) else 1.0
        vx = int(pad_mm / sp) if sp > 0 else int(pad_mm)
        lo = max(int(points[:, d].min()) - vx, 0)
        hi = min(int(points[:, d].max()) + vx, size - 1)
        box.append([lo, max(hi, lo + 1)])
    return box


class Dextr3dCroppedEngine(Engine):
    """DEXTR3D: 3D annotation from 6 (or more) extreme points; model `type` "annotation".

    Config keys: `roi` ([128,128,128]), `padding` (mm, 20), `sigma` (3), `min_points` (6),
    `thresh`, `pre_transforms` (AddExtremePointsChannel's `sigma` is used when present).
    """

    model_type = "annotation"
    internal_name = "Dextr3dCroppedEngine"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self.roi = [int(v) for v in c.get("roi", c.get("roi_size", [128, 128, 128]))]
        self.padding = float(c.get("padding", 20.0))
        sigma = c.get("sigma")
        for node in c.get("pre_transforms") or []:
            name = str(node.get("name", "")) if isinstance(node, dict) else ""
            if name.endswith("AddExtremePointsChannel") and sigma is None:
                sigma = node.get("sigma", (node.get("args") or {}).get("sigma"))
        self.sigma = float(sigma if sigma is not None else 3.0)
        self.min_points = int(c.get("min_points", 6))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "roi": list(self.roi), "padding": self.padding, "sigma": self.sigma}

    def warmup_input(self) -> np.ndarray:
        return np.zeros((2, *self.roi), np.float32)

    def process(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        if view.ndim != 3:
            raise ApiError(400, f"dextr3d needs a 3D image, got a {view.ndim}D one")
        lat: dict[str, float] = {}
        t = time.perf_counter()
        pts = to_index(parse_points(params.get("points"), "points", view.shape, min_count=self.min_points),
                       view.picture)
        spacing = view.image.get_property(ImageProperty.SPACING) or (1.0, 1.0, 1.0)
        box = crop_box(pts, view.shape, spacing, self.padding)
        sl = tuple(slice(lo, hi) for lo, hi in box)
        roi_in = view.data[(slice(None), *sl)][:1]
        crop_shape = roi_in.shape[1:]
        x = resize(roi_in, self.roi, order=1)
        local = (pts - np.array([b[0] for b in box])) * (np.array(self.roi) / np.array(crop_shape))
        local = np.clip(np.floor(local), 0, np.array(self.roi) - 1)
        x = self.apply_pre(x, view.image)
        heat = points_heatmap(self.roi, local, self.sigma)
        x = np.concatenate([x, heat[None]], axis=0)
        t = timed(lat, "pre", t)
        pred = self.infer(x)
        t = timed(lat, "infer", t)
        label = self.label_from_pred(pred)
        label = resize(label[None].astype(np.float32), crop_shape, order=0)[0].astype(np.uint8)
        label = self.apply_post(label, view.image)
        mask = np.zeros(view.shape, np.uint8)
        mask[sl] = label
        timed(lat, "post", t)
        return EngineResult(mask, {"crop": box, "latencies": lat})
