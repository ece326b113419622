"""ComponentBuilder: lookup, argument checks against signatures, wrapped constructor
errors, aliases and refs, disabled nodes, and the 2019 inline config end to end."""

from __future__ import annotations

from typing import Any

import pytest

from ai4med.config import registries as registries_module
from ai4med.config.builder import ComponentBuilder, format_signature
from ai4med.config.errors import ConfigError
from ai4med.config.registry import Registry
from ai4med.config.workflow_config import load_config


def sri(**overrides: Any) -> dict[str, Any]:
    args = {"fields": "image", "a_min": -57, "a_max": 164, "b_min": 0.0, "b_max": 1.0, "clip": True}
    args.update(overrides)
    return {"name": "ScaleIntensityRange", "args": args}


@pytest.fixture
def builder(registries) -> ComponentBuilder:
    return ComponentBuilder("config_train.json", registries=registries)


def test_build_by_name(builder) -> None:
    obj = builder.build(sri(), "transforms", "/train/pre_transforms/1")
    assert type(obj).__name__ == "ScaleIntensityRange"
    assert (obj.a_min, obj.a_max, obj.clip, obj.dtype) == (-57, 164, True, "float32")


def test_unknown_name_suggests_closest(builder) -> None:
    with pytest.raises(ConfigError) as info:
        builder.build({"name": "SegResNett", "args": {}}, "models", "/train/model")
    assert str(info.value) == (
        "config_train.json: /train/model: unknown models component 'SegResNett'; did you mean 'SegResnet'?"
    )


def test_unknown_name_in_the_real_transform_registry() -> None:
    b = ComponentBuilder("config_train.json")  # the package registries
    with pytest.raises(ConfigError) as info:
        b.build({"name": "ScaleIntensityRang", "args": {}}, "transforms", "/train/pre_transforms/3")
    assert str(info.value).startswith(
        "config_train.json: /train/pre_transforms/3: unknown transforms component 'ScaleIntensityRang'; "
        "did you mean 'ScaleIntensityRange'"
    )


def test_default_registries_are_looked_up_per_call(monkeypatch, registries) -> None:
    monkeypatch.setattr(registries_module, "get_registry", lambda kind: registries[kind])
    obj = ComponentBuilder("c.json").build({"name": "Dice", "args": {"skip_background": True}}, "losses", "/train/loss")
    assert type(obj).__name__ == "Dice" and obj.skip_background is True


def test_dotted_unknown_name_hints_at_path(builder) -> None:
    with pytest.raises(ConfigError, match=r"unknown models component 'foo.bar.FancyNet'.*write \"path\": \"foo.bar.FancyNet\""):
        builder.build({"name": "foo.bar.FancyNet"}, "models", "/train/model")


def test_unexpected_argument_shows_signature_and_points_at_the_argument(builder) -> None:
    with pytest.raises(ConfigError) as info:
        builder.build(sri(a_mn=3, foo=1), "transforms", "/train/pre_transforms/3")
    err = info.value
    assert err.pointer == "/train/pre_transforms/3/args/a_mn"
    assert str(err) == (
        "config_train.json: /train/pre_transforms/3/args/a_mn: bad arguments for ScaleIntensityRange: "
        "unexpected argument 'a_mn' (did you mean 'a_min'?); unexpected argument 'foo'; "
        "expected ScaleIntensityRange(fields, a_min, a_max, b_min, b_max, clip=False, dtype='float32')"
    )


def test_missing_argument_points_at_args(builder) -> None:
    node = sri()
    del node["args"]["a_min"]
    with pytest.raises(ConfigError) as info:
        builder.build(node, "transforms", "/train/pre_transforms/3")
    assert info.value.pointer == "/train/pre_transforms/3/args"
    assert "bad arguments for ScaleIntensityRange: missing argument 'a_min'; expected ScaleIntensityRange(" in str(info.value)


def test_signature_hides_annotations() -> None:
    def f(a: int, b: str = "x", *, c: float | None = None) -> int:
        return a

    assert format_signature(f, "F") == "F(a, b='x', *, c=None)"


