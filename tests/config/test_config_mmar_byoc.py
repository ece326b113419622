"""MMAR layout and seed 002's BYOC examples run unchanged from custom/ through a config."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.config.errors import ConfigError
from ai4med.config.mmar import Mmar
from ai4med.config.workflow_config import load_config

SEED_CODE = os.path.join(os.path.dirname(__file__), "data", "CustomCode.py")


def test_create_makes_the_layout(tmp_path) -> None:
    m = Mmar.create(tmp_path / "m")
    for folder in ("config", "commands", "models", "eval", "docs", "resources", "custom"):
        assert os.path.isdir(tmp_path / "m" / folder)
    assert m.config_dir == str(tmp_path / "m" / "config") and m.custom_dir == str(tmp_path / "m" / "custom")
    assert (m.commands_dir, m.models_dir, m.eval_dir, m.docs_dir, m.resources_dir) == tuple(
        str(tmp_path / "m" / f) for f in ("commands", "models", "eval", "docs", "resources"))
    assert m.default_variables() == {
        "MMAR_ROOT": str(tmp_path / "m"),
        "MMAR_CKPT_DIR": str(tmp_path / "m" / "models"),
        "MMAR_EVAL_OUTPUT_PATH": str(tmp_path / "m" / "eval"),
    }
    assert m.resolve("models/model.pt") == str(tmp_path / "m" / "models" / "model.pt")
    assert m.resolve("/abs/x") == "/abs/x"


def test_activate_is_idempotent_and_switches_mmars(tmp_path) -> None:
    a, b = Mmar.create(tmp_path / "a"), Mmar.create(tmp_path / "b")
    for m, value in ((a, 1), (b, 2)):
        with open(os.path.join(m.custom_dir, "ai4med_test_switch.py"), "w") as fh:
            fh.write(f"VALUE = {value}\n")
    try:
        a.activate()
        a.activate()
        assert sys.path[:2] == [a.custom_dir, a.root]
        assert sys.path.count(a.custom_dir) == 1
        import ai4med_test_switch

        assert ai4med_test_switch.VALUE == 1
        b.activate()  # same module name in another MMAR: the old one is forgotten
        assert a.custom_dir not in sys.path and sys.path[:2] == [b.custom_dir, b.root]
        import ai4med_test_switch as again

        assert again.VALUE == 2
    finally:
        b.deactivate()
        a.deactivate()
    assert b.custom_dir not in sys.path and "ai4med_test_switch" not in sys.modules


@pytest.fixture
def byoc(mmar, write_json, tmp_path):
    """A temporary MMAR with seed 002's code in custom/CustomCode.py and a config using it."""
    shutil.copy(SEED_CODE, os.path.join(mmar.custom_dir, "CustomCode.py"))
    write_json(os.path.join(mmar.config_dir, "environment.json"), {"DATA_ROOT": str(tmp_path / "data"), "MAG": 5})
    write_json(os.path.join(mmar.config_dir, "config_train.json"), {
        "epochs": 2,
        "train": {
            "pre_transforms": [
                {"name": "MyNumpyLoader", "path": "CustomCode.MyNumpyLoader",
                 "args": {"fields": ["image", "label"], "shape": "DHW"}},
                {"name": "MyAddRandomConstant", "path": "CustomCode.MyAddRandomConstant",
                 "args": {"fields": ["image", "label"], "magnitude": "{MAG}"}},
            ],
        },
        "validate": {
            "metrics": [
                {"name": "SampleComputeAverage", "path": "CustomCode.SampleComputeAverage",
                 "args": {"name": "metric_mean_value_1", "field": "accuracy"}},
            ],
            "pre_transforms": [{"ref": "MyNumpyLoader"}],
        },
    })
    return mmar


def test_seed_002_transforms_run_unchanged(byoc, tmp_path) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4, 5, 6)).astype(np.float32)
    label = (rng.random((4, 5, 6)) > 0.5).astype(np.uint8)
    os.makedirs(tmp_path / "data")
    paths = {"image": str(tmp_path / "data" / "img.npy"), "label": str(tmp_path / "data" / "lbl.npy")}
    np.save(paths["image"], image)
    np.save(paths["label"], label)

    cfg = load_config(os.path.join(byoc.config_dir, "config_train.json"))
    assert cfg.mmar is not None and cfg.mmar.root == byoc.root  # inferred from the config/ folder
    loader, add_constant = cfg.build_list("/train/pre_transforms", "transforms")
    assert type(loader).__module__ == "CustomCode" and add_constant.magnitude == 5
    assert loader.is_deterministic() and not add_constant.is_deterministic()

    ctx = loader.transform(TransformContext(dict(paths)))
    for field, saved in (("image", image), ("label", label)):
        img = ctx.get_image(field)
        assert isinstance(img, MedicalImage) and img.get_shape_format() == "DHW"
        np.testing.assert_array_equal(img.get_data(), saved.astype(np.float32))
        assert img.get_property(ImageProperty.ORIGINAL_SHAPE) == (4, 5, 6)
        assert img.get_property(ImageProperty.FILENAME) == paths[field]

    loaded = {f: ctx.get_image(f).get_data().copy() for f in ("image", "label")}
    ctx = add_constant.transform(ctx)
    for field in ("image", "label"):
        out = ctx.get_image(field)
        diff = out.get_data() - loaded[field]
        assert np.allclose(diff, diff.flat[0], atol=1e-5), "one constant for every voxel"
        assert -5.0 <= diff.flat[0] <= 5.0
        assert out.get_property(ImageProperty.FILENAME) == paths[field], "new_image keeps the properties"

    (val_loader,) = cfg.build_list("/validate/pre_transforms", "transforms")
    assert val_loader is loader


def test_seed_002_metric_runs_unchanged(byoc) -> None:
    cfg = load_config("config/config_train.json", mmar_root=byoc.root)
    (metric,) = cfg.build_list("/validate/metrics", "metrics")
    assert (metric.get_name(), metric.get_field(), metric.is_key_metric()) == ("metric_mean_value_1", "accuracy", False)
    assert metric.get() == 0
    for value in (0.5, 0.75, 1.0):
        metric.update(value)
    assert metric.get() == pytest.approx(0.75)


def test_byoc_code_errors_are_located(byoc) -> None:
    with open(os.path.join(byoc.custom_dir, "Broken.py"), "w") as fh:
        fh.write("def oops(:\n")
    cfg = load_config(os.path.join(byoc.config_dir, "config_train.json"))
    with pytest.raises(ConfigError) as info:
        cfg.builder.build({"path": "Broken.Thing"}, "transforms", "/train/pre_transforms/0")
    assert info.value.pointer == "/train/pre_transforms/0/path"
    assert "importing 'Broken.Thing' failed: SyntaxError" in str(info.value)
    with pytest.raises(ConfigError) as info:
        cfg.builder.build({"path": "CustomCode.MyNumpyLoader", "args": {"fields": "image", "shape": "XYZ"}},
                          "transforms", "/train/pre_transforms/0")
    assert str(info.value).startswith(
        f"{os.path.join(byoc.config_dir, 'config_train.json')}: /train/pre_transforms/0: "
        "MyNumpyLoader could not be built: ValueError: unknown shape format 'XYZ'"
    )
