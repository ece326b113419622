"""DeepgrowEngine: click-based annotation, 2D or 3D (aiaa_api.md §3.5).

Foreground and background clicks become two Gaussian guidance channels next to the image
(input channels: image, foreground, background). 3D: a box of `spatial_size` around the
newest click (or the clicks' centroid) is cropped, resampled to the model size, segmented
and pasted back; the reply's `crop` is that box ([[x0, x1], [y0, y1], [z0, z1]],
end-exclusive). 2D on a volume: the slice of the newest click is segmented and the mask
holds only that slice (`crop` [[0, X], [0, Y], [k, k+1]]).

Example:
    >>> center_box([5, 5, 5], [4, 4, 4], (20, 20, 6))
    [[3, 7], [3, 7], [2, 6]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.components.transforms.guidance import points_heatmap
from ai4med.server.engines.base import Engine, EngineResult, float_image
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView, to_index
from ai4med.server.points import int_list, parse_point_or_list, parse_points


def center_box(center: Sequence[int], size: Sequence[int], shape: Sequence[int]) -> list[list[int]]:
    """A box of `size` (clipped to the image) centred on `center`, kept inside `shape`."""
    box = []
    for c, s, n in zip(center, size, shape):
        s = min(int(s), int(n))
        lo = min(max(int(c) - s // 2, 0), n - s)
        box.append([lo, lo + s])
    return box


def guidance(shape: Sequence[int], pts: np.ndarray, sigma: float) -> np.ndarray:
    """A [0, 1] Gaussian map of the points (all zero without points)."""
    if len(pts) == 0:
        return np.zeros(tuple(shape), np.float32)
    return points_heatmap(shape, pts, sigma, rescale_min=0.0, rescale_max=1.0)


class DeepgrowEngine(Engine):
    """Deepgrow; model `type` "deepgrow", `deepgrow` "2D" or "3D" in the model object.

    Config keys: `dimension` (2 or 3), `spatial_size` (model input, [128,128] / [128,128,128]),
    `sigma` (guidance Gaussian, voxels), `thresh`, `pre_transforms` / `post_transforms`.
    """

    model_type = "deepgrow"
    internal_name = "DeepgrowEngine"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        dim = c.get("dimension", c.get("deepgrow", 2))
        self.dimension = 3 if str(dim).lower().startswith("3") else 2
        default = [128] * self.dimension
        self.spatial_size = [int(v) for v in c.get("spatial_size", default)][: self.dimension]
        self.sigma = float(c.get("sigma", 3.0))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "deepgrow": f"{self.dimension}D", "spatial_size": list(self.spatial_size)}

    def warmup_input(self) -> np.ndarray:
        return np.zeros((3, *self.spatial_size), np.float32)

    def _clicks(self, view: SpatialView, params: dict[str, Any], shape: Sequence[int]) -> tuple[np.ndarray, ...]:
        fg = to_index(parse_points(params.get("foreground"), "foreground", shape), view.picture)
        bg = to_index(parse_points(params.get("background"), "background", shape), view.picture)
        cur = params.get("current_point")
        cp = to_index(parse_point_or_list(cur, "current_point", shape), view.picture) if cur not in (None, []) else None
        if len(fg) == 0:
            raise ApiError(400, "deepgrow needs at least one foreground click")
        return fg, bg, cp

    def _segment(self, image: Any, fg: np.ndarray, bg: np.ndarray, lat: dict[str, float]) -> np.ndarray:
        """Segment `image` (a channel-first MedicalImage of any size) with clicks in its index space;
        the mask comes back on `image`'s grid."""
        from ai4med.components.transforms.spatial import ScaleToShape

        size = np.array(image.shape[1:])
        scale = np.array(self.spatial_size) / size
        fgs = np.clip(np.floor(fg * scale), 0, np.array(self.spatial_size) - 1) if len(fg) else fg
        bgs = np.clip(np.floor(bg * scale), 0, np.array(self.spatial_size) - 1) if len(bg) else bg
        image = image.new_image(image.get_data()[:1], image.get_shape_format())

        def clicks(ctx: Any) -> Any:
            img = ctx.get_image("image")
            sf = img.get_shape_format()
            data = np.moveaxis(img.get_data(), sf.get_channel_axis(), 0) if sf.has_channel() else img.get_data()[None]
            out = np.concatenate([data.astype(np.float32, copy=False),
                                  guidance(self.spatial_size, fgs, self.sigma)[None],
                                  guidance(self.spatial_size, bgs, self.sigma)[None]], axis=0)
            ctx.set_image("image", img.new_image(out, "CDHW" if out.ndim == 4 else "CHW"))
            return ctx

        resize = ScaleToShape("image", shape=list(self.spatial_size))
        return self.run_case(image, lat, {"resize": (resize.transform, "first"), "clicks": (clicks, "last")})

    def process(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        from ai4med.common.medical_image import MedicalImage

        lat: dict[str, float] = {}
        fg, bg, cp = self._clicks(view, params, view.shape)
        image = float_image(view)
        if self.dimension == 3:
            if view.ndim != 3:
                raise ApiError(400, "a 3D deepgrow model needs a 3D image")
            size = self.spatial_size
            if params.get("spatial_size") not in (None, [], ""):
                size = int_list(params.get("spatial_size"), "spatial_size", 3)
            center = cp[-1] if cp is not None else np.round(fg.mean(axis=0)).astype(int)
            box = center_box(center, size, view.shape)
            lo = np.array([b[0] for b in box])
            hi = np.array([b[1] for b in box])
            inside = lambda p: p[np.all((p >= lo) & (p < hi), axis=1)] - lo if len(p) else p  # noqa: E731
            sl = tuple(slice(a, b) for a, b in box)
            crop = MedicalImage(np.ascontiguousarray(view.data[(slice(None), *sl)]), "CDHW")
            label = self._segment(crop, inside(fg), inside(bg), lat)
            mask = np.zeros(view.shape, np.uint8)
            mask[sl] = label
        elif view.ndim == 2:
            mask = self._segment(image, fg, bg, lat)
            box = [[0, view.shape[1]], [0, view.shape[0]]] if view.picture else [[0, s] for s in view.shape]
        else:
            k = int((cp[-1] if cp is not None else fg[-1])[2])
            on = lambda p: p[p[:, 2] == k][:, :2] if len(p) else p[:, :2]  # noqa: E731
            fg2, bg2 = on(fg), on(bg)
            if len(fg2) == 0:
                raise ApiError(400, f"2D deepgrow: no foreground click on slice z={k}")
            plane = MedicalImage(np.ascontiguousarray(view.data[..., k]), "CHW")
            label = self._segment(plane, fg2, bg2, lat)
            mask = np.zeros(view.shape, np.uint8)
            mask[..., k] = label
            box = [[0, view.shape[0]], [0, view.shape[1]], [k, k + 1]]
        return EngineResult(mask, {"crop": box, "latencies": lat})
