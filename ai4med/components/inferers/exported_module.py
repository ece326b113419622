"""A torch module served by another runtime, converted lazily and kept in step with its weights.

`ExportedModule` holds what `OrtModule` (ONNX Runtime) and `OpenVinoModule` (OpenVINO) share:
the first call runs torch once (to learn the output structure, and returns that result) and
converts the module; later calls run the converted model. It converts again when the module's
parameters or buffers change (tensor version counters), so a model still being trained is never
served stale. Anything that cannot be converted falls back to torch, with one warning.
Subclasses implement `_open` (convert) and `_run` (one call of the converted model).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

logger = logging.getLogger(__name__)


class ExportedModule(ABC):
    """Calls `module` through a converted model; see the module docstring."""

    runtime_name: ClassVar[str] = "exported"

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.compiled: Any = None
        self.tuple_output = False
        self.failed = False
        self._version: tuple[int, ...] | None = None
        self._lock = threading.Lock()  # one conversion at a time (server engines call from threads)

    @property
    def active(self) -> bool:
        """True while calls run through the converted model."""
        return self.compiled is not None and not self.failed

    def _params_version(self) -> tuple[int, ...]:
        if not isinstance(self.module, torch.nn.Module):  # a plain callable: its export fails, torch it is
            return ()
        return tuple(p._version for p in self.module.parameters()) + tuple(
            b._version for b in self.module.buffers()
        )

    def __call__(self, *inputs: torch.Tensor, **kwargs: Any) -> Any:
        if self.failed or kwargs:
            return self.module(*inputs, **kwargs)
        if self.compiled is None or self._params_version() != self._version:
            with self._lock:
                if self.compiled is None or self._params_version() != self._version:
                    return self._convert_and_run(inputs)
        outs = self._run(inputs)
        return tuple(outs) if self.tuple_output else outs[0]

    def _convert_and_run(self, inputs: tuple[torch.Tensor, ...]) -> Any:
        result = self.module(*inputs)
        try:
            if isinstance(result, torch.Tensor):
                n, self.tuple_output = 1, False
            elif isinstance(result, (tuple, list)) and all(isinstance(r, torch.Tensor) for r in result):
                n, self.tuple_output = len(result), True
            else:
                raise TypeError(f"output type {type(result).__name__} is not a tensor or tuple of tensors")
            version = self._params_version()
            self.compiled = self._open(inputs, n)
            self._version = version
        except Exception as e:  # any conversion problem: stay on torch
            self.failed = True
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]  # not a dumped tensor
            logger.warning("%s path unavailable for %s (%s); running torch", self.runtime_name,
                           type(self.module).__name__, reason)
        return result

    @abstractmethod
    def _open(self, inputs: tuple[torch.Tensor, ...], n_outputs: int) -> Any:
        """The converted model of `self.module` for inputs like `inputs` (dynamic batch and spatial axes)."""

    @abstractmethod
    def _run(self, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """The outputs of `self.compiled` for `inputs`, as CPU float tensors that own their memory."""


def numpy_feeds(inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """`{"input_i": contiguous float32 numpy array}` (the input names of `ort_runtime.export_to_bytes`)."""
    return {f"input_{i}": x.detach().cpu().float().contiguous().numpy() for i, x in enumerate(inputs)}
