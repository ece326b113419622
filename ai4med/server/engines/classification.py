"""ClassificationEngine: one label per image (model `type` "classification").

The reply is multipart with a `params` part only (aiaa_api.md §3.6):
`{"label": <best label>, "index": i, "scores": {label: probability}}`.

Example:
    >>> import numpy as np
    >>> scores(np.array([0.0, 2.0]), ["a", "b"])["label"]
    'b'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.server.engines.base import Engine, EngineResult, float_image, timed, to_probabilities
from ai4med.server.images import SpatialView


def scores(pred: np.ndarray, labels: Sequence[str], activation: str = "auto") -> dict[str, Any]:
    """Class probabilities of a (C,) or (C, ...) output, with the best label."""
    v = np.asarray(pred, dtype=np.float64).reshape(pred.shape[0], -1).mean(axis=1)
    p = to_probabilities(v.reshape(-1, 1), activation).reshape(-1)
    names = [labels[i] if i < len(labels) else str(i) for i in range(len(p))]
    best = int(np.argmax(p))
    return {"label": names[best], "index": best, "scores": {n: round(float(s), 6) for n, s in zip(names, p)}}


class ClassificationEngine(Engine):
    """Whole-image classification. Config keys: `spatial_size` (resample first), `final_activation`."""

    model_type = "classification"
    internal_name = "ClassificationEngine"

    def process(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        from ai4med.common.transform_ctx import TransformContext

        lat: dict[str, float] = {}
        t = time.perf_counter()
        ctx = TransformContext({"image": float_image(view)}, rng=np.random.default_rng(0))
        size = self.config.get("spatial_size")
        if size:
            from ai4med.components.transforms.spatial import ScaleToShape

            ctx = ScaleToShape("image", shape=[int(v) for v in size]).transform(ctx)
        ctx = self.pipeline.prepare(ctx)
        image = ctx.get_image("image")
        sf = image.get_shape_format()
        x = np.moveaxis(image.get_data(), sf.get_channel_axis(), 0) if sf.has_channel() else image.get_data()[None]
        want = int(self.config.get("in_channels", x.shape[0]))
        if x.shape[0] != want:
            x = np.repeat(x.mean(axis=0, keepdims=True), want, axis=0)
        t = timed(lat, "pre", t)
        pred = self.infer(np.ascontiguousarray(x, dtype=np.float32))
        t = timed(lat, "infer", t)
        out = scores(pred, self.labels, self.activation)
        timed(lat, "post", t)
        return EngineResult(None, {**out, "latencies": lat})
