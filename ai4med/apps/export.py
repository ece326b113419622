"""`ai4med export`: a trained checkpoint -> TorchScript, ONNX, a Triton model repository and the
deploy app's `model_config.json` (seed 004 `tlt-export`, Clara's `export.sh`).

From the checkpoint (`--model_file_path` folder or file, `--model_name`; default the MMAR's
`models/model.pt`) and the network of the config (`/train/model`), it writes, each file
atomically:

* `<out>/<model_name>.ts`: TorchScript (traced), predictions with the final activation;
* `<out>/<model_name>.onnx`: ONNX (opset >= 17) with dynamic batch and spatial axes, input
  and output named `--input_node_names` / `--output_node_names`;
* with `--fp16` both run in half precision inside while taking and returning float32;
* `<triton_repo>/<triton_model_name>/config.pbtxt` + `1/model.onnx` (onnxruntime backend),
  `1/model.pt` (pytorch backend) or `1/model.py` + `1/model.onnx` (Python backend running
  ONNX Runtime: what the tritonserver bundled with nvidia-pytriton can serve);
* `<out>/model_config.json`: seed 003's keys (model_name, input_node_names, output_node_names,
  data_format, output_channel_dict, network_input_size).
* `<out>/config_inference.json` (the `export` command, from a config with validation
  pre-transforms): the deploy app's config with the MMAR's validation pre-transforms, window
  and post-transforms (`ai4med.apps._deploy_config`); `ai4med deploy --init_app APP
  --from_export OUT` uses it instead of the base application's CT-window config.

At the end it prints the parity check: the max abs difference of each export against the
checkpoint's torch output on one random input of the network input size; an export that
differs by more than the tolerance fails the command.

Example:
    >>> import tempfile, torch
    >>> net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.Softmax(1)).eval()
    >>> res = export_model(net, tempfile.mkdtemp(), network_input_size=[8, 8, 8], formats=("onnx",),
    ...                    triton_repo=None)
    >>> sorted(res.files), res.parity["onnx"] < 1e-4
    (['model_config', 'onnx'], True)
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ai4med.errors import UserError
from ai4med.io.atomic import atomic_path, atomic_write_text, temp_name

__all__ = ["run", "export_model", "ExportResult", "export_torchscript", "export_onnx", "write_triton_repository",
           "write_model_config", "TRITON_BACKENDS"]

logger = logging.getLogger(__name__)

TRITON_BACKENDS = ("onnxruntime", "pytorch", "python")
DEFAULT_INPUT = "NV_MODEL_INPUT"
DEFAULT_OUTPUT = "NV_MODEL_OUTPUT"
MIN_OPSET = 17


class HalfPrecision(torch.nn.Module):
    """Runs `module` in float16 and returns float32 (so clients keep sending float32)."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(module).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.half()).float()


@dataclass
class ExportResult:
    """Files written (kind -> path), parity (kind -> max abs diff) and the model's I/O description."""

    files: dict[str, str] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    output_channels: int = 0
    tolerance: float = 0.0
    committed: bool = False
    #: INT8 check: mean / lowest mask Dice vs fp32 on the validation cases, cases, windows, the bar
    int8: dict[str, float] = field(default_factory=dict)
    int8_preset: str = ""  # the NNCF preset of the INT8 model (`int8.PRESETS`)

    def failed(self) -> list[str]:
        bad = [k for k, v in self.parity.items() if not v <= self.tolerance]
        if self.int8 and not self.int8.get("dice", 0.0) >= self.int8.get("min_dice", 0.99):
            bad.append("int8")
        return bad

    def report(self) -> str:
        lines = [f"parity on a random input {self.input_shape}, max abs diff vs the checkpoint's torch output "
                 f"(tolerance {self.tolerance:.0e}):"]
        for kind, diff in self.parity.items():
            verdict = "ok" if diff <= self.tolerance else "FAILED"
            lines.append(f"  {kind:<12} {diff:.3e}  {verdict}  {self.files.get(kind, '')}")
        if self.int8:
            q = self.int8
            verdict = "ok" if q["dice"] >= q["min_dice"] else "FAILED"
            lines.append(f"  {'int8':<12} mask Dice vs fp32 on {int(q['cases'])} validation case(s): mean "
                         f"{q['dice']:.4f}, lowest {q['lowest']:.4f} (needs >= {q['min_dice']:.2f}; calibrated on "
                         f"{int(q['windows'])} windows, preset {self.int8_preset})  {verdict}  {self.files.get('int8', '')}")
        return "\n".join(lines)


