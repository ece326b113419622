"""ScanClassWindowInferer: scan-window inference with an explicit scan interval and a
per-window final activation (seed 000).

Scan interval rule (per spatial axis): None -> default heuristic (25 % overlap, as
`ScanWindowInferer`); a number > 1 -> the interval in voxels; a number <= 1 -> that fraction
of the (padded) image's size on the axis. Intervals are kept within [1, roi] so windows
always cover the image.

Example:
    >>> resolve_scan_interval([0.5, 8, None], (64, 64, 64), (32, 32, 32))
    (32, 8, 24)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.scan_window import WindowFn, scan_intervals
from ai4med.components.inferers.sw_inferer import ScanWindowInferer

logger = logging.getLogger(__name__)

ACTIVATIONS = {
    None: None,
    "none": None,
    "softmax": lambda t: torch.softmax(t, dim=1),
    "sigmoid": torch.sigmoid,
}


def resolve_scan_interval(
    scan_interval: Sequence[float | None] | float | None, image_size: Sequence[int], roi: Sequence[int]
) -> tuple[int, ...]:
    """Interval per axis by the seed's rule (see module docstring)."""
    default = scan_intervals(image_size, roi, 0.25)
    if scan_interval is None:
        return default
    if isinstance(scan_interval, (int, float)):
        scan_interval = [scan_interval] * len(image_size)
    if len(scan_interval) != len(image_size):
        raise ValueError(f"scan_interval {list(scan_interval)} needs {len(image_size)} entries")
    out = []
    for value, size, r, d in zip(scan_interval, image_size, roi, default):
        step = d if value is None else int(value) if value > 1 else int(value * size)
        if not 1 <= step <= r:
            logger.warning("scan interval %s on an axis of %d (roi %d) clamped to [1, %d]", value, size, r, r)
        out.append(min(max(step, 1), r))
    return tuple(out)


class ScanClassWindowInferer(ScanWindowInferer):
    """Scan-window inference with a scan interval and a final activation applied to every window.

    Args:
        predictor: the back-end wrapper.
        roi_size: window size (None: the image's size).
        batch_size: windows per predictor call.
        scan_interval: see the module docstring.
        final_activation: None, "softmax" (over channels) or "sigmoid", applied to each window's
            outputs before blending, so the result is blended probabilities.
        blend_mode: "constant" or "gaussian".
    """

    def __init__(
        self,
        predictor: Predictor,
        roi_size: Sequence[int] | None = None,
        batch_size: int = 1,
        scan_interval: Sequence[float | None] | float | None = None,
        final_activation: str | None = None,
        blend_mode: str = "constant",
        **kwargs: Any,
    ) -> None:
        super().__init__(predictor, roi_size, batch_size, blend_mode=blend_mode, **kwargs)
        key = final_activation.lower() if isinstance(final_activation, str) else final_activation
        if key not in ACTIVATIONS:
            raise ValueError(f"final_activation must be one of None, 'softmax', 'sigmoid'; got {final_activation!r}")
        self.scan_interval = scan_interval
        self.final_activation = key

    def intervals(self, image_size: Sequence[int], roi: Sequence[int]) -> tuple[int, ...]:
        return resolve_scan_interval(self.scan_interval, image_size, roi)

    def window_fn(self, inference_ctx: InferenceContext, spatial_dims: int) -> WindowFn:
        run = super().window_fn(inference_ctx, spatial_dims)
        act = ACTIVATIONS[self.final_activation]
        if act is None:
            return run
        first = inference_ctx.output_names[0]
        return lambda batch: {k: act(v) if k == first else v for k, v in run(batch).items()}
