"""Run a torch module through OpenVINO on CPU (the default fp32 CPU runtime of `runtime="auto"`).

`OpenVinoModule(module)` is a drop-in callable with `OrtModule`'s behaviour (see
`exported_module.ExportedModule`): the first call runs torch once and converts the module,
later calls run the compiled OpenVINO model, weight changes trigger a new conversion, and
anything unconvertible falls back to torch with one warning.

The module goes to OpenVINO as in-memory ONNX (`ort_runtime.export_to_bytes`, dynamic batch
and spatial axes) read by `Core.read_model`: for the bench UNet 16-256 on a 2-core AVX2 CPU
that took ~1.0 s against 4.6-5.8 s for `ov.convert_model(module, example_input=...)` (same
outputs; ~1.5 s in all with compiling), and it shares the exporter of the onnxruntime path. The model
is compiled for "CPU" with INFERENCE_PRECISION_HINT f32 (no silent bf16 on AMX machines) and
PERFORMANCE_HINT LATENCY (one request uses every core: the scan window sends one batch at a
time). Outputs are copied into torch tensors, so they outlive the next call.

Example:
    >>> import torch
    >>> net = torch.nn.Conv3d(1, 2, 3, padding=1).eval()
    >>> x = torch.randn(1, 1, 8, 8, 8)
    >>> ov_net = OpenVinoModule(net)
    >>> _ = ov_net(x); bool((ov_net(x) - net(x)).abs().max() < 1e-4), ov_net.active
    (True, True)
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import torch

from ai4med.components.inferers.exported_module import ExportedModule, numpy_feeds
from ai4med.components.inferers.ort_runtime import export_to_bytes

MISSING = "runtime 'openvino' needs the openvino package (an ai4med dependency): pip install openvino"
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def openvino_available() -> bool:
    """Whether openvino is installed (without importing it: the import takes ~0.5 s)."""
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> None:
    """Raise a clear ImportError saying how to install openvino when it is missing."""
    if not openvino_available():
        raise ImportError(MISSING)


def compile_for_cpu(onnx: bytes | str, config: dict[str, Any] | None = None) -> Any:
    """An ONNX model (bytes, or a file path) read and compiled by OpenVINO for the CPU with
    `CPU_CONFIG` plus `config`; what both the torch-module and the ONNX-file paths run."""
    import openvino as ov

    core = ov.Core()
    return core.compile_model(core.read_model(onnx), "CPU", {**CPU_CONFIG, **(config or {})})


class OpenVinoModule(ExportedModule):
    """Calls `module` through OpenVINO's CPU plugin; see the module docstring.

    Args:
        module: the torch module (CPU, fp32).
        config: compile properties on top of `CPU_CONFIG` (e.g. {"INFERENCE_NUM_THREADS": 2}).
    """

    runtime_name = "openvino"

    def __init__(self, module: torch.nn.Module, config: dict[str, Any] | None = None) -> None:
        require_openvino()
        super().__init__(module)
        self.config = config
        self._run_lock = threading.Lock()  # a compiled model's implicit infer request is not thread-safe

    def _open(self, inputs: tuple[torch.Tensor, ...], n_outputs: int) -> Any:
        return compile_for_cpu(export_to_bytes(self.module, inputs, n_outputs), self.config)

    def _run(self, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        feeds = numpy_feeds(inputs)
        with self._run_lock:  # share_outputs=False: each result is a fresh copy, safe after the next call
            result = self.compiled(feeds, share_inputs=True, share_outputs=False)
            return [torch.from_numpy(o) for o in result.to_tuple()]
