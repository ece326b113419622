"""Inferer: the procedure that turns a whole input into predictions (seed 000)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from ai4med.common.shape_format import ShapeFormat
from ai4med.components.inferers.inference_context import InferenceContext
from ai4med.components.inferers.predictor import Predictor


class Inferer(ABC):
    """Describes the procedure to do inference; runs its `Predictor`.

    Args:
        predictor: the back-end wrapper used for every model call.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    @abstractmethod
    def infer(
        self, model_input_values: dict[str, Any], input_shape_format: ShapeFormat, inference_ctx: InferenceContext
    ) -> dict[str, Any]:
        """Output name -> numpy array for a dict of input numpy arrays."""

    def get_supported_input_names(self, desired_input_names: Iterable[str]) -> list[str]:
        """The extra input names (of `desired_input_names`) this inferer can feed: all of them."""
        return list(desired_input_names)

    def get_supported_output_names(self, desired_output_names: Iterable[str]) -> list[str]:
        """The extra output names this inferer can return: all of them."""
        return list(desired_output_names)
