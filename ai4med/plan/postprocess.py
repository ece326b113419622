"""Post-processing chosen on cross-validation: keep the largest connected component, per class?

nnU-Net's `determine_postprocessing`: for each foreground class, compare the mean Dice over the
cross-validation cases of that class's predictions as they are and with only the class's
largest connected component kept; keep the step where it raises the Dice. We read the fold
predictions `ai4med infer` wrote (label maps, `<case>_model.nii.gz` anywhere under
`eval/fold_K/`, for the validation cases of `models/fold_K/datalist.json`), and write the
choice into `plans/postprocessing.json` and into the config's `validate/post_transforms`
(argmax, `KeepLargestCC` of the chosen classes, back onto the input grid), which
`ai4med infer` / `evaluate` apply.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from typing import Any

import numpy as np

from ai4med.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["class_dice", "largest_component", "choose_keep_largest", "plan_postprocessing", "post_transforms"]

_EXTS = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected component (full connectivity) of a boolean mask."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim))
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def class_dice(pred: np.ndarray, label: np.ndarray, c: int) -> float:
    """Dice of class `c`; NaN when the class is in neither map."""
    p, t = pred == c, label == c
    denom = p.sum() + t.sum()
    return float("nan") if denom == 0 else float(2.0 * np.logical_and(p, t).sum() / denom)


def choose_keep_largest(pairs: list[tuple[np.ndarray, np.ndarray]], classes: list[int]) -> dict[str, Any]:
    """Per class: mean CV Dice without and with the largest component kept, and the choice.

    A case where a class is absent from both maps does not count for that class.
    """
    out: dict[str, Any] = {"classes": {}, "keep_largest_cc": []}
    for c in classes:
        before, after = [], []
        for pred, label in pairs:
            d0 = class_dice(pred, label, c)
            if np.isnan(d0):
                continue
            cleaned = np.where(largest_component(pred == c), c, np.where(pred == c, 0, pred))
            before.append(d0)
            after.append(class_dice(cleaned, label, c))
        if not before:
            continue
        b, a = float(np.mean(before)), float(np.mean(after))
        keep = a > b
        out["classes"][str(c)] = {"dice_before": b, "dice_after": a, "keep_largest_cc": keep, "cases": len(before)}
        if keep:
            out["keep_largest_cc"].append(c)
    return out


def post_transforms(keep: list[int]) -> list[dict[str, Any]]:
    """`validate/post_transforms` for a softmax segmentation with `KeepLargestCC` on the classes `keep`."""
    steps: list[dict[str, Any]] = [
        {"name": "ArgmaxAcrossChannels", "args": {"fields": "model", "keepdims": True, "dtype": "uint8"}}]
    if keep:
        steps.append({"name": "KeepLargestCC", "args": {"fields": "model", "applied_labels": keep,
                                                        "independent": True}})
    steps.append({"name": "RestoreOriginalShape",
                  "args": {"fields": "model", "src_field": "image", "is_label": True, "dtype": "uint8"}})
    return steps


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for ext in _EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _read(path: str) -> np.ndarray:
    from ai4med.io.image_io import read_image

    data = np.asarray(read_image(path).get_data())
    return np.rint(np.squeeze(data)).astype(np.int64)


def _fold_pairs(root: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    folds = sorted(glob.glob(os.path.join(root, "models", "fold_*", "datalist.json")))
    if not folds:
        raise UserError(f"{root}: no models/fold_*/datalist.json: train the folds first "
                        "(`ai4med train -m MMAR --fold K` for every K)")
    pairs, missing = [], []
    for dl_path in folds:
        fold = os.path.basename(os.path.dirname(dl_path))
        with open(dl_path, encoding="utf-8") as f:
            items = json.load(f)["validation"]
        preds = {}
        for p in glob.glob(os.path.join(root, "eval", fold, "**", "*_model.*"), recursive=True):
            preds[_stem(p)[: -len("_model")]] = p
        for it in items:
            image = it["image"][0] if isinstance(it["image"], list) else it["image"]
            case = _stem(image)
            if case not in preds:
                missing.append(f"{fold}/{case}")
                continue
            pred, label = _read(preds[case]), _read(it["label"])
            if pred.shape != label.shape:
                raise UserError(f"{preds[case]}: prediction shape {pred.shape} differs from its label's {label.shape}")
            pairs.append((pred, label))
    return pairs, missing


def plan_postprocessing(root: str) -> dict[str, Any]:
    """Choose per class from the fold predictions of the MMAR `root`; write plans and config."""
    from ai4med.io.atomic import atomic_write_text

    root = os.path.abspath(root)
    pairs, missing = _fold_pairs(root)
    if missing:
        shown = ", ".join(missing[:10]) + (f" ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise UserError(f"{root}: no prediction for {len(missing)} cross-validation case(s): {shown}; write them with "
                        "`ai4med infer -m MMAR --model_file_path models/fold_K/model.pt -d models/fold_K/datalist.json "
                        "--data_list_key validation -o eval/fold_K/predictions`")
    plans_path = os.path.join(root, "plans", "plans.json")
    n_cls = None
    if os.path.isfile(plans_path):
        with open(plans_path, encoding="utf-8") as f:
            n_cls = json.load(f).get("num_classes")
    classes = list(range(1, int(n_cls))) if n_cls else sorted({int(v) for _, lab in pairs for v in np.unique(lab)} - {0})
    result = choose_keep_largest(pairs, classes)
    per = result["classes"]
    result["dice_before"] = float(np.mean([v["dice_before"] for v in per.values()])) if per else float("nan")
    result["dice_after"] = float(np.mean([v["dice_after"] if v["keep_largest_cc"] else v["dice_before"]
                                          for v in per.values()])) if per else float("nan")
    result["cases"] = len(pairs)
    atomic_write_text(os.path.join(root, "plans", "postprocessing.json"), json.dumps(result, indent=2) + "\n")
    config = os.path.join(root, "config", "config_train.json")
    with open(config, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.setdefault("validate", {})["post_transforms"] = post_transforms(result["keep_largest_cc"])
    atomic_write_text(config, json.dumps(cfg, indent=2) + "\n")
    result["written"] = config
    logger.info("post-processing: keep the largest component of classes %s", result["keep_largest_cc"])
    return result