# --- single exports -----------------------------------------------------------------------------
def export_torchscript(module: torch.nn.Module, example: torch.Tensor, path: str) -> str:
    """Trace `module` on `example` and save it to `path` atomically."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        with atomic_path(path) as tmp:
            torch.jit.save(traced, tmp)
    return os.path.abspath(path)


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: str, input_name: str = DEFAULT_INPUT,
                output_name: str = DEFAULT_OUTPUT, opset: int = MIN_OPSET) -> str:
    """ONNX with dynamic batch and spatial axes (channels fixed), saved to `path` atomically."""
    if opset < MIN_OPSET:
        raise UserError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    axes = {0: "batch", **{i: f"spatial_{i - 2}" for i in range(2, example.ndim)}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        with atomic_path(path) as tmp:
            torch.onnx.export(module, (example,), tmp, input_names=[input_name], output_names=[output_name],
                              dynamic_axes={input_name: axes, output_name: dict(axes)}, opset_version=opset,
                              dynamo=False)
    return os.path.abspath(path)


def _run_torchscript(path: str, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.jit.load(path, map_location="cpu")(x).float().numpy()


def _run_onnx(path: str, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


# --- Triton and the deploy app's model_config.json ---------------------------------------------
_TRITON_PY = '''"""Triton Python-backend model written by `ai4med export`.

Runs 1/model.onnx with ONNX Runtime (or 1/model.pt with TorchScript). Tensors cross the
backend boundary through DLPack (torch): the Python backend's numpy path (`as_numpy`,
`pb_utils.Tensor(name, array)`) reads wrong strides / sizes under numpy 2.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

try:
    import torch
    from torch.utils.dlpack import to_dlpack
except ImportError:  # numpy path: correct with numpy < 2
    torch = None


def _input(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if torch is not None:
        return torch.from_dlpack(tensor.to_dlpack()).float().contiguous().numpy()
    return np.ascontiguousarray(tensor.as_numpy(), np.float32)


def _output(name, array):
    array = np.ascontiguousarray(array, np.float32)
    if torch is not None:
        return pb_utils.Tensor.from_dlpack(name, to_dlpack(torch.from_numpy(array)))
    return pb_utils.Tensor(name, array)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        folder = os.path.join(args["model_repository"], args["model_version"])
        onnx_path = os.path.join(folder, "model.onnx")
        if os.path.exists(onnx_path):
            import onnxruntime as ort

            session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
            self.run = lambda feeds: session.run(self.outputs, feeds)
        else:
            module = torch.jit.load(os.path.join(folder, "model.pt"), map_location="cpu").eval()

            def run(feeds):
                with torch.inference_mode():
                    out = module(*[torch.from_numpy(feeds[n]) for n in self.inputs])
                return [o.float().numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]

            self.run = run

    def execute(self, requests):
        responses = []
        for request in requests:
            outs = self.run({n: _input(request, n) for n in self.inputs})
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[_output(n, o) for n, o in zip(self.outputs, outs)]))
        return responses
