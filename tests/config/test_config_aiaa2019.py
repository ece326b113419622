"""The 2019 AIAA config form (seed 004 §6.1): what it becomes, and early errors naming the seed key."""

import json

import pytest

from ai4med.config.errors import ConfigError
from ai4med.config.workflow_config import load_config


def write(tmp_path, doc) -> str:
    path = tmp_path / "config_train_aiaa.json"
    path.write_text(json.dumps(doc))
    return str(path)


BASE = {"num_channels": 2, "num_classes": 3, "batch_size": 4, "num_workers": 1, "network_input_size": [64, 64, 32],
        "use_scanning_window": True,
        "net_config": {"name": "SegmAhnet3D", "if_from_scratch": False, "pretrain_weight_name": "/var/tmp/",
                       "if_use_psp": True, "final_activation": "softmax"},
        "train": {"loss": {"name": "losses.dice_loss"}, "pre_transforms": [],
                  "metrics": [{"name": "MetricAverageFromArrayDice", "tag": "mean_dice", "stopping_metric": True,
                               "applied_key": "model"}]},
        "validate": {"pre_transforms": []}}


def test_the_2019_form_becomes_the_sections_the_workflows_read(tmp_path, caplog):
    caplog.set_level("INFO")
    cfg = load_config(write(tmp_path, BASE), overrides={"DATASET_JSON": "/d/dl.json", "DATA_ROOT": "/d"})
    assert cfg.get("/train/model") == {"name": "SegmAhnet3D", "args": {
        "if_use_psp": True, "final_activation": "softmax", "num_classes": 3, "num_in_channels": 2}}
    assert cfg.get("/train/image_pipeline/args") == {
        "data_list_file_path": "/d/dl.json", "data_file_base_dir": "/d", "data_list_key": "training",
        "output_batch_size": 4, "num_workers": 1, "output_crop_size": [64, 64, 32]}
    assert cfg.get("/validate/image_pipeline/args/data_list_key") == "validation"
    assert cfg.get("/validate/metrics") == BASE["train"]["metrics"] and not cfg.has("/train/metrics")
    assert cfg.get("/validate/inferer") == {"name": "TorchScanWindowInferer", "args": {"roi_size": [64, 64, 32]}}
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 1 and "/net_config/if_from_scratch" in ignored[0] and "pretrain_weight_name" in ignored[0]
    metric = cfg.build("/validate/metrics/0", "metrics")
    assert (metric.get_name(), metric.get_field(), metric.is_key_metric()) == ("mean_dice", "model", True)


def test_no_scanning_window_means_the_simple_inferer(tmp_path):
    cfg = load_config(write(tmp_path, {**BASE, "use_scanning_window": False}))
    assert cfg.get("/validate/inferer") == {"name": "TorchSimpleInferer"}


@pytest.mark.parametrize("change, pointer, text", [
    (lambda d: d.pop("validate"), "/train/metrics", "needs the validation transforms"),
    (lambda d: d["net_config"].pop("name"), "/net_config", "the network's \"name\""),
    (lambda d: d["train"].update(model={"name": "Unet"}), "/net_config", "both /net_config"),
    (lambda d: d.update(use_scanning_window="yes"), "/use_scanning_window", "true or false"),
    (lambda d: d.update(net_config={"path": "fractions.Fraction"}), "/num_channels", "takes no input-channel arg"),
])
def test_what_cannot_be_expressed_fails_naming_the_seed_key(tmp_path, change, pointer, text):
    doc = json.loads(json.dumps(BASE))
    change(doc)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, doc))
    assert info.value.pointer == pointer and text in str(info.value)


def test_the_3x_form_is_left_alone(tmp_path):
    doc = {"epochs": 1, "train": {"model": {"name": "Unet", "args": {}}, "pre_transforms": []}}
    assert load_config(write(tmp_path, doc)).data == doc


@pytest.mark.parametrize("name, args", [
    ("transforms_ctrl.CropSubVolumePosNegRatioCtrlEpoch", {"image_field": "image", "label_field": "label"}),
    ("transforms_fastaug.TransformVolumeCropROIFastPosNegRatio", {"applied_keys": ["image", "label"]}),
])
def test_the_appendix_module_prefixes_name_transforms(tmp_path, name, args):
    """Seed 004 §10.2 (lines 1164, 1183) names these two with their module prefixes; they were unknown."""
    node = {"name": name, **args, "size": [8, 8, 8]}
    cfg = load_config(write(tmp_path, {"train": {"pre_transforms": [node]}}))
    transform = cfg.build("/train/pre_transforms/0", "transforms")
    assert type(transform).__name__ == name.split(".")[1]
