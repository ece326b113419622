"""The deploy app's `config_inference.json`, derived from a trained MMAR's config (`ai4med export`).

The bundled base application (`ai4med/deploy/templates/config/config_inference.json`) has a
CT window and 1 mm resampling as pre-processing; a model trained with another one segments
nothing through it. `ai4med export` therefore writes, beside `model_config.json`, the base
template with the sections that depend on training taken from the config:

* `pre_transforms`: the validation pre-transforms (`/validate/pre_transforms`, or the
  top-level `pre_transforms` of an evaluation config), each `{"ref": alias}` replaced by the
  referenced node (its `#alias` dropped, the 2019 inline form turned into `args`), field
  lists restricted to the image field (labels are absent at deployment) and transforms on
  label fields only dropped; disabled nodes are left out;
* `inferer`: the template's `TRTISScanWindowInferer` (Triton address defaults kept) with the
  validation inferer's window (`roi_size`, `batch_size`, `overlap`, `blend_mode`, ...);
* `post_transforms`: the validation post-transforms when the config has some (label fields
  dropped), else the template's `SegmentationPostProcess` (probabilities back onto the input grid,
  then argmax: what `ai4med infer` does);
* `model_loader`, `writers` and anything else: the template's.

Example:
    >>> doc = derive_inference_config({"train": {"pre_transforms": [
    ...     {"name": "LoadNifti#load", "args": {"fields": ["image", "label"]}},
    ...     {"name": "ConvertToChannelsFirst#ch", "args": {"fields": ["image", "label"]}}]},
    ...     "validate": {"pre_transforms": [{"ref": "load"}, {"ref": "ch"}],
    ...                  "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": [16, 16, 16]}}}})
    >>> [(t["name"], t["args"]["fields"]) for t in doc["pre_transforms"]]
    [('LoadNifti', ['image']), ('ConvertToChannelsFirst', ['image'])]
    >>> doc["inferer"]["name"], doc["inferer"]["args"]["roi_size"]
    ('TRTISScanWindowInferer', [16, 16, 16])
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

from ai4med.config.errors import ConfigError, join_pointer
from ai4med.config.spec import parse_spec

__all__ = ["derive_inference_config", "write_inference_config", "base_inference_config", "INFERENCE_CONFIG"]

logger = logging.getLogger(__name__)

INFERENCE_CONFIG = "config_inference.json"
#: argument names that hold the field(s) a transform works on
FIELD_KEYS = ("fields", "field", "applied_keys", "applied_key")
#: inferers whose window settings carry over to the deploy app's TRTISScanWindowInferer
SCAN_WINDOW_INFERERS = ("ScanWindowInferer", "TorchScanWindowInferer", "TFScanWindowInferer",
                        "TRTISScanWindowInferer")
WINDOW_ARGS = ("roi_size", "batch_size", "overlap", "blend_mode", "sigma_scale", "padding_mode", "cval")


def base_inference_config() -> dict[str, Any]:
    """The deploy app's bundled (base) `config_inference.json` (package data: read by path, no import of the
    deploy layer, which sits above the apps)."""
    base_app = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "templates")
    with open(os.path.join(base_app, "config", INFERENCE_CONFIG), encoding="utf-8") as fh:
        return json.load(fh)


def _alias_index(data: Any) -> dict[str, list[tuple[str, bool, dict[str, Any]]]]:
    """alias -> [(pointer, explicit alias, node)] of every named component of the config."""
    index: dict[str, list[tuple[str, bool, dict[str, Any]]]] = {}

    def walk(node: Any, pointer: str, top: bool = False) -> None:
        if isinstance(node, dict):
            if not top and "ref" not in node and isinstance(node.get("name", node.get("path")), str):
                try:
                    spec = parse_spec(node, pointer)
                except ConfigError:
                    return
                if spec.alias and not spec.disabled:
                    index.setdefault(spec.alias, []).append((pointer, spec.explicit_alias, node))
                return
            for key, value in node.items():
                walk(value, join_pointer(pointer, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, join_pointer(pointer, i))

    walk(data, "", top=True)
    return index


def _resolve(node: Any, pointer: str, index: dict[str, Any], file: str | None) -> tuple[Any, str]:
    """(the component node, its pointer): `node` itself, or the node its `{"ref": ...}` names."""
    spec = parse_spec(node, pointer, file)
    if spec.ref is None:
        return node, pointer
    found = index.get(spec.ref, [])
    candidates = [f for f in found if f[1]] or found
    if not candidates:
        raise ConfigError(f"ref {spec.ref!r} names no component of the config", file=file, pointer=pointer)
    if len(candidates) > 1:
        raise ConfigError(f"ref {spec.ref!r} is ambiguous: it names the components at "
                          f"{', '.join(c[0] for c in candidates)}", file=file, pointer=pointer)
    return candidates[0][2], candidates[0][0]


def _restrict_fields(args: dict[str, Any], keep: Any) -> dict[str, Any] | None:
    """`args` with field lists restricted to the fields `keep(name)` accepts; None when the
    transform had fields and none is kept (it works on labels only)."""
    out = dict(args)
    had_fields = kept_any = False
    for key in FIELD_KEYS:
        if key not in out or out[key] is None:
            continue
        value = out[key]
        if isinstance(value, str):
            had_fields = True
            if keep(value):
                kept_any = True
            else:
                del out[key]
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            had_fields = True
            rest = [v for v in value if keep(v)]
            if rest:
                kept_any = True
                out[key] = rest
            else:
                del out[key]
    if had_fields and not kept_any:
        return None
    return out


def _clean_node(node: dict[str, Any], pointer: str, file: str | None, keep: Any) -> dict[str, Any] | None:
    """`{"name": ..., ["path": ...,] "args": ...}` without alias, restricted to kept fields; None: dropped."""
    spec = parse_spec(node, pointer, file)
    if spec.disabled:
        return None
    args = _restrict_fields(copy.deepcopy(spec.args), keep)
    if args is None:
        return None
    out: dict[str, Any] = {}
    if spec.name is not None:
        out["name"] = spec.name
    if spec.path is not None:
        out["path"] = spec.path
    out["args"] = args
    return out


def _transforms(data: dict[str, Any], pointer: str, index: dict[str, Any], file: str | None,
                keep: Any) -> list[dict[str, Any]]:
    nodes = _get(data, pointer)
    if not isinstance(nodes, list):
        return []
    out = []
    for i, node in enumerate(nodes):
        at = join_pointer(pointer, i)
        if isinstance(node, dict) and node.get("disabled") is True:
            continue
        target, target_at = _resolve(node, at, index, file)
        cleaned = _clean_node(target, target_at, file, keep)
        if cleaned is not None:
            out.append(cleaned)
        else:
            logger.info("deploy config: %s (%s) left out: it works on labels only or is disabled", at,
                        target.get("name", target.get("path")) if isinstance(target, dict) else target)
    return out


def _get(data: Any, pointer: str) -> Any:
    node = data
    for token in [t for t in pointer.split("/") if t]:
        if not isinstance(node, dict) or token not in node:
            return None
        node = node[token]
    return node


def _label_fields(data: dict[str, Any], section: str, image_field: str) -> set[str]:
    """Fields other than the image that the validation section loads or its metrics compare with."""
    labels = {"label"}
    for pointer in (section + "/pre_transforms", "/train/pre_transforms"):
        for node in _get(data, pointer) or []:
            args = node.get("args", node) if isinstance(node, dict) else {}
            for key in FIELD_KEYS + ("label_field",):
                value = args.get(key) if isinstance(args, dict) else None
                values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
                labels.update(v for v in values if isinstance(v, str))
    for node in _get(data, section + "/metrics") or []:
        args = node.get("args", {}) if isinstance(node, dict) else {}
        if isinstance(args, dict) and isinstance(args.get("label_field"), str):
            labels.add(args["label_field"])
    labels.discard(image_field)
    labels.discard("model")
    return labels


def derive_inference_config(cfg: Any, image_field: str = "image", base: dict[str, Any] | None = None
                            ) -> dict[str, Any] | None:
    """The deploy app's config_inference.json for a training (or evaluation) config; None when
    the config has no pre-transforms to take (the base application then stays the default).

    Args:
        cfg: a `WorkflowConfig` (its substituted data is used) or the config as a dict.
        image_field: the field the deploy app loads its input into.
        base: the template (default: the deploy app's bundled config_inference.json).
    """
    data = getattr(cfg, "data", cfg)
    file = getattr(cfg, "file", None)
    if not isinstance(data, dict):
        return None
    section = "/validate" if isinstance(data.get("validate"), dict) else ""
    if not isinstance(_get(data, section + "/pre_transforms"), list) or not _get(data, section + "/pre_transforms"):
        return None
    doc = copy.deepcopy(base if base is not None else base_inference_config())
    index = _alias_index(data)
    doc["pre_transforms"] = _transforms(data, section + "/pre_transforms", index, file,
                                        lambda f: f == image_field)
    if not doc["pre_transforms"]:
        return None
    labels = _label_fields(data, section, image_field)
    if isinstance(_get(data, section + "/post_transforms"), list) and _get(data, section + "/post_transforms"):
        doc["post_transforms"] = _transforms(data, section + "/post_transforms", index, file,
                                             lambda f: f not in labels)
    inferer = _get(data, section + "/inferer")
    if isinstance(inferer, dict):
        node, at = _resolve(inferer, section + "/inferer", index, file)
        spec = parse_spec(node, at, file)
        if spec.name in SCAN_WINDOW_INFERERS and not spec.disabled:
            target = doc.setdefault("inferer", {"name": "TRTISScanWindowInferer", "args": {}})
            target.setdefault("args", {}).update(
                {k: copy.deepcopy(v) for k, v in spec.args.items() if k in WINDOW_ARGS and v is not None})
        else:
            logger.warning("deploy config: the validation inferer %s is not a scanning-window inferer; the deploy "
                           "app keeps its TRTISScanWindowInferer (window: network_input_size)", spec.label)
    return doc


def write_inference_config(cfg: Any, out_dir: str, image_field: str = "image") -> str | None:
    """Write `<out_dir>/config_inference.json` (atomically) from the config; its path, or None
    when the config has no pre-transforms to take."""
    from ai4med.io.atomic import atomic_write_text

    doc = derive_inference_config(cfg, image_field)
    if doc is None:
        return None
    return atomic_write_text(os.path.join(out_dir, INFERENCE_CONFIG), json.dumps(doc, indent=4) + "\n")
