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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each inferer remembers the context it last ran with, so the seed's one-argument
        `get_supported_input_names` / `get_supported_output_names` can answer for that model."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("infer")
        if own is not None and not getattr(own, "_remembers", False):
            cls.infer = _remembering(own)  # type: ignore[method-assign]

    def get_supported_input_names(
        self, desired_input_names: Iterable[str], inference_ctx: InferenceContext | None = None
    ) -> list[str]:
        """The names of `desired_input_names` the model takes (that of `inference_ctx`, else of the
        context this inferer last ran with); [] before any model is known."""
        ctx = inference_ctx or getattr(self, "last_inference_ctx", None)
        return ctx.get_supported_input_names(desired_input_names) if ctx is not None else []

    def get_supported_output_names(
        self, desired_output_names: Iterable[str], inference_ctx: InferenceContext | None = None
    ) -> list[str]:
        """The names of `desired_output_names` the model returns (see `get_supported_input_names`)."""
        ctx = inference_ctx or getattr(self, "last_inference_ctx", None)
        return ctx.get_supported_output_names(desired_output_names) if ctx is not None else []


def _remembering(infer: Any) -> Any:
    import functools

    @functools.wraps(infer)
    def wrapped(self: Inferer, model_input_values: dict[str, Any], input_shape_format: Any,
                inference_ctx: InferenceContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.last_inference_ctx = inference_ctx
        return infer(self, model_input_values, input_shape_format, inference_ctx, *args, **kwargs)

    wrapped._remembers = True  # type: ignore[attr-defined]
    return wrapped
