"""Keep-largest-component chosen per class on cross-validation predictions."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.catalog import REGISTRY
from ai4med.errors import UserError
from ai4med.plan.postprocess import choose_keep_largest, plan_postprocessing, post_transforms


def _label(seed):
    lab = np.zeros((20, 20, 10), np.uint8)
    lab[2:8, 2:8, 2:8] = 1
    lab[12:17, 3:8, 2:7] = 2  # class 2 really has two parts
    lab[12:17, 13:18, 2:7] = 2
    return lab


def _pred(lab, seed):
    p = lab.copy()
    p[15 + seed % 3, 15, 8] = 1  # a stray class-1 voxel: the largest component removes it
    return p


def _mmar(tmp_path, n_folds=2, per_fold=2, skip=None):
    root = tmp_path / "mmar"
    for k in range(n_folds):
        items = []
        for j in range(per_fold):
            case = f"case_{k}{j}"
            lab = _label(k * 10 + j)
            lp = tmp_path / "data" / f"{case}.nii.gz"
            lp.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(lab, np.eye(4)), str(lp))
            items.append({"image": str(tmp_path / "data" / f"{case}_img.nii.gz").replace("_img", ""),
                          "label": str(lp), "fold": k})
            if skip != case:
                out = root / "eval" / f"fold_{k}" / "predictions" / case / f"{case}_model.nii.gz"
                out.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(_pred(lab, j), np.eye(4)), str(out))
        d = root / "models" / f"fold_{k}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "datalist.json").write_text(json.dumps({"training": [], "validation": items}))
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "config_train.json").write_text(json.dumps({"validate": {"metrics": []}}))
    (root / "plans").mkdir(parents=True, exist_ok=True)
    (root / "plans" / "plans.json").write_text(json.dumps({"num_classes": 3}))
    return str(root)


def test_choice_per_class_and_config_written(tmp_path):
    root = _mmar(tmp_path)
    res = plan_postprocessing(root)
    assert res["keep_largest_cc"] == [1] and res["cases"] == 4
    c1, c2 = res["classes"]["1"], res["classes"]["2"]
    assert c1["dice_after"] == pytest.approx(1.0) and c1["dice_before"] < 1.0
    assert c2["dice_before"] == pytest.approx(1.0) and c2["dice_after"] == pytest.approx(2 / 3)  # one of two equal parts kept
    cfg = json.load(open(os.path.join(root, "config", "config_train.json")))
    post = cfg["validate"]["post_transforms"]
    assert [p["name"] for p in post] == ["ArgmaxAcrossChannels", "KeepLargestCC", "RestoreOriginalShape"]
    assert post[1]["args"]["applied_labels"] == [1]
    assert json.load(open(os.path.join(root, "plans", "postprocessing.json")))["keep_largest_cc"] == [1]


def test_missing_predictions_are_named(tmp_path):
    root = _mmar(tmp_path, skip="case_11")
    with pytest.raises(UserError, match="fold_1/case_11"):
        plan_postprocessing(root)


def test_written_post_transforms_run():
    probs = np.zeros((3, 10, 10, 10), np.float32)
    probs[0] = 1.0
    probs[:, 1:4, 1:4, 1:4] = [[[[0.0]]], [[[1.0]]], [[[0.0]]]]
    probs[:, 7, 7, 7] = [0.0, 1.0, 0.0]  # a second class-1 component
    img = MedicalImage(probs, "CDHW")
    img.set_property(ImageProperty.AFFINE, np.eye(4))
    src = MedicalImage(np.zeros((1, 10, 10, 10), np.float32), "CDHW")
    src.set_property(ImageProperty.AFFINE, np.eye(4))
    src.set_property(ImageProperty.ORIGINAL_SHAPE, (10, 10, 10))  # as a loader sets them
    src.set_property(ImageProperty.ORIGINAL_AFFINE, np.eye(4))
    ctx = TransformContext({"model": img, "image": src})
    for step in post_transforms([1]):
        ctx = REGISTRY.get(step["name"])(**step["args"])(ctx)
    out = ctx["model"].get_data()
    assert out.shape[-3:] == (10, 10, 10) and int((out == 1).sum()) == 27


def test_choose_skips_absent_classes():
    lab = np.zeros((4, 4, 4), np.int64)
    res = choose_keep_largest([(lab, lab)], [1])
    assert res["classes"] == {} and res["keep_largest_cc"] == []


def test_plan_postprocess_cli(tmp_path):
    import subprocess
    import sys

    root = _mmar(tmp_path)
    r = subprocess.run([sys.executable, "-m", "ai4med", "plan", "-o", root, "--postprocess"], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "keep-largest-component per class: [1]" in r.stdout
    r = subprocess.run([sys.executable, "-m", "ai4med", "plan", "-o", root], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert r.returncode == 1 and "give -d" in r.stderr
