"""Model loaders: the `model_loaders` component kind of evaluation / inference configs.

Clara's configs name how the model is obtained (`"model_loader": {"name": "CheckpointLoader", ...}`).
Each loader here resolves its file or server and hands it to the one opener
(`ai4med.inference.models.open_model`), so a loader never has rules of its own. BYOC loaders
(`"path": "my.Loader"`) only need `load(cfg, device, precision)` returning an inference context.

Example:
    >>> REGISTRY.names()[:3]
    ['CheckpointLoader', 'FrozenGraphModelLoader', 'OnnxModelLoader']
"""

from __future__ import annotations

import os
from typing import Any

from ai4med.config.registry import Registry
from ai4med.errors import UserError
from ai4med.inference.models import CHECKPOINT_EXTS, TritonSource, open_model

__all__ = ["CheckpointLoader", "ModelFileLoader", "TritonModelLoader", "TRTISModelLoader", "REGISTRY",
           "find_checkpoint", "existing_path", "pbtxt_model_name"]


def existing_path(cfg: Any, path: str) -> str:
    """A path the user typed: as given if it exists (relative to the cwd), else under the MMAR root."""
    path = os.path.expanduser(path)
    if os.path.isabs(path) or os.path.exists(path) or cfg is None:
        return os.path.abspath(path)
    return cfg.resolve_path(path)


def find_checkpoint(cfg: Any, model_file_path: str | None = None, model_name: str = "model") -> str:
    """The checkpoint file: `model_file_path` (a file, or a folder holding `<model_name>.pt`),
    else the `MMAR_CKPT` variable, else `<MMAR_CKPT_DIR>/<model_name>.pt`."""
    if model_file_path:
        path = existing_path(cfg, model_file_path)
    elif cfg.variables.get("MMAR_CKPT"):
        path = cfg.resolve_path(str(cfg.variables["MMAR_CKPT"]))
    else:
        folder = cfg.variables.get("MMAR_CKPT_DIR") or (cfg.mmar.models_dir if cfg.mmar else "models")
        path = cfg.resolve_path(str(folder))
    if os.path.isdir(path):
        names = [model_name if os.path.splitext(model_name)[1] else model_name + e for e in CHECKPOINT_EXTS]
        found = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        if not found:
            raise UserError(f"no checkpoint {names[0]} in {path}: train first (ai4med train) or give "
                            "--model_file_path / --model_name")
        path = found[0]
    if not os.path.isfile(path):
        raise UserError(f"model file {path} does not exist")
    return path


class CheckpointLoader:
    """The config's network (or `model`) + a checkpoint file (Clara's CheckpointLoader).

    Args:
        checkpoint_file (also `ckpt_path`): the file; else `checkpoint_dir` + `checkpoint_file_prefix`.
        model: a network component node (default: the config's `/train/model` or `/model`).
    """

    def __init__(self, checkpoint_file: str | None = None, checkpoint_dir: str | None = None,
                 checkpoint_file_prefix: str = "model", model: Any = None, ckpt_path: str | None = None,
                 input_node_names: Any = None, output_node_names: Any = None) -> None:
        self.checkpoint_file = checkpoint_file or ckpt_path
        self.checkpoint_dir = checkpoint_dir
        self.prefix = checkpoint_file_prefix
        self.model = model

    def path(self, cfg: Any) -> str:
        return find_checkpoint(cfg, self.checkpoint_file or self.checkpoint_dir, self.prefix)

    def load(self, cfg: Any, device: str = "cpu", precision: str = "fp32", runtime: str = "auto",
             trust: bool = False) -> Any:
        return open_model(self.path(cfg), network=self.model, network_file=getattr(cfg, "file", None),
                          config=None if self.model is not None else cfg, device=device, precision=precision,
                          runtime=runtime, trust=trust)


