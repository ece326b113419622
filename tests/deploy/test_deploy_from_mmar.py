"""MMAR -> `ai4med export` -> `deploy --init_app --from_export` -> deploy: the app runs the MMAR's
pre-processing (here NormalizeNonzeroIntensities, not the base app's CT window) and its
segmentation equals `ai4med infer`'s; the derivation of the app config from a training config."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ai4med.apps._deploy_config import derive_inference_config
from ai4med.cli import main as cli
from ai4med.config.errors import ConfigError
from ai4med.config.mmar import Mmar
from ai4med.datasets.synthetic import make_synthetic_dataset
from ai4med.deploy.__main__ import main as deploy_main
from ai4med.deploy.app import load_app

ROI = [16, 16, 16]


def tiny_mmar_config(epochs: int) -> dict:
    """A tiny demo-like MMAR config: LoadNifti, ConvertToChannelsFirst, NormalizeNonzeroIntensities."""
    fields = ["image", "label"]
    return {
        "epochs": epochs,
        "num_training_epoch_per_valid": epochs,
        "learning_rate": 0.01,
        "determinism": {"random_seed": 3},
        "train": {
            "loss": {"name": "CrossEntropyDice"},
            "optimizer": {"name": "Adam", "args": {"learning_rate": "{learning_rate}"}},
            "model": {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2],
                                                "num_res_units": 0, "final_activation": "softmax"}},
            "pre_transforms": [
                {"name": "LoadNifti#load", "args": {"fields": fields}},
                {"name": "ConvertToChannelsFirst#ch", "args": {"fields": fields}},
                {"name": "NormalizeNonzeroIntensities#norm", "args": {"fields": "image"}},
                {"name": "CropByPosNegRatio", "args": {"size": ROI, "fields": fields, "label_field": "label",
                                                       "batch_size": 2}},
            ],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "training",
                "output_crop_size": ROI, "output_batch_size": 2, "num_workers": 0}},
        },
        "validate": {
            "metrics": [{"name": "ComputeAverageDice", "args": {"name": "mean_dice", "field": "model",
                                                                 "label_field": "label", "is_key_metric": True}}],
            "pre_transforms": [{"ref": "load"}, {"ref": "ch"}, {"ref": "norm"}],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "validation",
                "output_crop_size": [-1, -1, -1], "output_batch_size": 1, "num_workers": 0, "shuffle": False}},
            "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": ROI, "batch_size": 2}},
        },
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("from_mmar")
    data = root / "data"
    datalist = make_synthetic_dataset(str(data), num_cases=4, size=24, seed=1, num_validation=1)
    mmar = root / "mmar"
    Mmar.create(str(mmar))
    (mmar / "config" / "config_train.json").write_text(json.dumps(tiny_mmar_config(epochs=8)))
    (mmar / "config" / "environment.json").write_text(json.dumps(
        {"DATASET_JSON": datalist, "MMAR_CKPT_DIR": "models", "MMAR_EVAL_OUTPUT_PATH": "eval"}))
    assert cli(["train", "-m", str(mmar)]) == 0
    infer_out = root / "infer"
    assert cli(["infer", "-m", str(mmar), "-o", str(infer_out), "--no_progress"]) == 0
    export = root / "export"
    assert cli(["export", "-m", str(mmar), "-o", str(export), "--no_triton"]) == 0
    case = json.load(open(datalist))["validation"][0]["image"]
    case = case if os.path.isabs(case) else os.path.join(str(data), case)
    inputs = root / "input"
    os.makedirs(inputs)
    shutil.copy(case, inputs)
    stem = os.path.basename(case).removesuffix(".nii.gz")
    prediction = np.asarray(nib.load(infer_out / stem / f"{stem}_model.nii.gz").dataobj)
    return {"root": root, "mmar": str(mmar), "export": str(export), "case": case, "stem": stem,
            "inputs": str(inputs), "infer": prediction}


def _deploy(app: str, inputs: str, out) -> str:
    folders = {k: str(out / k) for k in ("output", "publish", "logs")}
    assert deploy_main(["--app", app, "--model", os.path.join(app, "models", "model.onnx"), "--input", inputs,
                        "--output", folders["output"], "--publish", folders["publish"], "--logs", folders["logs"],
                        "--no_progress"]) == 0
    return folders["output"]


def _labels_xyz(path: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(path)).transpose(2, 1, 0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def test_deploy_from_an_export_matches_infer(trained, tmp_path, capsys) -> None:
    export = trained["export"]
    derived = json.load(open(os.path.join(export, "config_inference.json")))
    assert [t["name"] for t in derived["pre_transforms"]] == [
        "LoadNifti", "ConvertToChannelsFirst", "NormalizeNonzeroIntensities"]
    assert derived["inferer"]["args"]["roi_size"] == ROI and derived["inferer"]["args"]["batch_size"] == 2
    app = str(tmp_path / "app")
    assert deploy_main(["--init_app", app, "--from_export", export]) == 0
    assert "config/config_inference.json: from the export" in capsys.readouterr().out
    assert json.load(open(os.path.join(app, "config", "config_inference.json"))) == derived
    out = _deploy(app, trained["inputs"], tmp_path)
    written = os.path.join(out, trained["stem"] + ".mhd")
    src, seg = sitk.ReadImage(trained["case"]), sitk.ReadImage(written)
    assert seg.GetSize() == src.GetSize()
    np.testing.assert_allclose(seg.GetOrigin(), src.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(seg.GetSpacing(), src.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(seg.GetDirection(), src.GetDirection(), atol=1e-5)
    labels, reference = _labels_xyz(written), trained["infer"]
    assert labels.shape == reference.shape and reference.sum() > 0 and labels.sum() > 0
    assert (labels == reference).mean() > 0.999 and _dice(labels, reference) >= 0.99


def test_without_the_derived_config_the_base_app_misses_the_model(trained, tmp_path, capsys) -> None:
    """The regression guard: an export without config_inference.json gives the base app's CT window."""
    old_export = tmp_path / "old_export"
    shutil.copytree(trained["export"], old_export)
    os.remove(old_export / "config_inference.json")
    app = str(tmp_path / "app")
    assert deploy_main(["--init_app", app, "--from_export", str(old_export)]) == 0
    assert "the base application's" in capsys.readouterr().out
    out = _deploy(app, trained["inputs"], tmp_path)
    labels = _labels_xyz(os.path.join(out, trained["stem"] + ".mhd"))
    assert _dice(labels, trained["infer"]) < 0.5


