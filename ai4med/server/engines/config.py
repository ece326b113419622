"""Model config files (seed 004 §4.1.1): key normalisation, transform nodes, model loading.

The seed's files use keys with spaces ("model format", "input nodes") and flat transform
nodes (`{"name": "transforms.X", "fields": ...}`); Clara 3 uses underscores and
`{"name": "X", "args": {...}}`. Both are read. Model files: a training checkpoint
(`models/model.pt`: `{"model": state_dict}`) plus the network's component node (`network`
in the config, or the MMAR's `config/config_train.json` `model`), a TorchScript file or an
ONNX file (`model_format` or the file itself decides).

Example:
    >>> normalize_keys({"model format": "onnx", "pre_transforms": []})
    {'model_format': 'onnx', 'pre_transforms': []}
    >>> transform_node({"name": "transforms.NormalizeNonzeroIntensities", "fields": "image"})
    {'name': 'NormalizeNonzeroIntensities', 'args': {'fields': 'image'}}
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from typing import Any

from ai4med.errors import UserError

logger = logging.getLogger(__name__)

_NODE_KEYS = ("name", "path", "args", "disabled")


class ModelConfigError(UserError):
    """A model config or model file that cannot be used; the message names the file."""


def normalize_keys(d: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys with spaces / dashes as underscores ("model format" -> "model_format")."""
    return {str(k).strip().replace(" ", "_").replace("-", "_"): v for k, v in d.items()}


def transform_node(node: dict[str, Any]) -> dict[str, Any]:
    """A seed-004 flat transform node as a component node `{"name", "args"}`."""
    node = normalize_keys(node)
    name = str(node.get("name", "")).removeprefix("transforms.").removeprefix("transforms_ctrl.")
    if "args" in node:
        out = {k: node[k] for k in _NODE_KEYS if k in node}
        out["name"] = name
        return out
    args = {k: v for k, v in node.items() if k not in _NODE_KEYS}
    out = {"name": name, "args": args}
    if "disabled" in node:
        out["disabled"] = node["disabled"]
    return out


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ModelConfigError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise ModelConfigError(f"{path}: not valid JSON: {exc}") from None


def resolve_path(path: str, base_dir: str) -> str:
    """`path` (absolute, or relative to `base_dir`)."""
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def _mmar_network(model_path: str) -> dict[str, Any] | None:
    """The `model` node of the MMAR that holds `model_path` (`<mmar>/models/model.pt`)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(model_path)))
    for name in ("config_train.json", "config_inference.json"):
        cfg = os.path.join(root, "config", name)
        if os.path.isfile(cfg):
            data = read_json(cfg)
            node = data.get("model") or (data.get("train") or {}).get("model")
            if isinstance(node, dict):
                return node
    return None


def model_format(config: dict[str, Any], path: str) -> str:
    """"checkpoint", "torchscript" or "onnx" from `model_format` or the file."""
    fmt = str(config.get("model_format") or "").lower()
    if fmt in ("onnx",):
        return "onnx"
    if fmt in ("torchscript", "ts", "jit", "trtmodel_torchscript"):
        return "torchscript"
    if fmt in ("checkpoint", "ckpt", "pt", "pytorch", "state_dict"):
        return "checkpoint"
    if fmt in ("trtmodel", "trt", "tensorrt"):
        raise ModelConfigError(
            f"model format {fmt!r} (TensorRT) is not supported; export the model to TorchScript or ONNX"
        )
    low = path.lower()
    if low.endswith(".onnx"):
        return "onnx"
    if low.endswith((".ts", ".torchscript")):
        return "torchscript"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist()):
                return "torchscript"
    return "checkpoint"


def build_context(config: dict[str, Any], config_dir: str, device: str) -> Any:
    """The inference context of a model config (a torch, TorchScript or ONNX Runtime context)."""
    path = config.get("model_path")
    if not path:
        raise ModelConfigError("the model config has no model_path")
    path = resolve_path(path, config_dir)
    if not os.path.isfile(path):
        raise ModelConfigError(f"model file {path} not found")
    fmt = model_format(config, path)
    in_names = list((config.get("input_nodes") or {"image": "image"}).keys())[:1] or ["image"]
    out_names = list((config.get("output_nodes") or {"pred": "pred"}).keys())[:1] or ["pred"]
    precision = str(config.get("precision", "auto"))
    runtime = str(config.get("runtime", "auto"))  # torch models: auto (openvino for precision auto on CPU, else torch), torch, onnxruntime, openvino
    _check_runtime(runtime, precision, device, fmt)
    if fmt == "onnx":
        from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext

        ctx = OnnxInferenceContext(path, device="cuda" if str(device).startswith("cuda") else "cpu")
        return ctx
    if fmt == "torchscript":
        from ai4med.components.inferers.torch_predictor import TorchScriptInferenceContext

        return TorchScriptInferenceContext(path, device=device, input_names=in_names, output_names=out_names,
                                           precision=precision, runtime=runtime)
    from ai4med.components.inferers.torch_predictor import TorchInferenceContext

    network = config.get("network") or _mmar_network(path)
    if not isinstance(network, dict):
        raise ModelConfigError(
            f"{path} is a checkpoint: the model config needs a 'network' component node "
            "(e.g. {\"name\": \"Unet\", \"args\": {...}}) or the file must sit in an MMAR's models/ folder"
        )
    try:
        return TorchInferenceContext.from_checkpoint(
            network, path, device=device, input_names=in_names, output_names=out_names,
            precision=precision, runtime=runtime,
        )
    except UserError:
        raise
    except Exception as exc:
        raise ModelConfigError(f"{path}: cannot load the checkpoint into {network.get('name')}: {exc}") from exc


def _check_runtime(runtime: str, precision: str, device: str, fmt: str) -> None:
    """A clear config error for a runtime the model cannot run on (before loading anything)."""
    import torch

    from ai4med.components.inferers.precision import resolve_precision
    from ai4med.components.inferers.torch_predictor import resolve_runtime

    if fmt == "onnx":  # an ONNX file runs on ONNX Runtime whatever "runtime" says
        return
    try:
        dev = torch.device(device)
        resolve_runtime(runtime, precision, resolve_precision(precision, dev), dev, None, False)
        if runtime == "openvino":
            from ai4med.components.inferers.openvino_runtime import require_openvino

            require_openvino()
    except (ValueError, ImportError) as exc:
        raise ModelConfigError(f"model config runtime {runtime!r}: {exc}") from exc


def build_component(node: Any, kind: str, file: str | None) -> Any:
    from ai4med.config.builder import ComponentBuilder

    return ComponentBuilder(file).build(node, kind)
