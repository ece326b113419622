"""{VAR} substitution (typed vs embedded), --set parsing and variable priority."""

from __future__ import annotations

import pytest

from ai4med.config.errors import ConfigError
from ai4med.config.variables import (
    config_globals,
    layer,
    parse_overrides,
    parse_value,
    resolve_variables,
    set_config_path,
    substitute,
)
from ai4med.config.workflow_config import load_config


def test_parse_overrides_is_typed() -> None:
    got = parse_overrides(["epochs=5", "lr=1e-4", "multi_gpu=true", "roi=[96,96,96]", "name=abc"])
    assert got == {"epochs": 5, "lr": 1e-4, "multi_gpu": True, "roi": [96, 96, 96], "name": "abc"}
    assert type(got["epochs"]) is int and type(got["lr"]) is float


@pytest.mark.parametrize(
    ("text", "value"),
    [("True", True), ("FALSE", False), ("none", None), ("null", None), ('"5"', "5"), ("a=b", "a=b"),
     ("{MMAR_ROOT}/models", "{MMAR_ROOT}/models"), ('{"a": 1}', {"a": 1}), ("", "")],
)
def test_parse_value(text, value) -> None:
    assert parse_value(text) == value


def test_value_may_contain_equals_sign() -> None:
    assert parse_overrides(["expr=a=b"]) == {"expr": "a=b"}


@pytest.mark.parametrize("item", ["epochs5", "=5", "two words=1"])
def test_malformed_override_is_named(item) -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["epochs=1", item])
    assert str(info.value) == f"--set: {item!r} is not KEY=VALUE (for example epochs=5)"


def test_exact_reference_keeps_type_embedded_is_str() -> None:
    variables = {"epochs": 5, "roi": [96, 96, 96], "amp": False, "ROOT": "/data", "lr": 1e-4}
    tree = {
        "epochs": "{epochs}", "roi": "{roi}", "amp": "{amp}",
        "file": "{ROOT}/set_{epochs}.json", "msg": "lr={lr} amp={amp}", "list": ["{ROOT}", 3],
    }
    got = substitute(tree, variables, "c.json")
    assert got == {
        "epochs": 5, "roi": [96, 96, 96], "amp": False,
        "file": "/data/set_5.json", "msg": "lr=0.0001 amp=False", "list": ["/data", 3],
    }
    got["roi"].append(1)
    assert variables["roi"] == [96, 96, 96], "typed values are copies"


def test_non_variable_braces_and_escapes_are_kept() -> None:
    tree = {"a": "{0}", "b": "{ x }", "c": "{{ROOT}}", "d": "plain"}
    assert substitute(tree, {}, "c.json") == {"a": "{0}", "b": "{ x }", "c": "{ROOT}", "d": "plain"}


def test_undefined_variable_names_file_and_pointer() -> None:
    tree = {"train": {"pre_transforms": [{}, {"args": {"path": "{DATA_ROOOT}/x"}}]}}
    with pytest.raises(ConfigError) as info:
        substitute(tree, {"DATA_ROOT": "/d"}, "config_train.json")
    err = info.value
    assert err.file == "config_train.json"
    assert err.pointer == "/train/pre_transforms/1/args/path"
    assert str(err).startswith(
        "config_train.json: /train/pre_transforms/1/args/path: undefined variable {DATA_ROOOT}; "
        "did you mean 'DATA_ROOT'?"
    )


def test_variables_refer_to_variables_and_cycles_fail() -> None:
    got = resolve_variables(layer({"A": "{B}/a", "B": "{C}", "C": 7}, "environment.json"))
    assert got == {"A": "7/a", "B": 7, "C": 7}
    with pytest.raises(ConfigError) as info:
        resolve_variables(layer({"A": "{B}", "B": "x{A}"}, "environment.json"))
    assert str(info.value) == "environment.json: /A: variables refer to each other in a cycle: A -> B -> A"


def test_config_globals_are_top_level_scalars() -> None:
    cfg = {"epochs": 3, "lr": 0.1, "roi": [1, 2], "name": None, "train": {"x": 1}, "search": [{"a": 1}]}
    assert config_globals(cfg) == {"epochs": 3, "lr": 0.1, "roi": [1, 2], "name": None}


def test_set_config_path_sets_nested_nodes() -> None:
    cfg = {"train": {"optimizer": {"name": "Adam", "args": {"lr": 1}}, "pre_transforms": [{"args": {"a_min": 0}}]}}
    set_config_path(cfg, "train.optimizer.args.lr", 0.1, "c.json")
    set_config_path(cfg, "train.pre_transforms.0.args.a_min", -1000, "c.json")
    set_config_path(cfg, "train.model.args.n", 2, "c.json")
    assert cfg["train"]["optimizer"]["args"]["lr"] == 0.1
    assert cfg["train"]["pre_transforms"][0]["args"]["a_min"] == -1000
    assert cfg["train"]["model"] == {"args": {"n": 2}}


def test_set_config_path_errors_name_the_node() -> None:
    cfg = {"train": {"pre_transforms": [{}], "epochs": 3}}
    with pytest.raises(ConfigError) as info:
        set_config_path(cfg, "train.pre_transforms.5.args.x", 1, "c.json")
    assert str(info.value) == (
        "c.json: /train/pre_transforms: --set train.pre_transforms.5.args.x: '5' is not an index of this list of 1 items"
    )
    with pytest.raises(ConfigError, match=r"c.json: /train/epochs: --set train.epochs.x: this node is a int"):
        set_config_path(cfg, "train.epochs.x", 1, "c.json")


