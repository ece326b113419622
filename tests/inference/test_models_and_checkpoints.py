"""The one model opener and the one checkpoint reader (issue 12): weights-only reading with an explicit
trust flag, the accepted layouts, one unwrap rule (a BYOC model keeping its network in `.net`), plain
`nn.Module`s by `path`, a component that is not a model failing when the config is built, BYOC networks
in an MMAR's `custom/` found by the server's model configs, and atomic export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ai4med.inference.models import open_model
from ai4med.io.checkpoint import CheckpointError, load_weights, read_state_dict

CONV = {"path": "torch.nn.Conv3d", "args": {"in_channels": 1, "out_channels": 2, "kernel_size": 1}}


class _Unsafe:
    """Pickled as a class reference: what a malicious checkpoint would carry."""


def _conv_state() -> dict:
    torch.manual_seed(0)
    return torch.nn.Conv3d(1, 2, 1).state_dict()


def test_layouts_and_prefixes(tmp_path):
    sd = _conv_state()
    for i, obj in enumerate([{"model": sd}, {"state_dict": {"module." + k: v for k, v in sd.items()}},
                             {"model_state_dict": sd}, {"net": {"_orig_mod." + k: v for k, v in sd.items()}}, sd]):
        p = tmp_path / f"{i}.pt"
        torch.save(obj, p)
        got = read_state_dict(p)
        assert sorted(got) == sorted(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


def test_legacy_pickle_is_refused_unless_trusted(tmp_path, monkeypatch):
    p = tmp_path / "legacy.pt"
    torch.save({"model": _conv_state(), "extra": _Unsafe()}, p)
    with pytest.raises(CheckpointError, match=r"legacy.pt.*--trust_checkpoint.*AI4MED_TRUST_CHECKPOINTS=1"):
        read_state_dict(p)
    net = torch.nn.Conv3d(1, 2, 1)
    load_weights(net, p, trust=True)
    assert torch.equal(net.weight, _conv_state()["weight"])
    monkeypatch.setenv("AI4MED_TRUST_CHECKPOINTS", "1")
    assert sorted(read_state_dict(p)) == ["bias", "weight"]


def test_cli_infer_refuses_a_legacy_checkpoint_and_trusts_it_on_request(tmp_path):
    from ai4med.datasets.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(str(tmp_path / "data"), num_cases=2, size=16, num_validation=1)
    cfg = {"model": {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2],
                                                "num_res_units": 0}},
           "pre_transforms": [{"name": "LoadNifti", "args": {"fields": ["image"]}},
                              {"name": "ConvertToChannelsFirst", "args": {"fields": ["image"]}}]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from ai4med.components.models.unet import Unet

    net = Unet(**cfg["model"]["args"])
    torch.save({"model": net.get_module().state_dict(), "note": _Unsafe()}, tmp_path / "legacy.pt")
    base = [sys.executable, "-m", "ai4med", "infer", "-c", str(tmp_path / "config.json"), "-d", data,
            "--model_file_path", str(tmp_path / "legacy.pt"), "-o", str(tmp_path / "out"), "--no_progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("AI4MED_TRUST_CHECKPOINTS", None)
    r = subprocess.run(base, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1 and "--trust_checkpoint" in r.stderr + r.stdout and "Traceback" not in r.stderr
    r = subprocess.run(base + ["--trust_checkpoint"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "out")


BYOC_NET = '''
import torch
from ai4med.components.models.model import Model


class NetHolder(Model):
    """Seed-style BYOC model keeping its network in `.net` (not get_module / .model)."""

    def __init__(self, out_channels=2):
        super().__init__()
        self.net = torch.nn.Conv3d(1, out_channels, 1)

    def get_predictions(self, inputs, is_training, build_ctx=None):
        return torch.softmax(self.net(inputs), dim=1)
'''


def _mmar_with_byoc(root) -> str:
    for d in ("config", "models", "custom"):
        os.makedirs(root / d, exist_ok=True)
    (root / "custom" / "holder.py").write_text(BYOC_NET)
    node = {"name": "NetHolder", "path": "holder.NetHolder", "args": {"out_channels": 2}}
    (root / "config" / "config_train.json").write_text(json.dumps({"train": {"model": node}}))
    torch.save({"model": _conv_state()}, root / "models" / "model.pt")
    return str(root / "models" / "model.pt")


def test_checkpoint_of_a_byoc_net_holder_in_custom_opens_from_its_mmar(tmp_path):
    path = _mmar_with_byoc(tmp_path / "mmar")
    ctx = open_model(path, precision="fp32")
    x = np.random.default_rng(0).normal(size=(1, 1, 4, 4, 4)).astype(np.float32)
    out = ctx.run([torch.from_numpy(x)])["pred"]
    ref = torch.nn.Conv3d(1, 2, 1)
    ref.load_state_dict(_conv_state())
    torch.testing.assert_close(out, torch.softmax(ref(torch.from_numpy(x)), 1))


def test_server_model_config_serves_the_byoc_checkpoint(tmp_path):
    """The server finds BYOC code in the MMAR's custom/ (it said to put it there, and now it looks)."""
    from ai4med.server.engines.config import build_context

    path = _mmar_with_byoc(tmp_path / "mmar2")
    ctx = build_context({"model_path": path, "precision": "fp32"}, str(tmp_path), "cpu")
    assert ctx.run([torch.zeros(1, 1, 4, 4, 4)])["pred"].shape == (1, 2, 4, 4, 4)