def test_constructor_error_is_wrapped_and_chained(builder) -> None:
    with pytest.raises(ConfigError) as info:
        builder.build(sri(a_min=200), "transforms", "/train/pre_transforms/3")
    assert str(info.value) == (
        "config_train.json: /train/pre_transforms/3: ScaleIntensityRange could not be built: "
        "ValueError: a_min (200) must be smaller than a_max (164)"
    )
    assert isinstance(info.value.__cause__, ValueError)


def test_none_args_are_dropped_only_where_a_default_exists(builder) -> None:
    obj = builder.build(sri(dtype=None, clip=None), "transforms", "/p")
    assert (obj.dtype, obj.clip) == ("float32", False)
    # None given for a required parameter reaches the class (here it fails comparing a_min)
    with pytest.raises(ConfigError, match=r"/q: ScaleIntensityRange could not be built: TypeError: '>='"):
        builder.build(sri(a_min=None), "transforms", "/q")


def test_path_import_failure_is_located(builder) -> None:
    with pytest.raises(ConfigError) as info:
        builder.build({"path": "NoSuchModule.Thing", "args": {}}, "transforms", "/train/pre_transforms/0")
    assert info.value.pointer == "/train/pre_transforms/0/path"
    assert str(info.value).startswith(
        "config_train.json: /train/pre_transforms/0/path: cannot import 'NoSuchModule.Thing': No module named 'NoSuchModule'"
    )
    with pytest.raises(ConfigError, match=r"/model/path: cannot import 'collections.NoSuch': module 'collections' has no"):
        builder.build({"path": "collections.NoSuch"}, "models", "/model")
    with pytest.raises(ConfigError, match=r"/model/path: 'math.pi' is a float, not a class or function"):
        builder.build({"path": "math.pi"}, "models", "/model")


def test_path_wins_over_name(builder) -> None:
    obj = builder.build({"name": "SegResnet", "path": "collections.OrderedDict", "args": {"a": 1}}, "models", "/m")
    assert type(obj).__name__ == "OrderedDict" and obj == {"a": 1}


def test_broken_registered_entry_is_reported(builder) -> None:
    reg = {"models": Registry("models", {"Broken": "no_such_backend.models:Net"})}
    with pytest.raises(ConfigError, match=r"/train/model: models component 'Broken' is registered but cannot be imported: "
                                          r"ModuleNotFoundError"):
        ComponentBuilder("c.json", registries=reg).build({"name": "Broken"}, "models", "/train/model")


def test_alias_ref_returns_the_identical_object(builder) -> None:
    train = builder.build_list(
        [{"name": "LoadNifty", "args": {"fields": ["image"]}},
         {"name": "ScaleByResolution#ScaleImg", "args": {"fields": "image", "target_resolution": [1, 1, 1]}},
         {"name": "ScaleByResolution#ScaleLabel", "args": {"fields": "label", "target_resolution": [1, 1, 1],
                                                           "is_label": True}}],
        "transforms", "/train/pre_transforms",
    )
    val = builder.build_list([{"ref": "LoadNifty"}, {"ref": "ScaleImg"}, {"ref": "ScaleLabel"}], "transforms",
                             "/validate/pre_transforms")
    assert [a is b for a, b in zip(train, val)] == [True, True, True]
    assert builder.aliases == ["LoadNifty", "ScaleImg", "ScaleLabel"]


def test_unknown_ref_lists_known_aliases(builder) -> None:
    builder.build(sri(), "transforms", "/train/pre_transforms/0")
    with pytest.raises(ConfigError) as info:
        builder.build({"ref": "ScaleImg"}, "transforms", "/validate/pre_transforms/1")
    assert str(info.value).startswith(
        "config_train.json: /validate/pre_transforms/1/ref: unknown ref 'ScaleImg'; known aliases: 'ScaleIntensityRange'"
    )


def test_same_class_twice_makes_the_plain_name_ambiguous(builder) -> None:
    builder.build_list([sri(), sri(fields="label")], "transforms", "/train/pre_transforms")
    with pytest.raises(ConfigError, match=r"/v/0/ref: ref 'ScaleIntensityRange' is ambiguous: components named "
                                          r"'ScaleIntensityRange' are built at /train/pre_transforms/0, /train/pre_transforms/1"):
        builder.build({"ref": "ScaleIntensityRange"}, "transforms", "/v/0")


