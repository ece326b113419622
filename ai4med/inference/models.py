"""Model source -> inference context: the one opener every door uses.

`open_model` turns what a user names as "the model" into an `InferenceContext`:

* a training checkpoint (`.pt`/`.pth`/`.ckpt`; read by `ai4med.io.checkpoint`, weights only) plus
  the network it was trained with: a component node given by the caller (a server model
  config's `network`), the config's `/train/model` or `/model`, or the model node of the MMAR
  holding the file (`<mmar>/models/model.pt` -> `<mmar>/config/config_train.json`; the MMAR's
  `custom/` folder goes on `sys.path` first, so BYOC networks by `path` load);
* a TorchScript archive (sniffed from the file, whatever its extension);
* an ONNX file;
* a model on a Triton server (`TritonSource`);
* several of these (an ensemble: the mean of the members' probabilities).

One runtime rule for all of them (`resolve_runtime` for torch modules, `onnx_runtime_for` for
ONNX files): ONNX files run on OpenVINO on a CPU and on ONNX Runtime elsewhere unless asked
otherwise; a torch module runs on torch unless the precision is "auto" and resolves to fp32 on a
CPU (then OpenVINO), or a runtime is named.

Example:
    >>> import os, tempfile, torch
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "m.pt")
    >>> torch.save({"model": torch.nn.Conv3d(1, 2, 1).state_dict()}, p)
    >>> node = {"path": "torch.nn.Conv3d", "args": {"in_channels": 1, "out_channels": 2, "kernel_size": 1}}
    >>> ctx = open_model(p, network=node, precision="fp32")
    >>> type(ctx).__name__, ctx.runtime
    ('TorchInferenceContext', 'torch')
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ai4med.errors import UserError

__all__ = ["open_model", "TritonSource", "ModelOpenError", "model_format", "is_torchscript", "onnx_runtime_for",
           "network_node_for", "build_network", "prediction_module", "checkpoint_module", "describe", "CHECKPOINT_EXTS",
           "NETWORK_POINTERS", "ONNX_RUNTIMES"]

logger = logging.getLogger(__name__)

CHECKPOINT_EXTS = (".pt", ".pth", ".ckpt")
NETWORK_POINTERS = ("/train/model", "/model")
ONNX_RUNTIMES = ("auto", "onnxruntime", "openvino")


class ModelOpenError(UserError):
    """A model that cannot be opened; the message names the file (or server) and why."""


@dataclass(frozen=True)
class TritonSource:
    """A model served by Triton: its name, `host:port` and protocol ("http" or "grpc")."""

    model_name: str
    url: str = "localhost:8000"
    protocol: str = "http"
    timeout: float = 30.0


# --- what a file is --------------------------------------------------------------------------
def is_torchscript(path: str) -> bool:
    """True for a TorchScript archive (`torch.jit.save`), False for a `torch.save` checkpoint."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


_DECLARED = {
    "onnx": "onnx", "openvino": "openvino", "ir": "openvino", "int8": "openvino",
    "torchscript": "torchscript", "ts": "torchscript", "jit": "torchscript", "trtmodel_torchscript": "torchscript",
    "checkpoint": "checkpoint", "ckpt": "checkpoint", "pt": "checkpoint", "pytorch": "checkpoint",
    "state_dict": "checkpoint",
}


def model_format(path: str, declared: str | None = None) -> str:
    """"checkpoint", "torchscript" or "onnx": as `declared` (a model config's `model_format`), else
    from the file (`.onnx`; a TorchScript archive; anything else is a checkpoint)."""
    fmt = str(declared or "").strip().lower()
    if fmt in ("trtmodel", "trt", "tensorrt"):
        raise ModelOpenError(f"model format {fmt!r} (TensorRT) is not supported; export the model to TorchScript "
                             "or ONNX (ai4med export)")
    if fmt:
        if fmt not in _DECLARED:
            raise ModelOpenError(f"unknown model format {declared!r}; use one of {', '.join(sorted(set(_DECLARED)))}")
        return _DECLARED[fmt]
    if path.lower().endswith(".onnx"):
        return "onnx"
    if path.lower().endswith(".xml"):
        return "openvino"
    return "torchscript" if is_torchscript(path) else "checkpoint"


