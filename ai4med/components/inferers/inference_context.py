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
    >>> ctx.get_model_output_shapes()  # probed with one small input when nothing is declared
    {'pred': (None, 2, None, None, None)}
    >>> ctx.get_supported_input_names(["image", "foo"]), ctx.get_supported_output_names(["pred", "foo"])
    (['image'], ['pred'])
    >>> ctx.close()
"""

from __future__ import annotations

import functools
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

Shape = tuple[int | None, ...]
logger = logging.getLogger(__name__)

#: edge of the probe input for dynamic spatial axes (divisible by 32: AHNet, 5-level U-Nets)
PROBE_EDGE = 32


class InferenceContext(ABC):
    """Required information to do inference: model handle, tensor names, extras.

    Args:
        input_names: model input names, in the order the model takes them.
        output_names: model output names, in the order the model returns them.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every back-end's `get_model_output_shapes` keeps seed 000's promise: a context that has
        not learnt its output shapes yet (a torch module before its first call) probes the model."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("get_model_output_shapes")
        if own is not None and not getattr(own, "_probes", False):
            cls.get_model_output_shapes = _probing(own)  # type: ignore[method-assign]

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

    # --- seed 000: what the model can be fed and asked for
    def model_input_names(self) -> list[str]:
        """Every input the model takes: its inputs, the extra inputs set, declared input shapes and,
        for a torch module, the named parameters of its `forward`."""
        names = list(self.input_names) + list(self.extra_input_values) + list(self.get_model_input_shapes())
        module = getattr(self, "module", None)
        forward = getattr(module, "forward", None)
        if callable(forward):
            try:
                params = inspect.signature(forward).parameters.values()
            except (TypeError, ValueError):
                params = []
            names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return list(dict.fromkeys(names))

    def model_output_names(self) -> list[str]:
        """Every output the model returns: its outputs and those its output shapes name."""
        return list(dict.fromkeys(list(self.output_names) + list(self.get_model_output_shapes())))

    def get_supported_input_names(self, desired_input_names: Iterable[str]) -> list[str]:
        """The names of `desired_input_names` the model takes (unknown names such as "foo" are dropped)."""
        known = set(self.model_input_names())
        return [n for n in desired_input_names if n in known]

    def get_supported_output_names(self, desired_output_names: Iterable[str]) -> list[str]:
        """The names of `desired_output_names` the model returns."""
        known = set(self.model_output_names())
        return [n for n in desired_output_names if n in known]

    def probe_output_shapes(self) -> dict[str, Shape]:
        """Output name -> (None, channels, None...) from one call on a zero input (batch 1, declared
        sizes, else PROBE_EDGE per dynamic spatial axis); {} when the model cannot be probed."""
        run = getattr(self, "run", None)
        shapes = self.get_model_input_shapes()
        if not callable(run) or not shapes:
            return {}
        inputs = []
        for name in self.input_names:
            shape = shapes.get(name)
            if not shape or len(shape) < 3 or shape[1] is None:
                return {}
            dims = [1, shape[1]] + [s if isinstance(s, int) and s > 0 else PROBE_EDGE for s in shape[2:]]
            inputs.append(np.zeros(dims, np.float32))
        import torch

        extra, self.extra_output_names = self.extra_output_names, []
        try:
            with torch.no_grad():
                try:  # array back-ends (ONNX Runtime, OpenVINO, Triton) take numpy, torch ones tensors
                    out = run([torch.from_numpy(x) for x in inputs]) if _takes_tensors(self) else run(inputs)
                except Exception as exc:  # noqa: BLE001 - a model that needs other sizes keeps them unknown
                    logger.debug("output shapes not probed (%s: %s)", type(exc).__name__, exc)
                    return {}
        finally:
            self.extra_output_names = extra
        return {k: (None, int(v.shape[1]), *([None] * (len(v.shape) - 2))) for k, v in out.items()
                if len(v.shape) >= 2}

    def fetch_names(self) -> list[str]:
        """The output names a predictor returns: model outputs, then extra outputs."""
        return self.output_names + [n for n in self.extra_output_names if n not in self.output_names]

    def __enter__(self) -> InferenceContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _takes_tensors(ctx: InferenceContext) -> bool:
    import torch

    return isinstance(getattr(ctx, "device", None), torch.device)


def _probing(method: Callable[[InferenceContext], dict[str, Shape]]) -> Callable[[InferenceContext], dict[str, Shape]]:
    @functools.wraps(method)
    def get_model_output_shapes(self: InferenceContext) -> dict[str, Shape]:
        shapes = method(self)
        if shapes or getattr(self, "_probing_now", False):
            return shapes
        self._probing_now = True  # run() may record shapes, which calls back here
        try:
            probed = self.probe_output_shapes()
        finally:
            self._probing_now = False
        return method(self) or probed

    get_model_output_shapes._probes = True  # type: ignore[attr-defined]
    return get_model_output_shapes