def test_priority_environment_then_globals_then_set(tmp_path, write_json) -> None:
    env = write_json(tmp_path / "environment.json", {"A": "env", "B": "env", "C": "env", "ROOT": "/r"})
    cfg = write_json(tmp_path / "config_train.json", {
        "B": "global", "C": "global", "epochs": 10,
        "train": {"a": "{A}", "b": "{B}", "c": "{C}", "e": "{epochs}", "f": "{ROOT}/{C}"},
    })
    c = load_config(cfg, env, ["C=set", "epochs=2"])
    assert c.get("/train") == {"a": "env", "b": "global", "c": "set", "e": 2, "f": "/r/set"}
    assert c.get("/epochs") == 2 and c.get("/C") == "set"
    assert c.variables["A"] == "env" and c.raw["epochs"] == 10
    assert "C" not in c.raw["train"]


def test_dotted_set_changes_config_before_substitution(tmp_path, write_json) -> None:
    cfg = write_json(tmp_path / "c.json", {
        "learning_rate": 0.01,
        "train": {"optimizer": {"name": "Adam", "args": {"lr": "{learning_rate}"}}},
    })
    c = load_config(cfg, overrides=["train.optimizer.args.epsilon=1e-5", "train.optimizer.args.lr={learning_rate}",
                                     "learning_rate=0.5"])
    assert c.get("/train/optimizer/args") == {"lr": 0.5, "epsilon": 1e-5}


def test_undefined_variable_in_environment_is_located(tmp_path, write_json) -> None:
    env = write_json(tmp_path / "environment.json", {"DATASET_JSON": "{DATA_ROOT}/dataset.json"})
    cfg = write_json(tmp_path / "c.json", {"x": 1})
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env)
    assert info.value.file == env and info.value.pointer == "/DATASET_JSON"
    assert "undefined variable {DATA_ROOT}" in str(info.value)


def test_undefined_variable_in_config_is_located(tmp_path, write_json) -> None:
    cfg = write_json(tmp_path / "config_validation.json", {
        "writers": [{"name": "WriteNifti", "args": {"out_dir": "{MMAR_EVAL_OUTPUT_PATH}"}}],
    })
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value).startswith(
        f"{cfg}: /writers/0/args/out_dir: undefined variable {{MMAR_EVAL_OUTPUT_PATH}}"
    )


def test_bad_set_item_through_load_config(tmp_path, write_json) -> None:
    cfg = write_json(tmp_path / "c.json", {"x": 1})
    with pytest.raises(ConfigError, match=r"^--set: 'epochs' is not KEY=VALUE"):
        load_config(cfg, overrides=["epochs"])


def test_a_set_that_nothing_uses_is_reported_with_close_names(tmp_path, caplog) -> None:
    """A typo in `--set` (`learning_rat=...`) changed nothing, silently; now it is named."""
    import json
    import logging

    (tmp_path / "c.json").write_text(json.dumps({"epochs": 10, "learning_rate": 0.1,
                                                 "train": {"n": "{epochs}", "path": "{DATA_ROOT}/x"}}))
    (tmp_path / "e.json").write_text(json.dumps({"DATA_ROOT": "/d", "OUT": "{SUB}/o"}))
    cfg = load_config(tmp_path / "c.json", tmp_path / "e.json",
                      ["learning_rat=1e-3", "epochs=2", "DATA_ROOT=/e", "SUB=/s", "multi_gpu=true",
                       "MMAR_CKPT=/m.pt", "zzz=1"])
    # used: a top-level key, a {VAR} of the config, one of environment.json, a well-known MMAR name
    assert cfg.unused_overrides() == ["learning_rat", "multi_gpu", "zzz"]
    assert cfg.variables.get("multi_gpu") is True  # code that reads a setting uses it
    assert cfg.unused_overrides() == ["learning_rat", "zzz"]
    with caplog.at_level(logging.WARNING, logger="t"):
        assert cfg.warn_unused_overrides(logging.getLogger("t")) == ["learning_rat", "zzz"]
    assert "--set learning_rat: nothing in" in caplog.text and "did you mean 'learning_rate'?" in caplog.text
    assert "--set zzz:" in caplog.text


def test_a_dotted_set_through_a_misspelt_node_is_refused() -> None:
    tree = {"train": {"optimizer": {"args": {"learning_rate": 0.1}}, "model": {"name": "Unet"}}}
    with pytest.raises(ConfigError, match=r"/train/optimzer does not exist; did you mean 'optimizer'\?") as e:
        set_config_path(tree, "train.optimzer.args.learning_rate", 0.5, "c.json")
    assert e.value.pointer == "/train"
    assert tree["train"]["optimizer"]["args"]["learning_rate"] == 0.1 and "optimzer" not in tree["train"]
    # new nodes unlike any there are still created (an inferer's missing args), and a new leaf key is set
    set_config_path(tree, "train.model.args.dropout", 0.2, "c.json")
    set_config_path(tree, "train.optimizer.args.weight_decay", 1e-5, "c.json")
    assert tree["train"]["model"]["args"] == {"dropout": 0.2}
    assert tree["train"]["optimizer"]["args"]["weight_decay"] == 1e-5
