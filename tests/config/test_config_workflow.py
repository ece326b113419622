"""load_config on train / validation / inference configs: sections, refs across
sections in any order, MMAR variables and environment.json discovery."""

from __future__ import annotations

import os

import pytest

from ai4med.config.errors import ConfigError
from ai4med.config.workflow_config import load_config


def _train_config() -> dict:
    return {
        "epochs": 10,
        "learning_rate": 1e-4,
        "train": {
            "loss": {"name": "Dice"},
            "optimizer": {"name": "Adam", "args": {"lr": "{learning_rate}"}},
            "model": {"name": "SegResnet", "args": {"num_classes": 3}},
            "pre_transforms": [
                {"name": "LoadNifty", "args": {"fields": ["image", "label"]}},
                {"name": "ScaleByResolution#ScaleImg", "args": {"fields": "image", "target_resolution": [1, 1, 1]}},
                {"name": "ScaleIntensityRange", "disabled": True, "args": {}},
            ],
        },
        "validate": {
            "metrics": [{"name": "ComputeAverageDice",
                         "args": {"name": "mean_dice", "field": "model", "report_path": "{MMAR_EVAL_OUTPUT_PATH}",
                                  "is_key_metric": True}}],
            "pre_transforms": [{"ref": "LoadNifty"}, {"ref": "ScaleImg"}],
        },
    }


def test_train_config_sections(mmar, write_json, registries) -> None:
    path = write_json(os.path.join(mmar.config_dir, "config_train.json"), _train_config())
    cfg = load_config(path, registries=registries)
    assert cfg.file == path and cfg.environment_file is None
    assert cfg.get("/epochs") == 10 and cfg.get("/train/model/args/num_classes") == 3
    assert cfg.get("/train/pre_transforms/1/name") == "ScaleByResolution#ScaleImg"
    assert cfg.get("/nothing/here", 7) == 7 and cfg.has("/validate/metrics/0") and not cfg.has("/train/pre_transforms/9")
    assert cfg.build("/train/optimizer", "optimizers").lr == 1e-4
    assert cfg.build("/train/model", "models").num_classes == 3
    assert cfg.build("/train/lr_policy", "lr_policies", required=False) is None
    train = cfg.build_list("/train/pre_transforms", "transforms")
    assert [type(t).__name__ for t in train] == ["LoadNifty", "ScaleByResolution"]
    val = cfg.build_list("/validate/pre_transforms", "transforms")
    assert val[0] is train[0] and val[1] is train[1]
    (dice,) = cfg.build_list("/validate/metrics", "metrics")
    assert dice.report_path == mmar.eval_dir and dice.is_key_metric is True
    assert cfg.build_list("/train/aux_ops", "aux_ops") == []


def test_refs_work_whatever_the_build_order(mmar, write_json, registries) -> None:
    path = write_json(os.path.join(mmar.config_dir, "config_train.json"), _train_config())
    cfg = load_config(path, registries=registries)
    val = cfg.build_list("/validate/pre_transforms", "transforms")  # validate first: refs build their nodes
    train = cfg.build_list("/train/pre_transforms", "transforms")
    assert val[0] is train[0] and val[1] is train[1]
    assert cfg.build("/train/pre_transforms/1", "transforms") is train[1], "one config node, one object"


def test_lazy_ref_to_a_name_used_twice_is_ambiguous(tmp_path, write_json, registries) -> None:
    path = write_json(tmp_path / "c.json", {
        "train": {"pre_transforms": [{"name": "LoadNifty", "args": {"fields": "image"}}]},
        "other": {"pre_transforms": [{"name": "LoadNifty", "args": {"fields": "label"}}]},
        "validate": {"pre_transforms": [{"ref": "LoadNifty"}, {"ref": "Nope"}]},
    })
    cfg = load_config(path, registries=registries)
    with pytest.raises(ConfigError) as info:
        cfg.build("/validate/pre_transforms/0", "transforms")
    assert "ref 'LoadNifty' is ambiguous: it names the components at /train/pre_transforms/0, /other/pre_transforms/0" \
        in str(info.value)
    with pytest.raises(ConfigError, match=r"c.json: /validate/pre_transforms/1/ref: unknown ref 'Nope'; known aliases: none"):
        cfg.build("/validate/pre_transforms/1", "transforms")