def test_derivation_resolves_refs_and_drops_labels(tmp_path) -> None:
    cfg = {
        "train": {"pre_transforms": [
            {"name": "transforms.LoadNifty", "fields": ["image", "label"]},  # 2019 inline form, alias LoadNifty
            {"name": "ConvertToChannelsFirst#ch", "args": {"fields": ["image", "label"]}},
            {"name": "ScaleByResolution#spacing", "args": {"fields": ["image", "label"],
                                                           "target_resolution": [1.0, 1.0, 1.0]}},
            {"name": "NormalizeNonzeroIntensities#norm", "args": {"fields": "image"}},
        ]},
        "validate": {
            "metrics": [{"name": "ComputeAverageDice", "args": {"label_field": "seg"}}],
            "pre_transforms": [
                {"ref": "LoadNifty"}, {"ref": "ch"}, {"ref": "spacing"},
                {"name": "ConvertToChannelsFirst", "args": {"fields": ["seg"]}},  # label only: dropped
                {"ref": "norm", "disabled": True},
                {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": 0, "a_max": 1, "b_min": 0.0,
                                                         "b_max": 1.0}, "disabled": True},
                {"ref": "norm"},
            ],
            "post_transforms": [{"name": "ArgmaxAcrossChannels", "args": {"fields": ["model", "seg"]}},
                                {"name": "SplitBasedOnLabel", "args": {"field": "seg"}}],
            "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": [8, 8, 8], "batch_size": 3,
                                                                "overlap": 0.5}},
        },
    }
    doc = derive_inference_config(cfg)
    assert doc["pre_transforms"] == [
        {"name": "LoadNifty", "args": {"fields": ["image"]}},
        {"name": "ConvertToChannelsFirst", "args": {"fields": ["image"]}},
        {"name": "ScaleByResolution", "args": {"fields": ["image"], "target_resolution": [1.0, 1.0, 1.0]}},
        {"name": "NormalizeNonzeroIntensities", "args": {"fields": "image"}},
    ]
    assert doc["post_transforms"] == [{"name": "ArgmaxAcrossChannels", "args": {"fields": ["model"]}}]
    assert doc["inferer"] == {"name": "TRTISScanWindowInferer", "args": {
        "ip": "localhost", "port": 8000, "protocol": "HTTP", "batch_size": 3, "roi_size": [8, 8, 8], "overlap": 0.5}}
    assert doc["model_loader"]["name"] == "TRTISModelLoader" and doc["writers"][0]["name"] == "MhdWriter"
    assert "#" not in json.dumps(doc["pre_transforms"])

    # without validation post-transforms: the base app's argmax + restore; the app folder loads
    del cfg["validate"]["post_transforms"]
    doc = derive_inference_config(cfg)
    assert [t["name"] for t in doc["post_transforms"]] == ["SegmentationPostProcess"]  # what `ai4med infer` runs
    app = tmp_path / "app"
    os.makedirs(app / "config")
    (app / "config" / "config_inference.json").write_text(json.dumps(doc))
    (app / "config" / "model_config.json").write_text(json.dumps({
        "model_name": "m", "input_node_names": ["NV_MODEL_INPUT"], "output_node_names": ["NV_MODEL_OUTPUT"],
        "data_format": "channels_first", "output_channel_dict": {"NV_MODEL_OUTPUT": 2},
        "network_input_size": [8, 8, 8]}))
    loaded = load_app(str(app))
    assert [type(t).__name__ for t in loaded.pre_transforms] == [
        "LoadNifty", "ConvertToChannelsFirst", "ScaleByResolution", "NormalizeNonzeroIntensities"]
    assert loaded.inferer.roi_size == [8, 8, 8] and loaded.inferer.overlap == 0.5

    assert derive_inference_config({"validate": {"inferer": {"name": "TFScanWindowInferer"}}}) is None
    with pytest.raises(ConfigError, match="names no component"):
        derive_inference_config({"validate": {"pre_transforms": [{"ref": "nowhere"}]}})
