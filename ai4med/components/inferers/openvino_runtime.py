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
time). Outputs are copied into torch tensors, so they outlive the next call. Input shapes that
recur (the scan window's batch) get a static-shape build of their own (`ShapeSpecialisedModel`).

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
import logging
import threading
from collections import OrderedDict
from typing import Any

import torch

from ai4med.components.inferers.exported_module import ExportedModule, numpy_feeds
from ai4med.components.inferers.openvino_graph import split_thin_transposed_convs
from ai4med.components.inferers.ort_runtime import export_to_bytes

logger = logging.getLogger(__name__)
MISSING = "runtime 'openvino' needs the openvino package (an ai4med dependency): pip install openvino"
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def openvino_available() -> bool:
    """Whether openvino is installed (without importing it: the import takes ~0.5 s)."""
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> None:
    """Raise a clear ImportError saying how to install openvino when it is missing."""
    if not openvino_available():
        raise ImportError(MISSING)


def compile_for_cpu(onnx: bytes | str, config: dict[str, Any] | None = None) -> ShapeSpecialisedModel:
    """An ONNX model (bytes, or a file path) read and compiled by OpenVINO for the CPU with
    `CPU_CONFIG` plus `config`; what both the torch-module and the ONNX-file paths run. Thin
    transposed convolutions run as sub-pixel convolutions (`openvino_graph`)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(onnx)
    split_thin_transposed_convs(model)
    return ShapeSpecialisedModel(core, model, {**CPU_CONFIG, **(config or {})})


class ShapeSpecialisedModel:
    """A compiled model that also builds static-shape copies of itself for input shapes that recur.

    Why: OpenVINO's CPU plugin runs a model compiled for fixed input shapes faster than its
    dynamic-shape build (it plans memory and picks kernels once): the bench UNet 16-256 on a batch
    of four 96^3 windows, AVX2, 307 vs 327 ms in fp32 and 244 vs 255 ms in INT8. A scan window
    sends one batch shape again and again, so the `SPECIALISE_AFTER`-th call with a shape compiles a
    static copy (~0.1 s) that later calls of that shape run. At most `max_static` copies are kept
    (least recently used out), so a caller with ever-new shapes (a server's ROIs) stays on the
    dynamic build. A shape that cannot be made static (reshape or compile refused) stays dynamic.
    A static build costs memory: +145 MB for that UNet's batch of four 96^3 windows, +83 MB for a batch
    of two; the call counts of shapes not yet specialised are bounded too (`TRACKED_SHAPES`).

    Call it as a compiled model: `model(feeds, **infer_kwargs)` with feeds `{input name: array}`;
    the result's `to_tuple()` lists the outputs in the model's order, whichever build ran.
    """

    SPECIALISE_AFTER = 3
    TRACKED_SHAPES = 64

    def __init__(self, core: Any, model: Any, config: dict[str, Any], max_static: int = 2) -> None:
        self.core, self.model, self.config, self.max_static = core, model, config, max_static
        self.dynamic = core.compile_model(model, "CPU", config)
        self.static: OrderedDict[tuple, Any] = OrderedDict()  # shape key -> compiled, or None (refused)
        self.calls: dict[tuple, int] = {}

    @property
    def inputs(self) -> Any:
        return self.dynamic.inputs

    @property
    def outputs(self) -> Any:
        return self.dynamic.outputs

    def __call__(self, feeds: dict[str, Any], **kwargs: Any) -> Any:
        return self.build_for(feeds)(feeds, **kwargs)

    def build_for(self, feeds: dict[str, Any]) -> Any:
        """The compiled build that runs `feeds`: a static one for a recurring shape, else the dynamic."""
        if self.max_static < 1:
            return self.dynamic
        key = tuple(sorted((name, tuple(a.shape)) for name, a in feeds.items()))
        if key in self.static:
            self.static.move_to_end(key)
            return self.static[key] or self.dynamic
        self.calls[key] = n = self.calls.pop(key, 0) + 1  # re-inserted: the dict runs oldest to newest
        if n < self.SPECIALISE_AFTER:
            while len(self.calls) > self.TRACKED_SHAPES:
                del self.calls[next(iter(self.calls))]
            return self.dynamic
        del self.calls[key]
        self.static[key] = self._compile_static(key)
        while len(self.static) > self.max_static:
            self.static.popitem(last=False)
        return self.static[key] or self.dynamic

    def _compile_static(self, key: tuple) -> Any:
        import openvino as ov

        try:
            model = self.model.clone()
            model.reshape({name: ov.PartialShape(list(shape)) for name, shape in key})
            return self.core.compile_model(model, "CPU", self.config)
        except Exception as e:  # noqa: BLE001 - a model that cannot take this static shape runs dynamic
            logger.debug("no static OpenVINO build for %s (%s); dynamic shapes it is", key, e)
            return None


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
