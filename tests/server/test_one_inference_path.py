"""Proof of sameness (issue 12): one trained model, the same image, every door, voxel-identical masks.

A tiny model is trained with `ai4med train` on data resampled to 1.5 mm (so every door must bring
the prediction back onto the 1 mm input grid), exported to TorchScript and ONNX, and the same
validation image goes through `ai4med infer`, `ai4med evaluate --save_predictions`, the annotation
server's `POST /v1/segmentation` (upload and session), and `ai4med deploy`, for the checkpoint, the
TorchScript file and the ONNX file. Per format the masks are voxel-identical, and evaluate's Dice is
the Dice of the file it wrote against the label file.
"""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from aiaa_test_client import AIAAClient
from live_server import LiveServer

from ai4med.cli import main as cli
from ai4med.config.mmar import Mmar
from ai4med.datasets.synthetic import make_synthetic_dataset
from ai4med.deploy.__main__ import main as deploy_main

ROI = [16, 16, 16]
FIELDS = ["image", "label"]


def config(epochs: int) -> dict:
    return {
        "epochs": epochs,
        "num_training_epoch_per_valid": epochs,
        "learning_rate": 0.01,
        "determinism": {"random_seed": 5},
        "train": {
            "loss": {"name": "CrossEntropyDice"},
            "optimizer": {"name": "Adam", "args": {"learning_rate": "{learning_rate}"}},
            "model": {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2],
                                                "num_res_units": 0, "final_activation": "softmax"}},
            "pre_transforms": [
                {"name": "LoadNifti#load", "args": {"fields": FIELDS}},
                {"name": "ConvertToChannelsFirst#ch", "args": {"fields": FIELDS}},
                {"name": "ScaleByResolution#spacing", "args": {"fields": FIELDS, "target_resolution": [1.5, 1.5, 1.5]}},
                {"name": "NormalizeNonzeroIntensities#norm", "args": {"fields": "image"}},
                {"name": "CropByPosNegRatio", "args": {"size": ROI, "fields": FIELDS, "label_field": "label",
                                                       "batch_size": 2}},
            ],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "training",
                "output_crop_size": ROI, "output_batch_size": 2, "num_workers": 0}},
        },
        "validate": {
            "metrics": [{"name": "ComputeAverageDice", "args": {"name": "mean_dice", "field": "model",
                                                                 "label_field": "label", "is_key_metric": True}}],
            "pre_transforms": [{"ref": "load"}, {"ref": "ch"}, {"ref": "spacing"}, {"ref": "norm"}],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "validation",
                "output_crop_size": [-1, -1, -1], "output_batch_size": 1, "num_workers": 0, "shuffle": False}},
            "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": ROI, "batch_size": 2}},
        },
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sameness")
    datalist = make_synthetic_dataset(str(root / "data"), num_cases=4, size=24, seed=2, num_validation=1)
    mmar = root / "mmar"
    Mmar.create(str(mmar))
    (mmar / "config" / "config_train.json").write_text(json.dumps(config(epochs=6)))
    (mmar / "config" / "environment.json").write_text(json.dumps(
        {"DATASET_JSON": datalist, "MMAR_CKPT_DIR": "models", "MMAR_EVAL_OUTPUT_PATH": "eval"}))
    assert cli(["train", "-m", str(mmar)]) == 0
    assert cli(["export", "-m", str(mmar), "--no_triton"]) == 0  # models/model.ts, model.onnx, config_inference.json
    item = json.load(open(datalist))["validation"][0]
    case = item["image"] if os.path.isabs(item["image"]) else str(root / "data" / item["image"])
    label = item["label"] if os.path.isabs(item["label"]) else str(root / "data" / item["label"])
    inputs = root / "input"
    os.makedirs(inputs)
    shutil.copy(case, inputs)
    return {"root": root, "mmar": str(mmar), "case": case, "label": label, "inputs": str(inputs),
            "stem": os.path.basename(case).removesuffix(".nii.gz"), "datalist": datalist}


