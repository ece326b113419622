"""The 2019 AIAA / TLT config form of seed 004 (§6.1, §8.1, §9.1) -> the Clara 3.x form.

Seed 004's training config keeps the network in a top-level `net_config`, the data
settings as top-level scalars (`num_channels`, `num_classes`, `batch_size`, `num_workers`,
`network_input_size`, `use_scanning_window`), the validation metrics in `train.metrics`
(`stopping_metric`, `applied_key`) and has no `image_pipeline`. `normalize_2019` rewrites
such a config into the sections the workflows read (`/train/model`, `/train/image_pipeline`,
`/validate/image_pipeline`, `/validate/metrics`, `/validate/inferer`), once, in `load_config`.

Keys that only meant something to TensorFlow (`if_from_scratch`, `pretrain_weight_name`,
`input_nodes`, `output_nodes`) are accepted and logged once as ignored; anything the
rewrite cannot express fails with a ConfigError naming the seed key.

Example:
    >>> d = {"num_classes": 2, "num_channels": 1, "net_config": {"name": "SegmAhnet3D"},
    ...      "train": {"loss": {"name": "losses.dice_loss"}, "pre_transforms": []}}
    >>> out = normalize_2019(d, "c.json", {"DATASET_JSON": "dl.json"})
    >>> out["train"]["model"]
    {'name': 'SegmAhnet3D', 'args': {'num_classes': 2, 'num_in_channels': 1}}
    >>> out["train"]["image_pipeline"]["args"]["data_list_key"]
    'training'
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from ai4med.config.errors import ConfigError

logger = logging.getLogger(__name__)

#: keys with no meaning for a PyTorch network: accepted, logged, dropped
TF_ONLY_NET_KEYS = {
    "if_from_scratch": "the switch for TF's Keras ImageNet encoder weights",
    "pretrain_weight_name": "a TF/Keras weight file (start from a PyTorch checkpoint with -c instead)",
    "pretrain_weight_url": "a TF/Keras weight file (start from a PyTorch checkpoint with -c instead)",
}
TF_ONLY_TOP_KEYS = {
    "input_nodes": "TF graph node names (a PyTorch model has one input)",
    "output_nodes": "TF graph node names (a PyTorch model has one output)",
}
_IN_CHANNEL_ARGS = ("num_in_channels", "in_channels", "num_channels")


def is_2019_form(data: Any) -> bool:
    """Whether `data` is a seed-004 (2019) config: a `net_config`, or an inference config with
    top-level `pre_transforms` and TF `input_nodes`/`output_nodes`."""
    if not isinstance(data, dict):
        return False
    if "net_config" in data:
        return True
    return any(k in data for k in TF_ONLY_TOP_KEYS)


def normalize_2019(data: dict[str, Any], file: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A copy of the 2019-form `data` in the Clara 3.x form (see the module docstring)."""
    out = copy.deepcopy(data)
    ignored = [f"/{k} ({why})" for k, why in TF_ONLY_TOP_KEYS.items() if out.pop(k, None) is not None]
    if "net_config" in out:
        ignored += _model(out, file)
    train = out.get("train")
    if isinstance(train, dict) and "image_pipeline" not in train and "pre_transforms" in train:
        train["image_pipeline"] = _pipeline(out, variables, "training", crop=True)
    metrics = train.pop("metrics", None) if isinstance(train, dict) else None
    if metrics is not None:
        validate = out.setdefault("validate", {})
        if not isinstance(validate, dict):
            raise ConfigError("\"validate\" must be an object", file=file, pointer="/validate")
        if "metrics" in validate:
            raise ConfigError("metrics are given in both /train/metrics (2019 form) and /validate/metrics; "
                              "keep one", file=file, pointer="/train/metrics")
        if "pre_transforms" not in validate:
            raise ConfigError("/train/metrics needs the validation transforms: add \"validate\": "
                              "{\"pre_transforms\": [...]} (seed 004 §6.1's second pre_transforms list)",
                              file=file, pointer="/train/metrics")
        validate["metrics"] = metrics
    validate = out.get("validate")
    if isinstance(validate, dict) and "pre_transforms" in validate:
        validate.setdefault("image_pipeline", _pipeline(out, variables, "validation", crop=False))
        validate.setdefault("inferer", _inferer(out, file))
    if ignored:
        logger.info("%s: 2019 (seed 004) config keys with no meaning in PyTorch, ignored: %s", file,
                    "; ".join(ignored))
    return out


