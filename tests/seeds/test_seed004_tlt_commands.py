"""Seed 004 §6-§9 as a user types it: the 2019 AIAA training config (§6.1), `tlt-train` from scratch
(§6.4.2.3.1) and fine-tuning with the long flags (§6.4.2.3.2), `tlt-export` (§6.4.2.4), `tlt-infer`
(§6.4.2.5) and `tlt-evaluate` (§6.4.2.6), through the installed executables.

The configs are the seed's (verbatim copies in seed_texts.py, repairs listed there). Only sizes
are shrunk on the command line, with the seed's own `--set` mechanism, so the run takes seconds:
128^3 crops and windows -> 32^3, AHNet's ResNet50 stages (3,4,6,3) -> (1,1,1,1), 2000 epochs -> 3,
8 workers -> 0.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from seed_helpers import ct_like_dataset, executable, run_tool
from seed_texts import SEED004_EVAL_CONFIG, SEED004_INFER_CONFIG, SEED004_TRAIN_CONFIG

SMALL = ["epochs=3", "num_training_epoch_per_valid=1", "num_workers=0", "network_input_size=[32,32,32]",
         "train.pre_transforms.6.size=[32,32,32]", "validate.pre_transforms.3.size=[32,32,32]",
         "net_config.layers=[1,1,1,1]"]
EVAL_SMALL = ["pre_transforms.1.size=[32,32,32]"]


def test_seed_004_training_to_deployment_as_written(tmp_path):
    """One chain (each step needs the one before; one test so that pytest-xdist runs it once)."""
    trained = train_from_scratch(tmp_path)
    check_training(trained)
    check_fine_tuning(trained)
    check_export_infer_evaluate(trained)
    check_deploy_app(trained, tmp_path / "deploy")


def train_from_scratch(root):
    """§6.4.2.3.1: `tlt-train segmentation -e $TRAIN_CONFIG -d $DATA_LIST -r $TRAIN_OUTPUT_DIR`."""
    ct_like_dataset(root)
    (root / "config_train_aiaa.json").write_text(SEED004_TRAIN_CONFIG)
    (root / "config_eval_aiaa.json").write_text(SEED004_EVAL_CONFIG)
    (root / "config_infer_aiaa.json").write_text(SEED004_INFER_CONFIG)
    proc = run_tool([executable("tlt-train"), "segmentation", "-e", "config_train_aiaa.json", "-d", "datalist.json",
                     "-r", "output", "--set", *SMALL], root)
    return root, proc


def check_training(trained):
    root, proc = trained
    out = root / "output"
    history = json.loads((out / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    dice = [h["val_mean_dice"] for h in history]  # train.metrics' tag, validated every epoch
    assert all(0.0 <= d <= 1.0 for d in dice)
    best = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    assert best["epoch"] == 1 + int(np.argmax(dice))  # the stopping_metric chose model.pt
    assert f"best key metric {max(dice):.4f}" in proc.stdout
    # the seed's Adam lr 1e-3 (the component's own "lr"), not the default learning_rate
    assert history[0]["learning_rate"] == pytest.approx(1e-3)
    # the TensorFlow-only net_config keys are named once, as ignored
    assert proc.stderr.count("ignored: /net_config/if_from_scratch") == 1
    assert "pretrain_weight_name" in proc.stderr
    # what was trained: AHNet with 2 input channels (image + extreme points) and 2 classes
    trained_cfg = json.loads((out / "config_train.json").read_text())
    assert trained_cfg["train"]["model"]["name"] == "SegmAhnet3D"
    assert trained_cfg["train"]["model"]["args"]["num_in_channels"] == 2
    assert trained_cfg["validate"]["inferer"] == {"name": "TorchScanWindowInferer",
                                                  "args": {"roi_size": [32, 32, 32]}}
    state = best["model"]
    first_conv = next(v for k, v in state.items() if v.ndim == 5)
    assert first_conv.shape[1] == 2
    assert (out / "eval" / "mean_dice_summary_results.txt").read_text().split()[0] == "mean_dice"


def check_fine_tuning(trained):
    """§6.4.2.3.2: --config --file_root --data_list --checkpoint $DIR/model.ckpt --model_dir."""
    root, _ = trained
    proc = run_tool([executable("tlt-train"), "segmentation", "--config", "config_train_aiaa.json",
                     "--file_root", str(root), "--data_list", "datalist.json",
                     "--checkpoint", "output/model.ckpt", "--model_dir", "finetune", "--set", *SMALL[1:], "epochs=1"],
                    root)
    assert "output/model.ckpt (TensorFlow name) -> output/model.pt" in proc.stderr
    assert "initialised the model from output/model.pt" in proc.stderr
    assert (root / "finetune" / "model.pt").is_file()
    assert not (root / "output" / "model.ckpt").exists()


def check_export_infer_evaluate(trained):
    """§6.4.2.4-§6.4.2.6 with the seed's flags; the model.trt.pb they name is the exported model."""
    root, _ = trained
    out = root / "output"
    run_tool([executable("tlt-export"), "--model_name", "model", "--model_file_path", str(out),
              "--input_node_names", "cond/Merge", "--output_node_names", "NV_OUTPUT_LABEL"], root)
    assert (out / "model.ts").is_file() and (out / "model.onnx").is_file()
    cfg = json.loads((out / "model_config.json").read_text())
    assert cfg["input_node_names"] == ["cond/Merge"] and cfg["output_node_names"] == ["NV_OUTPUT_LABEL"]

    def flags(config: str) -> list[str]:
        return ["--model_save_path", str(out / "model.trt.pb"), "--config", config, "--model_format", "trtmodel",
                "--file_root", str(root), "--data_file", "datalist_nifti.json", "--setup", "standard",
                "--set", *EVAL_SMALL]

    (root / "inference").mkdir()
    proc = run_tool([executable("tlt-infer"), *flags("config_infer_aiaa.json"), "--output_path", "inference"], root)
    assert "ignored: /input_nodes" in proc.stderr
    pred = nib.load(root / "inference" / "image4" / "image4_prediction.nii.gz")
    assert pred.shape == (32, 32, 32)
    values = np.asarray(pred.dataobj)
    assert 0.0 <= values.min() and values.max() <= 1.0  # the foreground probability channel
    points = np.asarray(nib.load(root / "inference" / "image4" / "image4_extreme_points.nii.gz").dataobj)
    assert points.shape == (32, 32, 32) and points.max() > 0  # the guidance channel the model was given
    (root / "eval").mkdir()
    run_tool([executable("tlt-evaluate"), *flags("config_eval_aiaa.json"), "--output_path", "eval"], root)
    raw = (root / "eval" / "mean_dice_raw_results.txt").read_text().split()
    summary = (root / "eval" / "mean_dice_summary_results.txt").read_text().split()
    assert raw[0] == "image4.nii.gz" and summary[0] == "mean_dice"
    assert 0.0 <= float(summary[1]) <= 1.0
    # the same model on the same case as training's last validation of model.pt
    history = json.loads((out / "training_history.json").read_text())
    assert float(summary[1]) == pytest.approx(max(h["val_mean_dice"] for h in history), abs=2e-3)


def check_deploy_app(trained, tmp_path):
    """`ai4med deploy --init_app APP --from_export DIR`: the render config names the model's classes
    (the training datalist's "labels"), not the base application's liver / tumor."""
    import subprocess
    import sys

    root, _ = trained
    out = root / "output"
    app = tmp_path / "app"
    proc = subprocess.run([sys.executable, "-m", "ai4med", "deploy", "--init_app", str(app), "--from_export", str(out)],
                          capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, proc.stderr
    render = json.loads((app / "config" / "config_render.json").read_text())
    assert {k: v["name"] for k, v in render["labels"].items()} == {"1": "spleen"}
    assert render["volumes"][1]["role"] == "segmentation"  # the rest is the base application's


def _env():
    import os

    from seed_helpers import REPO

    return dict(os.environ, PYTHONPATH=str(REPO))
