"""Plans -> an MMAR a user can read and edit: `config/`, `commands/`, the k-fold datalist, `plans/`.

Each planned value lands in its natural place of a plain `config_train.json` built only from
registered ai4med components (DynUnet, CropImageForeground, ScaleIntensityRange, ...):
spacing in `ScaleBySpacing`, the CT window in `ScaleIntensityRange`, the patch in the
`CropByPosNegRatio` crop and the scan-window `roi_size`, and so on.
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from typing import Any

from ai4med.io.atomic import atomic_write_text
from ai4med.io.folds import assign_folds

__all__ = ["train_config", "environment", "write_mmar", "folds_datalist"]


def _norm_transform(plans: dict[str, Any]) -> dict[str, Any]:
    n = plans["normalization"][0]
    if n["scheme"] == "CTNormalization":  # clip to [p0.5, p99.5], then z-score: one linear map with clipping
        lo, hi = n["clip"]
        m, s = n["mean"], n["std"]
        return {"name": "ScaleIntensityRange#norm",
                "args": {"fields": "image", "a_min": lo, "a_max": hi, "b_min": (lo - m) / s, "b_max": (hi - m) / s,
                         "clip": True}}
    if n["nonzero"]:
        return {"name": "NormalizeNonzeroIntensities#norm", "args": {"fields": "image"}}
    return {"name": "CenterData#norm", "args": {"fields": "image"}}


def _preprocess(plans: dict[str, Any]) -> list[dict[str, Any]]:
    fields = ["image", "label"]
    out: list[dict[str, Any]] = [
        {"name": "LoadNifti#load", "args": {"fields": fields}},
        {"name": "ConvertToChannelsFirst#channels", "args": {"fields": fields}},
    ]
    crop = plans["crop_foreground"]
    if crop["enabled"]:
        out.append({"name": "CropImageForeground#crop", "args": {"fields": fields, "source_field": "image"}})
    if plans["resample"]:
        out.append({"name": "ScaleBySpacing#spacing",
                    "args": {"fields": fields, "target_spacing": plans["target_spacing"], "label_field": "label"}})
    out.append(_norm_transform(plans))
    return out


def data_workers(gpu: bool) -> int:
    """DataLoader workers of the training pipeline: none for CPU budgets (the step already uses every core;
    four workers on two cores made the MNI152 plan's iterations 1.6 s instead of 0.88 s), for GPU budgets
    the augmentation runs beside the GPU step on up to 8 cores (nnU-Net runs its augmentation in workers)."""
    return min(8, os.cpu_count() or 1) if gpu else 0


def train_config(plans: dict[str, Any], num_cache: int) -> dict[str, Any]:
    """The `config_train.json` of `plans`."""
    t = plans["training"]
    net = plans["network"]
    patch, batch = plans["patch_size"], plans["batch_size"]
    pre = _preprocess(plans)
    train_pre = pre + [
        {"name": "CropByPosNegRatio", "args": {"size": patch, "fields": ["image", "label"], "label_field": "label",
                                               **plans["sampling"], "batch_size": batch}},
        *plans["augmentations"],
    ]
    gpu = plans["budget"]["kind"] != "cpu"
    return {
        # a budget in iterations: the same length whatever the datalist (a fold, all cases, more cases)
        "iterations": t["iterations"],
        "num_training_iterations_per_valid": t["num_training_epoch_per_valid"] * t["iterations_per_epoch"],
        "checkpoint_interval": t["num_training_epoch_per_valid"] * t["iterations_per_epoch"],
        "learning_rate": t["optimizer"]["learning_rate"],
        "multi_gpu": False,
        "use_amp": gpu or t.get("precision", "fp32") != "fp32",  # GPU budgets: autocast wherever measured
        "determinism": {"random_seed": 0},
        "train_summary_recording_interval": 10,
        "train": {
            "loss": t["loss"],
            "optimizer": {"name": t["optimizer"]["name"],
                          "args": {"learning_rate": "{learning_rate}", **t["optimizer"]["args"]}},
            "lr_policy": t["lr_policy"],
            "model": {"name": "DynUnet", "args": {
                "num_classes": plans["num_classes"], "num_in_channels": plans["num_input_channels"],
                "kernel_size": net["kernel_size"], "strides": net["strides"], "filters": net["filters"],
                "norm_name": net["norm_name"], "deep_supervision": net["deep_supervision"],
                "deep_supr_num": net["deep_supr_num"], "final_activation": "softmax"}},
            "pre_transforms": train_pre,
            "image_pipeline": {"name": "SegmentationImagePipelineWithCache", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_file_base_dir": "{DATA_ROOT}",
                "data_list_key": "training", "output_crop_size": patch, "output_batch_size": 1,
                "batched_by_transforms": True,  # one volume -> `batch` crops: batch = samples per step
                "num_workers": data_workers(gpu), "num_cache_objects": num_cache, "replace_percent": 0.0}},
            "aux_ops": [{"name": "ComputeDice", "args": {"tag": "dice", "skip_background": True}}],
        },
        "validate": {
            "metrics": [{"name": "ComputeAverageDice", "args": {
                "name": "mean_dice", "field": "model", "label_field": "label", "is_key_metric": True,
                "report_path": "{MMAR_EVAL_OUTPUT_PATH}"}}],
            "pre_transforms": [{"ref": p["name"].split("#", 1)[1]} for p in pre],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_file_base_dir": "{DATA_ROOT}",
                "data_list_key": "validation", "output_crop_size": [-1] * len(patch), "output_batch_size": 1,
                "num_workers": 0, "shuffle": False, "output_properties": True}},
            "inferer": {"name": "TorchScanWindowInferer", "args": {
                "roi_size": patch, "batch_size": 2 if not gpu else max(2, batch), "overlap": 0.5 if gpu else 0.25,
                "blend_mode": "gaussian", "tta": plans["mirror_axes"] if plans["tta"] else False}},
        },
    }


def environment(data_root: str) -> dict[str, Any]:
    return {
        "DATA_ROOT": data_root,
        "DATASET_JSON": "{MMAR_ROOT}/config/datalist.json",
        "PROCESSING_TASK": "segmentation",
        "MMAR_CKPT_DIR": "models",
        "MMAR_EVAL_OUTPUT_PATH": "eval",
    }


def folds_datalist(cases: list[dict[str, Any]], data_root: str, num_folds: int, labels: dict[int, str],
                   name: str, seed: int = 0) -> dict[str, Any]:
    """The MMAR's datalist: fold 0 under `validation`, the others under `training`, paths relative to `data_root`."""
    def rel(p: Any) -> Any:
        return [rel(x) for x in p] if isinstance(p, list) else os.path.relpath(p, data_root)

    items = assign_folds([{"image": rel(c["image"]), "label": rel(c["label"])} for c in cases], num_folds, seed)
    out: dict[str, Any] = {"name": name, "num_folds": num_folds}
    if labels:
        out["labels"] = {str(k): v for k, v in labels.items()}
    out["training"] = [it for it in items if it["fold"] != 0]
    out["validation"] = [it for it in items if it["fold"] == 0]
    return out


def _write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


FOLD_SCRIPT = """#!/usr/bin/env bash
# Train one cross-validation fold: ./train_fold.sh K  (checkpoints in models/fold_K/)
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
K="${1:?usage: train_fold.sh K [more ai4med train args]}"; shift
exec ai4med train -m "$MMAR_ROOT" --fold "$K" "$@"
"""

ALL_FOLDS_SCRIPT = """#!/usr/bin/env bash
# Train every cross-validation fold in turn (models/fold_0 ... models/fold_{last})
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
for K in $(seq 0 {last}); do ai4med train -m "$MMAR_ROOT" --fold "$K" "$@"; done
"""


def write_mmar(root: str, plans: dict[str, Any], fingerprint: dict[str, Any], cases: list[dict[str, Any]],
               data_root: str, labels: dict[int, str], name: str) -> dict[str, str]:
    """Write the MMAR under `root` (config/, commands/, plans/, models/, eval/); returns the files written."""
    from ai4med.config.mmar import Mmar

    mmar = Mmar.create(root)
    plans_dir = os.path.join(mmar.root, "plans")
    os.makedirs(plans_dir, exist_ok=True)
    files = {
        "config": os.path.join(mmar.config_dir, "config_train.json"),
        "environment": os.path.join(mmar.config_dir, "environment.json"),
        "datalist": os.path.join(mmar.config_dir, "datalist.json"),
        "plans": os.path.join(plans_dir, "plans.json"),
        "fingerprint": os.path.join(plans_dir, "fingerprint.json"),
    }
    _write_json(files["fingerprint"], fingerprint)
    _write_json(files["plans"], plans)
    _write_json(files["datalist"], folds_datalist(cases, data_root, plans["folds"], labels, name))
    _write_json(files["environment"], environment(data_root))
    _write_json(files["config"], train_config(plans, num_cache=len(cases)))
    templates = str(resources.files("ai4med.apps").joinpath("templates", "commands"))
    shutil.copytree(templates, mmar.commands_dir, dirs_exist_ok=True)
    for fname, text in (("train_fold.sh", FOLD_SCRIPT),
                        ("train_all_folds.sh", ALL_FOLDS_SCRIPT.replace("{last}", str(plans["folds"] - 1)))):
        path = os.path.join(mmar.commands_dir, fname)
        atomic_write_text(path, text)
        os.chmod(path, 0o755)
    return files
