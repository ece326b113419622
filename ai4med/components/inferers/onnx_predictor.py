"""ONNX Runtime back-end: `OnnxInferenceContext` (an `InferenceSession`) and `OnnxPredictor`.

onnxruntime is imported when a context is created. The CUDA provider is used when
`device="cuda"` (or "auto") and onnxruntime offers it; the CPU provider otherwise.

Example:
    >>> import numpy as np, torch
    >>> torch.onnx.export(torch.nn.Conv3d(1, 2, 1), torch.zeros(1, 1, 4, 4, 4), "/tmp/ai4med_doc.onnx",
    ...                   input_names=["image"], output_names=["pred"], dynamo=False)
    >>> ctx = OnnxInferenceContext("/tmp/ai4med_doc.onnx")
    >>> OnnxPredictor().predict({"image": np.zeros((1, 4, 4, 4), np.float32)}, "CDHW", ctx)["pred"].shape
    (2, 4, 4, 4)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext, Shape
from ai4med.components.inferers.layout import as_shape_format, from_nc, to_nc, to_numpy
from ai4med.components.inferers.ort_runtime import session_options
from ai4med.components.inferers.precision import tune_malloc
from ai4med.components.inferers.predictor import Predictor
from ai4med.components.inferers.torch_predictor import select_inputs


def onnx_providers(device: str = "auto") -> list[str]:
    """Execution providers for `device` ("auto", "cpu" or "cuda"), CPU last as the fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if device in ("auto", "cuda") else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


class OnnxInferenceContext(InferenceContext):
    """An ONNX model loaded into an onnxruntime `InferenceSession`.

    Args:
        model_path: the .onnx file.
        device: "auto" (CUDA provider when available), "cpu" or "cuda".
        providers: explicit provider list (overrides `device`).
        intra_op_num_threads: threads for one operator (None: onnxruntime's default).
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        device: str = "auto",
        providers: Sequence[str] | None = None,
        intra_op_num_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            str(model_path),
            sess_options=session_options(intra_op_num_threads),
            providers=list(providers or onnx_providers(device)),
        )
        self.model_path = str(model_path)
        if self.session.get_providers()[0] == "CPUExecutionProvider":
            tune_malloc()  # as the torch CPU path: the scan's full-volume buffers are re-used, not page-faulted in
        super().__init__(
            [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        )

    def close(self) -> None:
        self.session = None

    def get_model_input_shapes(self) -> dict[str, Shape]:
        return {i.name: _shape(i.shape) for i in self.session.get_inputs()}

    def get_model_output_shapes(self) -> dict[str, Shape]:
        return {o.name: _shape(o.shape) for o in self.session.get_outputs()}

    def run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for `N C *spatial` float arrays."""
        if self.session is None:
            raise RuntimeError("inference context is closed")
        feed = {n: np.ascontiguousarray(x, dtype=np.float32) for n, x in zip(self.input_names, inputs)}
        feed.update({k: np.asarray(v) for k, v in self.extra_input_values.items()})
        names = self.fetch_names()
        return dict(zip(names, self.session.run(names, feed)))


class OnnxPredictor(Predictor):
    """Runs an `OnnxInferenceContext`; takes and returns numpy arrays (tensors are converted)."""

    context_type = OnnxInferenceContext

    def predict(
        self, model_input_values: dict[str, Any], input_shape_format: ShapeFormat | str, inference_ctx: OnnxInferenceContext
    ) -> dict[str, Any]:
        self.check_context(inference_ctx)
        sf = as_shape_format(input_shape_format)
        values = select_inputs(model_input_values, inference_ctx.input_names)
        out = inference_ctx.run([to_nc(to_numpy(v), sf) for v in values])
        return {k: from_nc(v, sf) for k, v in out.items()}


def _shape(dims: Sequence[Any]) -> Shape:
    return tuple(d if isinstance(d, int) else None for d in dims)
