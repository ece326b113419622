"""InferenceContext: what a predictor needs to run a model (seed 000).

A context owns the loaded model (a torch module, an ONNX Runtime session, a Triton
client...), the names of its inputs and outputs, and optional *extra* inputs (values
fed on every call, e.g. a flag) and extra outputs (additional tensors to fetch).

Example:
    >>> import torch
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> ctx = TorchInferenceContext(torch.nn.Conv3d(1, 2, 3, padding=1), precision="fp32")
    >>> ctx.get_model_input_shapes()
    {'image': (None, 1, None, None, None)}
    >>> ctx.close()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

Shape = tuple[int | None, ...]


class InferenceContext(ABC):
    """Required information to do inference: model handle, tensor names, extras.

    Args:
        input_names: model input names, in the order the model takes them.
        output_names: model output names, in the order the model returns them.
    """

    def __init__(self, input_names: Iterable[str] = ("image",), output_names: Iterable[str] = ("pred",)) -> None:
        self.input_names: list[str] = list(input_names)
        self.output_names: list[str] = list(output_names)
        self.extra_input_values: dict[str, Any] = {}
        self.extra_output_names: list[str] = []

    @abstractmethod
    def close(self) -> None:
        """Closes the context (releases the model, session or connection)."""

    @abstractmethod
    def get_model_input_shapes(self) -> dict[str, Shape]:
        """Input name -> shape (None for a dynamic axis)."""

    @abstractmethod
    def get_model_output_shapes(self) -> dict[str, Shape]:
        """Output name -> shape (None for a dynamic axis)."""

    # --- extra inputs / outputs (seed: set_extra_input_tensors / set_extra_output_tensors)
    def set_extra_input_values(self, input_values: dict[str, Any]) -> None:
        """Values fed to the model on every call besides the model inputs."""
        self.extra_input_values = dict(input_values)

    def get_extra_input_names(self) -> list[str]:
        return list(self.extra_input_values)

    def set_extra_output_names(self, names: Iterable[str]) -> None:
        """Additional outputs to fetch on every call."""
        self.extra_output_names = list(names)

    def get_extra_output_names(self) -> list[str]:
        return list(self.extra_output_names)

    def fetch_names(self) -> list[str]:
        """The output names a predictor returns: model outputs, then extra outputs."""
        return self.output_names + [n for n in self.extra_output_names if n not in self.output_names]

    def __enter__(self) -> InferenceContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
