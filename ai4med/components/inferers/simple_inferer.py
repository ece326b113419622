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

from collections.abc import Sequence
from typing import Any

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.inferer import Inferer
from ai4med.components.inferers.layout import as_shape_format, to_numpy
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.tta import mirrored_infer, resolve_tta


class SimpleInferer(Inferer):
    """Runs the predictor once on the full input values.

    Args:
        predictor: the back-end wrapper.
        tta: test-time mirroring (`tta.mirrored_infer`): false, true (every spatial axis) or a
            list of spatial axes, e.g. [0, 1, 2]; the output is the mean over the 2**k flips.
    """

    def __init__(self, predictor: Predictor, tta: bool | Sequence[int] = False) -> None:
        super().__init__(predictor)
        resolve_tta(tta)  # validates
        self.tta = tta

    def infer(
        self,
        model_input_values: dict[str, Any],
        input_shape_format: ShapeFormat | str,
        inference_ctx: InferenceContext,
    ) -> dict[str, Any]:
        sf = as_shape_format(input_shape_format)

        def once(values: dict[str, Any]) -> dict[str, Any]:
            out = self.predictor.predict(values, sf, inference_ctx)
            return {k: to_numpy(v) for k, v in out.items()}

        if resolve_tta(self.tta) is None:
            return once(model_input_values)
        return mirrored_infer(once, {k: to_numpy(v) for k, v in model_input_values.items()}, sf, self.tta)