def test_plain_module_by_path_is_a_model_and_a_non_model_fails_at_build(tmp_path):
    from ai4med.components.models.torch_model import TorchModel, as_model
    from ai4med.config.errors import ConfigError
    from ai4med.inference.models import build_network

    model = build_network({"path": "monai.networks.nets.BasicUNet",
                           "args": {"spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                                    "features": [4, 4, 8, 8, 16, 4]}})
    assert isinstance(model, TorchModel) and model.get_predictions(torch.zeros(1, 1, 32, 32, 32), False).shape == (
        1, 2, 32, 32, 32)
    with pytest.raises(ConfigError, match=r"/train/model.*collections.OrderedDict is not a model"):
        as_model(build_network({"path": "collections.OrderedDict"}, "cfg.json", "/train/model"), "cfg.json",
                 "/train/model")


def test_training_config_whose_model_is_not_a_model_fails_before_training(tmp_path, capsys):
    from ai4med.cli import main

    cfg = {"epochs": 1, "train": {"model": {"path": "collections.OrderedDict"}, "loss": {"name": "Dice"},
                                  "optimizer": {"name": "Adam", "args": {"learning_rate": 0.01}},
                                  "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                                      "data_list_file_path": "{DATASET_JSON}", "output_crop_size": [8, 8, 8]}}}}
    from ai4med.datasets.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(str(tmp_path / "data"), num_cases=2, size=8, num_validation=0)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert main(["train", "segmentation", "-e", str(tmp_path / "c.json"), "-d", data, "-r", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "c.json: /train/model: collections.OrderedDict is not a model" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "out" / "model.pt")


def test_failed_export_leaves_the_output_folder_as_it_was(tmp_path):
    from ai4med.apps.export import export_model

    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.Softmax(1)).eval()
    out = tmp_path / "export"
    os.makedirs(out)
    (out / "keep.txt").write_text("old")
    res = export_model(net, str(out), [8, 8, 8], fp16=True, tolerance=1e-12, triton_repo="triton")
    assert not res.committed and res.failed()
    assert sorted(os.listdir(out)) == ["keep.txt"]  # no model.ts / model.onnx / triton / model_config.json
    ok = export_model(net, str(out), [8, 8, 8], formats=("ts",), triton_repo=None)
    assert ok.committed and sorted(os.listdir(out)) == ["keep.txt", "model.ts", "model_config.json"]  # no ONNX


def test_ts_only_export_command_writes_no_onnx(tmp_path):
    """issue 17 item 7: `ai4med export --formats ts --no_triton` wrote model.onnx too."""
    from ai4med.apps.export import export_model

    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.Softmax(1)).eval()
    res = export_model(net, str(tmp_path), [4, 4, 4], formats=("ts",), triton_repo=None)
    assert set(res.files) == {"ts", "model_config"} and not (tmp_path / "model.onnx").exists()