def onnx_runtime_for(device: str = "cpu", runtime: str = "auto") -> str:
    """The runtime that runs an ONNX file: "onnxruntime" or "openvino" as asked; "auto": OpenVINO on a
    CPU when openvino is installed, else ONNX Runtime (its CUDA provider on a GPU)."""
    if runtime not in ONNX_RUNTIMES:
        raise ModelOpenError(f"runtime {runtime!r} does not run an ONNX file; use one of {', '.join(ONNX_RUNTIMES)}"
                             + (" (torch runs checkpoints and TorchScript models)" if runtime == "torch" else ""))
    if runtime == "openvino" and str(device) != "cpu":
        raise ModelOpenError(f"runtime 'openvino' runs ONNX files on the CPU, not on {device}; use device cpu "
                             "or runtime onnxruntime")
    if runtime != "auto":
        return runtime
    from ai4med.components.inferers.openvino_runtime import openvino_available

    return "openvino" if str(device) == "cpu" and openvino_available() else "onnxruntime"


# --- the network of a checkpoint ----------------------------------------------------------------
def _mmar_of(path: str) -> str | None:
    """The MMAR root holding `<root>/models/<file>` or `<root>/models/fold_K/<file>` (it has a config/ folder),
    else None."""
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(2):
        root = os.path.dirname(folder)
        if os.path.basename(folder) == "models" and os.path.isdir(os.path.join(root, "config")):
            return root
        folder = root
    return None