'''


def triton_config(name: str, backend: str, input_name: str, output_name: str, in_channels: int,
                  out_channels: int, spatial_dims: int, max_batch_size: int = 0) -> str:
    """The `config.pbtxt` text: float32 tensors, channels fixed, batch and spatial axes dynamic."""
    batch = [] if max_batch_size > 0 else [-1]
    dims_in = batch + [in_channels] + [-1] * spatial_dims
    dims_out = batch + [out_channels] + [-1] * spatial_dims
    head = {"onnxruntime": 'platform: "onnxruntime_onnx"', "pytorch": 'platform: "pytorch_libtorch"',
            "python": 'backend: "python"'}[backend]
    lines = [
        f'name: "{name}"', head, f"max_batch_size: {int(max_batch_size)}",
        f'input [ {{ name: "{input_name}" data_type: TYPE_FP32 dims: [ {", ".join(map(str, dims_in))} ] }} ]',
        f'output [ {{ name: "{output_name}" data_type: TYPE_FP32 dims: [ {", ".join(map(str, dims_out))} ] }} ]',
    ]
    if max_batch_size > 0:
        lines.append("dynamic_batching { }")
    if backend == "python":
        lines.append("instance_group [ { kind: KIND_CPU count: 1 } ]")
    return "\n".join(lines) + "\n"


def write_triton_repository(repo: str, name: str, backend: str, model_file: str, input_name: str,
                            output_name: str, in_channels: int, out_channels: int, spatial_dims: int,
                            max_batch_size: int = 0) -> str:
    """`<repo>/<name>/config.pbtxt` + `1/<model file>` (+ `1/model.py` for the Python backend).

    The model folder is built beside its final place and swapped in, so a reader sees the old
    or the new folder, never a partial one. Returns the model folder.
    """
    if backend not in TRITON_BACKENDS:
        raise UserError(f"Triton backend must be one of {TRITON_BACKENDS}, got {backend!r}")
    target = os.path.abspath(os.path.join(repo, name))
    os.makedirs(repo, exist_ok=True)
    tmp = temp_name(target) + ".d"
    try:
        os.makedirs(os.path.join(tmp, "1"))
        dest = "model.pt" if backend == "pytorch" else "model.onnx"
        shutil.copyfile(model_file, os.path.join(tmp, "1", dest))
        if backend == "python":
            with open(os.path.join(tmp, "1", "model.py"), "w") as fh:
                fh.write(_TRITON_PY)
        with open(os.path.join(tmp, "config.pbtxt"), "w") as fh:
            fh.write(triton_config(name, backend, input_name, output_name, in_channels, out_channels,
                                   spatial_dims, max_batch_size))
        _swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_model_config(path: str, model_name: str, input_names: Sequence[str], output_names: Sequence[str],
                       output_channels: int, network_input_size: Sequence[int],
                       data_format: str = "channels_first") -> str:
    """Seed 003's `model_config.json` for the deploy app, written atomically."""
    doc = {
        "model_name": model_name,
        "input_node_names": list(input_names),
        "output_node_names": list(output_names),
        "data_format": data_format,
        "output_channel_dict": {n: int(output_channels) for n in output_names},
        "network_input_size": [int(s) for s in network_input_size],
    }
    return atomic_write_text(path, json.dumps(doc, indent=4) + "\n")


# --- the whole export ----------------------------------------------------------------------------
def input_channels(module: torch.nn.Module) -> tuple[int, int]:
    """(input channels, spatial dims) from the first convolution of `module`."""
    for m in module.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, torch.nn.modules.conv._ConvNd) and isinstance(w, torch.Tensor):
            transposed = isinstance(m, torch.nn.modules.conv._ConvTransposeNd)
            return int(w.shape[0] if transposed else w.shape[1] * m.groups), w.ndim - 2
    raise UserError(f"cannot tell the input channels of {type(module).__name__}: it has no convolution; "
                    "give --input_channels")


def export_model(
    module: torch.nn.Module,
    out_dir: str,
    network_input_size: Sequence[int],
    model_name: str = "model",
    input_name: str = DEFAULT_INPUT,
    output_name: str = DEFAULT_OUTPUT,
    formats: Sequence[str] = ("ts", "onnx"),
    fp16: bool = False,
    opset: int = MIN_OPSET,
    triton_repo: str | None = "triton",
    triton_model_name: str | None = None,
    triton_backend: str = "onnxruntime",
    max_batch_size: int = 0,
    in_channels: int | None = None,
    tolerance: float | None = None,
    seed: int = 0,
    extra: Any = None,
) -> ExportResult:
    """Export `module` (predictions, eval mode, float32) and check each export against it.

    Args:
        module: the prediction module (network + final activation).
        out_dir: folder of the `.ts` / `.onnx` files and `model_config.json`.
        network_input_size: spatial size of the example (and of the deploy app's windows).
        formats: any of "ts", "onnx". fp16: half precision inside, float32 I/O.
        triton_repo: the Triton repository folder (relative: under `out_dir`), None for none.
        triton_backend: "onnxruntime" (`1/model.onnx`), "pytorch" (`1/model.pt`, tensors
            named INPUT__0 / OUTPUT__0) or "python" (`1/model.py` + `1/model.onnx`).
        max_batch_size: 0 = the batch axis is part of the dims (any size); > 0 = Triton batching.
        tolerance: max allowed abs diff (default 1e-3 fp32, 5e-2 fp16, times max(1, max |output|)).
        extra: called with (staging, result) before the commit, to add files to the export
            (`staging.path_for(name)`).

    Everything is written into a temporary folder and moved into `out_dir` only when every parity
    check passes (`result.committed`); otherwise `out_dir` is left as it was.
    """
    formats = [f.lower() for f in formats]
    bad = [f for f in formats if f not in ("ts", "onnx")]
    if bad:
        raise UserError(f"unknown export format(s) {bad}; use ts and/or onnx")
    if triton_repo and triton_backend not in TRITON_BACKENDS:
        raise UserError(f"Triton backend must be one of {TRITON_BACKENDS}, got {triton_backend!r}")
    module = module.eval().float()
    channels, dims = (in_channels, len(network_input_size)) if in_channels else input_channels(module)
    size = [int(s) for s in network_input_size]
    if len(size) != dims:
        raise UserError(f"network_input_size {size} has {len(size)} axes; the network is {dims}D")
    gen = torch.Generator().manual_seed(seed)
    example = torch.rand((1, channels, *size), generator=gen)
    with torch.no_grad():
        reference = module(example).float()
    exported = HalfPrecision(module).eval() if fp16 else module
    result = ExportResult(input_shape=tuple(example.shape), output_channels=int(reference.shape[1]))
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    if triton_backend == "pytorch" and triton_repo:
        input_name, output_name = "INPUT__0", "OUTPUT__0"
    repo_final = None
    if triton_repo:
        repo_final = triton_repo if os.path.isabs(triton_repo) else os.path.join(out_dir, triton_repo)
    with ExportStaging(out_dir) as stage:
        want_ts = "ts" in formats or (bool(triton_repo) and triton_backend == "pytorch")
        want_onnx = "onnx" in formats or (bool(triton_repo) and triton_backend in ("onnxruntime", "python"))
        if want_ts:
            result.files["ts"] = export_torchscript(exported, example, stage.path_for(model_name + ".ts"))
            result.parity["ts"] = float(np.abs(_run_torchscript(result.files["ts"], example) - reference.numpy()).max())
        if want_onnx:
            result.files["onnx"] = export_onnx(exported, example, stage.path_for(model_name + ".onnx"),
                                               input_name, output_name, opset)
            result.parity["onnx"] = float(np.abs(_run_onnx(result.files["onnx"], example) - reference.numpy()).max())
        name = triton_model_name or model_name
        if repo_final:
            source = result.files["ts"] if triton_backend == "pytorch" else result.files["onnx"]
            staged_repo = stage.path_for("triton-repository", final=repo_final)
            write_triton_repository(staged_repo, name, triton_backend, source, input_name, output_name, channels,
                                    result.output_channels, dims, max_batch_size)
            result.files["triton"] = os.path.join(repo_final, name)
        # a Triton-only file the user did not ask for is not kept beside the exports
        for kind, wanted in (("ts", "ts" in formats), ("onnx", "onnx" in formats)):
            if kind in result.files and not wanted:
                stage.drop(result.files.pop(kind))
        result.files["model_config"] = write_model_config(
            stage.path_for("model_config.json"), name, [input_name], [output_name], result.output_channels, size)
        base = 5e-2 if fp16 else 1e-3
        result.tolerance = (tolerance if tolerance is not None else base) * max(1.0, float(reference.abs().max()))
        if extra is not None:
            extra(stage, result)
        result.committed = not result.failed()
        if result.committed:
            result.files = stage.commit(result.files)
        else:
            result.files = {k: stage.final_path(v) for k, v in result.files.items()}
    return result


class ExportStaging:
    """A temporary folder beside `out_dir` that an export writes into; `commit` moves each written
    entry into its final place (files by rename, folders swapped whole), so a failed or interrupted
    export leaves `out_dir` as it was.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with ExportStaging(d) as st:
        ...     _ = open(st.path_for("a.txt"), "w").write("x")
        >>> os.listdir(d)  # not committed: nothing stays
        []
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = os.path.abspath(out_dir)
        self.root = ""
        self._final: dict[str, str] = {}

    def __enter__(self) -> ExportStaging:
        import tempfile

        os.makedirs(self.out_dir, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix=".tmp-export-", dir=self.out_dir)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def path_for(self, name: str, final: str | None = None) -> str:
        """Where to write `name` now; it goes to `final` (default `<out_dir>/<name>`) on commit."""
        path = os.path.join(self.root, name)
        self._final[path] = os.path.abspath(final) if final else os.path.join(self.out_dir, name)
        return path

    def final_path(self, staged: str) -> str:
        for src, dst in self._final.items():
            if staged == src or staged.startswith(src + os.sep):
                return dst + staged[len(src):]
        return staged

    def drop(self, staged: str) -> None:
        self._final.pop(staged, None)

    def commit(self, files: dict[str, str]) -> dict[str, str]:
        """Move every staged entry into place; returns `files` with their final paths."""
        for src, dst in self._final.items():
            if not os.path.exists(src):
                continue
            if os.path.isdir(src):
                os.makedirs(dst, exist_ok=True)
                for entry in sorted(os.listdir(src)):  # one model folder of a Triton repository each
                    _swap_in(os.path.join(src, entry), os.path.join(dst, entry))
            else:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.replace(src, dst)
        return {k: self.final_path(v) for k, v in files.items()}


def _swap_in(src: str, dst: str) -> None:
    """Put folder (or file) `src` at `dst`, replacing what is there in one rename where possible."""
    if os.path.isdir(dst) and not os.path.islink(dst):
        old = temp_name(dst) + ".old"
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def network_input_size(cfg: Any, dims: int) -> list[int]:
    """The scanning window of the config's inferer, else the training crop, else 96 per axis."""
    for pointer in ("/validate/inferer/args/roi_size", "/inferer/args/roi_size",
                    "/train/image_pipeline/args/output_crop_size"):
        value = cfg.get(pointer)
        if isinstance(value, (list, tuple)) and len(value) == dims and all(int(v) > 0 for v in value):
            return [int(v) for v in value]
    logger.warning("no roi_size or crop size in the config: network_input_size %s", [96] * dims)
    return [96] * dims


def _parse_size(text: Any) -> list[int] | None:
    if text is None:
        return None
    items = text if isinstance(text, (list, tuple)) else str(text).replace(",", " ").split()
    return [int(v) for v in items]


def run(args: Any) -> int:
    """The `export` command (arguments: `ai4med.apps._cli_args.add_export_args`)."""
    from ai4med.apps._cli_args import load_command_config
    from ai4med.inference.loaders import find_checkpoint
    from ai4med.inference.models import checkpoint_module

    ignored = [f for f in ("trt_min_seg_size", "trt_dynamic_mode", "checkpoint_ext", "meta_file_ext",
                           "regular_frozen_file_ext", "trt_file_ext") if getattr(args, f, None) not in (None, False)]
    if ignored:
        logger.info("TensorRT/TensorFlow options ignored (no meaning for PyTorch exports): %s", ", ".join(ignored))
    fmt = (getattr(args, "model_file_format", None) or "CKPT").upper()
    if fmt not in ("CKPT", "PT"):
        raise UserError(f"--model_file_format {fmt}: only checkpoints (CKPT) are exported")
    cfg = load_command_config(args, reads_data=False)  # exporting reads no data
    checkpoint = find_checkpoint(cfg, args.model_file_path, args.model_name)
    module = checkpoint_module(checkpoint, config=cfg, trust=bool(getattr(args, "trust_checkpoint", False)))
    cfg.warn_unused_overrides(logger)
    _, dims = input_channels(module) if not args.input_channels else (args.input_channels, None)
    size = _parse_size(args.network_input_size) or _parse_size(getattr(args, "trtis_input_shape", None))
    if size and dims and len(size) == dims + 1:  # trtis_input_shape "1 64 64 64": channels first
        size = size[1:]
    size = size or network_input_size(cfg, dims or 3)
    out_dir = os.path.abspath(args.output_dir) if args.output_dir else os.path.dirname(checkpoint)
    fp16 = bool(args.fp16) or str(getattr(args, "trt_precision_mode", "") or "").upper() == "FP16"
    triton_repo = None if args.no_triton else (args.triton_repo or "triton")
    triton_name = args.triton_model_name or getattr(args, "trtis_model_name", None) or (
        os.path.basename(cfg.mmar.root) if cfg.mmar else args.model_name)
    result = export_model(
        module, out_dir, size, args.model_name, _first(args.input_node_names), _first(args.output_node_names),
        args.formats, fp16, args.opset, triton_repo, triton_name, args.triton_backend, args.max_batch_size,
        args.input_channels, args.tolerance, extra=lambda stage, res: _extras(cfg, stage, res, size, args),
    )
    print(f"exported {checkpoint}" + (" (fp16)" if fp16 else ""))
    for kind, path in result.files.items():
        print(f"  {kind:<12} {path}")
    print(result.report())
    sys.stdout.flush()
    failed = result.failed()
    if failed:
        raise UserError(f"parity check failed for {', '.join(failed)} (see the table above); nothing was written "
                        f"to {out_dir}")
    return 0


def _extras(cfg: Any, stage: ExportStaging, result: ExportResult, size: list[int], args: Any) -> None:
    _write_deploy_config(cfg, stage, result)
    if getattr(args, "int8", False):
        _export_int8(cfg, stage, result, size, args)


def _export_int8(cfg: Any, stage: ExportStaging, result: ExportResult, size: list[int], args: Any) -> None:
    """NNCF INT8 of the staged ONNX export, calibrated on training windows, checked on validation masks."""
    from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext
    from ai4med.inference.from_config import EvalOptions, datalist_of, is_train_config, pipeline_parts
    from ai4med.inference.int8 import PRESETS, calibration_windows, mask_dice, quantize, require_nncf
    from ai4med.inference.pipeline import CasePipeline
    from ai4med.workflows.bulk_evaluator import load_items

    require_nncf()
    if "onnx" not in result.files:
        raise UserError("--int8 quantises the ONNX export: add onnx to --formats")
    parts = pipeline_parts(cfg, EvalOptions())
    train = "/train/image_pipeline" if is_train_config(cfg) else "/image_pipeline"
    datalist, _, root = datalist_of(cfg, EvalOptions(data_list_key="training"), train)
    calib = CasePipeline(None, None, parts.pre, parts.post)
    name = args.model_name
    cache = os.path.join(stage.out_dir, f"{name}_int8_calibration.json")
    windows = calibration_windows(calib, load_items(datalist, "training", root), size, int(args.int8_windows),
                                  cache=cache, cache_out=stage.path_for(os.path.basename(cache)))
    xml = stage.path_for(f"{name}_int8.xml")
    stage.path_for(f"{name}_int8.bin")
    result.files["int8"] = xml
    vdatalist, vkey, vroot = datalist_of(cfg, EvalOptions(), (parts.base or "") + "/image_pipeline")
    cases = load_items(vdatalist, vkey, vroot)
    fp32 = CasePipeline(OpenVinoInferenceContext(result.files["onnx"]), parts.inferer, parts.pre, parts.post)
    references = [fp32.run(dict(it), write=False).result() for it in cases]
    for preset in PRESETS:  # the fastest preset whose masks pass the bar; the last one is reported either way
        quantize(result.files["onnx"], windows, xml, preset)
        int8 = CasePipeline(OpenVinoInferenceContext(xml), parts.inferer, parts.pre, parts.post)
        scores = [mask_dice(ref, int8.run(dict(it), write=False).result()) for ref, it in zip(references, cases)]
        result.int8 = {"dice": float(np.mean(scores)) if scores else 0.0, "lowest": float(min(scores, default=0.0)),
                       "cases": float(len(scores)), "windows": float(len(windows)),
                       "min_dice": float(args.int8_min_dice)}
        result.int8_preset = preset
        if result.int8["dice"] >= args.int8_min_dice:
            break
        logger.info("INT8 preset %s: mask Dice %.4f below %.2f", preset, result.int8["dice"], args.int8_min_dice)


def _write_deploy_config(cfg: Any, stage: ExportStaging, result: ExportResult) -> None:
    """`config_inference.json` for the deploy app, from the config's validation section (staged)."""
    import tempfile

    from ai4med.apps._deploy_config import write_inference_config

    folder = tempfile.mkdtemp(dir=stage.root)
    try:
        path = write_inference_config(cfg, folder)
    except (UserError, OSError) as e:  # the model exports stand; the deploy app falls back to its base config
        logger.warning("no deploy config_inference.json: %s", e)
        return
    if path:
        target = stage.path_for(os.path.basename(path))
        os.replace(path, target)
        result.files["deploy_config"] = target
    else:
        logger.warning("no deploy config_inference.json: %s has no validation pre_transforms", cfg.file)


def _first(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return str(value).split(",")[0].strip()
