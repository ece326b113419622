"""The case pipeline of a config: what `ai4med infer` / `evaluate` and `tlt-infer` run.

A training config runs its `validate` section with the best checkpoint; an evaluation config
(config_validation.json / config_inference.json) its top-level `pre_transforms`, `inferer`,
`post_transforms`, `writers` and `model_loader`. The model comes from (first match) a Triton
server, `--model_file_path` (one file, a folder, or several files: an ensemble), the config's
`model_loader`, or the MMAR's best checkpoint, always through `models.open_model`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ai4med.errors import UserError
from ai4med.inference.loaders import existing_path, find_checkpoint
from ai4med.inference.models import TritonSource, open_model
from ai4med.inference.pipeline import SegmentationPostProcess

__all__ = ["EvalOptions", "ConfigPipeline", "is_train_config", "make_inference_context", "pipeline_parts",
           "datalist_of", "flag", "METRIC_SPACES"]

METRIC_SPACES = ("label", "model")


@dataclass
class EvalOptions:
    """What the `infer` / `evaluate` commands add to the config.

    `do_validation` / `output_infer_result` None: the config's globals (`--set`), else the
    command's default (`infer`: False/True, `evaluate`: True/False).
    """

    mode: str = "evaluate"
    datalist: str | None = None
    data_list_key: str | None = None
    file_root: str | None = None
    output_dir: str | None = None
    model_file_path: str | list[str] | None = None
    model_name: str = "model"
    triton_url: str | None = None
    triton_model_name: str | None = None
    triton_protocol: str = "http"
    device: str = "cpu"
    precision: str = "fp32"
    runtime: str = "auto"
    keep_largest_cc: bool = False
    do_validation: bool | None = None
    output_infer_result: bool | None = None
    progress: bool | None = None
    overwrite: bool = True
    trust_checkpoint: bool = False
    metric_space: str | None = None
    #: cases to run instead of the datalist's (e.g. series retrieved from a PACS)
    items: list[dict[str, Any]] | None = None


@dataclass
class ConfigPipeline:
    """The pieces of a config's case pipeline (built components) and where they came from."""

    base: str
    pre: list[Any]
    post: list[Any]
    writers: list[Any] | None
    label_transforms: list[Any]
    inferer: Any
    metrics_pointer: str
    extra: dict[str, Any] = field(default_factory=dict)


def is_train_config(cfg: Any) -> bool:
    return cfg.has("/train") or cfg.has("/validate")


def flag(cfg: Any, name: str, given: bool | None, default: bool) -> bool:
    if given is not None:
        return bool(given)
    value = cfg.get("/" + name, cfg.variables.get(name))
    if value is None:
        return default
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def _model_files(cfg: Any, opts: EvalOptions) -> list[str]:
    given = opts.model_file_path
    paths = [given] if isinstance(given, str) else list(given or [])
    out = []
    for p in paths:
        path = existing_path(cfg, p)
        if os.path.isdir(path):
            exported = [os.path.join(path, opts.model_name + e) for e in (".ts", ".onnx")]
            path = next((q for q in exported if os.path.isfile(q)), None) or find_checkpoint(cfg, path, opts.model_name)
        if not os.path.isfile(path):
            raise UserError(f"model file {path} does not exist")
        out.append(path)
    return out


def make_inference_context(cfg: Any, opts: EvalOptions) -> Any:
    """The model to run: Triton, model file(s), the config's model_loader, or the best checkpoint."""
    common = {"device": opts.device, "precision": opts.precision, "runtime": opts.runtime}
    if opts.triton_url:
        return open_model(TritonSource(opts.triton_model_name or opts.model_name, opts.triton_url,
                                       opts.triton_protocol), runtime=opts.runtime)
    if opts.model_file_path:
        return open_model(_model_files(cfg, opts), config=cfg, trust=opts.trust_checkpoint, **common)
    loader = None if is_train_config(cfg) else cfg.build("/model_loader", "model_loaders", required=False)
    if loader is not None:
        return open_model(loader, config=cfg, trust=opts.trust_checkpoint, **common)
    return open_model(find_checkpoint(cfg, None, opts.model_name), config=cfg, trust=opts.trust_checkpoint, **common)


def datalist_of(cfg: Any, opts: EvalOptions, pipeline_pointer: str) -> tuple[str, str, str | None]:
    """(datalist file, list key, base folder) of the run."""
    args = cfg.get(pipeline_pointer + "/args", {}) or {}
    v = cfg.variables
    path = args.get("data_list_file_path") or v.get("DATASET_JSON")
    key = opts.data_list_key or args.get("data_list_key") or v.get("DATA_LIST_KEY") or "validation"
    root = args.get("data_file_base_dir") or v.get("DATA_ROOT")
    if not (opts.datalist or path):
        raise UserError(f"{cfg.file}: no datalist: give -d DATALIST (or DATASET_JSON in environment.json)")
    path = existing_path(cfg, opts.datalist) if opts.datalist else cfg.resolve_path(str(path))
    if opts.file_root:
        root = existing_path(cfg, opts.file_root)
    elif root:
        root = cfg.resolve_path(str(root))
    elif opts.datalist:
        root = None  # the datalist's own folder
    return path, str(key), root


def pipeline_parts(cfg: Any, opts: EvalOptions) -> ConfigPipeline:
    """The built pre/post transforms, writers, label transforms and inferer of the config."""
    if is_train_config(cfg):
        base, metrics_ptr = "/validate", "/validate/metrics"
    else:
        base = ""
        metrics_ptr = "/val_metrics" if cfg.has("/val_metrics") else "/metrics"
    pre = cfg.build_list(base + "/pre_transforms", "transforms")
    post = cfg.build_list(base + "/post_transforms", "transforms") if cfg.has(base + "/post_transforms") else None
    if post is None:
        post = [SegmentationPostProcess(keep_largest_cc=opts.keep_largest_cc)]
    writers = cfg.build_list(base + "/writers", "writers") if cfg.has(base + "/writers") else None
    label_transforms = cfg.build_list(base + "/label_transforms", "transforms")
    inferer = cfg.build(base + "/inferer", "inferers", required=False)
    return ConfigPipeline(base, pre, post, writers, label_transforms, inferer, metrics_ptr)


def metric_space(cfg: Any, opts: EvalOptions, base: str) -> str:
    """Where metrics are computed: "label" (the label file's own grid, the prediction brought there
    through the AFFINEs; the default) or "model" (the network's grid, against the label sent through
    the same pre-transforms), from `--metric_space`, the config's `metric_space` (section or top level)."""
    value = opts.metric_space or cfg.get(base + "/metric_space", None) or cfg.get("/metric_space", None) or \
        cfg.variables.get("metric_space") or "label"
    value = str(value).lower()
    if value not in METRIC_SPACES:
        raise UserError(f"{cfg.file}: metric_space must be one of {', '.join(METRIC_SPACES)}, got {value!r}")
    return value