def test_explicit_alias_defined_twice_fails(builder) -> None:
    node = {"name": "LoadNifty#load", "args": {"fields": "image"}}
    builder.build(node, "transforms", "/a/0")
    with pytest.raises(ConfigError, match=r"c?config_train.json: /b/0/name: alias 'load' is already defined at /a/0"):
        builder.build(dict(node), "transforms", "/b/0")


def test_disabled_components_are_skipped(builder) -> None:
    nodes = [sri(), {**sri(fields="x"), "disabled": True}, {"name": "NoSuchThing", "disabled": True}]
    built = builder.build_list(nodes, "transforms", "/train/pre_transforms")
    assert len(built) == 1 and built[0].fields == "image"
    assert builder.build({"name": "Dice", "disabled": True}, "losses", "/train/loss") is None
    assert builder.build_list(None, "transforms", "/x") == []
    with pytest.raises(ConfigError, match=r"config_train.json: /train/pre_transforms: expected a list of components"):
        builder.build_list(sri(), "transforms", "/train/pre_transforms")


def test_2019_inline_config_with_prefixes(tmp_path, write_json, registries) -> None:
    cfg = write_json(tmp_path / "config_train.json", {
        "epochs": 2000,
        "train": {
            "loss": {"name": "losses.Dice"},
            "optimizer": {"name": "Adam", "lr": 1e-3, "epsilon": 1e-4},
            "lr_policy": {"name": "lr_policy.DecayLRonStep", "decay_ratio": 0.1, "decay_freq": 50000},
            "pre_transforms": [
                {"name": "transforms.LoadNifty", "fields": ["image", "label"]},
                {"name": "transforms.ScaleIntensityRange", "fields": "image", "a_min": -1024, "a_max": 1024,
                 "b_min": -1.0, "b_max": 1.0, "clip": True},
            ],
        },
        "writers": [{"applied_key": "prediction", "name": "writers.WriteNiftyResults", "dtype": "float32"}],
    })
    c = load_config(cfg, registries=registries)
    assert c.build("/train/loss", "losses").skip_background is False
    opt = c.build("/train/optimizer", "optimizers")
    assert (opt.lr, opt.epsilon) == (1e-3, 1e-4)
    assert c.build("/train/lr_policy", "lr_policies").decay_freq == 50000
    load, scale = c.build_list("/train/pre_transforms", "transforms")
    assert load.fields == ["image", "label"] and (scale.a_min, scale.b_max, scale.clip) == (-1024, 1.0, True)
    # the prefix picks the registry even when the caller asks for another kind
    (writer,) = c.build_list("/writers", "transforms")
    assert (type(writer).__name__, writer.applied_key) == ("WriteNiftyResults", "prediction")


def test_2019_inline_bad_argument_points_beside_the_name(tmp_path, write_json, registries) -> None:
    cfg = write_json(tmp_path / "config_train.json", {
        "train": {"pre_transforms": [{"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": 0,
                                      "a_max": 1, "b_min": 0, "b_max": 1}]},
    })
    with pytest.raises(ConfigError) as info:
        load_config(cfg, registries=registries).build_list("/train/pre_transforms", "transforms")
    assert info.value.pointer == "/train/pre_transforms/0/field"
    assert "unexpected argument 'field' (did you mean 'fields'?); missing argument 'fields'" in str(info.value)


class _SGD:
    def __init__(self, params, lr, momentum=0.0):
        self.params, self.lr, self.momentum = list(params), lr, momentum


def test_extra_args_come_from_the_workflow() -> None:
    b = ComponentBuilder("c.json", registries={"optimizers": Registry("optimizers", {"SGD": _SGD})})
    opt = b.build({"name": "SGD", "args": {"lr": 0.1}}, "optimizers", "/train/optimizer", extra_args={"params": [1, 2]})
    assert (opt.params, opt.lr) == ([1, 2], 0.1)
    with pytest.raises(ConfigError, match=r"c.json: /train/optimizer/args/params: argument 'params' is supplied by the "
                                          r"workflow; remove it from the config"):
        b.build({"name": "SGD", "args": {"lr": 0.1, "params": []}}, "optimizers", "/train/optimizer",
                extra_args={"params": [1]})
    with pytest.raises(ConfigError, match=r"missing argument 'params'; expected _SGD\(params, lr, momentum=0.0\)"):
        b.build({"name": "SGD", "args": {"lr": 0.1}}, "optimizers", "/o")
