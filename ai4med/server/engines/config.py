"""Model config files (seed 004 §4.1.1): key normalisation, transform nodes, model loading.

The seed's files use keys with spaces ("model format", "input nodes") and flat transform
nodes (`{"name": "transforms.X", "fields": ...}`); Clara 3 uses underscores and
`{"name": "X", "args": {...}}`. Both are read. The model file is opened by the one opener
(`ai4med.inference.models.open_model`), as the CLI and the deploy app open it: a training
checkpoint plus the network's component node (`network` in the config, or the MMAR's
`config/config_train.json` `model`, with the MMAR's `custom/` on sys.path), a TorchScript file
or an ONNX file (OpenVINO on a CPU, ONNX Runtime elsewhere).

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


def model_format(config: dict[str, Any], path: str) -> str:
    """"checkpoint", "torchscript" or "onnx" from `model_format` or the file (`ai4med.inference.models`)."""
    from ai4med.inference.models import ModelOpenError
    from ai4med.inference.models import model_format as sniff

    try:
        return sniff(path, config.get("model_format"))
    except ModelOpenError as exc:
        raise ModelConfigError(str(exc)) from None


def build_context(config: dict[str, Any], config_dir: str, device: str, config_file: str | None = None) -> Any:
    """The inference context of a model config, through the one opener (`ai4med.inference.models.open_model`).

    Keys: `model_path` (one file; a list of files is an ensemble: the mean of their probabilities),
    `model_format`, `network` (a checkpoint's network; else the MMAR holding the file), `precision`
    ("auto"; "int8": the INT8 export), `runtime` ("auto"), `input_nodes` / `output_nodes` (names).
    """
    from ai4med.inference.models import open_model

    given = config.get("model_path")
    if not given:
        raise ModelConfigError("the model config has no model_path")
    paths = [resolve_path(p, config_dir) for p in (given if isinstance(given, list) else [given])]
    for path in paths:
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ModelConfigError(f"model file {os.path.basename(str(path))} not found (model_path {given!r})")
    fmts = {model_format(config, p) for p in paths}
    in_names = list((config.get("input_nodes") or {"image": "image"}).keys())[:1] or ["image"]
    out_names = list((config.get("output_nodes") or {"pred": "pred"}).keys())[:1] or ["pred"]
    precision = str(config.get("precision", "auto"))
    runtime = str(config.get("runtime", "auto"))
    if precision != "int8":
        for fmt in fmts - {"openvino"}:
            _check_runtime(runtime, precision, device, fmt)
    network = config.get("network")
    if network is not None and not isinstance(network, dict):
        raise ModelConfigError("'network' must be a component node, e.g. {\"name\": \"Unet\", \"args\": {...}}")
    try:
        return open_model(paths if len(paths) > 1 else paths[0], network=network, network_file=config_file,
                          device=device, precision=precision, runtime=runtime,
                          declared_format=config.get("model_format"), input_names=in_names, output_names=out_names,
                          trust=bool(config.get("trust_checkpoint")))
    except UserError as exc:
        raise ModelConfigError(str(exc)) from None
    except Exception as exc:
        raise ModelConfigError(f"{os.path.basename(paths[0])}: cannot load the model: {exc}") from exc


def _check_runtime(runtime: str, precision: str, device: str, fmt: str) -> None:
    """A clear config error for a runtime the model cannot run on (before loading anything)."""
    import torch

    from ai4med.components.inferers.precision import resolve_precision
    from ai4med.components.inferers.torch_predictor import resolve_runtime
    from ai4med.inference.models import ModelOpenError, onnx_runtime_for

    try:
        if fmt == "onnx":
            onnx_runtime_for(device, runtime)
            return
        dev = torch.device(device)
        resolve_runtime(runtime, precision, resolve_precision(precision, dev), dev, None, False)
        if runtime == "openvino":
            from ai4med.components.inferers.openvino_runtime import require_openvino

            require_openvino()
    except (ValueError, ImportError, ModelOpenError) as exc:
        raise ModelConfigError(f"model config runtime {runtime!r}: {exc}") from exc


def build_component(node: Any, kind: str, file: str | None) -> Any:
    from ai4med.config.builder import ComponentBuilder

    return ComponentBuilder(file).build(node, kind)