def _model(out: dict[str, Any], file: str) -> list[str]:
    net = out.pop("net_config")
    if not isinstance(net, dict) or not isinstance(net.get("name", net.get("path")), str):
        raise ConfigError("net_config must be an object with the network's \"name\" (e.g. \"SegmAhnet3D\")",
                          file=file, pointer="/net_config")
    train = out.setdefault("train", {})
    if "model" in train:
        raise ConfigError("the network is given in both /net_config (2019 form) and /train/model; keep one",
                          file=file, pointer="/net_config")
    ignored = [f"/net_config/{k} ({why})" for k, why in TF_ONLY_NET_KEYS.items() if net.pop(k, None) is not None]
    spec = {k: net.pop(k) for k in ("name", "path") if k in net}
    args = dict(net.pop("args", None) or {})
    args.update(net)
    if "num_classes" in out:
        args.setdefault("num_classes", out["num_classes"])
    if "num_channels" in out:
        name = _in_channel_arg(spec, args)
        if name is None:
            raise ConfigError(f"num_channels: the network {spec.get('name') or spec.get('path')!r} takes no "
                              f"input-channel argument ({', '.join(_IN_CHANNEL_ARGS)}); remove num_channels",
                              file=file, pointer="/num_channels")
        args.setdefault(name, out["num_channels"])
    train["model"] = {**spec, "args": args}
    return ignored


def _in_channel_arg(spec: dict[str, Any], args: dict[str, Any]) -> str | None:
    """Which of the network's arguments takes the input channel count."""
    import inspect

    from ai4med.config.builder import ComponentBuilder
    from ai4med.config.spec import parse_spec

    present = [k for k in _IN_CHANNEL_ARGS if k in args]
    if present:
        return present[0]
    try:
        cls = ComponentBuilder().resolve_class(parse_spec(spec), "models")
        params = inspect.signature(cls).parameters
    except Exception:  # noqa: BLE001 - unknown names are reported when the model is built
        return _IN_CHANNEL_ARGS[0]
    return next((k for k in _IN_CHANNEL_ARGS if k in params), None)


def _pipeline(out: dict[str, Any], variables: dict[str, Any], key: str, crop: bool) -> dict[str, Any]:
    """The image pipeline the 2019 form implied: the datalist given on the command line (-d,
    --file_root), the top-level batch_size / num_workers / network_input_size."""
    args: dict[str, Any] = {
        "data_list_file_path": variables.get("DATASET_JSON"),
        "data_file_base_dir": variables.get("DATA_ROOT"),
        "data_list_key": key,
        "output_batch_size": int(out.get("batch_size", 1)) if crop else 1,
        "num_workers": int(out.get("num_workers", 0)),
    }
    if crop and out.get("network_input_size") is not None:
        args["output_crop_size"] = list(out["network_input_size"])
    return {"name": "SegmentationImagePipeline", "args": args}


def _inferer(out: dict[str, Any], file: str) -> dict[str, Any]:
    scan = out.get("use_scanning_window", False)
    if not isinstance(scan, bool):
        raise ConfigError(f"use_scanning_window must be true or false, got {scan!r}", file=file,
                          pointer="/use_scanning_window")
    if not scan:
        return {"name": "TorchSimpleInferer"}
    size = out.get("network_input_size")
    if size is None:
        raise ConfigError("use_scanning_window needs network_input_size (the window)", file=file,
                          pointer="/use_scanning_window")
    return {"name": "TorchScanWindowInferer", "args": {"roi_size": list(size)}}
