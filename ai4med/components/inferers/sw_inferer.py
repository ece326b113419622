"""ScanWindowInferer: sliding-window inference over a whole volume (seed 000).

Example:
    >>> import numpy as np, torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor
    >>> ctx = TorchInferenceContext(torch.nn.Conv3d(1, 2, 3, padding=1), precision="fp32")
    >>> inferer = ScanWindowInferer(TorchPredictor(), roi_size=[16, 16, 16], batch_size=2)
    >>> inferer.infer({"image": np.ones((1, 20, 24, 16), np.float32)}, "CDHW", ctx)["pred"].shape
    (2, 20, 24, 16)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.inferer import Inferer
from ai4med.components.inferers.layout import as_shape_format, from_nc, to_nc, to_numpy
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.scan_window import (
    BLEND_MODES,
    WindowFn,
    importance_map,
    resolve_roi,
    scan_intervals,
    sliding_window,
)
from ai4med.components.inferers.tta import mirrored_infer, resolve_tta

NCHW = {2: ShapeFormat("NCHW"), 3: ShapeFormat("NCDHW")}


class ScanWindowInferer(Inferer):
    """Breaks the input into windows, predicts them in batches and blends the results.

    Args:
        predictor: the back-end wrapper.
        roi_size: window size per spatial axis (None or <= 0: the image's size).
        batch_size: windows per predictor call.
        overlap: fraction of the window shared by neighbours, in [0, 1).
        blend_mode: "constant" (plain average) or "gaussian" (centre-weighted).
        sigma_scale: Gaussian sigma as a fraction of the window size.
        padding_mode / cval: how an image smaller than the window is padded (torch `F.pad` modes).
        tta: test-time mirroring of the whole input (`tta.mirrored_infer`): false, true (every
            spatial axis) or a list of spatial axes; the output is the mean over the 2**k flips.
    """

    def __init__(
        self,
        predictor: Predictor,
        roi_size: Sequence[int] | None = None,
        batch_size: int = 1,
        overlap: float = 0.25,
        blend_mode: str = "constant",
        sigma_scale: float = 0.125,
        padding_mode: str = "constant",
        cval: float = 0.0,
        tta: bool | Sequence[int] = False,
    ) -> None:
        super().__init__(predictor)
        resolve_tta(tta)  # validates
        self.tta = tta
        if blend_mode not in BLEND_MODES:
            raise ValueError(f"blend_mode must be one of {BLEND_MODES}, got {blend_mode!r}")
        self.roi_size = None if roi_size is None else list(roi_size)
        self.batch_size = int(batch_size)
        self.overlap = float(overlap)
        self.blend_mode = blend_mode
        self.sigma_scale = sigma_scale
        self.padding_mode = padding_mode
        self.cval = cval
        scan_intervals((1,), (1,), self.overlap)  # validates overlap

    def infer(
        self,
        model_input_values: dict[str, Any],
        input_shape_format: ShapeFormat | str,
        inference_ctx: InferenceContext,
    ) -> dict[str, Any]:
        sf = as_shape_format(input_shape_format)
        if resolve_tta(self.tta) is not None:
            return mirrored_infer(lambda values: self._infer_once(values, sf, inference_ctx),
                                  {k: to_numpy(v) for k, v in model_input_values.items()}, sf, self.tta)
        return self._infer_once(model_input_values, sf, inference_ctx)

    def _infer_once(
        self, model_input_values: dict[str, Any], sf: ShapeFormat, inference_ctx: InferenceContext
    ) -> dict[str, Any]:
        inputs = {k: to_nc(torch.as_tensor(v), sf).float() for k, v in model_input_values.items()}
        image_size = tuple(next(iter(inputs.values())).shape[2:])
        roi = resolve_roi(self.roi_size, image_size)
        padded_size = tuple(max(s, r) for s, r in zip(image_size, roi))
        out = sliding_window(
            inputs,
            roi,
            self.intervals(padded_size, roi),
            self.batch_size,
            self.window_fn(inference_ctx, len(roi)),
            importance_map(roi, self.blend_mode, self.sigma_scale),
            self.padding_mode,
            self.cval,
        )
        return {k: to_numpy(from_nc(v, sf)) for k, v in out.items()}

    def intervals(self, image_size: Sequence[int], roi: Sequence[int]) -> tuple[int, ...]:
        """Step between windows per axis."""
        return scan_intervals(image_size, roi, self.overlap)

    def window_fn(self, inference_ctx: InferenceContext, spatial_dims: int) -> WindowFn:
        """Runs the predictor on a batch of windows; returns float tensors."""
        fmt = NCHW[spatial_dims]

        def run(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            out = self.predictor.predict(batch, fmt, inference_ctx)
            return {k: torch.as_tensor(v) for k, v in out.items()}

        return run