FORMATS = {"checkpoint": "model.pt", "torchscript": "model.ts", "onnx": "model.onnx"}


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    mmar = trained["mmar"]
    derived = json.load(open(os.path.join(mmar, "models", "config_inference.json")))
    pool = []
    for fmt, name in FORMATS.items():
        model_config = {"type": "segmentation", "labels": ["object"], "model_path": os.path.join(mmar, "models", name),
                        "precision": "fp32", "pre_transforms": derived["pre_transforms"],
                        "inferer": derived["inferer"], "post_transforms": derived.get("post_transforms", [])}
        path = os.path.join(str(trained["root"]), f"model_{fmt}.json")
        with open(path, "w") as fh:
            json.dump(model_config, fh)
        pool.append({"name": f"seg_{fmt}", "class": "SegmentationEngine", "config_file": path})
    pool_file = os.path.join(str(trained["root"]), "engine_pool.json")
    with open(pool_file, "w") as fh:
        json.dump(pool, fh)
    settings = ServerSettings(engine_pool=pool_file, workspace=str(tmp_path_factory.mktemp("ws")))
    live = LiveServer(create_app(settings)).start()
    yield AIAAClient(live.url)
    live.stop()


def _nifti(path: str) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_door_gives_the_same_mask(trained, server, fmt, tmp_path) -> None:
    mmar, stem = trained["mmar"], trained["stem"]
    model = os.path.join(mmar, "models", FORMATS[fmt])
    masks: dict[str, np.ndarray] = {}

    assert cli(["infer", "-m", mmar, "--model_file_path", model, "-o", str(tmp_path / "infer"), "--no_progress"]) == 0
    masks["infer"] = _nifti(str(tmp_path / "infer" / stem / f"{stem}_model.nii.gz"))

    ev = tmp_path / "evaluate"
    assert cli(["evaluate", "-m", mmar, "--model_file_path", model, "-o", str(ev), "--save_predictions",
                "--no_progress"]) == 0
    masks["evaluate"] = _nifti(str(ev / stem / f"{stem}_model.nii.gz"))
    reported = float(open(ev / "mean_dice_raw_results.txt").read().split()[1])
    assert reported == pytest.approx(_dice(masks["evaluate"], _nifti(trained["label"])), abs=1e-6)

    r = server.segmentation(f"seg_{fmt}", trained["case"])
    assert r.status == 200, r.body
    out = tmp_path / "upload.nii.gz"
    out.write_bytes(r.files["result.nii.gz"])
    masks["server upload"] = _nifti(str(out))
    session = server.create_session(trained["case"])
    assert session.status == 200
    r = server.segmentation(f"seg_{fmt}", None, session_id=session.json()["session_id"])
    assert r.status == 200, r.body
    out = tmp_path / "session.nii.gz"
    out.write_bytes(r.files["result.nii.gz"])
    masks["server session"] = _nifti(str(out))

    app = str(tmp_path / "app")
    assert deploy_main(["--init_app", app, "--from_export", os.path.join(mmar, "models")]) == 0
    folders = {k: str(tmp_path / k) for k in ("output", "publish", "logs")}
    assert deploy_main(["--app", app, "--model", model, "--input", trained["inputs"], "--output", folders["output"],
                        "--publish", folders["publish"], "--logs", folders["logs"], "--no_progress"]) == 0
    written = sitk.ReadImage(os.path.join(folders["output"], stem + ".mhd"))
    masks["deploy"] = sitk.GetArrayFromImage(written).transpose(2, 1, 0)

    reference = masks["infer"]
    source = _nifti(trained["case"])
    assert reference.shape == source.shape and 0 < reference.sum() < reference.size
    assert _dice(reference, _nifti(trained["label"])) > 0.5  # a model that learned something
    for door, mask in masks.items():
        assert mask.shape == reference.shape, door
        assert np.array_equal(mask.astype(np.uint8), reference.astype(np.uint8)), (
            f"{fmt}: {door} differs from infer in {(mask != reference).sum()} voxels")
