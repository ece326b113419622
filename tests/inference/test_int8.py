"""INT8, opt-in (issue 16 item 3): `ai4med export --int8` quantises with NNCF on training windows and keeps the
INT8 model only when its validation masks match fp32's; `--precision int8` runs it; a bar it cannot reach refuses
the export and leaves the folder as it was."""

from __future__ import annotations

import json
import logging
import os

import nibabel as nib
import numpy as np
import pytest

from ai4med.cli import main as cli
from ai4med.config.mmar import Mmar
from ai4med.datasets.synthetic import make_synthetic_dataset

pytest.importorskip("nncf")
pytest.importorskip("openvino")

ROI = [16, 16, 16]
FIELDS = ["image", "label"]


@pytest.fixture(scope="module")
def mmar(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("int8")
    datalist = make_synthetic_dataset(str(root / "data"), num_cases=4, size=24, seed=4, num_validation=1)
    m = root / "mmar"
    Mmar.create(str(m))
    cfg = {
        "epochs": 6, "num_training_epoch_per_valid": 6, "learning_rate": 0.01, "determinism": {"random_seed": 1},
        "train": {
            "loss": {"name": "CrossEntropyDice"},
            "optimizer": {"name": "Adam", "args": {"learning_rate": "{learning_rate}"}},
            "model": {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2],
                                                "num_res_units": 0, "final_activation": "softmax"}},
            "pre_transforms": [
                {"name": "LoadNifti#load", "args": {"fields": FIELDS}},
                {"name": "ConvertToChannelsFirst#ch", "args": {"fields": FIELDS}},
                {"name": "NormalizeNonzeroIntensities#norm", "args": {"fields": "image"}},
                {"name": "CropByPosNegRatio", "args": {"size": ROI, "fields": FIELDS, "label_field": "label",
                                                       "batch_size": 2}}],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "training", "output_crop_size": ROI,
                "output_batch_size": 2, "num_workers": 0}}},
        "validate": {
            "pre_transforms": [{"ref": "load"}, {"ref": "ch"}, {"ref": "norm"}],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "validation",
                "output_crop_size": [-1, -1, -1], "output_batch_size": 1, "num_workers": 0}},
            "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": ROI, "batch_size": 2}}},
    }
    (m / "config" / "config_train.json").write_text(json.dumps(cfg))
    (m / "config" / "environment.json").write_text(json.dumps({"DATASET_JSON": datalist, "MMAR_CKPT_DIR": "models"}))
    assert cli(["train", "-m", str(m)]) == 0
    return str(m)


def test_export_int8_then_infer_with_it(mmar, tmp_path, capsys, caplog):
    out = tmp_path / "export"
    assert cli(["export", "-m", mmar, "-o", str(out), "--no_triton", "--int8", "--int8_windows", "8"]) == 0
    report = capsys.readouterr().out
    assert "int8" in report and "mask Dice vs fp32 on 1 validation case(s)" in report and "ok" in report
    assert "preset performance" in report  # the fastest preset passed the bar: the fallback did not run
    assert (out / "model_int8.xml").is_file() and (out / "model_int8.bin").is_file()
    ir = (out / "model_int8.xml").read_text()  # the 2-class up-sampling layer was quantised as a sub-pixel convolution
    assert 'type="ConvolutionBackpropData"' not in ir and 'type="DepthToSpace"' in ir
    positions = json.load(open(out / "model_int8_calibration.json"))["positions"]
    assert sum(len(v) for v in positions.values()) == 8
    with caplog.at_level(logging.INFO, logger="ai4med.apps.evaluate"):
        assert cli(["infer", "-m", mmar, "--model_file_path", str(out / "model.onnx"), "--precision", "int8",
                    "-o", str(tmp_path / "int8"), "--no_progress"]) == 0
    assert "model_int8.xml" in caplog.text and "OpenVinoInferenceContext" in caplog.text
    assert cli(["infer", "-m", mmar, "--model_file_path", str(out / "model.onnx"), "-o", str(tmp_path / "fp32"),
                "--no_progress"]) == 0
    (case,) = os.listdir(tmp_path / "fp32")
    a = np.asarray(nib.load(str(tmp_path / "fp32" / case / f"{case}_model.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(tmp_path / "int8" / case / f"{case}_model.nii.gz")).dataobj)
    assert a.any() and 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()) >= 0.99


def test_int8_below_the_bar_refuses_the_export(mmar, tmp_path, capsys):
    out = tmp_path / "export"
    os.makedirs(out)
    assert cli(["export", "-m", mmar, "-o", str(out), "--no_triton", "--int8", "--int8_windows", "4",
                "--int8_min_dice", "1.01"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "parity check failed for int8" in captured.err
    assert "preset mixed" in captured.out  # both presets were tried, the last one is reported
    assert os.listdir(out) == []
    assert cli(["infer", "-m", mmar, "--precision", "int8", "-o", str(tmp_path / "x"), "--no_progress"]) == 1
    assert "ai4med export -m MMAR --int8" in capsys.readouterr().err  # models/ has no INT8 export


def test_deploy_runs_the_int8_export(mmar, tmp_path):
    """`ai4med deploy --precision int8 --model model.onnx` runs the INT8 model beside it (issue 16 item 3)."""
    from ai4med.deploy.__main__ import main as deploy_main

    out = tmp_path / "export"
    assert cli(["export", "-m", mmar, "-o", str(out), "--no_triton", "--int8", "--int8_windows", "4"]) == 0
    app = str(tmp_path / "app")
    assert deploy_main(["--init_app", app, "--from_export", str(out)]) == 0
    datalist = json.load(open(os.path.join(mmar, "config", "environment.json")))["DATASET_JSON"]
    case = json.load(open(datalist))["validation"][0]["image"]
    case = case if os.path.isabs(case) else os.path.join(os.path.dirname(datalist), case)
    os.makedirs(tmp_path / "in")
    os.symlink(case, tmp_path / "in" / os.path.basename(case))
    logs = tmp_path / "logs"
    assert deploy_main(["--app", app, "--model", str(out / "model.onnx"), "--precision", "int8", "--input",
                        str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--no_publish", "--logs", str(logs),
                        "--no_progress"]) == 0
    log = open(logs / "deploy.log").read()
    assert "INT8" in log and "model_int8.xml" in log
    assert len([f for f in os.listdir(tmp_path / "o") if f.endswith(".mhd")]) == 1