def network_node_for(path: str) -> tuple[dict[str, Any], str, str] | None:
    """(model node, config file, JSON pointer) from the MMAR holding the checkpoint `path`, else None."""
    import json

    root = _mmar_of(path)
    if root is None:
        return None
    for name in ("config_train.json", "config_inference.json", "config_validation.json"):
        cfg = os.path.join(root, "config", name)
        if not os.path.isfile(cfg):
            continue
        try:
            with open(cfg, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ModelOpenError(f"{cfg}: cannot read the network definition of {path}: {exc}") from None
        if not isinstance(data, dict):
            continue
        for pointer in NETWORK_POINTERS:
            node: Any = data
            for part in pointer.strip("/").split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                return node, cfg, pointer
    return None


def build_network(node: Mapping[str, Any], file: str | None = None, pointer: str = "/model",
                  mmar_root: str | None = None, config: Any = None) -> Any:
    """The model component of `node` (or of `config`'s `pointer`), checked to be a model.

    BYOC classes by `path` are imported with the MMAR's `custom/` first on `sys.path`.
    """
    from ai4med.components.models.torch_model import as_model

    if mmar_root:
        from ai4med.config.mmar import Mmar

        Mmar(mmar_root).activate()
    if config is not None:
        built = config.build(pointer, "models")
        file = config.file
    else:
        from ai4med.config.builder import ComponentBuilder

        built = ComponentBuilder(file).build(dict(node), "models", pointer)
    return as_model(built, file, pointer)


def prediction_module(model: Any) -> Any:
    """An `nn.Module` whose output is the model's predictions (its final activation applied), eval mode."""
    from ai4med.components.models.torch_model import PredictionModule, find_module

    module = find_module(model)
    if model is module or not hasattr(model, "get_predictions"):
        return module.eval()
    return PredictionModule(model, module).eval()


# --- the opener -------------------------------------------------------------------------------------
def open_model(
    source: str | os.PathLike[str] | TritonSource | Sequence[Any] | Any,
    *,
    network: Mapping[str, Any] | None = None,
    network_file: str | None = None,
    config: Any = None,
    device: str = "cpu",
    precision: str = "fp32",
    runtime: str = "auto",
    declared_format: str | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    trust: bool = False,
) -> Any:
    """The inference context of `source` (see the module docstring).

    Args:
        source: a model file path, a `TritonSource`, a list of those (an ensemble), or an
            object with `load(...)` (a model loader component), which is called.
        network / network_file: the component node of a checkpoint's network and the file it
            came from (for error messages); else `config`'s network pointers, else the MMAR's.
        config: a `WorkflowConfig` (its `/train/model` or `/model` builds the network, with its
            variables and its MMAR's `custom/`).
        device / precision / runtime: where and how a local model runs (see the module docstring).
        declared_format: a model config's `model_format` (else the file decides).
        input_names / output_names: tensor names (torch models: names given to positional
            inputs/outputs; ONNX/Triton: the graph's by default).
        trust: read legacy full-pickle checkpoints (`ai4med.io.checkpoint`).
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise ModelOpenError("no model given")
        if len(source) == 1:
            source = source[0]
        else:
            members = [open_model(s, network=network, network_file=network_file, config=config, device=device,
                                  precision=precision, runtime=runtime, declared_format=declared_format,
                                  input_names=input_names, output_names=output_names, trust=trust)
                       for s in source]
            return _ensemble(members)
    if isinstance(source, TritonSource):
        if runtime != "auto":
            raise ModelOpenError(f"runtime {runtime!r} applies to local model files, not to the Triton model "
                                 f"{source.model_name!r} (Triton runs it on the server)")
        from ai4med.components.inferers.triton_predictor import TritonInferenceContext

        return TritonInferenceContext(source.model_name, source.url, source.protocol, timeout=source.timeout)
    if hasattr(source, "load") and not isinstance(source, (str, os.PathLike)):
        return _from_loader(source, config, device, precision, runtime, trust)
    path = os.path.abspath(os.path.expanduser(os.fspath(source)))
    if not os.path.isfile(path):
        raise ModelOpenError(f"model file {path} does not exist")
    fmt = model_format(path, declared_format)
    if precision == "int8":
        return _open_int8(path, fmt, device)
    try:
        if fmt == "openvino":
            from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext

            return OpenVinoInferenceContext(path, device=str(device))
        if fmt == "onnx":
            return _open_onnx(path, device, runtime, input_names, output_names)
        names = {"input_names": list(input_names or ["image"]), "output_names": list(output_names or ["pred"])}
        if fmt == "torchscript":
            from ai4med.components.inferers.torch_predictor import TorchScriptInferenceContext

            return TorchScriptInferenceContext(path, device=device, precision=precision, runtime=runtime, **names)
        module = checkpoint_module(path, network, network_file, config, trust)
        from ai4med.components.inferers.torch_predictor import TorchInferenceContext

        return TorchInferenceContext(module, device=device, precision=precision, runtime=runtime, **names)
    except UserError:
        raise
    except (ValueError, ImportError) as exc:  # a runtime that cannot run this precision / device
        raise ModelOpenError(f"{path}: runtime {runtime!r}, precision {precision!r}: {exc}") from exc
    except RuntimeError as exc:
        raise ModelOpenError(f"cannot load the model {path}: {str(exc).splitlines()[0][:400]}") from exc


def _open_int8(path: str, fmt: str, device: str) -> Any:
    """precision "int8": the INT8 export beside the model (`ai4med.inference.int8`), on OpenVINO (CPU)."""
    from ai4med.inference.int8 import int8_path

    target = path if fmt == "openvino" else int8_path(path)
    if not os.path.isfile(target):
        raise ModelOpenError(f"precision int8 runs the INT8 export {target}, which does not exist: run "
                             "`ai4med export -m MMAR --int8` first (it writes it beside model.onnx)")
    if str(device) != "cpu":
        raise ModelOpenError(f"precision int8 runs on OpenVINO on the CPU, not on {device}")
    from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext

    return OpenVinoInferenceContext(target)


def _open_onnx(path: str, device: str, runtime: str, input_names: Sequence[str] | None,
               output_names: Sequence[str] | None) -> Any:
    if onnx_runtime_for(device, runtime) == "openvino":
        from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext

        return OpenVinoInferenceContext(path)
    from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext

    return OnnxInferenceContext(path, device="cpu" if str(device) == "cpu" else "auto")


def checkpoint_module(path: str, network: Mapping[str, Any] | None = None, network_file: str | None = None,
                      config: Any = None, trust: bool = False) -> Any:
    """The prediction module (network + final activation, eval mode) of a checkpoint; the network as
    `open_model` finds it."""
    from ai4med.components.models.torch_model import find_module
    from ai4med.io.checkpoint import load_weights

    if network is not None:
        model = build_network(network, network_file, "/network", _mmar_of(path))
        where = network_file or "the model config"
    elif config is not None and any(config.has(p) for p in NETWORK_POINTERS):
        pointer = next(p for p in NETWORK_POINTERS if config.has(p))
        model = build_network({}, pointer=pointer, config=config)
        where = config.file
    else:
        found = network_node_for(path)
        if found is None:
            raise ModelOpenError(
                f"{path} is a checkpoint (weights only): the network that produced it must be given: a training "
                "config (-c config/config_train.json), a 'network' component node in the model config, or the file "
                "must sit in an MMAR's models/ folder")
        node, where, pointer = found
        model = build_network(node, where, pointer, _mmar_of(path))
    load_weights(find_module(model), path, trust)
    logger.debug("checkpoint %s loaded into the network of %s", path, where)
    return prediction_module(model)


def _from_loader(loader: Any, config: Any, device: str, precision: str, runtime: str, trust: bool) -> Any:
    """A model loader component: ours take (cfg, device, precision, runtime, trust); a seed-style BYOC
    loader takes (cfg, device, precision) and gets the runtime afterwards."""
    import inspect

    try:
        params = inspect.signature(loader.load).parameters
    except (TypeError, ValueError):
        params = {}
    if "runtime" in params:
        return loader.load(config, device, precision, runtime=runtime,
                           **({"trust": trust} if "trust" in params else {}))
    ctx = loader.load(config, device, precision)
    if runtime != "auto":
        setter = getattr(ctx, "set_runtime", None)
        if setter is None:
            raise ModelOpenError(f"runtime {runtime!r} cannot apply to {type(ctx).__name__} (from "
                                 f"{type(loader).__name__}); it applies to local torch, TorchScript and ONNX models")
        try:
            setter(runtime)
        except (ValueError, ImportError) as exc:
            raise ModelOpenError(f"runtime {runtime!r}: {exc}") from exc
    return ctx


def _ensemble(members: list[Any]) -> Any:
    try:
        from ai4med.components.inferers.ensemble import EnsembleInferenceContext
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        raise ModelOpenError(f"ensembles are not available: {exc}") from exc
    return EnsembleInferenceContext(members)


def describe(ctx: Any) -> str:
    """One line naming the model and what runs it (for logs and summaries)."""
    kind = type(ctx).__name__
    where = getattr(ctx, "model_path", None) or getattr(ctx, "path", None) or getattr(ctx, "model_name", None)
    runtime = getattr(ctx, "runtime", None)
    parts = [kind]
    if where:
        parts.append(str(where))
    if runtime:
        parts.append(f"runtime {runtime}")
    precision = getattr(ctx, "precision", None)  # as resolved for this machine ("auto" -> bf16 / fp16 / fp32)
    if isinstance(precision, str):
        parts.append(f"precision {precision}")
    device = getattr(ctx, "device", None)
    if device is not None:
        parts.append(f"on {device}")
    return " ".join(parts)
