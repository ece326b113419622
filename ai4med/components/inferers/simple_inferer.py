"""SimpleInferer: feeds the whole input to the predictor in one call (seed 000).

Example:
    >>> import numpy as np, torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor
    >>> ctx = TorchInferenceContext(torch.nn.Conv3d(1, 2, 1), precision="fp32")
    >>> out = SimpleInferer(TorchPredictor()).infer({"image": np.ones((1, 4, 4, 4), np.float32)}, "CDHW", ctx)
    >>> out["pred"].shape
    (2, 4, 4, 4)
"""

from __future__ import annotations

from typing import Any

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.inferer import Inferer
from ai4med.components.inferers.layout import as_shape_format, to_numpy


class SimpleInferer(Inferer):
    """Runs the predictor once on the full input values."""

    def infer(
        self,
        model_input_values: dict[str, Any],
        input_shape_format: ShapeFormat | str,
        inference_ctx: InferenceContext,
    ) -> dict[str, Any]:
        sf = as_shape_format(input_shape_format)
        out = self.predictor.predict(model_input_values, sf, inference_ctx)
        return {k: to_numpy(v) for k, v in out.items()}
