"""The seed's ready-made inferers on PyTorch: `TorchSimpleInferer`, `TorchScanWindowInferer`,
`TorchScanClassWindowInferer` (seed names TFSimpleInferer, ... are registry aliases).

They need no predictor argument (so configs can name them with only their own args): an
`AutoPredictor` runs whichever context it is given (torch/TorchScript, ONNX Runtime, Triton).

Example:
    >>> import numpy as np, torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> ctx = TorchInferenceContext(torch.nn.Conv3d(1, 3, 1), precision="fp32")
    >>> TorchScanWindowInferer([8, 8, 8], 2).infer({"image": np.ones((1, 9, 9, 9), "f4")}, "CDHW", ctx)["pred"].shape
    (3, 9, 9, 9)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.simple_inferer import SimpleInferer
from ai4med.components.inferers.sw_class_inferer import ScanClassWindowInferer
from ai4med.components.inferers.sw_inferer import ScanWindowInferer


def predictor_for(inference_ctx: InferenceContext) -> Predictor:
    """The predictor that runs `inference_ctx`'s back-end."""
    from ai4med.components.inferers.ensemble import EnsembleInferenceContext, EnsemblePredictor
    from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext, OnnxPredictor
    from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext, OpenVinoPredictor
    from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchPredictor
    from ai4med.components.inferers.triton_predictor import TritonInferenceContext, TritonPredictor

    for ctx_type, predictor in (
        (TorchInferenceContext, TorchPredictor),
        (OnnxInferenceContext, OnnxPredictor),
        (OpenVinoInferenceContext, OpenVinoPredictor),
        (TritonInferenceContext, TritonPredictor),
        (EnsembleInferenceContext, EnsemblePredictor),
    ):
        if isinstance(inference_ctx, ctx_type):
            return predictor()
    raise TypeError(f"no predictor for a {type(inference_ctx).__name__}")


class AutoPredictor(Predictor):
    """Delegates to the predictor of the context's back-end (seed TFPredictor's role)."""

    def predict(
        self, model_input_values: dict[str, Any], input_shape_format: ShapeFormat | str, inference_ctx: InferenceContext
    ) -> dict[str, Any]:
        return predictor_for(inference_ctx).predict(model_input_values, input_shape_format, inference_ctx)


class TorchSimpleInferer(SimpleInferer):
    """`SimpleInferer` with an `AutoPredictor` (`tta`: test-time mirroring, as `SimpleInferer`)."""

    def __init__(self, tta: bool | Sequence[int] = False) -> None:
        super().__init__(AutoPredictor(), tta)


class TorchScanWindowInferer(ScanWindowInferer):
    """`ScanWindowInferer` with an `AutoPredictor`; args as `ScanWindowInferer` without the predictor."""

    def __init__(self, roi_size: Sequence[int] | None = None, batch_size: int = 1, **kwargs: Any) -> None:
        super().__init__(AutoPredictor(), roi_size, batch_size, **kwargs)


class TorchScanClassWindowInferer(ScanClassWindowInferer):
    """`ScanClassWindowInferer` with an `AutoPredictor`."""

    def __init__(
        self,
        roi_size: Sequence[int] | None = None,
        batch_size: int = 1,
        scan_interval: Sequence[float | None] | float | None = None,
        final_activation: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(AutoPredictor(), roi_size, batch_size, scan_interval, final_activation, **kwargs)