def test_validation_and_inference_configs(mmar, write_json, registries) -> None:
    write_json(os.path.join(mmar.config_dir, "environment.json"), {
        "MMAR_CKPT_DIR": "models", "DATASET_JSON": "{MMAR_ROOT}/config/dataset_0.json",
    })
    common = {
        "batch_size": 1,
        "pre_transforms": [{"name": "transforms.LoadNifty", "args": {"fields": "image"}}],
        "writers": [{"name": "WriteNiftyResults", "args": {"applied_key": "model", "dtype": "uint8"}}],
        "model_file": "{MMAR_CKPT_DIR}/model.pt",
        "datalist": "{DATASET_JSON}",
    }
    for name in ("config_validation.json", "config_inference.json"):
        write_json(os.path.join(mmar.config_dir, name), common)
        cfg = load_config(f"config/{name}", mmar_root=mmar.root, overrides=["batch_size=2"], registries=registries)
        assert cfg.environment_file == os.path.join(mmar.config_dir, "environment.json")
        assert cfg.get("/batch_size") == 2
        assert cfg.get("/model_file") == "models/model.pt", "relative paths in environment.json stay as given"
        assert cfg.resolve_path(cfg.get("/model_file")) == os.path.join(mmar.models_dir, "model.pt")
        assert cfg.get("/datalist") == os.path.join(mmar.root, "config", "dataset_0.json")
        assert cfg.build_list("/pre_transforms", "transforms")[0].fields == "image"
        assert cfg.build_list("/writers", "writers")[0].dtype == "uint8"


def test_explicit_environment_file_and_no_mmar(tmp_path, write_json) -> None:
    env = write_json(tmp_path / "env" / "environment.json", {"DATA_ROOT": "data"})
    path = write_json(tmp_path / "c.json", {"root": "{DATA_ROOT}"})
    cfg = load_config(path, environment_file=env)
    assert cfg.mmar is None and cfg.get("/root") == "data" and "MMAR_ROOT" not in cfg.variables
    assert cfg.resolve_path("data") == os.path.abspath("data")


def test_missing_required_section_is_located(tmp_path, write_json, registries) -> None:
    cfg = load_config(write_json(tmp_path / "config_train.json", {"train": {}}), registries=registries)
    with pytest.raises(ConfigError) as info:
        cfg.build("/train/model", "models")
    assert str(info.value) == f"{cfg.file}: /train/model: missing: the config has no models component here"


def test_non_object_files_are_rejected(tmp_path, write_json) -> None:
    with pytest.raises(ConfigError, match=r"c.json: a workflow config must be a JSON object"):
        load_config(write_json(tmp_path / "c.json", [1, 2]))
    env = write_json(tmp_path / "environment.json", ["DATA_ROOT"])
    with pytest.raises(ConfigError, match=r"environment.json: environment.json must be an object"):
        load_config(write_json(tmp_path / "d.json", {}), environment_file=env)


def test_unreadable_config_and_environment(tmp_path, write_json) -> None:
    with pytest.raises(ConfigError, match=r"config_train.json: cannot read the file: it does not exist"):
        load_config(tmp_path / "config_train.json")
    path = write_json(tmp_path / "c.json", {})
    with pytest.raises(ConfigError, match=r"environment.json: cannot read the file: it does not exist"):
        load_config(path, environment_file=tmp_path / "environment.json")


def test_malformed_config_through_load_config(tmp_path) -> None:
    f = tmp_path / "config_train.json"
    f.write_text('{"train": {"model": {"name": "SegResnet",}}}')
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert (info.value.file, info.value.line, info.value.column) == (str(f), 1, 42)
