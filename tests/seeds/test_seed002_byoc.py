"""Seed 002's three numpy BYOC examples inside real `ai4med train` / `ai4med validate` runs: the
loader that loads (`MyNumpyLoader`), the random transform that trains (`MyAddRandomConstant`) and the
metric that reports (`SampleComputeAverage`), each with the seed's config snippet (seed 002 lines
194, 212, 260). The code is the verbatim copy in tests/config/data/CustomCode.py (whitespace the
documentation page flattened is restored, nothing else).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from seed_helpers import REPO, ct_like_dataset

CUSTOM_CODE = REPO / "tests" / "config" / "data" / "CustomCode.py"


def seed_metric(field: str, **extra):
    """Seed 002 line 260, with the field it reads given."""
    return {"name": "SampleComputeAverage", "path": "CustomCode.SampleComputeAverage",
            "args": {"name": "metric_mean_value_1", "field": field, **extra}}


def make_mmar(root: Path, metrics: list[dict]) -> Path:
    mmar = root / "mmar"
    for sub in ("config", "custom", "models", "eval"):
        (mmar / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(CUSTOM_CODE, mmar / "custom" / "CustomCode.py")
    ct_like_dataset(mmar, cases=3, size=16)
    pipeline = {"data_list_file_path": "{DATASET_JSON}", "data_file_base_dir": "{DATA_ROOT}"}
    config = {
        "epochs": 2, "num_training_epoch_per_valid": 1, "learning_rate": 1e-3,
        "train": {
            "loss": {"name": "Dice"},
            "model": {"name": "Unet", "args": {"num_classes": 2, "num_in_channels": 1, "channels": [4, 8],
                                               "strides": [2], "final_activation": "softmax"}},
            "pre_transforms": [
                {"name": "MyNumpyLoader", "path": "CustomCode.MyNumpyLoader",  # seed 002 line 212
                 "args": {"fields": ["image", "label"], "shape": "DHW"}},
                {"name": "MyAddRandomConstant", "path": "CustomCode.MyAddRandomConstant",  # seed 002 line 194
                 "args": {"fields": ["image"], "magnitude": 5}},
                {"name": "VolumeTo4dArray", "args": {"fields": ["image", "label"]}},
            ],
            "image_pipeline": {"name": "SegmentationImagePipeline",
                               "args": {**pipeline, "data_list_key": "training", "output_crop_size": [16, 16, 16],
                                        "output_batch_size": 2, "num_workers": 0}},
        },
        "validate": {
            "metrics": [{"name": "ComputeAverageDice", "args": {"name": "mean_dice", "field": "model",
                                                                "label_field": "label", "is_key_metric": True}},
                        *metrics],
            "pre_transforms": [{"ref": "MyNumpyLoader"}, {"name": "VolumeTo4dArray#v",
                                                          "args": {"fields": ["image", "label"]}}],
            "image_pipeline": {"name": "SegmentationImagePipeline",
                               "args": {**pipeline, "data_list_key": "validation", "output_batch_size": 1,
                                        "num_workers": 0}},
        },
    }
    (mmar / "config" / "config_train.json").write_text(json.dumps(config))
    (mmar / "config" / "environment.json").write_text(json.dumps(
        {"DATASET_JSON": str(mmar / "datalist.json"), "DATA_ROOT": str(mmar)}))
    return mmar


def ai4med(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "ai4med", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def test_seed_metric_reports_the_mean_of_its_field_in_train_and_validate(tmp_path):
    reports = tmp_path / "reports"
    quiet = {"name": "SampleComputeAverage#quiet", "path": "CustomCode.SampleComputeAverage",
             "args": {"name": "mean_prediction", "field": "model"}}
    mmar = make_mmar(tmp_path, [seed_metric("image", report_path=str(reports)), quiet])
    proc = ai4med("train", "-m", str(mmar), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((mmar / "models" / "training_history.json").read_text())
    # validation images are loaded by MyNumpyLoader unchanged: the seed metric's mean is theirs
    image = np.load(mmar / "data" / "image2.npy")
    assert history[-1]["val_metric_mean_value_1"] == pytest.approx(float(image.mean()), rel=1e-5)
    # a softmax prediction averages to 1/2 over its two channels
    assert history[-1]["val_mean_prediction"] == pytest.approx(0.5, abs=1e-5)
    # report_path given: the reports go there; report_path None (the default): no reports at all
    summary = (reports / "metric_mean_value_1_summary_results.txt").read_text().split()
    assert summary[0] == "metric_mean_value_1" and float(summary[1]) == pytest.approx(float(image.mean()), rel=1e-5)
    assert not list((mmar / "eval").glob("mean_prediction*")) and not list(reports.glob("mean_prediction*"))
    assert (mmar / "eval" / "mean_dice_summary_results.txt").is_file()  # the built-in keeps eval/

    proc = ai4med("validate", "-m", str(mmar), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("metric_mean_value_1\t"))
    assert float(line.split()[1]) == pytest.approx(float(image.mean()), abs=1e-4)


def test_seed_metric_on_a_field_validation_lacks_fails_early_naming_it(tmp_path):
    """Seed 002's own `"field": "accuracy"`: an aux-op output, which validation does not compute."""
    mmar = make_mmar(tmp_path, [seed_metric("accuracy")])
    proc = ai4med("train", "-m", str(mmar), "epochs=1", cwd=tmp_path)
    assert proc.returncode == 1
    assert "KeyError" not in proc.stderr and "Traceback" not in proc.stderr
    assert ("validation metric 'metric_mean_value_1' (SampleComputeAverage) reads field 'accuracy', which "
            "validation does not produce; the fields are image, label, model") in proc.stderr
