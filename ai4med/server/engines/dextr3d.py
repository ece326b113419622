"""Dextr3dCroppedEngine: DEXTR3D annotation from extreme points (seed 004 ch. 4, aiaa_api.md §3.4).

The client (Slicer, the Python/C++ libraries) normally crops the image around the points
with `padding` mm, resamples it to `roi` and sends that ROI with ROI-space points. The
engine repeats the same crop on what it receives (for a pre-processed ROI the crop is the
whole ROI, so nothing changes; for a full image, e.g. MITK or a session, it crops here),
resamples it to `roi` with CropForegroundObject's own mapping (the crop training made around the
label), runs the configured pre-transforms, adds the extreme-points channel with the configured
AddExtremePointsChannel (its `sigma` and range) at the clicked points, infers, runs the configured
post-transforms and brings the mask back onto the grid of the uploaded image through the crop's
geometry. Crop boxes are end-exclusive and may reach the last voxel: a 128^3 ROI stays 128^3.

Example:
    >>> import numpy as np
    >>> crop_box(np.array([[5, 5, 5], [9, 9, 9]]), (20, 20, 20), (1.0, 1.0, 1.0), 2.0)
    [[3, 11], [3, 11], [3, 11]]
    >>> crop_box(np.array([[0, 0, 0], [127, 127, 127]]), (128, 128, 128), (1.0, 1.0, 1.0), 20.0)
    [[0, 128], [0, 128], [0, 128]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.server.engines.base import Engine, EngineResult, float_image
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView, to_index
from ai4med.server.points import parse_points


def crop_box(points: np.ndarray, shape: Sequence[int], spacing: Sequence[float], pad_mm: float) -> list[list[int]]:
    """The client's crop (aiaa_api.md §3.4 step 2-4): points +- pad voxels as end-exclusive [start, stop)
    boxes, capped at the image size (the client caps at size - 1, which would drop the last plane of a
    ROI it already cropped: the server keeps it)."""
    box = []
    for d, size in enumerate(shape):
        sp = float(spacing[d]) if d < len(spacing) else 1.0
        vx = int(pad_mm / sp) if sp > 0 else int(pad_mm)
        lo = max(int(points[:, d].min()) - vx, 0)
        hi = min(int(points[:, d].max()) + vx, int(size))
        box.append([lo, max(hi, lo + 1)])
    return box


class Dextr3dCroppedEngine(Engine):
    """DEXTR3D: 3D annotation from 6 (or more) extreme points; model `type` "annotation".

    Config keys: `roi` ([128,128,128]), `padding` (mm, 20), `sigma` (3), `min_points` (6),
    `thresh`, `pre_transforms` (AddExtremePointsChannel's `sigma` is used when present).
    """

    model_type = "annotation"
    internal_name = "Dextr3dCroppedEngine"
    GUIDANCE = {
        "CropForegroundObject": "the crop around the clicked points (padding mm, resampled to roi)",
        "AddExtremePointsChannel": "the points channel, drawn at the clicked points",
    }

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

    def points_channel(self) -> Any:
        """The configured AddExtremePointsChannel (its sigma and range), else one with `sigma`."""
        from ai4med.components.transforms.guidance import AddExtremePointsChannel

        t = self.guidance_nodes.get("AddExtremePointsChannel")
        return t if t is not None else AddExtremePointsChannel("image", "label", sigma=self.sigma)

    def process(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        from ai4med.components.transforms.crop import box_index_map, crop_box_to_size

        if view.ndim != 3:
            raise ApiError(400, f"dextr3d needs a 3D image, got a {view.ndim}D one")
        lat: dict[str, float] = {}
        pts = to_index(parse_points(params.get("points"), "points", view.shape, min_count=self.min_points),
                       view.picture)
        spacing = view.image.get_property(ImageProperty.SPACING) or (1.0, 1.0, 1.0)
        box = crop_box(pts, view.shape, spacing, self.padding)
        start, stop = [b[0] for b in box], [b[1] for b in box]
        local = np.clip(np.round(box_index_map(start, stop, self.roi, pts)), 0, np.array(self.roi) - 1)
        image = float_image(view)
        if image.shape[0] > 1:  # the image channel only; the points channel is made here
            image = image.new_image(image.get_data()[:1], image.get_shape_format())

        def crop(ctx: Any) -> Any:
            ctx.set_image("image", crop_box_to_size(ctx.get_image("image"), start, stop, self.roi, order=1))
            return ctx

        points = self.points_channel()
        mask = self.run_case(image, lat, {"CropForegroundObject": (crop, "first"),
                                          "AddExtremePointsChannel": (lambda ctx: points.add_channel(ctx, local),
                                                                      "last")})
        return EngineResult(mask, {"crop": box, "latencies": lat})
