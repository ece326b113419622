"""The planner on a fingerprint with a model of the measurement, and `ai4med plan` -> `ai4med train --fold` for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ai4med.errors import UserError
from ai4med.plan.dataset import read_plan_input
from ai4med.plan.fingerprint import dataset_fingerprint
from ai4med.plan.planner import GIB, make_plans, resolve_budget

precisions: list[str] = []  # the precision of every fake measurement


def fake_measure(per_voxel: float = 4000.0):
    calls = []

    def measure(args, shapes, device, precision="fp32"):
        out = []
        for patch, batch in shapes:
            vox = float(np.prod(patch)) * batch
            calls.append((list(patch), batch))
            precisions.append(precision)
            out.append({"peak_bytes": 3e5 + per_voxel * vox, "step_seconds": 1e-6 * vox, "param_bytes": 1e5,
                        "patch": list(patch), "batch": batch, "device": "cpu"})
        return out

    return measure, calls


@pytest.fixture
def fp(ct_dataset):
    data = read_plan_input(ct_dataset)
    return dataset_fingerprint(data.cases, None, workers=1, progress=False)


def test_plans_fit_the_memory_budget(fp):
    measure, calls = fake_measure()
    budget = resolve_budget("gpu8", memory_gb=0.01, device="cpu")
    plans = make_plans(fp, ["CT"], budget, 3, num_folds=2, measure=measure)
    patch, batch = plans["patch_size"], plans["batch_size"]
    assert 3e5 + 4000.0 * np.prod(patch) * 2 <= 0.01 * GIB  # the batch-2 step fits ...
    assert batch >= 2 and 3e5 + 4000.0 * np.prod(patch) * batch <= 0.01 * GIB  # ... and so does the planned batch
    assert plans["memory"]["measured_peak_bytes"] == 3e5 + 4000.0 * np.prod(patch) * batch
    assert plans["target_spacing"] == [1.0, 1.0, 3.0] and not plans["resample"]
    net = plans["network"]
    assert len(net["strides"]) == len(net["kernel_size"]) >= 3 and net["strides"][0] == [1, 1, 1]
    assert all(p % d == 0 for p, d in zip(patch, np.prod(np.asarray(net["strides"]), axis=0)))
    assert net["kernel_size"][0][2] == 1  # 3 mm slices vs 1 mm in-plane: no kernel across slices at level 0
    assert plans["normalization"][0]["scheme"] == "CTNormalization"
    assert plans["num_classes"] == 3 and plans["mirror_axes"] == [0, 1, 2]
    assert any(b == 2 for _, b in calls)  # measured at the minimum batch


def test_a_budget_too_small_is_a_clear_error(fp):
    measure, _ = fake_measure(per_voxel=1e9)
    with pytest.raises(UserError, match="no patch size fits the budget"):
        make_plans(fp, ["CT"], resolve_budget("cpu", memory_gb=0.001), 3, measure=measure)


def test_unknown_budget_and_modality_count():
    with pytest.raises(UserError, match="unknown --budget 'tpu'"):
        resolve_budget("tpu")


def test_plan_then_train_fold(ct_dataset, tmp_path):
    mmar = str(tmp_path / "mmar")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "ai4med", "plan", "-d", ct_dataset, "-o", mmar, "--folds", "2",
           "--memory-gb", "0.25", "--time-budget-s", "30", "--no_progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    for f in ("config/config_train.json", "config/environment.json", "config/datalist.json", "plans/plans.json",
              "plans/fingerprint.json", "commands/train_fold.sh", "commands/train.sh"):
        assert os.path.isfile(os.path.join(mmar, f)), f
    plans = json.load(open(os.path.join(mmar, "plans", "plans.json")))
    cfg = json.load(open(os.path.join(mmar, "config", "config_train.json")))
    norm = next(t for t in cfg["train"]["pre_transforms"] if t["name"].endswith("#norm"))
    lo, hi = plans["normalization"][0]["clip"]
    m, s = plans["normalization"][0]["mean"], plans["normalization"][0]["std"]
    assert norm["name"] == "ScaleIntensityRange#norm" and norm["args"]["a_min"] == lo and norm["args"]["clip"]
    assert norm["args"]["b_max"] == pytest.approx((hi - m) / s)
    assert cfg["train"]["model"]["name"] == "DynUnet"
    # the length is a budget in iterations, fitted to --time-budget-s from a measured iteration of this MMAR
    t = plans["training"]
    assert cfg["iterations"] == t["iterations"] and "epochs" not in cfg and t["iteration_seconds"] > 0
    pipe = cfg["train"]["image_pipeline"]["args"]
    assert pipe["num_workers"] == 0 and pipe["num_cache_objects"] == 4  # CPU: the data chain runs in the step's process
    assert t["iterations"] >= int(0.9 * (30 - 2 * t["data_seconds"]["per_case_cached"]) / t["iteration_seconds"])
    assert cfg["train"]["model"]["args"]["strides"] == plans["network"]["strides"]
    assert cfg["validate"]["inferer"]["args"]["roi_size"] == plans["patch_size"]
    crop = next(t for t in cfg["train"]["pre_transforms"] if t["name"] == "CropByPosNegRatio")
    assert crop["args"]["size"] == plans["patch_size"] and crop["args"]["batch_size"] == plans["batch_size"]
    dl = json.load(open(os.path.join(mmar, "config", "datalist.json")))
    assert {it["fold"] for it in dl["validation"]} == {0} and {it["fold"] for it in dl["training"]} == {1}
    assert len(dl["training"]) + len(dl["validation"]) == 4

    r = subprocess.run([sys.executable, "-m", "ai4med", "train", "-m", mmar, "--fold", "1", "--set", "iterations=2"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.path.isfile(os.path.join(mmar, "models", "fold_1", "model.pt"))
    fold = json.load(open(os.path.join(mmar, "models", "fold_1", "datalist.json")))
    assert {it["fold"] for it in fold["validation"]} == {1} and {it["fold"] for it in fold["training"]} == {0}
    assert all(os.path.isabs(it["image"]) and os.path.isfile(it["image"]) for it in fold["training"])
    assert "mean_dice" in (r.stdout + r.stderr)
    r = subprocess.run([sys.executable, "-m", "ai4med", "validate", "-m", mmar, "--fold", "1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mean_dice" in r.stdout and os.path.join("eval", "fold_1") in r.stdout
    r = subprocess.run([sys.executable, "-m", "ai4med", "train", "-m", mmar, "--fold", "5"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and "fold 5 not found; the datalist has folds [0, 1]" in r.stderr


def test_gpu_budget_config_builds_every_component(ct_dataset, tmp_path):
    """The GPU-budget MMAR (SGD + poly, nnU-Net's augmentation set, TTA) builds with the registry and steps once."""
    from ai4med.config.workflow_config import load_config
    from ai4med.plan.mmar import write_mmar
    from ai4med.workflows.trainer import Trainer

    data = read_plan_input(ct_dataset)
    fp = dataset_fingerprint(data.cases, None, workers=1, progress=False)
    measure, _ = fake_measure()
    plans = make_plans(fp, ["CT"], resolve_budget("gpu8", memory_gb=0.01, device="cpu"), 3, 2, measure=measure)
    root = str(tmp_path / "mmar")
    files = write_mmar(root, plans, fp, data.cases, os.path.dirname(ct_dataset), data.labels, data.name)
    with open(files["config"]) as f:
        written = json.load(f)
    pipeline_args = written["train"]["image_pipeline"]["args"]
    assert pipeline_args["num_workers"] == min(8, os.cpu_count() or 1)  # GPU budgets augment in workers
    pipeline_args["num_workers"] = 0  # two steps here: no worker processes inside a pytest-xdist worker
    with open(files["config"], "w") as f:
        json.dump(written, f)
    cfg = load_config(files["config"], files["environment"], {"iterations": 2, "use_amp": False}, mmar_root=root)
    trainer = Trainer(cfg, os.path.join(root, "models"), os.path.join(root, "eval"), device="cpu")
    names = [type(t).__name__ for t in trainer.train_pipeline._transforms]
    assert {"RandomRotate3D", "RandomZoom", "AdjustContrast", "RandomAxisFlip", "ScaleIntensityRange"} <= set(names)
    assert type(trainer.optimizer).__name__ == "SGD" and trainer.optimizer.defaults["nesterov"]
    assert type(trainer.lr_policy).__name__ == "ReducePoly"
    assert trainer.make_validator() is not None  # the validate section builds too ...
    trainer.metrics = []  # ... but is not run here (TTA x 8 on CPU: the CPU test above validates)
    engine = trainer.run()
    assert engine.state.iteration == 2  # 2 training cases in fold 0's complement, one step each
    inferer = cfg.build("/validate/inferer", "inferers")
    assert inferer.tta == [0, 1, 2] and inferer.roi_size == plans["patch_size"]


def test_steps_are_measured_and_trained_in_the_machines_autocast_precision(fp, ct_dataset, tmp_path):
    """The planner measures under the precision `use_amp: true` resolves to here (bf16 on AMX CPUs, else fp32)
    and writes use_amp to match; GPU budgets always train with autocast."""
    from ai4med.components.inferers.precision import resolve_precision
    from ai4med.plan.memory import measure_steps, net_args
    from ai4med.plan.mmar import train_config

    expected = resolve_precision("auto", "cpu")
    measure, _ = fake_measure()
    precisions.clear()
    plans = make_plans(fp, ["CT"], resolve_budget("cpu", memory_gb=0.01), 3, num_folds=2, measure=measure)
    assert plans["training"]["precision"] == expected and set(precisions) == {expected}
    assert train_config(plans, 2)["use_amp"] is (expected != "fp32")
    gpu = make_plans(fp, ["CT"], resolve_budget("gpu8", memory_gb=0.01, device="cpu"), 3, 2, measure=measure)
    assert train_config(gpu, 2)["use_amp"] is True
    args = net_args(1, 2, [[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]], [4, 8, 16], False, 0)
    for p in ("fp32", "bf16"):  # a real step under each autocast
        (res,) = measure_steps(args, [([16, 16, 16], 1)], "cpu", p)
        assert res["precision"] == p and res["step_seconds"] > 0 and res["peak_bytes"] > 4 * res["param_bytes"]
