"""Component nodes: modern form, 2019 inline form, prefixes, aliases, refs, mistakes."""

from __future__ import annotations

import pytest

from ai4med.config.errors import ConfigError
from ai4med.config.spec import parse_spec


def test_modern_form() -> None:
    s = parse_spec({"name": "ScaleIntensityRange", "args": {"a_min": 0}, "disabled": False}, "/train/pre_transforms/2",
                   "c.json")
    assert (s.name, s.path, s.args, s.disabled, s.alias, s.kind) == (
        "ScaleIntensityRange", None, {"a_min": 0}, False, "ScaleIntensityRange", None)
    assert (s.pointer, s.args_pointer, s.file, s.explicit_alias) == (
        "/train/pre_transforms/2", "/train/pre_transforms/2/args", "c.json", False)


def test_path_and_name_both_given() -> None:
    s = parse_spec({"name": "MyNumpyLoader", "path": "CustomCode.MyNumpyLoader", "args": {}})
    assert (s.name, s.path, s.alias) == ("MyNumpyLoader", "CustomCode.MyNumpyLoader", "MyNumpyLoader")
    s = parse_spec({"path": "pkg.mod.FancyNet"})
    assert (s.name, s.path, s.alias, s.args) == (None, "pkg.mod.FancyNet", "FancyNet", {})


@pytest.mark.parametrize(
    ("name", "kind", "bare"),
    [("transforms.LoadNifty", "transforms", "LoadNifty"), ("lr_policy.DecayLRonStep", "lr_policies", "DecayLRonStep"),
     ("losses.Dice", "losses", "Dice"), ("writers.WriteNiftyResults", "writers", "WriteNiftyResults"),
     ("models.SegResnet", "models", "SegResnet"), ("metrics.ComputeAverageDice", "metrics", "ComputeAverageDice")],
)
def test_2019_prefixes_pick_the_kind(name, kind, bare) -> None:
    s = parse_spec({"name": name})
    assert (s.name, s.kind, s.alias) == (bare, kind, bare)


def test_2019_inline_args_sit_beside_the_name() -> None:
    node = {"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": -1024, "a_max": 1024,
            "applied_keys": ["image"], "disabled": False}
    s = parse_spec(node, "/train/pre_transforms/4")
    assert s.args == {"field": "image", "a_min": -1024, "a_max": 1024, "applied_keys": ["image"]}
    assert s.args_pointer == "/train/pre_transforms/4"


def test_alias_and_ref() -> None:
    s = parse_spec({"name": "ScaleByResolution#ScaleImg", "args": {}})
    assert (s.name, s.alias, s.explicit_alias) == ("ScaleByResolution", "ScaleImg", True)
    s = parse_spec({"name": "transforms.LoadNifty#load"})
    assert (s.name, s.kind, s.alias) == ("LoadNifty", "transforms", "load")
    r = parse_spec({"ref": "ScaleImg"}, "/validate/pre_transforms/1")
    assert (r.ref, r.name, r.path, r.label) == ("ScaleImg", None, None, "ref 'ScaleImg'")


@pytest.mark.parametrize(
    ("node", "pointer", "message"),
    [
        ({"name": "Dice", "args": {}, "argz": {}}, "/train/loss/argz",
         "unknown key 'argz' beside \"args\"; a component has only name, path, args, disabled"),
        ({"args": {"a": 1}}, "/train/loss", "a component needs \"name\" or \"path\" (keys found: args)"),
        ({"name": "Dice", "args": [1]}, "/train/loss/args", "\"args\" must be an object, got a list"),
        ({"name": 3}, "/train/loss/name", "'name' must be a non-empty string, got 3"),
        ({"name": "Dice", "disabled": "yes"}, "/train/loss/disabled", "'disabled' must be true or false, got 'yes'"),
        ({"name": "Dice#"}, "/train/loss/name", "'Dice#' should be 'Name#alias' with both parts"),
        ({"ref": "x", "args": {}}, "/train/loss/args", "a {\"ref\": ...} node takes no other keys, found 'args'"),
        ({"ref": 5}, "/train/loss/ref", "'ref' must be an alias name, got 5"),
        (["Dice"], "/train/loss", "expected a component object like {\"name\": ..., \"args\": {...}}, got a list"),
    ],
)
def test_mistakes_are_located(node, pointer, message) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(node, "/train/loss", "config_train.json")
    assert info.value.pointer == pointer
    assert str(info.value).startswith(f"config_train.json: {pointer}: {message}")


def test_names_with_spaces_are_kept_for_the_registry_to_report() -> None:
    s = parse_spec({"name": "losses.dice loss"})
    assert (s.name, s.kind) == ("dice loss", "losses")
