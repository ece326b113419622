"""Predictor: wraps one back-end to turn input values into prediction values (seed 000).

Every predictor takes a dict of numpy arrays laid out as `input_shape_format` and
returns a dict of arrays in `output_format(input_shape_format)`: the same layout with a
channel axis (channel-first unless the input is channel-last).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext


class Predictor(ABC):
    """A wrapper that runs one back-end (torch, TorchScript, ONNX Runtime, Triton)."""

    #: the context class this predictor runs (checked by `check_context`)
    context_type: type = InferenceContext

    @abstractmethod
    def predict(
        self, model_input_values: dict[str, Any], input_shape_format: ShapeFormat, inference_ctx: InferenceContext
    ) -> dict[str, Any]:
        """Output name -> prediction array for one dict of input arrays."""

    def predict_list(
        self,
        model_input_values_list: list[dict[str, Any]],
        input_shape_format: ShapeFormat,
        inference_ctx: InferenceContext,
    ) -> list[dict[str, Any]]:
        """`predict` for each dict of a list."""
        return [self.predict(v, input_shape_format, inference_ctx) for v in model_input_values_list]

    def check_context(self, inference_ctx: InferenceContext) -> None:
        if not isinstance(inference_ctx, self.context_type):
            raise TypeError(
                f"{type(self).__name__} needs a {self.context_type.__name__}, got {type(inference_ctx).__name__}"
            )
