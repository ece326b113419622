"""Ensembles: several models run as one `InferenceContext`, their probabilities averaged.

`EnsembleInferenceContext(contexts)` holds the members (any back-end: torch, ONNX, OpenVINO,
Triton); `EnsemblePredictor` (what `AutoPredictor` picks for it) runs each member with its own
predictor and returns, per model output, the mean of the members' probabilities: softmax over
the channel axis (sigmoid for one channel) of members that return logits, the values as they are
for members that already return probabilities (`activation="auto"`), as nnU-Net averages the
softmax of its cross-validation folds. Any inferer (simple, scan-window, with `tta`) runs an
ensemble like a single model.

Example:
    >>> import numpy as np, torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> members = [TorchInferenceContext(torch.nn.Conv3d(1, 2, 1), precision="fp32") for _ in range(2)]
    >>> ctx = EnsembleInferenceContext(members)
    >>> out = EnsemblePredictor().predict({"image": np.ones((1, 1, 4, 4, 4), np.float32)}, "NCDHW", ctx)
    >>> out["pred"].shape, bool(np.allclose(out["pred"].sum(1), 1))
    ((1, 2, 4, 4, 4), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext, Shape
from ai4med.components.inferers.layout import as_shape_format, output_format, to_numpy
from ai4med.components.inferers.predictor import Predictor

__all__ = ["EnsembleInferenceContext", "EnsemblePredictor", "to_probabilities", "ACTIVATIONS"]

ACTIVATIONS = ("auto", "softmax", "sigmoid", "none")


def _is_probability(x: np.ndarray, axis: int) -> bool:
    if x.size == 0 or np.nanmin(x) < -1e-6 or np.nanmax(x) > 1 + 1e-6:
        return False
    return x.shape[axis] == 1 or bool(np.allclose(x.sum(axis=axis), 1.0, atol=1e-3))


def to_probabilities(x: np.ndarray, axis: int, activation: str = "auto") -> np.ndarray:
    """`x` as probabilities along channel `axis`: softmax (sigmoid for one channel) unless `activation`
    is "none", or is "auto" and `x` already is probabilities.

    >>> to_probabilities(np.array([[0.0], [0.0]]), axis=0).ravel().tolist()
    [0.5, 0.5]
    >>> to_probabilities(np.array([[0.2], [0.8]]), axis=0).ravel().tolist()
    [0.2, 0.8]
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    x = np.asarray(x, dtype=np.float64)
    if activation == "none" or (activation == "auto" and _is_probability(x, axis)):
        return x
    if activation == "sigmoid" or (activation == "auto" and x.shape[axis] == 1):
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class EnsembleInferenceContext(InferenceContext):
    """Several inference contexts run as one model whose output is the mean of their probabilities.

    Args:
        contexts: the members (at least one); they must share input and output names.
        activation: "auto" (see `to_probabilities`), "softmax", "sigmoid" or "none" (plain mean).
        weights: optional weight per member (normalised to sum 1); default equal.
    """

    def __init__(self, contexts: Sequence[InferenceContext], activation: str = "auto",
                 weights: Sequence[float] | None = None) -> None:
        members = list(contexts)
        if not members:
            raise ValueError("an ensemble needs at least one inference context")
        first = members[0]
        for i, m in enumerate(members[1:], 1):
            if list(m.input_names) != list(first.input_names) or list(m.output_names) != list(first.output_names):
                raise ValueError(f"ensemble member {i} has inputs {m.input_names} / outputs {m.output_names}, "
                                 f"member 0 has {first.input_names} / {first.output_names}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if weights is not None:
            w = np.asarray(weights, np.float64)
            if w.shape != (len(members),) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be {len(members)} non-negative numbers with a positive sum, got "
                                 f"{list(weights)}")
            self.weights = list(w / w.sum())
        else:
            self.weights = [1.0 / len(members)] * len(members)
        super().__init__(first.input_names, first.output_names)
        self.members = members
        self.activation = activation

    def close(self) -> None:
        for m in self.members:
            m.close()

    def get_model_input_shapes(self) -> dict[str, Shape]:
        return self.members[0].get_model_input_shapes()

    def get_model_output_shapes(self) -> dict[str, Shape]:
        return self.members[0].get_model_output_shapes()

    def set_extra_input_values(self, input_values: dict[str, Any]) -> None:
        super().set_extra_input_values(input_values)
        for m in self.members:
            m.set_extra_input_values(input_values)

    def set_extra_output_names(self, names: Any) -> None:
        super().set_extra_output_names(names)
        for m in self.members:
            m.set_extra_output_names(names)

    def __len__(self) -> int:
        return len(self.members)


class EnsemblePredictor(Predictor):
    """Runs every member of an `EnsembleInferenceContext` with its back-end's predictor and averages.

    Model outputs (`output_names`) are averaged as probabilities; extra outputs are plain means.
    """

    def predict(
        self, model_input_values: dict[str, Any], input_shape_format: ShapeFormat | str, inference_ctx: InferenceContext
    ) -> dict[str, Any]:
        from ai4med.components.inferers.torch_inferers import predictor_for

        if not isinstance(inference_ctx, EnsembleInferenceContext):
            raise TypeError(f"EnsemblePredictor runs an EnsembleInferenceContext, got {type(inference_ctx).__name__}")
        fmt = as_shape_format(input_shape_format)
        axis = output_format(fmt).get_channel_axis()
        total: dict[str, np.ndarray] = {}
        for member, w in zip(inference_ctx.members, inference_ctx.weights):
            out = predictor_for(member).predict(model_input_values, fmt, member)
            for name, value in out.items():
                v = to_numpy(value)
                if name in inference_ctx.output_names:
                    v = to_probabilities(v, axis, inference_ctx.activation)
                v = np.asarray(v, np.float64) * w
                total[name] = v if name not in total else total[name] + v
        return {k: v.astype(np.float32) for k, v in total.items()}