class ModelFileLoader:
    """An exported model file (TorchScript `.ts` / `.pt`, or `.onnx`), or a list of them (an ensemble: the
    mean of their probabilities).

    Registered as FrozenGraphModelLoader (Clara's name for the exported graph), TorchScriptLoader
    and OnnxModelLoader. Args: `model_file_path` (also `ts_path`, `onnx_path`).
    """

    def __init__(self, model_file_path: str | None = None, ts_path: str | None = None,
                 onnx_path: str | None = None, input_node_names: Any = None, output_node_names: Any = None,
                 **_ignored: Any) -> None:
        self.path = model_file_path or ts_path or onnx_path
        if not self.path:
            raise ValueError("give model_file_path")

    def resolve(self, cfg: Any) -> str | list[str]:
        """The file (a list of files: an ensemble), relative paths under the config's root."""
        one = (lambda p: cfg.resolve_path(p)) if cfg is not None else os.path.abspath
        return [one(p) for p in self.path] if isinstance(self.path, (list, tuple)) else one(self.path)

    def load(self, cfg: Any, device: str = "cpu", precision: str = "fp32", runtime: str = "auto",
             trust: bool = False) -> Any:
        return open_model(self.resolve(cfg), config=cfg, device=device, precision=precision, runtime=runtime,
                          trust=trust)


class TritonModelLoader:
    """A model served by Triton (`model_name`, `url`, `protocol` http|grpc, `timeout`)."""

    def __init__(self, model_name: str, url: str = "localhost:8000", protocol: str = "http",
                 timeout: float = 30.0) -> None:
        self.model_name, self.url, self.protocol, self.timeout = model_name, url, protocol, timeout

    def source(self) -> TritonSource:
        return TritonSource(self.model_name, self.url, str(self.protocol).lower(), float(self.timeout))

    def load(self, cfg: Any = None, device: str = "cpu", precision: str = "fp32", runtime: str = "auto",
             trust: bool = False) -> Any:
        return open_model(self.source(), runtime=runtime)


def pbtxt_model_name(path: str | None) -> str | None:
    """The `name: "..."` of a Triton `config.pbtxt` (None when absent or unreadable)."""
    import re

    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            m = re.search(r'^\s*name\s*:\s*"([^"]+)"', fh.read(), re.MULTILINE)
    except OSError:
        return None
    return m.group(1) if m else None


class TRTISModelLoader:
    """Seed 003's model loader: the model served by Triton.

    Args:
        model_spec_file_name: a `config.pbtxt` (its `name:` is the model name when
            model_config.json has none).
        model_name: the model's name on the server (default: model_config.json's).
        url / protocol / timeout: connection (the deploy app passes the resolved ones).
    """

    def __init__(self, model_spec_file_name: str | None = None, model_name: str | None = None,
                 url: str | None = None, protocol: str | None = None, timeout: float = 10.0) -> None:
        self.model_spec_file_name = model_spec_file_name or None
        self.model_name = model_name
        self.url, self.protocol, self.timeout = url, protocol, float(timeout)

    def connect(self, model_name: str | None, url: str, protocol: str, timeout: float) -> Any:
        from ai4med.components.inferers.triton_predictor import FailFastTritonContext

        name = self.model_name or model_name or pbtxt_model_name(self.model_spec_file_name)
        if not name:
            raise ValueError("no Triton model name: set model_name in config/model_config.json")
        return FailFastTritonContext(name, url, protocol, timeout=timeout)

    def load(self, cfg: Any = None, device: str = "cpu", precision: str = "fp32", runtime: str = "auto",
             trust: bool = False) -> Any:
        return self.connect(None, self.url or "localhost:8000", str(self.protocol or "http").lower(), self.timeout)


_HERE = "ai4med.inference.loaders"
REGISTRY = Registry("model_loaders", {
    "CheckpointLoader": f"{_HERE}:CheckpointLoader",
    "PTCheckpointLoader": f"{_HERE}:CheckpointLoader",
    "FrozenGraphModelLoader": f"{_HERE}:ModelFileLoader",
    "TorchScriptLoader": f"{_HERE}:ModelFileLoader",
    "OnnxModelLoader": f"{_HERE}:ModelFileLoader",
    "TritonModelLoader": f"{_HERE}:TritonModelLoader",
    "TRTISModelLoader": f"{_HERE}:TRTISModelLoader",
})
