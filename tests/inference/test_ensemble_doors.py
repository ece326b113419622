"""Ensembles through the doors (issue 14 item 2): `ai4med infer --folds all` runs the fold models as one
ensemble (the mean of their probabilities), the same masks as `--model_file_path a b`, and different from each
member alone; a server model config lists several files."""

from __future__ import annotations

import json
import logging
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from ai4med.cli import main as cli
from ai4med.config.mmar import Mmar
from ai4med.datasets.synthetic import make_synthetic_dataset


@pytest.fixture(scope="module")
def mmar(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("ens")
    datalist = make_synthetic_dataset(str(root / "data"), num_cases=3, size=20, seed=6, num_validation=1)
    m = root / "mmar"
    Mmar.create(str(m))
    net = {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2], "num_res_units": 0,
                                     "final_activation": "softmax"}}
    cfg = {"train": {"model": net}, "validate": {
        "pre_transforms": [{"name": "LoadNifti", "args": {"fields": ["image", "label"]}},
                           {"name": "ConvertToChannelsFirst", "args": {"fields": ["image", "label"]}}],
        "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
            "data_list_file_path": "{DATASET_JSON}", "data_list_key": "validation", "output_crop_size": [-1, -1, -1]}}}}
    (m / "config" / "config_train.json").write_text(json.dumps(cfg))
    (m / "config" / "environment.json").write_text(json.dumps({"DATASET_JSON": datalist, "MMAR_CKPT_DIR": "models"}))
    from ai4med.components.models.unet import Unet

    for k in range(2):  # two "folds" with different weights that each segment something else
        torch.manual_seed(10 + k)
        model = Unet(**net["args"])
        os.makedirs(m / "models" / f"fold_{k}")
        torch.save({"model": model.get_module().state_dict()}, m / "models" / f"fold_{k}" / "model.pt")
    return str(m)


def _mask(folder) -> np.ndarray:
    (case,) = os.listdir(folder)
    return np.asarray(nib.load(os.path.join(folder, case, f"{case}_model.nii.gz")).dataobj)


def test_folds_all_is_the_ensemble_of_the_fold_models(mmar, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ai4med.apps.evaluate"):
        assert cli(["infer", "-m", mmar, "--folds", "all", "-o", str(tmp_path / "all"), "--no_progress"]) == 0
    assert "an ensemble of 2 fold models" in caplog.text and "EnsembleInferenceContext" in caplog.text
    f0, f1 = (os.path.join(mmar, "models", f"fold_{k}", "model.pt") for k in range(2))
    assert cli(["infer", "-m", mmar, "--model_file_path", f0, f1, "-o", str(tmp_path / "ab"), "--no_progress"]) == 0
    assert np.array_equal(_mask(tmp_path / "all"), _mask(tmp_path / "ab"))
    singles = []
    for k, f in enumerate((f0, f1)):
        assert cli(["infer", "-m", mmar, "--model_file_path", f, "-o", str(tmp_path / f"s{k}"), "--no_progress"]) == 0
        singles.append(_mask(tmp_path / f"s{k}"))
    assert not np.array_equal(singles[0], singles[1])  # the members disagree, so the test can tell
    assert cli(["infer", "-m", mmar, "--folds", "0,7", "-o", str(tmp_path / "x"), "--no_progress"]) == 1
    # an ensemble takes --runtime like a single model (each member runs on it)
    assert cli(["infer", "-m", mmar, "--folds", "all", "--runtime", "torch", "-o", str(tmp_path / "rt"),
                "--no_progress"]) == 0
    assert np.array_equal(_mask(tmp_path / "rt"), _mask(tmp_path / "all"))


def test_server_model_config_lists_an_ensemble(mmar, tmp_path):
    from ai4med.components.inferers.ensemble import EnsembleInferenceContext
    from ai4med.server.engines.config import build_context

    paths = [os.path.join(mmar, "models", f"fold_{k}", "model.pt") for k in range(2)]
    local = tmp_path / "m"
    shutil.copytree(mmar, local)
    ctx = build_context({"model_path": paths, "precision": "fp32"}, str(tmp_path), "cpu")
    assert isinstance(ctx, EnsembleInferenceContext) and len(ctx.members) == 2


def test_deploy_app_runs_an_ensemble_model_loader(tmp_path):
    """The deploy app's config_inference.json may list several exported files in its model_loader."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy"))
    from deploy_fixtures import make_app, make_exports, make_inputs

    from ai4med.deploy.__main__ import main as deploy_main

    export = make_exports(str(tmp_path / "export"))
    app = make_app(str(tmp_path / "app"), export)
    path = os.path.join(app, "config", "config_inference.json")
    cfg = json.load(open(path))
    shutil.copy(os.path.join(export, "model.onnx"), os.path.join(export, "model_b.onnx"))
    cfg["model_loader"] = {"name": "OnnxModelLoader", "args": {"model_file_path": [
        os.path.join(export, "model.onnx"), os.path.join(export, "model_b.onnx")]}}
    json.dump(cfg, open(path, "w"))
    cases = make_inputs(str(tmp_path / "in"))
    logs = tmp_path / "logs"
    assert deploy_main(["--app", app, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
                        "--no_publish", "--logs", str(logs), "--no_progress"]) == 0
    assert "an ensemble of 2 local models" in open(logs / "deploy.log").read()
    assert len([f for f in os.listdir(tmp_path / "o") if f.endswith(".mhd")]) == len(cases)
